// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { CommitOutcomeIn as _ckptd_v1_CommitOutcomeIn, CommitOutcome as _ckptd_v1_CommitOutcome } from '../../ckptd/v1/CommitOutcome.js';

/**
 * AbortResponse is the decision after the abort.
 */
export interface AbortResponseIn {
  /**
   * ABORTED, or COMMITTED when the decision had already been made.
   */
  'outcome'?: (_ckptd_v1_CommitOutcomeIn);
  /**
   * The reason recorded with the decision.
   */
  'reason'?: (string);
  /**
   * The attempt the decision is about.
   */
  'attempt'?: (number);
}

/**
 * AbortResponse is the decision after the abort.
 */
export interface AbortResponse {
  /**
   * ABORTED, or COMMITTED when the decision had already been made.
   */
  'outcome': (_ckptd_v1_CommitOutcome);
  /**
   * The reason recorded with the decision.
   */
  'reason': (string);
  /**
   * The attempt the decision is about.
   */
  'attempt': (number);
}
