// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * AbortRequest is a rank's no-vote.
 */
export interface AbortRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The aborting rank.
   */
  'rank'?: (number);
  /**
   * Why, for the other ranks and the logs.
   */
  'reason'?: (string);
  /**
   * The attempt to abort; 0 means the current one.
   */
  'attempt'?: (number);
  /**
   * The aborting trainer process's incarnation, as in SaveHeader.incarnation; 0 means not sent. A newer
   * incarnation than the rank used in the open attempt aborts it as a restart.
   */
  'incarnation'?: (number | string | Long);
}

/**
 * AbortRequest is a rank's no-vote.
 */
export interface AbortRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The aborting rank.
   */
  'rank': (number);
  /**
   * Why, for the other ranks and the logs.
   */
  'reason': (string);
  /**
   * The attempt to abort; 0 means the current one.
   */
  'attempt': (number);
  /**
   * The aborting trainer process's incarnation, as in SaveHeader.incarnation; 0 means not sent. A newer
   * incarnation than the rank used in the open attempt aborts it as a restart.
   */
  'incarnation': (number);
}
