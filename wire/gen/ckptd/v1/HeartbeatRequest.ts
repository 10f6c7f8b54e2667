// Original file: proto/ckptd/v1/peer_service.proto


/**
 * HeartbeatRequest names an attempt with local activity.
 */
export interface HeartbeatRequestIn {
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
   * The participant's node id.
   */
  'nodeId'?: (string);
}

/**
 * HeartbeatRequest names an attempt with local activity.
 */
export interface HeartbeatRequest {
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
   * The participant's node id.
   */
  'nodeId': (string);
}
