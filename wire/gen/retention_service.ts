import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { GetRetentionPolicyRequestIn as _ckptd_v1_GetRetentionPolicyRequestIn, GetRetentionPolicyRequest as _ckptd_v1_GetRetentionPolicyRequest } from './ckptd/v1/GetRetentionPolicyRequest.js';
import type { GetRetentionPolicyResponseIn as _ckptd_v1_GetRetentionPolicyResponseIn, GetRetentionPolicyResponse as _ckptd_v1_GetRetentionPolicyResponse } from './ckptd/v1/GetRetentionPolicyResponse.js';
import type { PinCheckpointRequestIn as _ckptd_v1_PinCheckpointRequestIn, PinCheckpointRequest as _ckptd_v1_PinCheckpointRequest } from './ckptd/v1/PinCheckpointRequest.js';
import type { PinCheckpointResponseIn as _ckptd_v1_PinCheckpointResponseIn, PinCheckpointResponse as _ckptd_v1_PinCheckpointResponse } from './ckptd/v1/PinCheckpointResponse.js';
import type { RetentionPolicyIn as _ckptd_v1_RetentionPolicyIn, RetentionPolicy as _ckptd_v1_RetentionPolicy } from './ckptd/v1/RetentionPolicy.js';
import type { RetentionServiceClient as _ckptd_v1_RetentionServiceClient, RetentionServiceDefinition as _ckptd_v1_RetentionServiceDefinition } from './ckptd/v1/RetentionService.js';
import type { SetRetentionPolicyRequestIn as _ckptd_v1_SetRetentionPolicyRequestIn, SetRetentionPolicyRequest as _ckptd_v1_SetRetentionPolicyRequest } from './ckptd/v1/SetRetentionPolicyRequest.js';
import type { SetRetentionPolicyResponseIn as _ckptd_v1_SetRetentionPolicyResponseIn, SetRetentionPolicyResponse as _ckptd_v1_SetRetentionPolicyResponse } from './ckptd/v1/SetRetentionPolicyResponse.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  ckptd: {
    v1: {
      GetRetentionPolicyRequest: MessageTypeDefinition<_ckptd_v1_GetRetentionPolicyRequestIn, _ckptd_v1_GetRetentionPolicyRequest>
      GetRetentionPolicyResponse: MessageTypeDefinition<_ckptd_v1_GetRetentionPolicyResponseIn, _ckptd_v1_GetRetentionPolicyResponse>
      MetricMode: EnumTypeDefinition
      PinCheckpointRequest: MessageTypeDefinition<_ckptd_v1_PinCheckpointRequestIn, _ckptd_v1_PinCheckpointRequest>
      PinCheckpointResponse: MessageTypeDefinition<_ckptd_v1_PinCheckpointResponseIn, _ckptd_v1_PinCheckpointResponse>
      RetentionPolicy: MessageTypeDefinition<_ckptd_v1_RetentionPolicyIn, _ckptd_v1_RetentionPolicy>
      /**
       * RetentionService sets which committed checkpoints a job keeps.
       * 
       * A checkpoint is kept when any rule keeps it. Whatever the rules, retention never
       * deletes the latest committed checkpoint, a pinned one, or one that an evaluator was
       * sent and has not reported on while its lease lasts. Garbage collection runs after
       * each commit, after each report and on a timer; each deletion is a DELETED event.
       */
      RetentionService: SubtypeConstructor<typeof grpc.Client, _ckptd_v1_RetentionServiceClient> & { service: _ckptd_v1_RetentionServiceDefinition }
      SetRetentionPolicyRequest: MessageTypeDefinition<_ckptd_v1_SetRetentionPolicyRequestIn, _ckptd_v1_SetRetentionPolicyRequest>
      SetRetentionPolicyResponse: MessageTypeDefinition<_ckptd_v1_SetRetentionPolicyResponseIn, _ckptd_v1_SetRetentionPolicyResponse>
    }
  }
}

