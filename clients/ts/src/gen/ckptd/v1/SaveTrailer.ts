// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * SaveTrailer closes a Save stream and lets the daemon check it received everything.
 */
export interface SaveTrailerIn {
  /**
   * Number of entries sent.
   */
  'entryCount'?: (number);
  /**
   * Number of data bytes sent, over all entries.
   */
  'byteCount'?: (number | string | Long);
  /**
   * CRC-32C of all data bytes in stream order.
   */
  'crc32c'?: (number);
}

/**
 * SaveTrailer closes a Save stream and lets the daemon check it received everything.
 */
export interface SaveTrailer {
  /**
   * Number of entries sent.
   */
  'entryCount': (number);
  /**
   * Number of data bytes sent, over all entries.
   */
  'byteCount': (number);
  /**
   * CRC-32C of all data bytes in stream order.
   */
  'crc32c': (number);
}
