// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * SaveProgress tells the client how much of the shared-memory file it may reuse.
 */
export interface SaveProgressIn {
  /**
   * Bytes of shared chunks the daemon has copied out so far, over the whole stream,
   * in the order they were sent: the space of those chunks is free again.
   */
  'sharedBytesReleased'?: (number | string | Long);
}

/**
 * SaveProgress tells the client how much of the shared-memory file it may reuse.
 */
export interface SaveProgress {
  /**
   * Bytes of shared chunks the daemon has copied out so far, over the whole stream,
   * in the order they were sent: the space of those chunks is free again.
   */
  'sharedBytesReleased': (number);
}
