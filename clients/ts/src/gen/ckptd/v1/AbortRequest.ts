// Original file: proto/ckptd/v1/checkpoint_service.proto


/**
 * AbortRequest is a rank's no-vote.
 */
export interface AbortRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The aborting rank.
   */
  'rank'?: (number);
  /**
   * Why, for the other ranks and the logs.
   */
  'reason'?: (string);
  /**
   * The attempt to abort; 0 means the current one.
   */
  'attempt'?: (number);
}

/**
 * AbortRequest is a rank's no-vote.
 */
export interface AbortRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The aborting rank.
   */
  'rank': (number);
  /**
   * Why, for the other ranks and the logs.
   */
  'reason': (string);
  /**
   * The attempt to abort; 0 means the current one.
   */
  'attempt': (number);
}
