// Original file: proto/ckptd/v1/checkpoint_service.proto


/**
 * ListCheckpointsRequest pages through a job's committed checkpoints.
 */
export interface ListCheckpointsRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * Maximum number of checkpoints per page; 0 means 100, at most 1000.
   */
  'pageSize'?: (number);
  /**
   * The next_page_token of the previous page; empty for the first page.
   */
  'pageToken'?: (string);
}

/**
 * ListCheckpointsRequest pages through a job's committed checkpoints.
 */
export interface ListCheckpointsRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * Maximum number of checkpoints per page; 0 means 100, at most 1000.
   */
  'pageSize': (number);
  /**
   * The next_page_token of the previous page; empty for the first page.
   */
  'pageToken': (string);
}
