// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { LoadPlanIn as _ckptd_v1_LoadPlanIn, LoadPlan as _ckptd_v1_LoadPlan } from '../../ckptd/v1/LoadPlan.js';
import type { LoadEntryIn as _ckptd_v1_LoadEntryIn, LoadEntry as _ckptd_v1_LoadEntry } from '../../ckptd/v1/LoadEntry.js';
import type { ChunkIn as _ckptd_v1_ChunkIn, Chunk as _ckptd_v1_Chunk } from '../../ckptd/v1/Chunk.js';
import type { SharedChunkIn as _ckptd_v1_SharedChunkIn, SharedChunk as _ckptd_v1_SharedChunk } from '../../ckptd/v1/SharedChunk.js';

/**
 * LoadResponse is one message of a Load stream: plan, then (entry, chunk*)*.
 */
export interface LoadResponseIn {
  /**
   * First message: the checkpoint and the device-mapping hints.
   */
  'plan'?: (_ckptd_v1_LoadPlanIn | null);
  /**
   * Starts an entry; its raw bytes follow as chunks.
   */
  'entry'?: (_ckptd_v1_LoadEntryIn | null);
  /**
   * A slice of the current entry's raw bytes, verified against its checksum, with the
   * CRC-32C of the slice's bytes (crc32c is always set on Load). A slice
   * holds at most 4 MiB - 64 KiB, so every message fits the 4 MiB receive limit of
   * stock gRPC clients; slices need not match the chunks the entry was saved in, so
   * clients reassemble an entry by its size_bytes.
   */
  'chunk'?: (_ckptd_v1_ChunkIn | null);
  /**
   * LoadShared only: a slice of the current entry's raw bytes, written into the
   * client's shared-memory file, with its CRC-32C.
   */
  'sharedChunk'?: (_ckptd_v1_SharedChunkIn | null);
  /**
   * The message kind.
   */
  'msg'?: "plan"|"entry"|"chunk"|"sharedChunk";
}

/**
 * LoadResponse is one message of a Load stream: plan, then (entry, chunk*)*.
 */
export interface LoadResponse {
  /**
   * First message: the checkpoint and the device-mapping hints.
   */
  'plan'?: (_ckptd_v1_LoadPlan | null);
  /**
   * Starts an entry; its raw bytes follow as chunks.
   */
  'entry'?: (_ckptd_v1_LoadEntry | null);
  /**
   * A slice of the current entry's raw bytes, verified against its checksum, with the
   * CRC-32C of the slice's bytes (crc32c is always set on Load). A slice
   * holds at most 4 MiB - 64 KiB, so every message fits the 4 MiB receive limit of
   * stock gRPC clients; slices need not match the chunks the entry was saved in, so
   * clients reassemble an entry by its size_bytes.
   */
  'chunk'?: (_ckptd_v1_Chunk | null);
  /**
   * LoadShared only: a slice of the current entry's raw bytes, written into the
   * client's shared-memory file, with its CRC-32C.
   */
  'sharedChunk'?: (_ckptd_v1_SharedChunk | null);
  /**
   * The message kind.
   */
  'msg'?: "plan"|"entry"|"chunk"|"sharedChunk";
}
