// Original file: proto/ckptd/v1/retention_service.proto

import type { RetentionPolicyIn as _ckptd_v1_RetentionPolicyIn, RetentionPolicy as _ckptd_v1_RetentionPolicy } from '../../ckptd/v1/RetentionPolicy.js';

/**
 * SetRetentionPolicyRequest sets a job's policy.
 */
export interface SetRetentionPolicyRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The new policy.
   */
  'policy'?: (_ckptd_v1_RetentionPolicyIn | null);
}

/**
 * SetRetentionPolicyRequest sets a job's policy.
 */
export interface SetRetentionPolicyRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The new policy.
   */
  'policy': (_ckptd_v1_RetentionPolicy | null);
}
