// Original file: proto/ckptd/v1/evaluation_service.proto

import type { EvaluationStatusIn as _ckptd_v1_EvaluationStatusIn, EvaluationStatus as _ckptd_v1_EvaluationStatus } from '../../ckptd/v1/EvaluationStatus.js';

/**
 * ReportEvaluationRequest is an evaluator's report on one checkpoint.
 */
export interface ReportEvaluationRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The evaluator's name, e.g. "eval-holdout" (letters, digits, '.', '_', '-').
   */
  'evaluator'?: (string);
  /**
   * Metrics by name, e.g. {"loss": 0.31}.
   */
  'metrics'?: ({[key: string]: number | string});
  /**
   * SUCCEEDED or FAILED.
   */
  'status'?: (_ckptd_v1_EvaluationStatusIn);
  /**
   * Free text, e.g. why it failed.
   */
  'message'?: (string);
}

/**
 * ReportEvaluationRequest is an evaluator's report on one checkpoint.
 */
export interface ReportEvaluationRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The evaluator's name, e.g. "eval-holdout" (letters, digits, '.', '_', '-').
   */
  'evaluator': (string);
  /**
   * Metrics by name, e.g. {"loss": 0.31}.
   */
  'metrics': ({[key: string]: number});
  /**
   * SUCCEEDED or FAILED.
   */
  'status': (_ckptd_v1_EvaluationStatus);
  /**
   * Free text, e.g. why it failed.
   */
  'message': (string);
}
