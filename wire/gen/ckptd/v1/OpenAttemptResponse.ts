// Original file: proto/ckptd/v1/peer_service.proto


/**
 * OpenAttemptResponse gives the attempt number all nodes stage into.
 */
export interface OpenAttemptResponseIn {
  /**
   * The open attempt.
   */
  'attempt'?: (number);
}

/**
 * OpenAttemptResponse gives the attempt number all nodes stage into.
 */
export interface OpenAttemptResponse {
  /**
   * The open attempt.
   */
  'attempt': (number);
}
