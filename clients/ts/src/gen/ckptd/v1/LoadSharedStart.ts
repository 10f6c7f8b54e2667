// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { LoadRequestIn as _ckptd_v1_LoadRequestIn, LoadRequest as _ckptd_v1_LoadRequest } from '../../ckptd/v1/LoadRequest.js';

/**
 * LoadSharedStart opens a LoadShared stream.
 */
export interface LoadSharedStartIn {
  /**
   * What to load, as for Load.
   */
  'request'?: (_ckptd_v1_LoadRequestIn | null);
  /**
   * A regular file directly in the daemon's shared-memory directory, owned by the
   * daemon's user, of at least one 4 MiB slot; the daemon writes chunks into it.
   */
  'sharedMemoryPath'?: (string);
  /**
   * Destination mode: the client will answer the plan with one LoadDestination message, and the
   * daemon writes no chunk before it arrived. A daemon that offers it says so in
   * LoadPlan.destination_bytes (a daemon that predates it leaves that 0 and ignores this field: the
   * client then sends no LoadDestination and reads the ring as before).
   */
  'destination'?: (boolean);
}

/**
 * LoadSharedStart opens a LoadShared stream.
 */
export interface LoadSharedStart {
  /**
   * What to load, as for Load.
   */
  'request': (_ckptd_v1_LoadRequest | null);
  /**
   * A regular file directly in the daemon's shared-memory directory, owned by the
   * daemon's user, of at least one 4 MiB slot; the daemon writes chunks into it.
   */
  'sharedMemoryPath': (string);
  /**
   * Destination mode: the client will answer the plan with one LoadDestination message, and the
   * daemon writes no chunk before it arrived. A daemon that offers it says so in
   * LoadPlan.destination_bytes (a daemon that predates it leaves that 0 and ignores this field: the
   * client then sends no LoadDestination and reads the ring as before).
   */
  'destination': (boolean);
}
