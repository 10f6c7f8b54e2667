// Original file: proto/ckptd/v1/peer_service.proto

import type { CommitOutcomeIn as _ckptd_v1_CommitOutcomeIn, CommitOutcome as _ckptd_v1_CommitOutcome } from '../../ckptd/v1/CommitOutcome.js';

/**
 * AbortAttemptResponse is the decision after the abort.
 */
export interface AbortAttemptResponseIn {
  /**
   * ABORTED, or COMMITTED if the decision was already made.
   */
  'outcome'?: (_ckptd_v1_CommitOutcomeIn);
  /**
   * The recorded reason.
   */
  'reason'?: (string);
}

/**
 * AbortAttemptResponse is the decision after the abort.
 */
export interface AbortAttemptResponse {
  /**
   * ABORTED, or COMMITTED if the decision was already made.
   */
  'outcome': (_ckptd_v1_CommitOutcome);
  /**
   * The recorded reason.
   */
  'reason': (string);
}
