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
   * CRC-32C of all data bytes in stream order. A daemon that sets
   * SaveProgress.shared_chunk_crc_optional also accepts the CRC-32C of the data bytes
   * without those of shared chunks sent without a crc32c (of the inline bytes alone,
   * when no shared chunk carries one).
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
   * CRC-32C of all data bytes in stream order. A daemon that sets
   * SaveProgress.shared_chunk_crc_optional also accepts the CRC-32C of the data bytes
   * without those of shared chunks sent without a crc32c (of the inline bytes alone,
   * when no shared chunk carries one).
   */
  'crc32c': (number);
}
