// Original file: proto/ckptd/v1/evaluation_service.proto

import type { EvaluationStatusIn as _ckptd_v1_EvaluationStatusIn, EvaluationStatus as _ckptd_v1_EvaluationStatus } from '../../ckptd/v1/EvaluationStatus.js';
import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from '../../google/protobuf/Timestamp.js';
import type { Long } from '@grpc/proto-loader';

/**
 * EvaluationReport is a recorded report.
 */
export interface EvaluationReportIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The checkpoint's step.
   */
  'step'?: (number | string | Long);
  /**
   * The evaluator's name.
   */
  'evaluator'?: (string);
  /**
   * Metrics by name.
   */
  'metrics'?: ({[key: string]: number | string});
  /**
   * SUCCEEDED or FAILED.
   */
  'status'?: (_ckptd_v1_EvaluationStatusIn);
  /**
   * Free text.
   */
  'message'?: (string);
  /**
   * When the report was recorded.
   */
  'reportTime'?: (_google_protobuf_TimestampIn | null);
}

/**
 * EvaluationReport is a recorded report.
 */
export interface EvaluationReport {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The checkpoint's step.
   */
  'step': (number);
  /**
   * The evaluator's name.
   */
  'evaluator': (string);
  /**
   * Metrics by name.
   */
  'metrics': ({[key: string]: number});
  /**
   * SUCCEEDED or FAILED.
   */
  'status': (_ckptd_v1_EvaluationStatus);
  /**
   * Free text.
   */
  'message': (string);
  /**
   * When the report was recorded.
   */
  'reportTime': (_google_protobuf_Timestamp | null);
}
