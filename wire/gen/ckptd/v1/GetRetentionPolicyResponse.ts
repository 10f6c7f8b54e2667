// Original file: proto/ckptd/v1/retention_service.proto

import type { RetentionPolicyIn as _ckptd_v1_RetentionPolicyIn, RetentionPolicy as _ckptd_v1_RetentionPolicy } from '../../ckptd/v1/RetentionPolicy.js';

/**
 * GetRetentionPolicyResponse holds the policy.
 */
export interface GetRetentionPolicyResponseIn {
  /**
   * The policy in force.
   */
  'policy'?: (_ckptd_v1_RetentionPolicyIn | null);
  /**
   * Ids of the pinned checkpoints.
   */
  'pinnedCheckpointIds'?: (string)[];
}

/**
 * GetRetentionPolicyResponse holds the policy.
 */
export interface GetRetentionPolicyResponse {
  /**
   * The policy in force.
   */
  'policy': (_ckptd_v1_RetentionPolicy | null);
  /**
   * Ids of the pinned checkpoints.
   */
  'pinnedCheckpointIds': (string)[];
}
