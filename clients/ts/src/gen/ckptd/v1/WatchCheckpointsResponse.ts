// Original file: proto/ckptd/v1/evaluation_service.proto

import type { CheckpointEventIn as _ckptd_v1_CheckpointEventIn, CheckpointEvent as _ckptd_v1_CheckpointEvent } from '../../ckptd/v1/CheckpointEvent.js';

/**
 * WatchCheckpointsResponse is one event.
 */
export interface WatchCheckpointsResponseIn {
  /**
   * The event.
   */
  'event'?: (_ckptd_v1_CheckpointEventIn | null);
}

/**
 * WatchCheckpointsResponse is one event.
 */
export interface WatchCheckpointsResponse {
  /**
   * The event.
   */
  'event': (_ckptd_v1_CheckpointEvent | null);
}
