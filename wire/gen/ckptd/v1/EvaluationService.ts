// Original file: proto/ckptd/v1/evaluation_service.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { ReportEvaluationRequestIn as _ckptd_v1_ReportEvaluationRequestIn, ReportEvaluationRequest as _ckptd_v1_ReportEvaluationRequest } from '../../ckptd/v1/ReportEvaluationRequest.js';
import type { ReportEvaluationResponseIn as _ckptd_v1_ReportEvaluationResponseIn, ReportEvaluationResponse as _ckptd_v1_ReportEvaluationResponse } from '../../ckptd/v1/ReportEvaluationResponse.js';
import type { WaitForEvaluatorsRequestIn as _ckptd_v1_WaitForEvaluatorsRequestIn, WaitForEvaluatorsRequest as _ckptd_v1_WaitForEvaluatorsRequest } from '../../ckptd/v1/WaitForEvaluatorsRequest.js';
import type { WaitForEvaluatorsResponseIn as _ckptd_v1_WaitForEvaluatorsResponseIn, WaitForEvaluatorsResponse as _ckptd_v1_WaitForEvaluatorsResponse } from '../../ckptd/v1/WaitForEvaluatorsResponse.js';
import type { WatchCheckpointsRequestIn as _ckptd_v1_WatchCheckpointsRequestIn, WatchCheckpointsRequest as _ckptd_v1_WatchCheckpointsRequest } from '../../ckptd/v1/WatchCheckpointsRequest.js';
import type { WatchCheckpointsResponseIn as _ckptd_v1_WatchCheckpointsResponseIn, WatchCheckpointsResponse as _ckptd_v1_WatchCheckpointsResponse } from '../../ckptd/v1/WatchCheckpointsResponse.js';

/**
 * EvaluationService pushes committed checkpoints to evaluators and lets trainers
 * wait for their reports.
 * 
 * Call order for an evaluator: WatchCheckpoints (long-lived) → for each event:
 * Load → ReportEvaluation. A trainer calls WaitForEvaluators after Commit.
 */
export interface EvaluationServiceClient extends grpc.Client {
  /**
   * ReportEvaluation records (durably) that an evaluator is done with a checkpoint.
   */
  ReportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  ReportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  ReportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  ReportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  /**
   * ReportEvaluation records (durably) that an evaluator is done with a checkpoint.
   */
  reportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  reportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  reportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  reportEvaluation(argument: _ckptd_v1_ReportEvaluationRequestIn, callback: grpc.requestCallback<_ckptd_v1_ReportEvaluationResponse>): grpc.ClientUnaryCall;
  
  /**
   * WaitForEvaluators blocks until every named evaluator reported on the checkpoint,
   * or fails with DEADLINE_EXCEEDED naming the evaluators still missing.
   */
  WaitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  WaitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  WaitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  WaitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  /**
   * WaitForEvaluators blocks until every named evaluator reported on the checkpoint,
   * or fails with DEADLINE_EXCEEDED naming the evaluators still missing.
   */
  waitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  waitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  waitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  waitForEvaluators(argument: _ckptd_v1_WaitForEvaluatorsRequestIn, callback: grpc.requestCallback<_ckptd_v1_WaitForEvaluatorsResponse>): grpc.ClientUnaryCall;
  
  /**
   * WatchCheckpoints streams every commit and deletion of a job's checkpoints, in
   * commit order, each with a sequence number that only grows. It first replays the
   * durable event log from the requested position, then pushes live events.
   */
  WatchCheckpoints(argument: _ckptd_v1_WatchCheckpointsRequestIn, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_WatchCheckpointsResponse>;
  WatchCheckpoints(argument: _ckptd_v1_WatchCheckpointsRequestIn, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_WatchCheckpointsResponse>;
  /**
   * WatchCheckpoints streams every commit and deletion of a job's checkpoints, in
   * commit order, each with a sequence number that only grows. It first replays the
   * durable event log from the requested position, then pushes live events.
   */
  watchCheckpoints(argument: _ckptd_v1_WatchCheckpointsRequestIn, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_WatchCheckpointsResponse>;
  watchCheckpoints(argument: _ckptd_v1_WatchCheckpointsRequestIn, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_WatchCheckpointsResponse>;
  
}

/**
 * EvaluationService pushes committed checkpoints to evaluators and lets trainers
 * wait for their reports.
 * 
 * Call order for an evaluator: WatchCheckpoints (long-lived) → for each event:
 * Load → ReportEvaluation. A trainer calls WaitForEvaluators after Commit.
 */
export interface EvaluationServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * ReportEvaluation records (durably) that an evaluator is done with a checkpoint.
   */
  ReportEvaluation: grpc.handleUnaryCall<_ckptd_v1_ReportEvaluationRequest, _ckptd_v1_ReportEvaluationResponseIn>;
  
  /**
   * WaitForEvaluators blocks until every named evaluator reported on the checkpoint,
   * or fails with DEADLINE_EXCEEDED naming the evaluators still missing.
   */
  WaitForEvaluators: grpc.handleUnaryCall<_ckptd_v1_WaitForEvaluatorsRequest, _ckptd_v1_WaitForEvaluatorsResponseIn>;
  
  /**
   * WatchCheckpoints streams every commit and deletion of a job's checkpoints, in
   * commit order, each with a sequence number that only grows. It first replays the
   * durable event log from the requested position, then pushes live events.
   */
  WatchCheckpoints: grpc.handleServerStreamingCall<_ckptd_v1_WatchCheckpointsRequest, _ckptd_v1_WatchCheckpointsResponseIn>;
  
}

export interface EvaluationServiceDefinition extends grpc.ServiceDefinition {
  ReportEvaluation: MethodDefinition<_ckptd_v1_ReportEvaluationRequestIn, _ckptd_v1_ReportEvaluationResponseIn, _ckptd_v1_ReportEvaluationRequest, _ckptd_v1_ReportEvaluationResponse>
  WaitForEvaluators: MethodDefinition<_ckptd_v1_WaitForEvaluatorsRequestIn, _ckptd_v1_WaitForEvaluatorsResponseIn, _ckptd_v1_WaitForEvaluatorsRequest, _ckptd_v1_WaitForEvaluatorsResponse>
  WatchCheckpoints: MethodDefinition<_ckptd_v1_WatchCheckpointsRequestIn, _ckptd_v1_WatchCheckpointsResponseIn, _ckptd_v1_WatchCheckpointsRequest, _ckptd_v1_WatchCheckpointsResponse>
}
