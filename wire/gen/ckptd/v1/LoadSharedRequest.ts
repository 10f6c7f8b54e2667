// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { LoadSharedStartIn as _ckptd_v1_LoadSharedStartIn, LoadSharedStart as _ckptd_v1_LoadSharedStart } from '../../ckptd/v1/LoadSharedStart.js';
import type { LoadProgressIn as _ckptd_v1_LoadProgressIn, LoadProgress as _ckptd_v1_LoadProgress } from '../../ckptd/v1/LoadProgress.js';
import type { LoadDestinationIn as _ckptd_v1_LoadDestinationIn, LoadDestination as _ckptd_v1_LoadDestination } from '../../ckptd/v1/LoadDestination.js';

/**
 * LoadSharedRequest is one message of a LoadShared stream: start, then progress (or, in destination
 * mode, one destination).
 */
export interface LoadSharedRequestIn {
  /**
   * First message: what to load and where the daemon may write the bytes.
   */
  'start'?: (_ckptd_v1_LoadSharedStartIn | null);
  /**
   * The client has copied shared chunks out.
   */
  'progress'?: (_ckptd_v1_LoadProgressIn | null);
  /**
   * Destination mode only (LoadSharedStart.destination set): sent once, right after the plan
   * arrived, before the daemon writes any byte.
   */
  'destination'?: (_ckptd_v1_LoadDestinationIn | null);
  /**
   * The message kind.
   */
  'msg'?: "start"|"progress"|"destination";
}

/**
 * LoadSharedRequest is one message of a LoadShared stream: start, then progress (or, in destination
 * mode, one destination).
 */
export interface LoadSharedRequest {
  /**
   * First message: what to load and where the daemon may write the bytes.
   */
  'start'?: (_ckptd_v1_LoadSharedStart | null);
  /**
   * The client has copied shared chunks out.
   */
  'progress'?: (_ckptd_v1_LoadProgress | null);
  /**
   * Destination mode only (LoadSharedStart.destination set): sent once, right after the plan
   * arrived, before the daemon writes any byte.
   */
  'destination'?: (_ckptd_v1_LoadDestination | null);
  /**
   * The message kind.
   */
  'msg'?: "start"|"progress"|"destination";
}
