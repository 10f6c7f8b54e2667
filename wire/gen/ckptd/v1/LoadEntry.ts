// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { TensorSpecIn as _ckptd_v1_TensorSpecIn, TensorSpec as _ckptd_v1_TensorSpec } from '../../ckptd/v1/TensorSpec.js';
import type { ObjectSpecIn as _ckptd_v1_ObjectSpecIn, ObjectSpec as _ckptd_v1_ObjectSpec } from '../../ckptd/v1/ObjectSpec.js';
import type { Long } from '@grpc/proto-loader';

/**
 * LoadEntry starts one entry of a Load stream.
 */
export interface LoadEntryIn {
  /**
   * The item the entry belongs to.
   */
  'item'?: (string);
  /**
   * The entry's key.
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
   * Raw byte size; this many bytes follow in chunks.
   */
  'sizeBytes'?: (number | string | Long);
  /**
   * For a tensor: where the loader should put it (the hint).
   */
  'targetDevice'?: (string);
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}

/**
 * LoadEntry starts one entry of a Load stream.
 */
export interface LoadEntry {
  /**
   * The item the entry belongs to.
   */
  'item': (string);
  /**
   * The entry's key.
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
   * Raw byte size; this many bytes follow in chunks.
   */
  'sizeBytes': (number);
  /**
   * For a tensor: where the loader should put it (the hint).
   */
  'targetDevice': (string);
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}
