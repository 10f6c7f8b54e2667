// Original file: proto/ckptd/v1/peer_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * VoteRequest relays one rank's vote with the records of the items it staged.
 */
export interface VoteRequestIn {
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
   * The voting rank.
   */
  'rank'?: (number);
  /**
   * The checkpoint's world size.
   */
  'worldSize'?: (number);
  /**
   * The attempt the items were staged into.
   */
  'attempt'?: (number);
  /**
   * The manifest records (JSON) of the items the rank names, staged and fsynced by the participant.
   */
  'itemsJson'?: (Buffer | Uint8Array | string);
  /**
   * The participant's node id.
   */
  'nodeId'?: (string);
}

/**
 * VoteRequest relays one rank's vote with the records of the items it staged.
 */
export interface VoteRequest {
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
   * The voting rank.
   */
  'rank': (number);
  /**
   * The checkpoint's world size.
   */
  'worldSize': (number);
  /**
   * The attempt the items were staged into.
   */
  'attempt': (number);
  /**
   * The manifest records (JSON) of the items the rank names, staged and fsynced by the participant.
   */
  'itemsJson': (Buffer);
  /**
   * The participant's node id.
   */
  'nodeId': (string);
}
