// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * TensorBox is a box of a global tensor: offsets and lengths per dimension.
 */
export interface TensorBoxIn {
  /**
   * The item that holds the tensor; ranks that saved shards of it saved them under this item name.
   */
  'item'?: (string);
  /**
   * The entry's key.
   */
  'key'?: (string);
  /**
   * The box's start in each dimension of the global tensor. Empty with empty lengths: the whole tensor
   * (or the whole object).
   */
  'offsets'?: (number | string | Long)[];
  /**
   * The box's length in each dimension (0 allowed: an empty box).
   */
  'lengths'?: (number | string | Long)[];
}

/**
 * TensorBox is a box of a global tensor: offsets and lengths per dimension.
 */
export interface TensorBox {
  /**
   * The item that holds the tensor; ranks that saved shards of it saved them under this item name.
   */
  'item': (string);
  /**
   * The entry's key.
   */
  'key': (string);
  /**
   * The box's start in each dimension of the global tensor. Empty with empty lengths: the whole tensor
   * (or the whole object).
   */
  'offsets': (number)[];
  /**
   * The box's length in each dimension (0 allowed: an empty box).
   */
  'lengths': (number)[];
}
