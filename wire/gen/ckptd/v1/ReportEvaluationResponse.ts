// Original file: proto/ckptd/v1/evaluation_service.proto

import type { EvaluationReportIn as _ckptd_v1_EvaluationReportIn, EvaluationReport as _ckptd_v1_EvaluationReport } from '../../ckptd/v1/EvaluationReport.js';

/**
 * ReportEvaluationResponse confirms the report is durable.
 */
export interface ReportEvaluationResponseIn {
  /**
   * The recorded report.
   */
  'report'?: (_ckptd_v1_EvaluationReportIn | null);
}

/**
 * ReportEvaluationResponse confirms the report is durable.
 */
export interface ReportEvaluationResponse {
  /**
   * The recorded report.
   */
  'report': (_ckptd_v1_EvaluationReport | null);
}
