// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { SharedMemoryHandleIn as _ckptd_v1_SharedMemoryHandleIn, SharedMemoryHandle as _ckptd_v1_SharedMemoryHandle } from '../../ckptd/v1/SharedMemoryHandle.js';

/**
 * LoadDestination names the file the daemon writes every entry's bytes into, each at its place in the
 * load's layout, so the client's tensors can be views of that file's mapping and nothing is copied
 * on the client's side.
 * 
 * The layout is the daemon's, never the client's: entry i (in stream order) starts at the sum of the
 * sizes of entries 0..i-1, each rounded up to a multiple of 64 bytes, and the SharedChunk messages of
 * an entry name consecutive slices of its bytes there. A client picks no offset, so it can only
 * point the daemon at a file, and the file is checked as a ring file is (a regular file directly in
 * the daemon's shared-memory directory, of the daemon's user, one link, opened without following
 * symlinks); a file shorter than LoadPlan.destination_bytes is INVALID_ARGUMENT before any byte is
 * written. Chunks are not released (there are no slots): the client sends no LoadProgress.
 * 
 * The destination may instead have no name at all (shared_memory_handle): a memfd named
 * "ckptd-ring-<token>" or "ckptd-dest-<token>", checked as a ring handle is (see SharedMemoryHandle)
 * except for its size, which must lie between LoadPlan.destination_bytes and that many bytes (one
 * byte when it is 0), not within the 1 GiB ring bound. Nothing is then left behind however the client
 * dies. A refused handle fails the stream with FAILED_PRECONDITION "shared memory unavailable" before
 * any byte is written; the daemon closes the destination when the stream ends. A client sends a
 * handle only to a daemon that says it takes one (LoadPlan.destination_handle) and took its ring as
 * a handle.
 */
export interface LoadDestinationIn {
  /**
   * The destination file, at least LoadPlan.destination_bytes long. Empty, with no
   * shared_memory_handle either: no destination (say, the client could not allocate one); the daemon
   * then writes into the ring as without destination mode. At most one of the two is set.
   */
  'sharedMemoryPath'?: (string);
  /**
   * The destination as an open descriptor of the client (see above); empty path then.
   */
  'sharedMemoryHandle'?: (_ckptd_v1_SharedMemoryHandleIn | null);
}

/**
 * LoadDestination names the file the daemon writes every entry's bytes into, each at its place in the
 * load's layout, so the client's tensors can be views of that file's mapping and nothing is copied
 * on the client's side.
 * 
 * The layout is the daemon's, never the client's: entry i (in stream order) starts at the sum of the
 * sizes of entries 0..i-1, each rounded up to a multiple of 64 bytes, and the SharedChunk messages of
 * an entry name consecutive slices of its bytes there. A client picks no offset, so it can only
 * point the daemon at a file, and the file is checked as a ring file is (a regular file directly in
 * the daemon's shared-memory directory, of the daemon's user, one link, opened without following
 * symlinks); a file shorter than LoadPlan.destination_bytes is INVALID_ARGUMENT before any byte is
 * written. Chunks are not released (there are no slots): the client sends no LoadProgress.
 * 
 * The destination may instead have no name at all (shared_memory_handle): a memfd named
 * "ckptd-ring-<token>" or "ckptd-dest-<token>", checked as a ring handle is (see SharedMemoryHandle)
 * except for its size, which must lie between LoadPlan.destination_bytes and that many bytes (one
 * byte when it is 0), not within the 1 GiB ring bound. Nothing is then left behind however the client
 * dies. A refused handle fails the stream with FAILED_PRECONDITION "shared memory unavailable" before
 * any byte is written; the daemon closes the destination when the stream ends. A client sends a
 * handle only to a daemon that says it takes one (LoadPlan.destination_handle) and took its ring as
 * a handle.
 */
export interface LoadDestination {
  /**
   * The destination file, at least LoadPlan.destination_bytes long. Empty, with no
   * shared_memory_handle either: no destination (say, the client could not allocate one); the daemon
   * then writes into the ring as without destination mode. At most one of the two is set.
   */
  'sharedMemoryPath': (string);
  /**
   * The destination as an open descriptor of the client (see above); empty path then.
   */
  'sharedMemoryHandle': (_ckptd_v1_SharedMemoryHandle | null);
}
