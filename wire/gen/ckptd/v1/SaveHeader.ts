// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { SharedMemoryHandleIn as _ckptd_v1_SharedMemoryHandleIn, SharedMemoryHandle as _ckptd_v1_SharedMemoryHandle } from '../../ckptd/v1/SharedMemoryHandle.js';
import type { Long } from '@grpc/proto-loader';

/**
 * SaveHeader names the checkpoint, the rank and the item a Save stream writes.
 */
export interface SaveHeaderIn {
  /**
   * The training job, the namespace of its checkpoints ([A-Za-z0-9._-], at most 128 characters).
   */
  'job'?: (string);
  /**
   * The checkpoint's id, e.g. "global_step1000" (same character rules as job).
   */
  'checkpointId'?: (string);
  /**
   * The training step of the checkpoint; every rank must agree.
   */
  'step'?: (number | string | Long);
  /**
   * The saving rank, in [0, world_size).
   */
  'rank'?: (number);
  /**
   * The number of ranks that take part in the checkpoint; every rank must agree.
   */
  'worldSize'?: (number);
  /**
   * The item's name, e.g. "model" or "mp_rank_00_model_states.pt" (same character rules as job).
   */
  'item'?: (string);
  /**
   * For shared_chunk messages: the path of a regular file directly in the daemon's
   * shared-memory directory (--shared-memory-dir, /dev/shm by default), owned by the
   * daemon's user. Empty when the stream sends its bytes in Chunk messages or names
   * its ring with shared_memory_handle; at most one of the two is set.
   */
  'sharedMemoryPath'?: (string);
  /**
   * The saving trainer process's incarnation: a number the process picks once at start that grows across
   * restarts of the same rank (e.g. microseconds since the epoch at process start, or a restart counter; ranks
   * need not agree, at most 2^53 - 1). The first message of a newer incarnation of a rank aborts, durably, the
   * checkpoint's undecided attempt that rank took part in ("rank r restarted"), and the message goes on in a
   * new attempt; a message of an older incarnation than the rank already used for the checkpoint is refused
   * with FAILED_PRECONDITION and changes nothing. 0 means not sent: no fencing (older clients).
   */
  'incarnation'?: (number | string | Long);
  /**
   * For shared_chunk messages: the client's ring as an open descriptor of the client
   * process (see SharedMemoryHandle), so that no file name ever exists. Preferred
   * over shared_memory_path; a daemon that predates it ignores it and leaves
   * SaveProgress.shared_memory_handle_open unset.
   */
  'sharedMemoryHandle'?: (_ckptd_v1_SharedMemoryHandleIn | null);
}

/**
 * SaveHeader names the checkpoint, the rank and the item a Save stream writes.
 */
export interface SaveHeader {
  /**
   * The training job, the namespace of its checkpoints ([A-Za-z0-9._-], at most 128 characters).
   */
  'job': (string);
  /**
   * The checkpoint's id, e.g. "global_step1000" (same character rules as job).
   */
  'checkpointId': (string);
  /**
   * The training step of the checkpoint; every rank must agree.
   */
  'step': (number);
  /**
   * The saving rank, in [0, world_size).
   */
  'rank': (number);
  /**
   * The number of ranks that take part in the checkpoint; every rank must agree.
   */
  'worldSize': (number);
  /**
   * The item's name, e.g. "model" or "mp_rank_00_model_states.pt" (same character rules as job).
   */
  'item': (string);
  /**
   * For shared_chunk messages: the path of a regular file directly in the daemon's
   * shared-memory directory (--shared-memory-dir, /dev/shm by default), owned by the
   * daemon's user. Empty when the stream sends its bytes in Chunk messages or names
   * its ring with shared_memory_handle; at most one of the two is set.
   */
  'sharedMemoryPath': (string);
  /**
   * The saving trainer process's incarnation: a number the process picks once at start that grows across
   * restarts of the same rank (e.g. microseconds since the epoch at process start, or a restart counter; ranks
   * need not agree, at most 2^53 - 1). The first message of a newer incarnation of a rank aborts, durably, the
   * checkpoint's undecided attempt that rank took part in ("rank r restarted"), and the message goes on in a
   * new attempt; a message of an older incarnation than the rank already used for the checkpoint is refused
   * with FAILED_PRECONDITION and changes nothing. 0 means not sent: no fencing (older clients).
   */
  'incarnation': (number);
  /**
   * For shared_chunk messages: the client's ring as an open descriptor of the client
   * process (see SharedMemoryHandle), so that no file name ever exists. Preferred
   * over shared_memory_path; a daemon that predates it ignores it and leaves
   * SaveProgress.shared_memory_handle_open unset.
   */
  'sharedMemoryHandle': (_ckptd_v1_SharedMemoryHandle | null);
}
