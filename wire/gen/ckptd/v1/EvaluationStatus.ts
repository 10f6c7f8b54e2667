// Original file: proto/ckptd/v1/evaluation_service.proto

/**
 * EvaluationStatus is how an evaluation ended.
 */
export const EvaluationStatus = {
  /**
   * Not set: treated as EVALUATION_STATUS_SUCCEEDED.
   */
  EVALUATION_STATUS_UNSPECIFIED: 'EVALUATION_STATUS_UNSPECIFIED',
  /**
   * The evaluator evaluated the checkpoint.
   */
  EVALUATION_STATUS_SUCCEEDED: 'EVALUATION_STATUS_SUCCEEDED',
  /**
   * The evaluator gave up on the checkpoint; it still counts as reported.
   */
  EVALUATION_STATUS_FAILED: 'EVALUATION_STATUS_FAILED',
} as const;

/**
 * EvaluationStatus is how an evaluation ended.
 */
export type EvaluationStatusIn =
  /**
   * Not set: treated as EVALUATION_STATUS_SUCCEEDED.
   */
  | 'EVALUATION_STATUS_UNSPECIFIED'
  | 0
  /**
   * The evaluator evaluated the checkpoint.
   */
  | 'EVALUATION_STATUS_SUCCEEDED'
  | 1
  /**
   * The evaluator gave up on the checkpoint; it still counts as reported.
   */
  | 'EVALUATION_STATUS_FAILED'
  | 2

/**
 * EvaluationStatus is how an evaluation ended.
 */
export type EvaluationStatus = typeof EvaluationStatus[keyof typeof EvaluationStatus]
