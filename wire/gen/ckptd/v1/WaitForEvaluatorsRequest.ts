// Original file: proto/ckptd/v1/evaluation_service.proto


/**
 * WaitForEvaluatorsRequest names the checkpoint and the evaluators to wait for.
 */
export interface WaitForEvaluatorsRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id, or "latest" (or empty) for the newest committed one.
   */
  'checkpointId'?: (string);
  /**
   * The evaluators that must report.
   */
  'evaluators'?: (string)[];
  /**
   * How long to wait; 0 means until the call's deadline. On expiry the call fails
   * with DEADLINE_EXCEEDED naming the missing evaluators.
   */
  'timeoutMs'?: (number);
}

/**
 * WaitForEvaluatorsRequest names the checkpoint and the evaluators to wait for.
 */
export interface WaitForEvaluatorsRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id, or "latest" (or empty) for the newest committed one.
   */
  'checkpointId': (string);
  /**
   * The evaluators that must report.
   */
  'evaluators': (string)[];
  /**
   * How long to wait; 0 means until the call's deadline. On expiry the call fails
   * with DEADLINE_EXCEEDED naming the missing evaluators.
   */
  'timeoutMs': (number);
}
