// Original file: proto/ckptd/v1/peer_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * AbortAttemptRequest is a participant's no-vote.
 */
export interface AbortAttemptRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The attempt.
   */
  'attempt'?: (number);
  /**
   * Why.
   */
  'reason'?: (string);
  /**
   * The participant's node id.
   */
  'nodeId'?: (string);
  /**
   * The aborting rank, when a rank's Abort is relayed with an incarnation.
   */
  'rank'?: (number);
  /**
   * The rank's trainer incarnation from its AbortRequest; 0 when not sent or when the participant aborts on its
   * own (then rank is not used).
   */
  'incarnation'?: (number | string | Long);
}

/**
 * AbortAttemptRequest is a participant's no-vote.
 */
export interface AbortAttemptRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The attempt.
   */
  'attempt': (number);
  /**
   * Why.
   */
  'reason': (string);
  /**
   * The participant's node id.
   */
  'nodeId': (string);
  /**
   * The aborting rank, when a rank's Abort is relayed with an incarnation.
   */
  'rank': (number);
  /**
   * The rank's trainer incarnation from its AbortRequest; 0 when not sent or when the participant aborts on its
   * own (then rank is not used).
   */
  'incarnation': (number);
}
