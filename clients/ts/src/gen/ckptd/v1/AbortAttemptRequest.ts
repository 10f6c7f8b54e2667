// Original file: proto/ckptd/v1/peer_service.proto


/**
 * AbortAttemptRequest is a participant's no-vote.
 */
export interface AbortAttemptRequestIn {
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
  /**
   * Why.
   */
  'reason'?: (string);
  /**
   * The participant's node id.
   */
  'nodeId'?: (string);
}

/**
 * AbortAttemptRequest is a participant's no-vote.
 */
export interface AbortAttemptRequest {
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
  /**
   * Why.
   */
  'reason': (string);
  /**
   * The participant's node id.
   */
  'nodeId': (string);
}
