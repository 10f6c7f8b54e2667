// Original file: proto/ckptd/v1/admin_service.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { GetStatusRequestIn as _ckptd_v1_GetStatusRequestIn, GetStatusRequest as _ckptd_v1_GetStatusRequest } from '../../ckptd/v1/GetStatusRequest.js';
import type { GetStatusResponseIn as _ckptd_v1_GetStatusResponseIn, GetStatusResponse as _ckptd_v1_GetStatusResponse } from '../../ckptd/v1/GetStatusResponse.js';
import type { ListJobsRequestIn as _ckptd_v1_ListJobsRequestIn, ListJobsRequest as _ckptd_v1_ListJobsRequest } from '../../ckptd/v1/ListJobsRequest.js';
import type { ListJobsResponseIn as _ckptd_v1_ListJobsResponseIn, ListJobsResponse as _ckptd_v1_ListJobsResponse } from '../../ckptd/v1/ListJobsResponse.js';
import type { VerifyCheckpointRequestIn as _ckptd_v1_VerifyCheckpointRequestIn, VerifyCheckpointRequest as _ckptd_v1_VerifyCheckpointRequest } from '../../ckptd/v1/VerifyCheckpointRequest.js';
import type { VerifyCheckpointResponseIn as _ckptd_v1_VerifyCheckpointResponseIn, VerifyCheckpointResponse as _ckptd_v1_VerifyCheckpointResponse } from '../../ckptd/v1/VerifyCheckpointResponse.js';

/**
 * AdminService answers operators' questions about the daemon and its data.
 */
export interface AdminServiceClient extends grpc.Client {
  /**
   * GetStatus describes the daemon: version, lifecycle state, data directory, load.
   */
  GetStatus(argument: _ckptd_v1_GetStatusRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  GetStatus(argument: _ckptd_v1_GetStatusRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  GetStatus(argument: _ckptd_v1_GetStatusRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  GetStatus(argument: _ckptd_v1_GetStatusRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  /**
   * GetStatus describes the daemon: version, lifecycle state, data directory, load.
   */
  getStatus(argument: _ckptd_v1_GetStatusRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  getStatus(argument: _ckptd_v1_GetStatusRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  getStatus(argument: _ckptd_v1_GetStatusRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  getStatus(argument: _ckptd_v1_GetStatusRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetStatusResponse>): grpc.ClientUnaryCall;
  
  /**
   * ListJobs lists the jobs with committed checkpoints.
   */
  ListJobs(argument: _ckptd_v1_ListJobsRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  ListJobs(argument: _ckptd_v1_ListJobsRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  ListJobs(argument: _ckptd_v1_ListJobsRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  ListJobs(argument: _ckptd_v1_ListJobsRequestIn, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  /**
   * ListJobs lists the jobs with committed checkpoints.
   */
  listJobs(argument: _ckptd_v1_ListJobsRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  listJobs(argument: _ckptd_v1_ListJobsRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  listJobs(argument: _ckptd_v1_ListJobsRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  listJobs(argument: _ckptd_v1_ListJobsRequestIn, callback: grpc.requestCallback<_ckptd_v1_ListJobsResponse>): grpc.ClientUnaryCall;
  
  /**
   * VerifyCheckpoint reads every stored chunk of a checkpoint and recomputes its
   * checksum, reporting every damaged chunk (not just the first).
   */
  VerifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  VerifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  VerifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  VerifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  /**
   * VerifyCheckpoint reads every stored chunk of a checkpoint and recomputes its
   * checksum, reporting every damaged chunk (not just the first).
   */
  verifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  verifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  verifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  verifyCheckpoint(argument: _ckptd_v1_VerifyCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_VerifyCheckpointResponse>): grpc.ClientUnaryCall;
  
}

/**
 * AdminService answers operators' questions about the daemon and its data.
 */
export interface AdminServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * GetStatus describes the daemon: version, lifecycle state, data directory, load.
   */
  GetStatus: grpc.handleUnaryCall<_ckptd_v1_GetStatusRequest, _ckptd_v1_GetStatusResponseIn>;
  
  /**
   * ListJobs lists the jobs with committed checkpoints.
   */
  ListJobs: grpc.handleUnaryCall<_ckptd_v1_ListJobsRequest, _ckptd_v1_ListJobsResponseIn>;
  
  /**
   * VerifyCheckpoint reads every stored chunk of a checkpoint and recomputes its
   * checksum, reporting every damaged chunk (not just the first).
   */
  VerifyCheckpoint: grpc.handleUnaryCall<_ckptd_v1_VerifyCheckpointRequest, _ckptd_v1_VerifyCheckpointResponseIn>;
  
}

export interface AdminServiceDefinition extends grpc.ServiceDefinition {
  GetStatus: MethodDefinition<_ckptd_v1_GetStatusRequestIn, _ckptd_v1_GetStatusResponseIn, _ckptd_v1_GetStatusRequest, _ckptd_v1_GetStatusResponse>
  ListJobs: MethodDefinition<_ckptd_v1_ListJobsRequestIn, _ckptd_v1_ListJobsResponseIn, _ckptd_v1_ListJobsRequest, _ckptd_v1_ListJobsResponse>
  VerifyCheckpoint: MethodDefinition<_ckptd_v1_VerifyCheckpointRequestIn, _ckptd_v1_VerifyCheckpointResponseIn, _ckptd_v1_VerifyCheckpointRequest, _ckptd_v1_VerifyCheckpointResponse>
}
