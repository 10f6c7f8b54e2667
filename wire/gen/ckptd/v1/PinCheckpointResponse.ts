// Original file: proto/ckptd/v1/retention_service.proto


/**
 * PinCheckpointResponse confirms the change.
 */
export interface PinCheckpointResponseIn {
  /**
   * Whether the checkpoint is now pinned.
   */
  'pinned'?: (boolean);
}

/**
 * PinCheckpointResponse confirms the change.
 */
export interface PinCheckpointResponse {
  /**
   * Whether the checkpoint is now pinned.
   */
  'pinned': (boolean);
}
