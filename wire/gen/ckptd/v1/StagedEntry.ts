// Original file: proto/ckptd/v1/peer_service.proto

import type { TensorSpecIn as _ckptd_v1_TensorSpecIn, TensorSpec as _ckptd_v1_TensorSpec } from '../../ckptd/v1/TensorSpec.js';
import type { ObjectSpecIn as _ckptd_v1_ObjectSpecIn, ObjectSpec as _ckptd_v1_ObjectSpec } from '../../ckptd/v1/ObjectSpec.js';
import type { StagedChunkIn as _ckptd_v1_StagedChunkIn, StagedChunk as _ckptd_v1_StagedChunk } from '../../ckptd/v1/StagedChunk.js';
import type { Long } from '@grpc/proto-loader';

/**
 * StagedEntry is the record of one entry of a staged item.
 */
export interface StagedEntryIn {
  /**
   * The entry's key within the item, unique within it.
   */
  'key'?: (string);
  /**
   * A tensor; its dtype times shape must equal raw_bytes.
   */
  'tensor'?: (_ckptd_v1_TensorSpecIn | null);
  /**
   * An opaque object; its size must equal raw_bytes.
   */
  'object'?: (_ckptd_v1_ObjectSpecIn | null);
  /**
   * The entry's file in the item directory: "NNNNNN.lz4", NNNNNN being the entry's index.
   */
  'file'?: (string);
  /**
   * Raw bytes of the entry: the sum of its chunks' raw bytes.
   */
  'rawBytes'?: (number | string | Long);
  /**
   * Stored bytes of the entry (its file's size): the sum of its chunks' stored bytes.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * The entry's chunks, in file order.
   */
  'chunks'?: (_ckptd_v1_StagedChunkIn)[];
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}

/**
 * StagedEntry is the record of one entry of a staged item.
 */
export interface StagedEntry {
  /**
   * The entry's key within the item, unique within it.
   */
  'key': (string);
  /**
   * A tensor; its dtype times shape must equal raw_bytes.
   */
  'tensor'?: (_ckptd_v1_TensorSpec | null);
  /**
   * An opaque object; its size must equal raw_bytes.
   */
  'object'?: (_ckptd_v1_ObjectSpec | null);
  /**
   * The entry's file in the item directory: "NNNNNN.lz4", NNNNNN being the entry's index.
   */
  'file': (string);
  /**
   * Raw bytes of the entry: the sum of its chunks' raw bytes.
   */
  'rawBytes': (number);
  /**
   * Stored bytes of the entry (its file's size): the sum of its chunks' stored bytes.
   */
  'storedBytes': (number);
  /**
   * The entry's chunks, in file order.
   */
  'chunks': (_ckptd_v1_StagedChunk)[];
  /**
   * What the entry holds.
   */
  'kind'?: "tensor"|"object";
}
