// Original file: proto/ckptd/v1/admin_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * ChunkDamage locates one damaged chunk.
 */
export interface ChunkDamageIn {
  /**
   * The rank that saved it.
   */
  'rank'?: (number);
  /**
   * The item.
   */
  'item'?: (string);
  /**
   * The entry's key.
   */
  'key'?: (string);
  /**
   * Index of the chunk within the entry.
   */
  'chunkIndex'?: (number);
  /**
   * The stored file, relative to the checkpoint directory.
   */
  'file'?: (string);
  /**
   * Byte offset of the chunk in the file.
   */
  'offset'?: (number | string | Long);
  /**
   * What is wrong, e.g. "CRC-32C mismatch" or "file is missing".
   */
  'problem'?: (string);
}

/**
 * ChunkDamage locates one damaged chunk.
 */
export interface ChunkDamage {
  /**
   * The rank that saved it.
   */
  'rank': (number);
  /**
   * The item.
   */
  'item': (string);
  /**
   * The entry's key.
   */
  'key': (string);
  /**
   * Index of the chunk within the entry.
   */
  'chunkIndex': (number);
  /**
   * The stored file, relative to the checkpoint directory.
   */
  'file': (string);
  /**
   * Byte offset of the chunk in the file.
   */
  'offset': (number);
  /**
   * What is wrong, e.g. "CRC-32C mismatch" or "file is missing".
   */
  'problem': (string);
}
