// Original file: proto/ckptd/v1/checkpoint_service.proto


/**
 * Chunk is a slice of an entry's raw bytes, at most 4 MiB.
 */
export interface ChunkIn {
  /**
   * The bytes.
   */
  'data'?: (Buffer | Uint8Array | string);
  /**
   * Optional CRC-32C (Castagnoli) of data; verified when set.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}

/**
 * Chunk is a slice of an entry's raw bytes, at most 4 MiB.
 */
export interface Chunk {
  /**
   * The bytes.
   */
  'data': (Buffer);
  /**
   * Optional CRC-32C (Castagnoli) of data; verified when set.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}
