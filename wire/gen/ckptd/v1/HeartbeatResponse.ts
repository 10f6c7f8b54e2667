// Original file: proto/ckptd/v1/peer_service.proto

import type { CommitOutcomeIn as _ckptd_v1_CommitOutcomeIn, CommitOutcome as _ckptd_v1_CommitOutcome } from '../../ckptd/v1/CommitOutcome.js';

/**
 * HeartbeatResponse tells the participant whether the attempt is still open.
 */
export interface HeartbeatResponseIn {
  /**
   * UNSPECIFIED while open, else the decision.
   */
  'outcome'?: (_ckptd_v1_CommitOutcomeIn);
  /**
   * Why it was aborted.
   */
  'reason'?: (string);
}

/**
 * HeartbeatResponse tells the participant whether the attempt is still open.
 */
export interface HeartbeatResponse {
  /**
   * UNSPECIFIED while open, else the decision.
   */
  'outcome': (_ckptd_v1_CommitOutcome);
  /**
   * Why it was aborted.
   */
  'reason': (string);
}
