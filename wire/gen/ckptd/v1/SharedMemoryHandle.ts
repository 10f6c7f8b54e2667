// Original file: proto/ckptd/v1/checkpoint_service.proto


/**
 * SharedMemoryHandle names a client's shared-memory ring by an open descriptor of the
 * client's process instead of a path. The contract:
 * - The client creates the ring with memfd_create("ckptd-ring-<token>", MFD_CLOEXEC),
 * where token is 32 lowercase hex characters of fresh randomness (128 bits) kept
 * secret, sizes it and keeps the descriptor open until the stream ends.
 * - The daemon reopens /proc/<pid>/fd/<fd> (so the client and the daemon must share
 * a PID namespace and the daemon must pass the kernel's ptrace access check on the
 * client: same user) and, before it reads or writes a byte, checks that the file it
 * opened is "/memfd:ckptd-ring-<token> (deleted)" for this token, a regular file of
 * the daemon's user with no link, of a size within bounds (at least one byte for a
 * save, one 4 MiB slot for a load; at most 1 GiB). A client whose ring fails any of
 * this gets FAILED_PRECONDITION with "shared memory unavailable" in the message,
 * before anything is staged, and may fall back to shared_memory_path or to the
 * stream.
 * - The daemon closes its descriptor when the stream ends. Since the ring never has a
 * name, its memory goes back to the system once both processes closed it, whatever
 * happens to either of them.
 * A client that cannot create a memfd may instead create a file in the daemon's
 * shared-memory directory named "ckptd-ring-<token>", open it and remove its name
 * at once; the daemon then checks for "<directory>/ckptd-ring-<token> (deleted)" on
 * the directory's filesystem, with the same other checks.
 */
export interface SharedMemoryHandleIn {
  /**
   * The client's process id, as the daemon's /proc sees it.
   */
  'pid'?: (number);
  /**
   * The ring's descriptor number in that process.
   */
  'fd'?: (number);
  /**
   * The secret part of the ring's name: exactly 32 lowercase hex characters.
   */
  'token'?: (string);
}

/**
 * SharedMemoryHandle names a client's shared-memory ring by an open descriptor of the
 * client's process instead of a path. The contract:
 * - The client creates the ring with memfd_create("ckptd-ring-<token>", MFD_CLOEXEC),
 * where token is 32 lowercase hex characters of fresh randomness (128 bits) kept
 * secret, sizes it and keeps the descriptor open until the stream ends.
 * - The daemon reopens /proc/<pid>/fd/<fd> (so the client and the daemon must share
 * a PID namespace and the daemon must pass the kernel's ptrace access check on the
 * client: same user) and, before it reads or writes a byte, checks that the file it
 * opened is "/memfd:ckptd-ring-<token> (deleted)" for this token, a regular file of
 * the daemon's user with no link, of a size within bounds (at least one byte for a
 * save, one 4 MiB slot for a load; at most 1 GiB). A client whose ring fails any of
 * this gets FAILED_PRECONDITION with "shared memory unavailable" in the message,
 * before anything is staged, and may fall back to shared_memory_path or to the
 * stream.
 * - The daemon closes its descriptor when the stream ends. Since the ring never has a
 * name, its memory goes back to the system once both processes closed it, whatever
 * happens to either of them.
 * A client that cannot create a memfd may instead create a file in the daemon's
 * shared-memory directory named "ckptd-ring-<token>", open it and remove its name
 * at once; the daemon then checks for "<directory>/ckptd-ring-<token> (deleted)" on
 * the directory's filesystem, with the same other checks.
 */
export interface SharedMemoryHandle {
  /**
   * The client's process id, as the daemon's /proc sees it.
   */
  'pid': (number);
  /**
   * The ring's descriptor number in that process.
   */
  'fd': (number);
  /**
   * The secret part of the ring's name: exactly 32 lowercase hex characters.
   */
  'token': (string);
}
