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
}
