// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * ShardAs names a rank of a target sharding. A tensor saved sharded streams as that rank's box of
 * the global tensor; a tensor saved unsharded (replicated on the ranks that saved it) streams whole,
 * read once from the lowest rank that saved it; objects stream whole from the lowest rank.
 */
export interface ShardAsIn {
  /**
   * The loading rank in the target sharding, in [0, world_size).
   */
  'rank'?: (number);
  /**
   * The number of parts along dim.
   */
  'worldSize'?: (number);
  /**
   * The dimension to split. Unset: the dimension the saved shards of each tensor were split along
   * (0 when they all lie at the same offsets; a tensor saved split along several dimensions then needs
   * dim, or boxes).
   */
  'dim'?: (number);
  /**
   * Uneven split: the length of each of the world_size parts along dim, summing to the dimension's
   * size. Empty: an even split as torch.chunk makes it (parts of ceil(size / world_size), the
   * last ones shorter or empty).
   */
  'sizes'?: (number | string | Long)[];
  /**
   * Every rank gets the whole global tensor.
   */
  'replicate'?: (boolean);
  '_dim'?: "dim";
}

/**
 * ShardAs names a rank of a target sharding. A tensor saved sharded streams as that rank's box of
 * the global tensor; a tensor saved unsharded (replicated on the ranks that saved it) streams whole,
 * read once from the lowest rank that saved it; objects stream whole from the lowest rank.
 */
export interface ShardAs {
  /**
   * The loading rank in the target sharding, in [0, world_size).
   */
  'rank': (number);
  /**
   * The number of parts along dim.
   */
  'worldSize': (number);
  /**
   * The dimension to split. Unset: the dimension the saved shards of each tensor were split along
   * (0 when they all lie at the same offsets; a tensor saved split along several dimensions then needs
   * dim, or boxes).
   */
  'dim'?: (number);
  /**
   * Uneven split: the length of each of the world_size parts along dim, summing to the dimension's
   * size. Empty: an even split as torch.chunk makes it (parts of ceil(size / world_size), the
   * last ones shorter or empty).
   */
  'sizes': (number)[];
  /**
   * Every rank gets the whole global tensor.
   */
  'replicate': (boolean);
  '_dim'?: "dim";
}
