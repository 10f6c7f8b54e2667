// Original file: proto/ckptd/v1/admin_service.proto

import type { JobSummaryIn as _ckptd_v1_JobSummaryIn, JobSummary as _ckptd_v1_JobSummary } from '../../ckptd/v1/JobSummary.js';

/**
 * ListJobsResponse lists jobs.
 */
export interface ListJobsResponseIn {
  /**
   * The jobs, by name.
   */
  'jobs'?: (_ckptd_v1_JobSummaryIn)[];
}

/**
 * ListJobsResponse lists jobs.
 */
export interface ListJobsResponse {
  /**
   * The jobs, by name.
   */
  'jobs': (_ckptd_v1_JobSummary)[];
}
