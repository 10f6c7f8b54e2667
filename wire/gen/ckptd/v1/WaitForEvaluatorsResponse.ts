// Original file: proto/ckptd/v1/evaluation_service.proto

import type { EvaluationReportIn as _ckptd_v1_EvaluationReportIn, EvaluationReport as _ckptd_v1_EvaluationReport } from '../../ckptd/v1/EvaluationReport.js';

/**
 * WaitForEvaluatorsResponse holds every named evaluator's report.
 */
export interface WaitForEvaluatorsResponseIn {
  /**
   * The reports, in the order the evaluators were named.
   */
  'reports'?: (_ckptd_v1_EvaluationReportIn)[];
}

/**
 * WaitForEvaluatorsResponse holds every named evaluator's report.
 */
export interface WaitForEvaluatorsResponse {
  /**
   * The reports, in the order the evaluators were named.
   */
  'reports': (_ckptd_v1_EvaluationReport)[];
}
