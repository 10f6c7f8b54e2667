// Original file: proto/ckptd/v1/checkpoint_service.proto


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
 */
export interface LoadDestinationIn {
  /**
   * The destination file, at least LoadPlan.destination_bytes long. Empty: no destination (say, the
   * client could not allocate one); the daemon then writes into the ring as without destination mode.
   */
  'sharedMemoryPath'?: (string);
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
 */
export interface LoadDestination {
  /**
   * The destination file, at least LoadPlan.destination_bytes long. Empty: no destination (say, the
   * client could not allocate one); the daemon then writes into the ring as without destination mode.
   */
  'sharedMemoryPath': (string);
}
