// Original file: proto/ckptd/v1/peer_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * StagedChunk locates one stored chunk (one LZ4 frame) in its entry file.
 */
export interface StagedChunkIn {
  /**
   * Byte offset of the frame in the file: where the previous chunk ended.
   */
  'offset'?: (number | string | Long);
  /**
   * Raw bytes of the chunk, at most 4 MiB.
   */
  'rawBytes'?: (number);
  /**
   * Bytes of the frame in the file.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * CRC-32C (Castagnoli) of the raw bytes.
   */
  'crc32c'?: (number);
  /**
   * True when the frame holds an uncompressed block.
   */
  'raw'?: (boolean);
}

/**
 * StagedChunk locates one stored chunk (one LZ4 frame) in its entry file.
 */
export interface StagedChunk {
  /**
   * Byte offset of the frame in the file: where the previous chunk ended.
   */
  'offset': (number);
  /**
   * Raw bytes of the chunk, at most 4 MiB.
   */
  'rawBytes': (number);
  /**
   * Bytes of the frame in the file.
   */
  'storedBytes': (number);
  /**
   * CRC-32C (Castagnoli) of the raw bytes.
   */
  'crc32c': (number);
  /**
   * True when the frame holds an uncompressed block.
   */
  'raw': (boolean);
}
