// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { EntryHeaderIn as _ckptd_v1_EntryHeaderIn, EntryHeader as _ckptd_v1_EntryHeader } from '../../ckptd/v1/EntryHeader.js';

/**
 * InlineEntry is one entry of an EntryBatch: its header and all its bytes.
 */
export interface InlineEntryIn {
  /**
   * The entry's header.
   */
  'header'?: (_ckptd_v1_EntryHeaderIn | null);
  /**
   * All the entry's raw bytes, at most 4 MiB.
   */
  'data'?: (Buffer | Uint8Array | string);
  /**
   * Optional CRC-32C (Castagnoli) of data; verified when set.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}

/**
 * InlineEntry is one entry of an EntryBatch: its header and all its bytes.
 */
export interface InlineEntry {
  /**
   * The entry's header.
   */
  'header': (_ckptd_v1_EntryHeader | null);
  /**
   * All the entry's raw bytes, at most 4 MiB.
   */
  'data': (Buffer);
  /**
   * Optional CRC-32C (Castagnoli) of data; verified when set.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}
