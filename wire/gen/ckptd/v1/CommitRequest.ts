// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * CommitRequest is a rank's yes-vote.
 */
export interface CommitRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The checkpoint's step; must match the step the ranks saved with.
   */
  'step'?: (number | string | Long);
  /**
   * The voting rank.
   */
  'rank'?: (number);
  /**
   * The number of ranks; must match the checkpoint's.
   */
  'worldSize'?: (number);
  /**
   * The items this rank saved and wants in the checkpoint. A name that was not staged aborts the checkpoint.
   */
  'items'?: (string)[];
  /**
   * The attempt the rank's items were saved into (from SaveResponse); 0 means the current one.
   */
  'attempt'?: (number);
  /**
   * The voting trainer process's incarnation, as in SaveHeader.incarnation; 0 means not sent.
   */
  'incarnation'?: (number | string | Long);
}

/**
 * CommitRequest is a rank's yes-vote.
 */
export interface CommitRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The checkpoint's step; must match the step the ranks saved with.
   */
  'step': (number);
  /**
   * The voting rank.
   */
  'rank': (number);
  /**
   * The number of ranks; must match the checkpoint's.
   */
  'worldSize': (number);
  /**
   * The items this rank saved and wants in the checkpoint. A name that was not staged aborts the checkpoint.
   */
  'items': (string)[];
  /**
   * The attempt the rank's items were saved into (from SaveResponse); 0 means the current one.
   */
  'attempt': (number);
  /**
   * The voting trainer process's incarnation, as in SaveHeader.incarnation; 0 means not sent.
   */
  'incarnation': (number);
}
