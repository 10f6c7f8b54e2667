// Original file: proto/ckptd/v1/evaluation_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * WatchStarted is sent once, first, when a subscription is live. A job nobody has saved
 * into yet is not an error: its log is empty (head_sequence 0) and the first commit follows.
 */
export interface WatchStartedIn {
  /**
   * The sequence number of the last event in the job's log when the subscription started
   * (0 for an empty log); resume with after_sequence = head_sequence to get only new events.
   */
  'headSequence'?: (number | string | Long);
  /**
   * Events with a sequence number greater than this follow on this stream.
   */
  'afterSequence'?: (number | string | Long);
}

/**
 * WatchStarted is sent once, first, when a subscription is live. A job nobody has saved
 * into yet is not an error: its log is empty (head_sequence 0) and the first commit follows.
 */
export interface WatchStarted {
  /**
   * The sequence number of the last event in the job's log when the subscription started
   * (0 for an empty log); resume with after_sequence = head_sequence to get only new events.
   */
  'headSequence': (number);
  /**
   * Events with a sequence number greater than this follow on this stream.
   */
  'afterSequence': (number);
}
