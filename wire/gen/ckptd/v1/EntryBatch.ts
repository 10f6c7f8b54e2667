// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { InlineEntryIn as _ckptd_v1_InlineEntryIn, InlineEntry as _ckptd_v1_InlineEntry } from '../../ckptd/v1/InlineEntry.js';

/**
 * EntryBatch carries several small entries whole, in stream order. A client should keep a
 * batch under 1 MiB and 1,024 entries; the message limit of the channel bounds it anyway.
 */
export interface EntryBatchIn {
  /**
   * The entries, each as if sent as an EntryHeader and one Chunk.
   */
  'entries'?: (_ckptd_v1_InlineEntryIn)[];
}

/**
 * EntryBatch carries several small entries whole, in stream order. A client should keep a
 * batch under 1 MiB and 1,024 entries; the message limit of the channel bounds it anyway.
 */
export interface EntryBatch {
  /**
   * The entries, each as if sent as an EntryHeader and one Chunk.
   */
  'entries': (_ckptd_v1_InlineEntry)[];
}
