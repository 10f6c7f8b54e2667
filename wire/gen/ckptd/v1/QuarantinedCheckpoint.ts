// Original file: proto/ckptd/v1/admin_service.proto

import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from '../../google/protobuf/Timestamp.js';

/**
 * QuarantinedCheckpoint is a checkpoint directory the daemon set aside instead of serving.
 */
export interface QuarantinedCheckpointIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id (its directory name).
   */
  'checkpointId'?: (string);
  /**
   * Why it was set aside.
   */
  'reason'?: (string);
  /**
   * When it was set aside.
   */
  'quarantinedAt'?: (_google_protobuf_TimestampIn | null);
  /**
   * Where it is now (absolute path on the daemon's host).
   */
  'path'?: (string);
}

/**
 * QuarantinedCheckpoint is a checkpoint directory the daemon set aside instead of serving.
 */
export interface QuarantinedCheckpoint {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id (its directory name).
   */
  'checkpointId': (string);
  /**
   * Why it was set aside.
   */
  'reason': (string);
  /**
   * When it was set aside.
   */
  'quarantinedAt': (_google_protobuf_Timestamp | null);
  /**
   * Where it is now (absolute path on the daemon's host).
   */
  'path': (string);
}
