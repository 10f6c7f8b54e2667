// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { CheckpointViewIn as _ckptd_v1_CheckpointViewIn, CheckpointView as _ckptd_v1_CheckpointView } from '../../ckptd/v1/CheckpointView.js';

/**
 * GetCheckpointRequest names one checkpoint.
 */
export interface GetCheckpointRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id, or "latest" (or empty) for the newest committed step.
   */
  'checkpointId'?: (string);
  /**
   * How much to return.
   */
  'view'?: (_ckptd_v1_CheckpointViewIn);
}

/**
 * GetCheckpointRequest names one checkpoint.
 */
export interface GetCheckpointRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id, or "latest" (or empty) for the newest committed step.
   */
  'checkpointId': (string);
  /**
   * How much to return.
   */
  'view': (_ckptd_v1_CheckpointView);
}
