// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { LoadRequestIn as _ckptd_v1_LoadRequestIn, LoadRequest as _ckptd_v1_LoadRequest } from '../../ckptd/v1/LoadRequest.js';
import type { SharedMemoryHandleIn as _ckptd_v1_SharedMemoryHandleIn, SharedMemoryHandle as _ckptd_v1_SharedMemoryHandle } from '../../ckptd/v1/SharedMemoryHandle.js';

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
   * Empty when shared_memory_handle is set; at most one of the two is set.
   */
  'sharedMemoryPath'?: (string);
  /**
   * The ring as an open descriptor of the client (see SharedMemoryHandle); preferred
   * over shared_memory_path. A daemon that predates it sees neither and refuses the
   * stream with "shared memory unavailable".
   */
  'sharedMemoryHandle'?: (_ckptd_v1_SharedMemoryHandleIn | null);
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
   * Empty when shared_memory_handle is set; at most one of the two is set.
   */
  'sharedMemoryPath': (string);
  /**
   * The ring as an open descriptor of the client (see SharedMemoryHandle); preferred
   * over shared_memory_path. A daemon that predates it sees neither and refuses the
   * stream with "shared memory unavailable".
   */
  'sharedMemoryHandle': (_ckptd_v1_SharedMemoryHandle | null);
  /**
   * Destination mode: the client will answer the plan with one LoadDestination message, and the
   * daemon writes no chunk before it arrived. A daemon that offers it says so in
   * LoadPlan.destination_bytes (a daemon that predates it leaves that 0 and ignores this field: the
   * client then sends no LoadDestination and reads the ring as before).
   */
  'destination': (boolean);
}
