// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * SaveProgress tells the client how much of the shared-memory file it may reuse.
 */
export interface SaveProgressIn {
  /**
   * Bytes of shared chunks the daemon has copied out so far, over the whole stream,
   * in the order they were sent: the space of those chunks is free again.
   */
  'sharedBytesReleased'?: (number | string | Long);
  /**
   * Set on the first progress message when the daemon opened SaveHeader.shared_memory_handle.
   * A client that sent a handle and gets a first progress without it talks to a daemon
   * that predates handles: it sends that stream's bytes in Chunk messages and names its
   * rings by path from then on.
   */
  'sharedMemoryHandleOpen'?: (boolean);
  /**
   * Set by daemons that checksum shared chunks sent without SharedChunk.crc32c from the
   * bytes they read and accept a trailer CRC that leaves them out: a client may then
   * omit the CRC of its shared chunks. A daemon that predates it leaves it unset (and
   * expects every byte in the trailer's CRC).
   */
  'sharedChunkCrcOptional'?: (boolean);
}

/**
 * SaveProgress tells the client how much of the shared-memory file it may reuse.
 */
export interface SaveProgress {
  /**
   * Bytes of shared chunks the daemon has copied out so far, over the whole stream,
   * in the order they were sent: the space of those chunks is free again.
   */
  'sharedBytesReleased': (number);
  /**
   * Set on the first progress message when the daemon opened SaveHeader.shared_memory_handle.
   * A client that sent a handle and gets a first progress without it talks to a daemon
   * that predates handles: it sends that stream's bytes in Chunk messages and names its
   * rings by path from then on.
   */
  'sharedMemoryHandleOpen': (boolean);
  /**
   * Set by daemons that checksum shared chunks sent without SharedChunk.crc32c from the
   * bytes they read and accept a trailer CRC that leaves them out: a client may then
   * omit the CRC of its shared chunks. A daemon that predates it leaves it unset (and
   * expects every byte in the trailer's CRC).
   */
  'sharedChunkCrcOptional': (boolean);
}
