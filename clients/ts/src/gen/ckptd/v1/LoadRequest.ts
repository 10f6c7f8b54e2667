// Original file: proto/ckptd/v1/checkpoint_service.proto


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
  '_sourceRank'?: "sourceRank";
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
  '_sourceRank'?: "sourceRank";
}
