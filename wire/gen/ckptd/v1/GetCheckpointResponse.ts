// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { CheckpointIn as _ckptd_v1_CheckpointIn, Checkpoint as _ckptd_v1_Checkpoint } from '../../ckptd/v1/Checkpoint.js';

/**
 * GetCheckpointResponse holds the checkpoint.
 */
export interface GetCheckpointResponseIn {
  /**
   * The checkpoint.
   */
  'checkpoint'?: (_ckptd_v1_CheckpointIn | null);
}

/**
 * GetCheckpointResponse holds the checkpoint.
 */
export interface GetCheckpointResponse {
  /**
   * The checkpoint.
   */
  'checkpoint': (_ckptd_v1_Checkpoint | null);
}
