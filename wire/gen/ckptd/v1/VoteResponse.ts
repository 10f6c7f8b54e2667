// Original file: proto/ckptd/v1/peer_service.proto

import type { CommitOutcomeIn as _ckptd_v1_CommitOutcomeIn, CommitOutcome as _ckptd_v1_CommitOutcome } from '../../ckptd/v1/CommitOutcome.js';

/**
 * VoteResponse is the decision.
 */
export interface VoteResponseIn {
  /**
   * COMMITTED or ABORTED.
   */
  'outcome'?: (_ckptd_v1_CommitOutcomeIn);
  /**
   * Why it was aborted.
   */
  'reason'?: (string);
  /**
   * The attempt decided.
   */
  'attempt'?: (number);
}

/**
 * VoteResponse is the decision.
 */
export interface VoteResponse {
  /**
   * COMMITTED or ABORTED.
   */
  'outcome': (_ckptd_v1_CommitOutcome);
  /**
   * Why it was aborted.
   */
  'reason': (string);
  /**
   * The attempt decided.
   */
  'attempt': (number);
}
