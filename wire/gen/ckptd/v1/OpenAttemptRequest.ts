// Original file: proto/ckptd/v1/peer_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * OpenAttemptRequest names the checkpoint a local rank begins to save.
 */
export interface OpenAttemptRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The checkpoint's step.
   */
  'step'?: (number | string | Long);
  /**
   * The checkpoint's world size.
   */
  'worldSize'?: (number);
  /**
   * The rank that begins to save.
   */
  'rank'?: (number);
  /**
   * The participant's node id.
   */
  'nodeId'?: (string);
  /**
   * The rank's trainer incarnation from its SaveHeader (0: not sent); the coordinator fences with it as for a
   * local Save.
   */
  'incarnation'?: (number | string | Long);
}

/**
 * OpenAttemptRequest names the checkpoint a local rank begins to save.
 */
export interface OpenAttemptRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The checkpoint's step.
   */
  'step': (number);
  /**
   * The checkpoint's world size.
   */
  'worldSize': (number);
  /**
   * The rank that begins to save.
   */
  'rank': (number);
  /**
   * The participant's node id.
   */
  'nodeId': (string);
  /**
   * The rank's trainer incarnation from its SaveHeader (0: not sent); the coordinator fences with it as for a
   * local Save.
   */
  'incarnation': (number);
}
