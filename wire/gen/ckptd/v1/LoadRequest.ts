// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { TensorBoxIn as _ckptd_v1_TensorBoxIn, TensorBox as _ckptd_v1_TensorBox } from '../../ckptd/v1/TensorBox.js';
import type { ShardAsIn as _ckptd_v1_ShardAsIn, ShardAs as _ckptd_v1_ShardAs } from '../../ckptd/v1/ShardAs.js';

/**
 * LoadRequest asks for one rank's items of a committed checkpoint.
 */
export interface LoadRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id, or "latest" (or empty).
   */
  'checkpointId'?: (string);
  /**
   * The loading rank; its saved shard is loaded unless source_rank is set.
   */
  'rank'?: (number);
  /**
   * The loading rank's index on its node, used to pick its own device.
   */
  'localRank'?: (number);
  /**
   * The devices the loader has, e.g. ["cuda:0", ..., "cuda:7"]; empty for a CPU-only loader.
   */
  'devices'?: (string)[];
  /**
   * Explicit mapping that wins over the hints: saved device -> target device; key "*" maps every device.
   */
  'mapLocation'?: ({[key: string]: string});
  /**
   * Only these items; empty means all of the rank's items.
   */
  'items'?: (string)[];
  /**
   * Load the shard saved by this rank instead of rank's own.
   */
  'sourceRank'?: (number);
  /**
   * The loading job's world size; 0 when not sent. When it differs from the world size that saved the
   * checkpoint and the request does not reshard (boxes, shard_as), a load of an item holding sharded
   * tensors (saved with global_shape) fails with FAILED_PRECONDITION: one saved rank's shard is not what a
   * rank of another world size holds. An explicit source_rank still reads that rank's shard as is.
   */
  'worldSize'?: (number);
  /**
   * Resharding: stream these boxes of global tensors, each assembled by the daemon from the shards that
   * every saved rank stored of it (rank, source_rank and items are then ignored). Each box streams as one
   * entry, in the order asked, whose tensor has shape = the box's lengths and global_shape /
   * global_offsets = where the box lies (a tensor saved unsharded is its own global tensor; an object,
   * asked with empty offsets and lengths, streams whole). Not with shard_as. At most 65536 boxes.
   */
  'boxes'?: (_ckptd_v1_TensorBoxIn)[];
  /**
   * Resharding: stream every entry of the requested items (of every saved rank; empty items = all item
   * names, in the order they first appear over the saved ranks) as this rank of a new sharding holds it:
   * item by item, each item's keys in the order the lowest saved rank wrote them (then keys only higher
   * ranks saved). Sharded tensors stream as boxes (global_shape / global_offsets set), unsharded tensors
   * and objects as saved. Not with boxes.
   */
  'shardAs'?: (_ckptd_v1_ShardAsIn | null);
  '_sourceRank'?: "sourceRank";
  '_shardAs'?: "shardAs";
}

/**
 * LoadRequest asks for one rank's items of a committed checkpoint.
 */
export interface LoadRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id, or "latest" (or empty).
   */
  'checkpointId': (string);
  /**
   * The loading rank; its saved shard is loaded unless source_rank is set.
   */
  'rank': (number);
  /**
   * The loading rank's index on its node, used to pick its own device.
   */
  'localRank': (number);
  /**
   * The devices the loader has, e.g. ["cuda:0", ..., "cuda:7"]; empty for a CPU-only loader.
   */
  'devices': (string)[];
  /**
   * Explicit mapping that wins over the hints: saved device -> target device; key "*" maps every device.
   */
  'mapLocation': ({[key: string]: string});
  /**
   * Only these items; empty means all of the rank's items.
   */
  'items': (string)[];
  /**
   * Load the shard saved by this rank instead of rank's own.
   */
  'sourceRank'?: (number);
  /**
   * The loading job's world size; 0 when not sent. When it differs from the world size that saved the
   * checkpoint and the request does not reshard (boxes, shard_as), a load of an item holding sharded
   * tensors (saved with global_shape) fails with FAILED_PRECONDITION: one saved rank's shard is not what a
   * rank of another world size holds. An explicit source_rank still reads that rank's shard as is.
   */
  'worldSize': (number);
  /**
   * Resharding: stream these boxes of global tensors, each assembled by the daemon from the shards that
   * every saved rank stored of it (rank, source_rank and items are then ignored). Each box streams as one
   * entry, in the order asked, whose tensor has shape = the box's lengths and global_shape /
   * global_offsets = where the box lies (a tensor saved unsharded is its own global tensor; an object,
   * asked with empty offsets and lengths, streams whole). Not with shard_as. At most 65536 boxes.
   */
  'boxes': (_ckptd_v1_TensorBox)[];
  /**
   * Resharding: stream every entry of the requested items (of every saved rank; empty items = all item
   * names, in the order they first appear over the saved ranks) as this rank of a new sharding holds it:
   * item by item, each item's keys in the order the lowest saved rank wrote them (then keys only higher
   * ranks saved). Sharded tensors stream as boxes (global_shape / global_offsets set), unsharded tensors
   * and objects as saved. Not with boxes.
   */
  'shardAs'?: (_ckptd_v1_ShardAs | null);
  '_sourceRank'?: "sourceRank";
  '_shardAs'?: "shardAs";
}
