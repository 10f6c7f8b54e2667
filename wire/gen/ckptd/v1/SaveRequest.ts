// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { SaveHeaderIn as _ckptd_v1_SaveHeaderIn, SaveHeader as _ckptd_v1_SaveHeader } from '../../ckptd/v1/SaveHeader.js';
import type { EntryHeaderIn as _ckptd_v1_EntryHeaderIn, EntryHeader as _ckptd_v1_EntryHeader } from '../../ckptd/v1/EntryHeader.js';
import type { ChunkIn as _ckptd_v1_ChunkIn, Chunk as _ckptd_v1_Chunk } from '../../ckptd/v1/Chunk.js';
import type { SaveTrailerIn as _ckptd_v1_SaveTrailerIn, SaveTrailer as _ckptd_v1_SaveTrailer } from '../../ckptd/v1/SaveTrailer.js';
import type { SharedChunkIn as _ckptd_v1_SharedChunkIn, SharedChunk as _ckptd_v1_SharedChunk } from '../../ckptd/v1/SharedChunk.js';
import type { EntryBatchIn as _ckptd_v1_EntryBatchIn, EntryBatch as _ckptd_v1_EntryBatch } from '../../ckptd/v1/EntryBatch.js';

/**
 * SaveRequest is one message of a Save stream.
 */
export interface SaveRequestIn {
  /**
   * First message of the stream: which checkpoint, rank and item.
   */
  'header'?: (_ckptd_v1_SaveHeaderIn | null);
  /**
   * Starts a new entry; its bytes follow as chunks.
   */
  'entry'?: (_ckptd_v1_EntryHeaderIn | null);
  /**
   * A slice of the current entry's bytes.
   */
  'chunk'?: (_ckptd_v1_ChunkIn | null);
  /**
   * Last message of the stream: counts and checksum of everything sent.
   */
  'trailer'?: (_ckptd_v1_SaveTrailerIn | null);
  /**
   * A slice of the current entry's bytes held in the shared-memory file; counts as
   * a chunk in every check (size, checksums, trailer).
   */
  'sharedChunk'?: (_ckptd_v1_SharedChunkIn | null);
  /**
   * Several whole entries with their bytes inline, for small tensors: counts as each
   * entry's header followed by one chunk of its bytes in every check (sizes, checksums,
   * trailer), but costs one message instead of two per entry.
   */
  'entryBatch'?: (_ckptd_v1_EntryBatchIn | null);
  /**
   * The message kind; the stream is header, (entry, chunk*)*, trailer.
   */
  'msg'?: "header"|"entry"|"chunk"|"trailer"|"sharedChunk"|"entryBatch";
}

/**
 * SaveRequest is one message of a Save stream.
 */
export interface SaveRequest {
  /**
   * First message of the stream: which checkpoint, rank and item.
   */
  'header'?: (_ckptd_v1_SaveHeader | null);
  /**
   * Starts a new entry; its bytes follow as chunks.
   */
  'entry'?: (_ckptd_v1_EntryHeader | null);
  /**
   * A slice of the current entry's bytes.
   */
  'chunk'?: (_ckptd_v1_Chunk | null);
  /**
   * Last message of the stream: counts and checksum of everything sent.
   */
  'trailer'?: (_ckptd_v1_SaveTrailer | null);
  /**
   * A slice of the current entry's bytes held in the shared-memory file; counts as
   * a chunk in every check (size, checksums, trailer).
   */
  'sharedChunk'?: (_ckptd_v1_SharedChunk | null);
  /**
   * Several whole entries with their bytes inline, for small tensors: counts as each
   * entry's header followed by one chunk of its bytes in every check (sizes, checksums,
   * trailer), but costs one message instead of two per entry.
   */
  'entryBatch'?: (_ckptd_v1_EntryBatch | null);
  /**
   * The message kind; the stream is header, (entry, chunk*)*, trailer.
   */
  'msg'?: "header"|"entry"|"chunk"|"trailer"|"sharedChunk"|"entryBatch";
}
