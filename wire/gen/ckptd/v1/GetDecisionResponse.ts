// Original file: proto/ckptd/v1/peer_service.proto

import type { CommitOutcomeIn as _ckptd_v1_CommitOutcomeIn, CommitOutcome as _ckptd_v1_CommitOutcome } from '../../ckptd/v1/CommitOutcome.js';

/**
 * GetDecisionResponse is the attempt's state.
 */
export interface GetDecisionResponseIn {
  /**
   * UNSPECIFIED while undecided, else the decision.
   */
  'outcome'?: (_ckptd_v1_CommitOutcomeIn);
  /**
   * Why it was aborted.
   */
  'reason'?: (string);
}

/**
 * GetDecisionResponse is the attempt's state.
 */
export interface GetDecisionResponse {
  /**
   * UNSPECIFIED while undecided, else the decision.
   */
  'outcome': (_ckptd_v1_CommitOutcome);
  /**
   * Why it was aborted.
   */
  'reason': (string);
}
