// Original file: proto/ckptd/v1/checkpoint_service.proto


/**
 * DeleteCheckpointRequest names the checkpoint to delete.
 */
export interface DeleteCheckpointRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id (not "latest").
   */
  'checkpointId'?: (string);
}

/**
 * DeleteCheckpointRequest names the checkpoint to delete.
 */
export interface DeleteCheckpointRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id (not "latest").
   */
  'checkpointId': (string);
}
