// Original file: proto/ckptd/v1/evaluation_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * WatchCheckpointsRequest says which job to follow and where to start.
 */
export interface WatchCheckpointsRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * Resume after this sequence number (the last one the subscriber saw).
   */
  'afterSequence'?: (number | string | Long);
  /**
   * Start at the first event about a checkpoint with at least this step.
   */
  'fromStep'?: (number | string | Long);
  /**
   * Only events that happen after the subscription starts.
   */
  'fromNow'?: (boolean);
  /**
   * The evaluator's name. When set, each COMMITTED event sent holds a lease on the
   * checkpoint so retention keeps it until the evaluator reports or the lease expires.
   */
  'evaluator'?: (string);
  /**
   * Where to start; when none is set, from the first event of the job.
   */
  'start'?: "afterSequence"|"fromStep"|"fromNow";
}

/**
 * WatchCheckpointsRequest says which job to follow and where to start.
 */
export interface WatchCheckpointsRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * Resume after this sequence number (the last one the subscriber saw).
   */
  'afterSequence'?: (number);
  /**
   * Start at the first event about a checkpoint with at least this step.
   */
  'fromStep'?: (number);
  /**
   * Only events that happen after the subscription starts.
   */
  'fromNow'?: (boolean);
  /**
   * The evaluator's name. When set, each COMMITTED event sent holds a lease on the
   * checkpoint so retention keeps it until the evaluator reports or the lease expires.
   */
  'evaluator': (string);
  /**
   * Where to start; when none is set, from the first event of the job.
   */
  'start'?: "afterSequence"|"fromStep"|"fromNow";
}
