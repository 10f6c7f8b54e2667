// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { TensorSpecIn as _ckptd_v1_TensorSpecIn, TensorSpec as _ckptd_v1_TensorSpec } from '../../ckptd/v1/TensorSpec.js';
import type { ObjectSpecIn as _ckptd_v1_ObjectSpecIn, ObjectSpec as _ckptd_v1_ObjectSpec } from '../../ckptd/v1/ObjectSpec.js';

/**
 * EntryHeader starts one key of an item: a tensor or an opaque object.
 */
export interface EntryHeaderIn {
  /**
   * The entry's key within the item, e.g. "layers.0.weight". Unique within the item.
   */
  'key'?: (string);
  /**
   * A tensor; its dtype times shape fixes the byte count.
   */
  'tensor'?: (_ckptd_v1_TensorSpecIn | null);
  /**
   * An opaque object of the given size.
   */
  'object'?: (_ckptd_v1_ObjectSpecIn | null);
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}

/**
 * EntryHeader starts one key of an item: a tensor or an opaque object.
 */
export interface EntryHeader {
  /**
   * The entry's key within the item, e.g. "layers.0.weight". Unique within the item.
   */
  'key': (string);
  /**
   * A tensor; its dtype times shape fixes the byte count.
   */
  'tensor'?: (_ckptd_v1_TensorSpec | null);
  /**
   * An opaque object of the given size.
   */
  'object'?: (_ckptd_v1_ObjectSpec | null);
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}
