// Original file: proto/ckptd/v1/evaluation_service.proto

import type { CheckpointEventIn as _ckptd_v1_CheckpointEventIn, CheckpointEvent as _ckptd_v1_CheckpointEvent } from '../../ckptd/v1/CheckpointEvent.js';
import type { WatchStartedIn as _ckptd_v1_WatchStartedIn, WatchStarted as _ckptd_v1_WatchStarted } from '../../ckptd/v1/WatchStarted.js';

/**
 * WatchCheckpointsResponse is the subscription's start marker (always the first
 * message, sent at once), then one event per message.
 */
export interface WatchCheckpointsResponseIn {
  /**
   * An event of the job's log.
   */
  'event'?: (_ckptd_v1_CheckpointEventIn | null);
  /**
   * The subscription is live: every event after `after_sequence` will follow.
   */
  'started'?: (_ckptd_v1_WatchStartedIn | null);
  /**
   * What this message carries.
   */
  'msg'?: "event"|"started";
}

/**
 * WatchCheckpointsResponse is the subscription's start marker (always the first
 * message, sent at once), then one event per message.
 */
export interface WatchCheckpointsResponse {
  /**
   * An event of the job's log.
   */
  'event'?: (_ckptd_v1_CheckpointEvent | null);
  /**
   * The subscription is live: every event after `after_sequence` will follow.
   */
  'started'?: (_ckptd_v1_WatchStarted | null);
  /**
   * What this message carries.
   */
  'msg'?: "event"|"started";
}
