import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { AdminServiceClient as _ckptd_v1_AdminServiceClient, AdminServiceDefinition as _ckptd_v1_AdminServiceDefinition } from './ckptd/v1/AdminService.js';
import type { ChunkDamageIn as _ckptd_v1_ChunkDamageIn, ChunkDamage as _ckptd_v1_ChunkDamage } from './ckptd/v1/ChunkDamage.js';
import type { GetStatusRequestIn as _ckptd_v1_GetStatusRequestIn, GetStatusRequest as _ckptd_v1_GetStatusRequest } from './ckptd/v1/GetStatusRequest.js';
import type { GetStatusResponseIn as _ckptd_v1_GetStatusResponseIn, GetStatusResponse as _ckptd_v1_GetStatusResponse } from './ckptd/v1/GetStatusResponse.js';
import type { JobSummaryIn as _ckptd_v1_JobSummaryIn, JobSummary as _ckptd_v1_JobSummary } from './ckptd/v1/JobSummary.js';
import type { ListJobsRequestIn as _ckptd_v1_ListJobsRequestIn, ListJobsRequest as _ckptd_v1_ListJobsRequest } from './ckptd/v1/ListJobsRequest.js';
import type { ListJobsResponseIn as _ckptd_v1_ListJobsResponseIn, ListJobsResponse as _ckptd_v1_ListJobsResponse } from './ckptd/v1/ListJobsResponse.js';
import type { QuarantinedCheckpointIn as _ckptd_v1_QuarantinedCheckpointIn, QuarantinedCheckpoint as _ckptd_v1_QuarantinedCheckpoint } from './ckptd/v1/QuarantinedCheckpoint.js';
import type { VerifyCheckpointRequestIn as _ckptd_v1_VerifyCheckpointRequestIn, VerifyCheckpointRequest as _ckptd_v1_VerifyCheckpointRequest } from './ckptd/v1/VerifyCheckpointRequest.js';
import type { VerifyCheckpointResponseIn as _ckptd_v1_VerifyCheckpointResponseIn, VerifyCheckpointResponse as _ckptd_v1_VerifyCheckpointResponse } from './ckptd/v1/VerifyCheckpointResponse.js';
import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from './google/protobuf/Timestamp.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  ckptd: {
    v1: {
      /**
       * AdminService answers operators' questions about the daemon and its data.
       */
      AdminService: SubtypeConstructor<typeof grpc.Client, _ckptd_v1_AdminServiceClient> & { service: _ckptd_v1_AdminServiceDefinition }
      ChunkDamage: MessageTypeDefinition<_ckptd_v1_ChunkDamageIn, _ckptd_v1_ChunkDamage>
      GetStatusRequest: MessageTypeDefinition<_ckptd_v1_GetStatusRequestIn, _ckptd_v1_GetStatusRequest>
      GetStatusResponse: MessageTypeDefinition<_ckptd_v1_GetStatusResponseIn, _ckptd_v1_GetStatusResponse>
      JobSummary: MessageTypeDefinition<_ckptd_v1_JobSummaryIn, _ckptd_v1_JobSummary>
      ListJobsRequest: MessageTypeDefinition<_ckptd_v1_ListJobsRequestIn, _ckptd_v1_ListJobsRequest>
      ListJobsResponse: MessageTypeDefinition<_ckptd_v1_ListJobsResponseIn, _ckptd_v1_ListJobsResponse>
      QuarantinedCheckpoint: MessageTypeDefinition<_ckptd_v1_QuarantinedCheckpointIn, _ckptd_v1_QuarantinedCheckpoint>
      VerifyCheckpointRequest: MessageTypeDefinition<_ckptd_v1_VerifyCheckpointRequestIn, _ckptd_v1_VerifyCheckpointRequest>
      VerifyCheckpointResponse: MessageTypeDefinition<_ckptd_v1_VerifyCheckpointResponseIn, _ckptd_v1_VerifyCheckpointResponse>
    }
  }
  google: {
    protobuf: {
      Timestamp: MessageTypeDefinition<_google_protobuf_TimestampIn, _google_protobuf_Timestamp>
    }
  }
}

