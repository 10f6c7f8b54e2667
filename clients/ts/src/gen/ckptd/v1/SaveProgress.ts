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
  /**
   * Set on the first progress message when the daemon opened SaveHeader.shared_memory_handle.
   * A client that sent a handle and gets a first progress without it talks to a daemon
   * that predates handles: it should cancel the call and save again with a path.
   */
  'sharedMemoryHandleOpen'?: (boolean);
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
  /**
   * Set on the first progress message when the daemon opened SaveHeader.shared_memory_handle.
   * A client that sent a handle and gets a first progress without it talks to a daemon
   * that predates handles: it should cancel the call and save again with a path.
   */
  'sharedMemoryHandleOpen': (boolean);
}
