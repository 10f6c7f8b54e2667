// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { CheckpointIn as _ckptd_v1_CheckpointIn, Checkpoint as _ckptd_v1_Checkpoint } from '../../ckptd/v1/Checkpoint.js';

/**
 * ListCheckpointsResponse is one page, newest step first.
 */
export interface ListCheckpointsResponseIn {
  /**
   * The checkpoints (basic view).
   */
  'checkpoints'?: (_ckptd_v1_CheckpointIn)[];
  /**
   * Token for the next page; empty on the last page.
   */
  'nextPageToken'?: (string);
}

/**
 * ListCheckpointsResponse is one page, newest step first.
 */
export interface ListCheckpointsResponse {
  /**
   * The checkpoints (basic view).
   */
  'checkpoints': (_ckptd_v1_Checkpoint)[];
  /**
   * Token for the next page; empty on the last page.
   */
  'nextPageToken': (string);
}
