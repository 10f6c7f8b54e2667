// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * SaveResponse reports what a Save stream staged.
 */
export interface SaveResponseIn {
  /**
   * Raw bytes received.
   */
  'bytesReceived'?: (number | string | Long);
  /**
   * Bytes stored on disk after compression.
   */
  'bytesStored'?: (number | string | Long);
  /**
   * Entries staged.
   */
  'entryCount'?: (number);
  /**
   * The attempt of the checkpoint this item was staged into; pass it to Commit.
   */
  'attempt'?: (number);
}

/**
 * SaveResponse reports what a Save stream staged.
 */
export interface SaveResponse {
  /**
   * Raw bytes received.
   */
  'bytesReceived': (number);
  /**
   * Bytes stored on disk after compression.
   */
  'bytesStored': (number);
  /**
   * Entries staged.
   */
  'entryCount': (number);
  /**
   * The attempt of the checkpoint this item was staged into; pass it to Commit.
   */
  'attempt': (number);
}
