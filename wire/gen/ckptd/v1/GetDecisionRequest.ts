// Original file: proto/ckptd/v1/peer_service.proto


/**
 * GetDecisionRequest names an attempt.
 */
export interface GetDecisionRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The attempt.
   */
  'attempt'?: (number);
}

/**
 * GetDecisionRequest names an attempt.
 */
export interface GetDecisionRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The attempt.
   */
  'attempt': (number);
}
