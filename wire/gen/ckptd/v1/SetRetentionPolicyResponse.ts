// Original file: proto/ckptd/v1/retention_service.proto

import type { RetentionPolicyIn as _ckptd_v1_RetentionPolicyIn, RetentionPolicy as _ckptd_v1_RetentionPolicy } from '../../ckptd/v1/RetentionPolicy.js';

/**
 * SetRetentionPolicyResponse reports the result of the garbage collection it ran.
 */
export interface SetRetentionPolicyResponseIn {
  /**
   * The policy now in force.
   */
  'policy'?: (_ckptd_v1_RetentionPolicyIn | null);
  /**
   * Ids of the checkpoints the garbage collection deleted.
   */
  'deletedCheckpointIds'?: (string)[];
}

/**
 * SetRetentionPolicyResponse reports the result of the garbage collection it ran.
 */
export interface SetRetentionPolicyResponse {
  /**
   * The policy now in force.
   */
  'policy': (_ckptd_v1_RetentionPolicy | null);
  /**
   * Ids of the checkpoints the garbage collection deleted.
   */
  'deletedCheckpointIds': (string)[];
}
