// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * SharedChunk names a slice of the shared-memory file that holds an entry's next bytes.
 */
export interface SharedChunkIn {
  /**
   * Byte offset of the slice in the file.
   */
  'offset'?: (number | string | Long);
  /**
   * Length of the slice, at most 4 MiB.
   */
  'length'?: (number);
  /**
   * Optional CRC-32C (Castagnoli) of the slice; verified when set.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}

/**
 * SharedChunk names a slice of the shared-memory file that holds an entry's next bytes.
 */
export interface SharedChunk {
  /**
   * Byte offset of the slice in the file.
   */
  'offset': (number);
  /**
   * Length of the slice, at most 4 MiB.
   */
  'length': (number);
  /**
   * Optional CRC-32C (Castagnoli) of the slice; verified when set.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}
