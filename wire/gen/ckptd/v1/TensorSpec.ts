// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { DtypeIn as _ckptd_v1_DtypeIn, Dtype as _ckptd_v1_Dtype } from '../../ckptd/v1/Dtype.js';
import type { Long } from '@grpc/proto-loader';

/**
 * TensorSpec describes a tensor's layout.
 */
export interface TensorSpecIn {
  /**
   * Element type.
   */
  'dtype'?: (_ckptd_v1_DtypeIn);
  /**
   * Shape; empty for a 0-d (scalar) tensor. The byte size is element size times the product.
   */
  'shape'?: (number | string | Long)[];
  /**
   * The device the tensor lived on when saved, e.g. "cuda:3" or "cpu".
   */
  'device'?: (string);
  /**
   * For a shard of a larger tensor: the global tensor's shape (empty when not sharded).
   */
  'globalShape'?: (number | string | Long)[];
  /**
   * For a shard: the offset of this shard in each dimension of the global tensor.
   */
  'globalOffsets'?: (number | string | Long)[];
}

/**
 * TensorSpec describes a tensor's layout.
 */
export interface TensorSpec {
  /**
   * Element type.
   */
  'dtype': (_ckptd_v1_Dtype);
  /**
   * Shape; empty for a 0-d (scalar) tensor. The byte size is element size times the product.
   */
  'shape': (number)[];
  /**
   * The device the tensor lived on when saved, e.g. "cuda:3" or "cpu".
   */
  'device': (string);
  /**
   * For a shard of a larger tensor: the global tensor's shape (empty when not sharded).
   */
  'globalShape': (number)[];
  /**
   * For a shard: the offset of this shard in each dimension of the global tensor.
   */
  'globalOffsets': (number)[];
}
