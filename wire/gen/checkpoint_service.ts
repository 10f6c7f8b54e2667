import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { AbortRequestIn as _ckptd_v1_AbortRequestIn, AbortRequest as _ckptd_v1_AbortRequest } from './ckptd/v1/AbortRequest.js';
import type { AbortResponseIn as _ckptd_v1_AbortResponseIn, AbortResponse as _ckptd_v1_AbortResponse } from './ckptd/v1/AbortResponse.js';
import type { CheckpointIn as _ckptd_v1_CheckpointIn, Checkpoint as _ckptd_v1_Checkpoint } from './ckptd/v1/Checkpoint.js';
import type { CheckpointServiceClient as _ckptd_v1_CheckpointServiceClient, CheckpointServiceDefinition as _ckptd_v1_CheckpointServiceDefinition } from './ckptd/v1/CheckpointService.js';
import type { ChunkIn as _ckptd_v1_ChunkIn, Chunk as _ckptd_v1_Chunk } from './ckptd/v1/Chunk.js';
import type { CommitRequestIn as _ckptd_v1_CommitRequestIn, CommitRequest as _ckptd_v1_CommitRequest } from './ckptd/v1/CommitRequest.js';
import type { CommitResponseIn as _ckptd_v1_CommitResponseIn, CommitResponse as _ckptd_v1_CommitResponse } from './ckptd/v1/CommitResponse.js';
import type { DeleteCheckpointRequestIn as _ckptd_v1_DeleteCheckpointRequestIn, DeleteCheckpointRequest as _ckptd_v1_DeleteCheckpointRequest } from './ckptd/v1/DeleteCheckpointRequest.js';
import type { DeleteCheckpointResponseIn as _ckptd_v1_DeleteCheckpointResponseIn, DeleteCheckpointResponse as _ckptd_v1_DeleteCheckpointResponse } from './ckptd/v1/DeleteCheckpointResponse.js';
import type { EntryBatchIn as _ckptd_v1_EntryBatchIn, EntryBatch as _ckptd_v1_EntryBatch } from './ckptd/v1/EntryBatch.js';
import type { EntryHeaderIn as _ckptd_v1_EntryHeaderIn, EntryHeader as _ckptd_v1_EntryHeader } from './ckptd/v1/EntryHeader.js';
import type { EntryManifestIn as _ckptd_v1_EntryManifestIn, EntryManifest as _ckptd_v1_EntryManifest } from './ckptd/v1/EntryManifest.js';
import type { GetCheckpointRequestIn as _ckptd_v1_GetCheckpointRequestIn, GetCheckpointRequest as _ckptd_v1_GetCheckpointRequest } from './ckptd/v1/GetCheckpointRequest.js';
import type { GetCheckpointResponseIn as _ckptd_v1_GetCheckpointResponseIn, GetCheckpointResponse as _ckptd_v1_GetCheckpointResponse } from './ckptd/v1/GetCheckpointResponse.js';
import type { InlineEntryIn as _ckptd_v1_InlineEntryIn, InlineEntry as _ckptd_v1_InlineEntry } from './ckptd/v1/InlineEntry.js';
import type { ItemManifestIn as _ckptd_v1_ItemManifestIn, ItemManifest as _ckptd_v1_ItemManifest } from './ckptd/v1/ItemManifest.js';
import type { ListCheckpointsRequestIn as _ckptd_v1_ListCheckpointsRequestIn, ListCheckpointsRequest as _ckptd_v1_ListCheckpointsRequest } from './ckptd/v1/ListCheckpointsRequest.js';
import type { ListCheckpointsResponseIn as _ckptd_v1_ListCheckpointsResponseIn, ListCheckpointsResponse as _ckptd_v1_ListCheckpointsResponse } from './ckptd/v1/ListCheckpointsResponse.js';
import type { LoadDestinationIn as _ckptd_v1_LoadDestinationIn, LoadDestination as _ckptd_v1_LoadDestination } from './ckptd/v1/LoadDestination.js';
import type { LoadEntryIn as _ckptd_v1_LoadEntryIn, LoadEntry as _ckptd_v1_LoadEntry } from './ckptd/v1/LoadEntry.js';
import type { LoadPlanIn as _ckptd_v1_LoadPlanIn, LoadPlan as _ckptd_v1_LoadPlan } from './ckptd/v1/LoadPlan.js';
import type { LoadProgressIn as _ckptd_v1_LoadProgressIn, LoadProgress as _ckptd_v1_LoadProgress } from './ckptd/v1/LoadProgress.js';
import type { LoadRequestIn as _ckptd_v1_LoadRequestIn, LoadRequest as _ckptd_v1_LoadRequest } from './ckptd/v1/LoadRequest.js';
import type { LoadResponseIn as _ckptd_v1_LoadResponseIn, LoadResponse as _ckptd_v1_LoadResponse } from './ckptd/v1/LoadResponse.js';
import type { LoadSharedRequestIn as _ckptd_v1_LoadSharedRequestIn, LoadSharedRequest as _ckptd_v1_LoadSharedRequest } from './ckptd/v1/LoadSharedRequest.js';
import type { LoadSharedResponseIn as _ckptd_v1_LoadSharedResponseIn, LoadSharedResponse as _ckptd_v1_LoadSharedResponse } from './ckptd/v1/LoadSharedResponse.js';
import type { LoadSharedStartIn as _ckptd_v1_LoadSharedStartIn, LoadSharedStart as _ckptd_v1_LoadSharedStart } from './ckptd/v1/LoadSharedStart.js';
import type { ObjectSpecIn as _ckptd_v1_ObjectSpecIn, ObjectSpec as _ckptd_v1_ObjectSpec } from './ckptd/v1/ObjectSpec.js';
import type { RankManifestIn as _ckptd_v1_RankManifestIn, RankManifest as _ckptd_v1_RankManifest } from './ckptd/v1/RankManifest.js';
import type { SaveHeaderIn as _ckptd_v1_SaveHeaderIn, SaveHeader as _ckptd_v1_SaveHeader } from './ckptd/v1/SaveHeader.js';
import type { SaveProgressIn as _ckptd_v1_SaveProgressIn, SaveProgress as _ckptd_v1_SaveProgress } from './ckptd/v1/SaveProgress.js';
import type { SaveRequestIn as _ckptd_v1_SaveRequestIn, SaveRequest as _ckptd_v1_SaveRequest } from './ckptd/v1/SaveRequest.js';
import type { SaveResponseIn as _ckptd_v1_SaveResponseIn, SaveResponse as _ckptd_v1_SaveResponse } from './ckptd/v1/SaveResponse.js';
import type { SaveSharedRequestIn as _ckptd_v1_SaveSharedRequestIn, SaveSharedRequest as _ckptd_v1_SaveSharedRequest } from './ckptd/v1/SaveSharedRequest.js';
import type { SaveSharedResponseIn as _ckptd_v1_SaveSharedResponseIn, SaveSharedResponse as _ckptd_v1_SaveSharedResponse } from './ckptd/v1/SaveSharedResponse.js';
import type { SaveTrailerIn as _ckptd_v1_SaveTrailerIn, SaveTrailer as _ckptd_v1_SaveTrailer } from './ckptd/v1/SaveTrailer.js';
import type { ShardAsIn as _ckptd_v1_ShardAsIn, ShardAs as _ckptd_v1_ShardAs } from './ckptd/v1/ShardAs.js';
import type { SharedChunkIn as _ckptd_v1_SharedChunkIn, SharedChunk as _ckptd_v1_SharedChunk } from './ckptd/v1/SharedChunk.js';
import type { SharedMemoryHandleIn as _ckptd_v1_SharedMemoryHandleIn, SharedMemoryHandle as _ckptd_v1_SharedMemoryHandle } from './ckptd/v1/SharedMemoryHandle.js';
import type { TensorBoxIn as _ckptd_v1_TensorBoxIn, TensorBox as _ckptd_v1_TensorBox } from './ckptd/v1/TensorBox.js';
import type { TensorPlacementIn as _ckptd_v1_TensorPlacementIn, TensorPlacement as _ckptd_v1_TensorPlacement } from './ckptd/v1/TensorPlacement.js';
import type { TensorSpecIn as _ckptd_v1_TensorSpecIn, TensorSpec as _ckptd_v1_TensorSpec } from './ckptd/v1/TensorSpec.js';
import type { TimestampIn as _google_protobuf_TimestampIn, Timestamp as _google_protobuf_Timestamp } from './google/protobuf/Timestamp.js';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  ckptd: {
    v1: {
      AbortRequest: MessageTypeDefinition<_ckptd_v1_AbortRequestIn, _ckptd_v1_AbortRequest>
      AbortResponse: MessageTypeDefinition<_ckptd_v1_AbortResponseIn, _ckptd_v1_AbortResponse>
      Checkpoint: MessageTypeDefinition<_ckptd_v1_CheckpointIn, _ckptd_v1_Checkpoint>
      /**
       * CheckpointService stages, commits and serves the checkpoints of training jobs.
       * 
       * Call order for one checkpoint, per rank:
       * Save x N (one stream per item) -> Commit (the rank's vote) | Abort
       * The checkpoint becomes visible to GetCheckpoint, ListCheckpoints and Load only
       * once every rank of the job has voted and the COMMIT decision is durable.
       */
      CheckpointService: SubtypeConstructor<typeof grpc.Client, _ckptd_v1_CheckpointServiceClient> & { service: _ckptd_v1_CheckpointServiceDefinition }
      CheckpointView: EnumTypeDefinition
      Chunk: MessageTypeDefinition<_ckptd_v1_ChunkIn, _ckptd_v1_Chunk>
      CommitOutcome: EnumTypeDefinition
      CommitRequest: MessageTypeDefinition<_ckptd_v1_CommitRequestIn, _ckptd_v1_CommitRequest>
      CommitResponse: MessageTypeDefinition<_ckptd_v1_CommitResponseIn, _ckptd_v1_CommitResponse>
      DeleteCheckpointRequest: MessageTypeDefinition<_ckptd_v1_DeleteCheckpointRequestIn, _ckptd_v1_DeleteCheckpointRequest>
      DeleteCheckpointResponse: MessageTypeDefinition<_ckptd_v1_DeleteCheckpointResponseIn, _ckptd_v1_DeleteCheckpointResponse>
      Dtype: EnumTypeDefinition
      EntryBatch: MessageTypeDefinition<_ckptd_v1_EntryBatchIn, _ckptd_v1_EntryBatch>
      EntryHeader: MessageTypeDefinition<_ckptd_v1_EntryHeaderIn, _ckptd_v1_EntryHeader>
      EntryManifest: MessageTypeDefinition<_ckptd_v1_EntryManifestIn, _ckptd_v1_EntryManifest>
      GetCheckpointRequest: MessageTypeDefinition<_ckptd_v1_GetCheckpointRequestIn, _ckptd_v1_GetCheckpointRequest>
      GetCheckpointResponse: MessageTypeDefinition<_ckptd_v1_GetCheckpointResponseIn, _ckptd_v1_GetCheckpointResponse>
      InlineEntry: MessageTypeDefinition<_ckptd_v1_InlineEntryIn, _ckptd_v1_InlineEntry>
      ItemManifest: MessageTypeDefinition<_ckptd_v1_ItemManifestIn, _ckptd_v1_ItemManifest>
      ListCheckpointsRequest: MessageTypeDefinition<_ckptd_v1_ListCheckpointsRequestIn, _ckptd_v1_ListCheckpointsRequest>
      ListCheckpointsResponse: MessageTypeDefinition<_ckptd_v1_ListCheckpointsResponseIn, _ckptd_v1_ListCheckpointsResponse>
      LoadDestination: MessageTypeDefinition<_ckptd_v1_LoadDestinationIn, _ckptd_v1_LoadDestination>
      LoadEntry: MessageTypeDefinition<_ckptd_v1_LoadEntryIn, _ckptd_v1_LoadEntry>
      LoadPlan: MessageTypeDefinition<_ckptd_v1_LoadPlanIn, _ckptd_v1_LoadPlan>
      LoadProgress: MessageTypeDefinition<_ckptd_v1_LoadProgressIn, _ckptd_v1_LoadProgress>
      LoadRequest: MessageTypeDefinition<_ckptd_v1_LoadRequestIn, _ckptd_v1_LoadRequest>
      LoadResponse: MessageTypeDefinition<_ckptd_v1_LoadResponseIn, _ckptd_v1_LoadResponse>
      LoadSharedRequest: MessageTypeDefinition<_ckptd_v1_LoadSharedRequestIn, _ckptd_v1_LoadSharedRequest>
      LoadSharedResponse: MessageTypeDefinition<_ckptd_v1_LoadSharedResponseIn, _ckptd_v1_LoadSharedResponse>
      LoadSharedStart: MessageTypeDefinition<_ckptd_v1_LoadSharedStartIn, _ckptd_v1_LoadSharedStart>
      ObjectSpec: MessageTypeDefinition<_ckptd_v1_ObjectSpecIn, _ckptd_v1_ObjectSpec>
      RankManifest: MessageTypeDefinition<_ckptd_v1_RankManifestIn, _ckptd_v1_RankManifest>
      SaveHeader: MessageTypeDefinition<_ckptd_v1_SaveHeaderIn, _ckptd_v1_SaveHeader>
      SaveProgress: MessageTypeDefinition<_ckptd_v1_SaveProgressIn, _ckptd_v1_SaveProgress>
      SaveRequest: MessageTypeDefinition<_ckptd_v1_SaveRequestIn, _ckptd_v1_SaveRequest>
      SaveResponse: MessageTypeDefinition<_ckptd_v1_SaveResponseIn, _ckptd_v1_SaveResponse>
      SaveSharedRequest: MessageTypeDefinition<_ckptd_v1_SaveSharedRequestIn, _ckptd_v1_SaveSharedRequest>
      SaveSharedResponse: MessageTypeDefinition<_ckptd_v1_SaveSharedResponseIn, _ckptd_v1_SaveSharedResponse>
      SaveTrailer: MessageTypeDefinition<_ckptd_v1_SaveTrailerIn, _ckptd_v1_SaveTrailer>
      ShardAs: MessageTypeDefinition<_ckptd_v1_ShardAsIn, _ckptd_v1_ShardAs>
      SharedChunk: MessageTypeDefinition<_ckptd_v1_SharedChunkIn, _ckptd_v1_SharedChunk>
      SharedMemoryHandle: MessageTypeDefinition<_ckptd_v1_SharedMemoryHandleIn, _ckptd_v1_SharedMemoryHandle>
      TensorBox: MessageTypeDefinition<_ckptd_v1_TensorBoxIn, _ckptd_v1_TensorBox>
      TensorPlacement: MessageTypeDefinition<_ckptd_v1_TensorPlacementIn, _ckptd_v1_TensorPlacement>
      TensorSpec: MessageTypeDefinition<_ckptd_v1_TensorSpecIn, _ckptd_v1_TensorSpec>
    }
  }
  google: {
    protobuf: {
      Timestamp: MessageTypeDefinition<_google_protobuf_TimestampIn, _google_protobuf_Timestamp>
    }
  }
}

