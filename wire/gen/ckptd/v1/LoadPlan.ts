// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { CheckpointIn as _ckptd_v1_CheckpointIn, Checkpoint as _ckptd_v1_Checkpoint } from '../../ckptd/v1/Checkpoint.js';
import type { TensorPlacementIn as _ckptd_v1_TensorPlacementIn, TensorPlacement as _ckptd_v1_TensorPlacement } from '../../ckptd/v1/TensorPlacement.js';
import type { Long } from '@grpc/proto-loader';

/**
 * LoadPlan tells the loader what comes and where to put it.
 */
export interface LoadPlanIn {
  /**
   * The checkpoint being loaded (basic view).
   */
  'checkpoint'?: (_ckptd_v1_CheckpointIn | null);
  /**
   * The rank whose shard is streamed (0 when resharded).
   */
  'sourceRank'?: (number);
  /**
   * Saved device -> target device, usable as torch.load(map_location=...).
   */
  'mapLocation'?: ({[key: string]: string});
  /**
   * The target device of every tensor that will be streamed.
   */
  'placements'?: (_ckptd_v1_TensorPlacementIn)[];
  /**
   * Raw bytes that will be streamed.
   */
  'totalBytes'?: (number | string | Long);
  /**
   * True when the entries are assembled boxes of global tensors (boxes or shard_as), not one saved
   * rank's shard.
   */
  'resharded'?: (boolean);
  /**
   * LoadShared with LoadSharedStart.destination only: the bytes a LoadDestination file needs for this
   * load's layout (see LoadDestination); 0 otherwise, and from a daemon that has no destination mode.
   */
  'destinationBytes'?: (number | string | Long);
  /**
   * With destination_bytes: this daemon takes LoadDestination.shared_memory_handle. A daemon that
   * predates handles for destinations leaves it false and would read a handle-only LoadDestination as
   * no destination; a client then names a file (or none), never a handle.
   */
  'destinationHandle'?: (boolean);
}

/**
 * LoadPlan tells the loader what comes and where to put it.
 */
export interface LoadPlan {
  /**
   * The checkpoint being loaded (basic view).
   */
  'checkpoint': (_ckptd_v1_Checkpoint | null);
  /**
   * The rank whose shard is streamed (0 when resharded).
   */
  'sourceRank': (number);
  /**
   * Saved device -> target device, usable as torch.load(map_location=...).
   */
  'mapLocation': ({[key: string]: string});
  /**
   * The target device of every tensor that will be streamed.
   */
  'placements': (_ckptd_v1_TensorPlacement)[];
  /**
   * Raw bytes that will be streamed.
   */
  'totalBytes': (number);
  /**
   * True when the entries are assembled boxes of global tensors (boxes or shard_as), not one saved
   * rank's shard.
   */
  'resharded': (boolean);
  /**
   * LoadShared with LoadSharedStart.destination only: the bytes a LoadDestination file needs for this
   * load's layout (see LoadDestination); 0 otherwise, and from a daemon that has no destination mode.
   */
  'destinationBytes': (number);
  /**
   * With destination_bytes: this daemon takes LoadDestination.shared_memory_handle. A daemon that
   * predates handles for destinations leaves it false and would read a handle-only LoadDestination as
   * no destination; a client then names a file (or none), never a handle.
   */
  'destinationHandle': (boolean);
}
