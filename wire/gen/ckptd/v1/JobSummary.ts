// Original file: proto/ckptd/v1/admin_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * JobSummary describes one job.
 */
export interface JobSummaryIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * Committed checkpoints.
   */
  'checkpointCount'?: (number);
  /**
   * The latest committed checkpoint's id.
   */
  'latestCheckpointId'?: (string);
  /**
   * The latest committed checkpoint's step.
   */
  'latestStep'?: (number | string | Long);
  /**
   * Bytes stored by its committed checkpoints.
   */
  'storedBytes'?: (number | string | Long);
}

/**
 * JobSummary describes one job.
 */
export interface JobSummary {
  /**
   * The job.
   */
  'job': (string);
  /**
   * Committed checkpoints.
   */
  'checkpointCount': (number);
  /**
   * The latest committed checkpoint's id.
   */
  'latestCheckpointId': (string);
  /**
   * The latest committed checkpoint's step.
   */
  'latestStep': (number);
  /**
   * Bytes stored by its committed checkpoints.
   */
  'storedBytes': (number);
}
