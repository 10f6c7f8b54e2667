// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * DeleteCheckpointResponse confirms the deletion.
 */
export interface DeleteCheckpointResponseIn {
  /**
   * Bytes freed on disk.
   */
  'freedBytes'?: (number | string | Long);
}

/**
 * DeleteCheckpointResponse confirms the deletion.
 */
export interface DeleteCheckpointResponse {
  /**
   * Bytes freed on disk.
   */
  'freedBytes': (number);
}
