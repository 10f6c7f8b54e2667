// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { CommitOutcomeIn as _ckptd_v1_CommitOutcomeIn, CommitOutcome as _ckptd_v1_CommitOutcome } from '../../ckptd/v1/CommitOutcome.js';
import type { CheckpointIn as _ckptd_v1_CheckpointIn, Checkpoint as _ckptd_v1_Checkpoint } from '../../ckptd/v1/Checkpoint.js';

/**
 * CommitResponse is the decision.
 */
export interface CommitResponseIn {
  /**
   * COMMITTED or ABORTED.
   */
  'outcome'?: (_ckptd_v1_CommitOutcomeIn);
  /**
   * Why the attempt was aborted; empty when committed.
   */
  'reason'?: (string);
  /**
   * The attempt the decision is about.
   */
  'attempt'?: (number);
  /**
   * The committed checkpoint's summary; absent when aborted.
   */
  'checkpoint'?: (_ckptd_v1_CheckpointIn | null);
}

/**
 * CommitResponse is the decision.
 */
export interface CommitResponse {
  /**
   * COMMITTED or ABORTED.
   */
  'outcome': (_ckptd_v1_CommitOutcome);
  /**
   * Why the attempt was aborted; empty when committed.
   */
  'reason': (string);
  /**
   * The attempt the decision is about.
   */
  'attempt': (number);
  /**
   * The committed checkpoint's summary; absent when aborted.
   */
  'checkpoint': (_ckptd_v1_Checkpoint | null);
}
