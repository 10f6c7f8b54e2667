// Original file: proto/ckptd/v1/admin_service.proto

import type { ChunkDamageIn as _ckptd_v1_ChunkDamageIn, ChunkDamage as _ckptd_v1_ChunkDamage } from '../../ckptd/v1/ChunkDamage.js';
import type { Long } from '@grpc/proto-loader';

/**
 * VerifyCheckpointResponse reports what the verification found.
 */
export interface VerifyCheckpointResponseIn {
  /**
   * The verified checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * True when every chunk decoded and matched its checksum.
   */
  'ok'?: (boolean);
  /**
   * Chunks read.
   */
  'chunksChecked'?: (number | string | Long);
  /**
   * Raw bytes verified.
   */
  'bytesChecked'?: (number | string | Long);
  /**
   * Every damaged chunk.
   */
  'damaged'?: (_ckptd_v1_ChunkDamageIn)[];
}

/**
 * VerifyCheckpointResponse reports what the verification found.
 */
export interface VerifyCheckpointResponse {
  /**
   * The verified checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * True when every chunk decoded and matched its checksum.
   */
  'ok': (boolean);
  /**
   * Chunks read.
   */
  'chunksChecked': (number);
  /**
   * Raw bytes verified.
   */
  'bytesChecked': (number);
  /**
   * Every damaged chunk.
   */
  'damaged': (_ckptd_v1_ChunkDamage)[];
}
