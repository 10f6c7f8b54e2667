// Original file: proto/ckptd/v1/retention_service.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GetRetentionPolicyRequestIn as _ckptd_v1_GetRetentionPolicyRequestIn, GetRetentionPolicyRequest as _ckptd_v1_GetRetentionPolicyRequest } from '../../ckptd/v1/GetRetentionPolicyRequest.js';
import type { GetRetentionPolicyResponseIn as _ckptd_v1_GetRetentionPolicyResponseIn, GetRetentionPolicyResponse as _ckptd_v1_GetRetentionPolicyResponse } from '../../ckptd/v1/GetRetentionPolicyResponse.js';
import type { PinCheckpointRequestIn as _ckptd_v1_PinCheckpointRequestIn, PinCheckpointRequest as _ckptd_v1_PinCheckpointRequest } from '../../ckptd/v1/PinCheckpointRequest.js';
import type { PinCheckpointResponseIn as _ckptd_v1_PinCheckpointResponseIn, PinCheckpointResponse as _ckptd_v1_PinCheckpointResponse } from '../../ckptd/v1/PinCheckpointResponse.js';
import type { SetRetentionPolicyRequestIn as _ckptd_v1_SetRetentionPolicyRequestIn, SetRetentionPolicyRequest as _ckptd_v1_SetRetentionPolicyRequest } from '../../ckptd/v1/SetRetentionPolicyRequest.js';
import type { SetRetentionPolicyResponseIn as _ckptd_v1_SetRetentionPolicyResponseIn, SetRetentionPolicyResponse as _ckptd_v1_SetRetentionPolicyResponse } from '../../ckptd/v1/SetRetentionPolicyResponse.js';

/**
 * RetentionService sets which committed checkpoints a job keeps.
 * 
 * A checkpoint is kept when any rule keeps it. Whatever the rules, retention never
 * deletes the latest committed checkpoint, a pinned one, or one that an evaluator was
 * sent and has not reported on while its lease lasts. Garbage collection runs after
 * each commit, after each report and on a timer; each deletion is a DELETED event.
 */
export interface RetentionServiceClient extends grpc.Client {
  /**
   * GetRetentionPolicy returns a job's policy (the daemon's defaults when never set).
   */
  GetRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  GetRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  GetRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  GetRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  /**
   * GetRetentionPolicy returns a job's policy (the daemon's defaults when never set).
   */
  getRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  getRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  getRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  getRetentionPolicy(argument: _ckptd_v1_GetRetentionPolicyRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  
  /**
   * PinCheckpoint pins (or unpins) a checkpoint: a pinned checkpoint is never garbage-collected.
   */
  PinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  PinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  PinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  PinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  /**
   * PinCheckpoint pins (or unpins) a checkpoint: a pinned checkpoint is never garbage-collected.
   */
  pinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  pinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  pinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  pinCheckpoint(argument: _ckptd_v1_PinCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_PinCheckpointResponse>): grpc.ClientUnaryCall;
  
  /**
   * SetRetentionPolicy replaces a job's policy (durably) and runs garbage collection.
   */
  SetRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  SetRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  SetRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  SetRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  /**
   * SetRetentionPolicy replaces a job's policy (durably) and runs garbage collection.
   */
  setRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  setRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  setRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  setRetentionPolicy(argument: _ckptd_v1_SetRetentionPolicyRequestIn, callback: grpc.requestCallback<_ckptd_v1_SetRetentionPolicyResponse>): grpc.ClientUnaryCall;
  
}

/**
 * RetentionService sets which committed checkpoints a job keeps.
 * 
 * A checkpoint is kept when any rule keeps it. Whatever the rules, retention never
 * deletes the latest committed checkpoint, a pinned one, or one that an evaluator was
 * sent and has not reported on while its lease lasts. Garbage collection runs after
 * each commit, after each report and on a timer; each deletion is a DELETED event.
 */
export interface RetentionServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * GetRetentionPolicy returns a job's policy (the daemon's defaults when never set).
   */
  GetRetentionPolicy: grpc.handleUnaryCall<_ckptd_v1_GetRetentionPolicyRequest, _ckptd_v1_GetRetentionPolicyResponseIn>;
  
  /**
   * PinCheckpoint pins (or unpins) a checkpoint: a pinned checkpoint is never garbage-collected.
   */
  PinCheckpoint: grpc.handleUnaryCall<_ckptd_v1_PinCheckpointRequest, _ckptd_v1_PinCheckpointResponseIn>;
  
  /**
   * SetRetentionPolicy replaces a job's policy (durably) and runs garbage collection.
   */
  SetRetentionPolicy: grpc.handleUnaryCall<_ckptd_v1_SetRetentionPolicyRequest, _ckptd_v1_SetRetentionPolicyResponseIn>;
  
}

export interface RetentionServiceDefinition extends grpc.ServiceDefinition {
  GetRetentionPolicy: MethodDefinition<_ckptd_v1_GetRetentionPolicyRequestIn, _ckptd_v1_GetRetentionPolicyResponseIn, _ckptd_v1_GetRetentionPolicyRequest, _ckptd_v1_GetRetentionPolicyResponse>
  PinCheckpoint: MethodDefinition<_ckptd_v1_PinCheckpointRequestIn, _ckptd_v1_PinCheckpointResponseIn, _ckptd_v1_PinCheckpointRequest, _ckptd_v1_PinCheckpointResponse>
  SetRetentionPolicy: MethodDefinition<_ckptd_v1_SetRetentionPolicyRequestIn, _ckptd_v1_SetRetentionPolicyResponseIn, _ckptd_v1_SetRetentionPolicyRequest, _ckptd_v1_SetRetentionPolicyResponse>
}
