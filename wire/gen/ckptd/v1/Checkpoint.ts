// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from '../../google/protobuf/Timestamp.js';
import type { RankManifestIn as _ckptd_v1_RankManifestIn, RankManifest as _ckptd_v1_RankManifest } from '../../ckptd/v1/RankManifest.js';
import type { Long } from '@grpc/proto-loader';

/**
 * Checkpoint describes a committed checkpoint.
 */
export interface CheckpointIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The training step.
   */
  'step'?: (number | string | Long);
  /**
   * Number of ranks that saved it.
   */
  'worldSize'?: (number);
  /**
   * When the commit decision was made.
   */
  'commitTime'?: (_google_protobuf_TimestampIn | null);
  /**
   * Raw (uncompressed) bytes over all ranks and items.
   */
  'rawBytes'?: (number | string | Long);
  /**
   * Bytes stored on disk.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * The attempt that committed.
   */
  'attempt'?: (number);
  /**
   * Per rank, its items (entries only with CHECKPOINT_VIEW_FULL).
   */
  'ranks'?: (_ckptd_v1_RankManifestIn)[];
}

/**
 * Checkpoint describes a committed checkpoint.
 */
export interface Checkpoint {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The training step.
   */
  'step': (number);
  /**
   * Number of ranks that saved it.
   */
  'worldSize': (number);
  /**
   * When the commit decision was made.
   */
  'commitTime': (_google_protobuf_Timestamp | null);
  /**
   * Raw (uncompressed) bytes over all ranks and items.
   */
  'rawBytes': (number);
  /**
   * Bytes stored on disk.
   */
  'storedBytes': (number);
  /**
   * The attempt that committed.
   */
  'attempt': (number);
  /**
   * Per rank, its items (entries only with CHECKPOINT_VIEW_FULL).
   */
  'ranks': (_ckptd_v1_RankManifest)[];
}
