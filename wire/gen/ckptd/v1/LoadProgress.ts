// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * LoadProgress frees slots of the shared-memory file.
 */
export interface LoadProgressIn {
  /**
   * Bytes of shared chunks the client has copied out so far, over the whole stream,
   * in the order they were sent.
   */
  'sharedBytesReleased'?: (number | string | Long);
}

/**
 * LoadProgress frees slots of the shared-memory file.
 */
export interface LoadProgress {
  /**
   * Bytes of shared chunks the client has copied out so far, over the whole stream,
   * in the order they were sent.
   */
  'sharedBytesReleased': (number);
}
