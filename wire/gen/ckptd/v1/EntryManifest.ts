// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { TensorSpecIn as _ckptd_v1_TensorSpecIn, TensorSpec as _ckptd_v1_TensorSpec } from '../../ckptd/v1/TensorSpec.js';
import type { ObjectSpecIn as _ckptd_v1_ObjectSpecIn, ObjectSpec as _ckptd_v1_ObjectSpec } from '../../ckptd/v1/ObjectSpec.js';
import type { Long } from '@grpc/proto-loader';

/**
 * EntryManifest describes one stored entry.
 */
export interface EntryManifestIn {
  /**
   * The key.
   */
  'key'?: (string);
  /**
   * A tensor.
   */
  'tensor'?: (_ckptd_v1_TensorSpecIn | null);
  /**
   * An opaque object.
   */
  'object'?: (_ckptd_v1_ObjectSpecIn | null);
  /**
   * Raw bytes.
   */
  'rawBytes'?: (number | string | Long);
  /**
   * Stored bytes.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * Number of chunks (LZ4 frames) it is stored as.
   */
  'chunkCount'?: (number);
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}

/**
 * EntryManifest describes one stored entry.
 */
export interface EntryManifest {
  /**
   * The key.
   */
  'key': (string);
  /**
   * A tensor.
   */
  'tensor'?: (_ckptd_v1_TensorSpec | null);
  /**
   * An opaque object.
   */
  'object'?: (_ckptd_v1_ObjectSpec | null);
  /**
   * Raw bytes.
   */
  'rawBytes': (number);
  /**
   * Stored bytes.
   */
  'storedBytes': (number);
  /**
   * Number of chunks (LZ4 frames) it is stored as.
   */
  'chunkCount': (number);
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}
