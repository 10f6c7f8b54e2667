// Original file: proto/ckptd/v1/retention_service.proto


/**
 * GetRetentionPolicyRequest names the job.
 */
export interface GetRetentionPolicyRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
}

/**
 * GetRetentionPolicyRequest names the job.
 */
export interface GetRetentionPolicyRequest {
  /**
   * The job.
   */
  'job': (string);
}
