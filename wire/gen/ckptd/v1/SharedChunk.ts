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
   * Optional CRC-32C (Castagnoli) of the slice; verified when set. The daemon computes
   * the stored checksum itself, from the bytes it copies out of the file, either way.
   * The file is memory of the client's own node, so a client may leave this unset when
   * the daemon says so (SaveProgress.shared_chunk_crc_optional): it then saves the CRC
   * pass over its bytes. By design the daemon stores what it reads: a byte changed in
   * the file after the client wrote it and before the daemon copied it out is stored as
   * read (and checksummed as stored, so loads return it intact), not detected. Slices
   * sent without a CRC are left out of SaveTrailer.crc32c.
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
   * Optional CRC-32C (Castagnoli) of the slice; verified when set. The daemon computes
   * the stored checksum itself, from the bytes it copies out of the file, either way.
   * The file is memory of the client's own node, so a client may leave this unset when
   * the daemon says so (SaveProgress.shared_chunk_crc_optional): it then saves the CRC
   * pass over its bytes. By design the daemon stores what it reads: a byte changed in
   * the file after the client wrote it and before the daemon copied it out is stored as
   * read (and checksummed as stored, so loads return it intact), not detected. Slices
   * sent without a CRC are left out of SaveTrailer.crc32c.
   */
  'crc32c'?: (number);
  '_crc32c'?: "crc32c";
}
