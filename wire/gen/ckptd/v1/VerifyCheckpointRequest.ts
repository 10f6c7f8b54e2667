// Original file: proto/ckptd/v1/admin_service.proto


/**
 * VerifyCheckpointRequest names the checkpoint to verify.
 */
export interface VerifyCheckpointRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id, or "latest".
   */
  'checkpointId'?: (string);
}

/**
 * VerifyCheckpointRequest names the checkpoint to verify.
 */
export interface VerifyCheckpointRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id, or "latest".
   */
  'checkpointId': (string);
}
