// Original file: proto/ckptd/v1/admin_service.proto

import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from '../../google/protobuf/Timestamp.js';
import type { QuarantinedCheckpointIn as _ckptd_v1_QuarantinedCheckpointIn, QuarantinedCheckpoint as _ckptd_v1_QuarantinedCheckpoint } from '../../ckptd/v1/QuarantinedCheckpoint.js';
import type { Long } from '@grpc/proto-loader';

/**
 * GetStatusResponse describes the daemon.
 */
export interface GetStatusResponseIn {
  /**
   * The daemon's version.
   */
  'version'?: (string);
  /**
   * Lifecycle state: "recovering", "running", "draining".
   */
  'state'?: (string);
  /**
   * Absolute path of the data directory.
   */
  'dataDir'?: (string);
  /**
   * When the daemon started.
   */
  'startTime'?: (_google_protobuf_TimestampIn | null);
  /**
   * Jobs with committed checkpoints.
   */
  'jobCount'?: (number);
  /**
   * Committed checkpoints over all jobs.
   */
  'checkpointCount'?: (number);
  /**
   * Checkpoints with an undecided attempt.
   */
  'checkpointsInFlight'?: (number);
  /**
   * Live WatchCheckpoints subscribers.
   */
  'subscribers'?: (number);
  /**
   * Bytes stored by committed checkpoints.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * The address the daemon listens on.
   */
  'listenAddress'?: (string);
  /**
   * Checkpoint directories set aside at start because their manifest was missing,
   * unparsable or invalid (newest first, at most 100); see quarantined_count for all.
   */
  'quarantined'?: (_ckptd_v1_QuarantinedCheckpointIn)[];
  /**
   * How many checkpoint directories are in quarantine in all.
   */
  'quarantinedCount'?: (number);
}

/**
 * GetStatusResponse describes the daemon.
 */
export interface GetStatusResponse {
  /**
   * The daemon's version.
   */
  'version': (string);
  /**
   * Lifecycle state: "recovering", "running", "draining".
   */
  'state': (string);
  /**
   * Absolute path of the data directory.
   */
  'dataDir': (string);
  /**
   * When the daemon started.
   */
  'startTime': (_google_protobuf_Timestamp | null);
  /**
   * Jobs with committed checkpoints.
   */
  'jobCount': (number);
  /**
   * Committed checkpoints over all jobs.
   */
  'checkpointCount': (number);
  /**
   * Checkpoints with an undecided attempt.
   */
  'checkpointsInFlight': (number);
  /**
   * Live WatchCheckpoints subscribers.
   */
  'subscribers': (number);
  /**
   * Bytes stored by committed checkpoints.
   */
  'storedBytes': (number);
  /**
   * The address the daemon listens on.
   */
  'listenAddress': (string);
  /**
   * Checkpoint directories set aside at start because their manifest was missing,
   * unparsable or invalid (newest first, at most 100); see quarantined_count for all.
   */
  'quarantined': (_ckptd_v1_QuarantinedCheckpoint)[];
  /**
   * How many checkpoint directories are in quarantine in all.
   */
  'quarantinedCount': (number);
}
