// Original file: proto/ckptd/v1/retention_service.proto


/**
 * PinCheckpointRequest pins or unpins one checkpoint.
 */
export interface PinCheckpointRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * True to pin, false to unpin.
   */
  'pinned'?: (boolean);
}

/**
 * PinCheckpointRequest pins or unpins one checkpoint.
 */
export interface PinCheckpointRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * True to pin, false to unpin.
   */
  'pinned': (boolean);
}
