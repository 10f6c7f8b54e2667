// Original file: proto/ckptd/v1/evaluation_service.proto

import type { CheckpointEventTypeIn as _ckptd_v1_CheckpointEventTypeIn, CheckpointEventType as _ckptd_v1_CheckpointEventType } from '../../ckptd/v1/CheckpointEventType.js';
import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from '../../google/protobuf/Timestamp.js';
import type { CheckpointIn as _ckptd_v1_CheckpointIn, Checkpoint as _ckptd_v1_Checkpoint } from '../../ckptd/v1/Checkpoint.js';
import type { Long } from '@grpc/proto-loader';

/**
 * CheckpointEvent is one entry of a job's durable event log.
 */
export interface CheckpointEventIn {
  /**
   * Position in the job's event log; strictly increasing, starting at 1.
   */
  'sequence'?: (number | string | Long);
  /**
   * What happened.
   */
  'type'?: (_ckptd_v1_CheckpointEventTypeIn);
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
   * When the checkpoint was committed.
   */
  'commitTime'?: (_google_protobuf_TimestampIn | null);
  /**
   * When the event happened (the commit or the deletion).
   */
  'eventTime'?: (_google_protobuf_TimestampIn | null);
  /**
   * Summary of the manifest: ranks, items, raw and stored bytes (basic view).
   */
  'checkpoint'?: (_ckptd_v1_CheckpointIn | null);
  /**
   * For deletions: why (e.g. "retention: keep_last=3", "DeleteCheckpoint").
   */
  'reason'?: (string);
}

/**
 * CheckpointEvent is one entry of a job's durable event log.
 */
export interface CheckpointEvent {
  /**
   * Position in the job's event log; strictly increasing, starting at 1.
   */
  'sequence': (number);
  /**
   * What happened.
   */
  'type': (_ckptd_v1_CheckpointEventType);
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
   * When the checkpoint was committed.
   */
  'commitTime': (_google_protobuf_Timestamp | null);
  /**
   * When the event happened (the commit or the deletion).
   */
  'eventTime': (_google_protobuf_Timestamp | null);
  /**
   * Summary of the manifest: ranks, items, raw and stored bytes (basic view).
   */
  'checkpoint': (_ckptd_v1_Checkpoint | null);
  /**
   * For deletions: why (e.g. "retention: keep_last=3", "DeleteCheckpoint").
   */
  'reason': (string);
}
