// Original file: proto/ckptd/v1/checkpoint_service.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AbortRequestIn as _ckptd_v1_AbortRequestIn, AbortRequest as _ckptd_v1_AbortRequest } from '../../ckptd/v1/AbortRequest.js';
import type { AbortResponseIn as _ckptd_v1_AbortResponseIn, AbortResponse as _ckptd_v1_AbortResponse } from '../../ckptd/v1/AbortResponse.js';
import type { CommitRequestIn as _ckptd_v1_CommitRequestIn, CommitRequest as _ckptd_v1_CommitRequest } from '../../ckptd/v1/CommitRequest.js';
import type { CommitResponseIn as _ckptd_v1_CommitResponseIn, CommitResponse as _ckptd_v1_CommitResponse } from '../../ckptd/v1/CommitResponse.js';
import type { DeleteCheckpointRequestIn as _ckptd_v1_DeleteCheckpointRequestIn, DeleteCheckpointRequest as _ckptd_v1_DeleteCheckpointRequest } from '../../ckptd/v1/DeleteCheckpointRequest.js';
import type { DeleteCheckpointResponseIn as _ckptd_v1_DeleteCheckpointResponseIn, DeleteCheckpointResponse as _ckptd_v1_DeleteCheckpointResponse } from '../../ckptd/v1/DeleteCheckpointResponse.js';
import type { GetCheckpointRequestIn as _ckptd_v1_GetCheckpointRequestIn, GetCheckpointRequest as _ckptd_v1_GetCheckpointRequest } from '../../ckptd/v1/GetCheckpointRequest.js';
import type { GetCheckpointResponseIn as _ckptd_v1_GetCheckpointResponseIn, GetCheckpointResponse as _ckptd_v1_GetCheckpointResponse } from '../../ckptd/v1/GetCheckpointResponse.js';
import type { ListCheckpointsRequestIn as _ckptd_v1_ListCheckpointsRequestIn, ListCheckpointsRequest as _ckptd_v1_ListCheckpointsRequest } from '../../ckptd/v1/ListCheckpointsRequest.js';
import type { ListCheckpointsResponseIn as _ckptd_v1_ListCheckpointsResponseIn, ListCheckpointsResponse as _ckptd_v1_ListCheckpointsResponse } from '../../ckptd/v1/ListCheckpointsResponse.js';
import type { LoadRequestIn as _ckptd_v1_LoadRequestIn, LoadRequest as _ckptd_v1_LoadRequest } from '../../ckptd/v1/LoadRequest.js';
import type { LoadResponseIn as _ckptd_v1_LoadResponseIn, LoadResponse as _ckptd_v1_LoadResponse } from '../../ckptd/v1/LoadResponse.js';
import type { LoadSharedRequestIn as _ckptd_v1_LoadSharedRequestIn, LoadSharedRequest as _ckptd_v1_LoadSharedRequest } from '../../ckptd/v1/LoadSharedRequest.js';
import type { LoadSharedResponseIn as _ckptd_v1_LoadSharedResponseIn, LoadSharedResponse as _ckptd_v1_LoadSharedResponse } from '../../ckptd/v1/LoadSharedResponse.js';
import type { SaveRequestIn as _ckptd_v1_SaveRequestIn, SaveRequest as _ckptd_v1_SaveRequest } from '../../ckptd/v1/SaveRequest.js';
import type { SaveResponseIn as _ckptd_v1_SaveResponseIn, SaveResponse as _ckptd_v1_SaveResponse } from '../../ckptd/v1/SaveResponse.js';
import type { SaveSharedRequestIn as _ckptd_v1_SaveSharedRequestIn, SaveSharedRequest as _ckptd_v1_SaveSharedRequest } from '../../ckptd/v1/SaveSharedRequest.js';
import type { SaveSharedResponseIn as _ckptd_v1_SaveSharedResponseIn, SaveSharedResponse as _ckptd_v1_SaveSharedResponse } from '../../ckptd/v1/SaveSharedResponse.js';

/**
 * CheckpointService stages, commits and serves the checkpoints of training jobs.
 * 
 * Call order for one checkpoint, per rank:
 * Save x N (one stream per item) -> Commit (the rank's vote) | Abort
 * The checkpoint becomes visible to GetCheckpoint, ListCheckpoints and Load only
 * once every rank of the job has voted and the COMMIT decision is durable.
 */
export interface CheckpointServiceClient extends grpc.Client {
  /**
   * Abort votes no: the current attempt of the checkpoint is aborted for every rank.
   */
  Abort(argument: _ckptd_v1_AbortRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  Abort(argument: _ckptd_v1_AbortRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  Abort(argument: _ckptd_v1_AbortRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  Abort(argument: _ckptd_v1_AbortRequestIn, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  /**
   * Abort votes no: the current attempt of the checkpoint is aborted for every rank.
   */
  abort(argument: _ckptd_v1_AbortRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  abort(argument: _ckptd_v1_AbortRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  abort(argument: _ckptd_v1_AbortRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  abort(argument: _ckptd_v1_AbortRequestIn, callback: grpc.requestCallback<_ckptd_v1_AbortResponse>): grpc.ClientUnaryCall;
  
  /**
   * Commit is a rank's vote in the two-phase commit of a checkpoint. It waits for
   * the decision (bounded by the call's deadline) and returns it. Idempotent: a
   * retry gets the same decision.
   */
  Commit(argument: _ckptd_v1_CommitRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  Commit(argument: _ckptd_v1_CommitRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  Commit(argument: _ckptd_v1_CommitRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  Commit(argument: _ckptd_v1_CommitRequestIn, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  /**
   * Commit is a rank's vote in the two-phase commit of a checkpoint. It waits for
   * the decision (bounded by the call's deadline) and returns it. Idempotent: a
   * retry gets the same decision.
   */
  commit(argument: _ckptd_v1_CommitRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  commit(argument: _ckptd_v1_CommitRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  commit(argument: _ckptd_v1_CommitRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  commit(argument: _ckptd_v1_CommitRequestIn, callback: grpc.requestCallback<_ckptd_v1_CommitResponse>): grpc.ClientUnaryCall;
  
  /**
   * DeleteCheckpoint removes a committed checkpoint atomically: it is either fully
   * listed or not at all.
   */
  DeleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  DeleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  DeleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  DeleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  /**
   * DeleteCheckpoint removes a committed checkpoint atomically: it is either fully
   * listed or not at all.
   */
  deleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  deleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  deleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  deleteCheckpoint(argument: _ckptd_v1_DeleteCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_DeleteCheckpointResponse>): grpc.ClientUnaryCall;
  
  /**
   * GetCheckpoint describes one committed checkpoint, by id or "latest".
   */
  GetCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  GetCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  GetCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  GetCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  /**
   * GetCheckpoint describes one committed checkpoint, by id or "latest".
   */
  getCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _ckptd_v1_GetCheckpointRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetCheckpointResponse>): grpc.ClientUnaryCall;
  
  /**
   * ListCheckpoints lists the committed checkpoints of a job, newest step first.
   */
  ListCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  ListCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  ListCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  ListCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  /**
   * ListCheckpoints lists the committed checkpoints of a job, newest step first.
   */
  listCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  listCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  listCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  listCheckpoints(argument: _ckptd_v1_ListCheckpointsRequestIn, callback: grpc.requestCallback<_ckptd_v1_ListCheckpointsResponse>): grpc.ClientUnaryCall;
  
  /**
   * Load streams one rank's items of a committed checkpoint: first a plan with the
   * device-mapping hints, then each entry's header followed by its raw bytes in
   * chunks, decompressed and checksum-verified.
   */
  Load(argument: _ckptd_v1_LoadRequestIn, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_LoadResponse>;
  Load(argument: _ckptd_v1_LoadRequestIn, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_LoadResponse>;
  /**
   * Load streams one rank's items of a committed checkpoint: first a plan with the
   * device-mapping hints, then each entry's header followed by its raw bytes in
   * chunks, decompressed and checksum-verified.
   */
  load(argument: _ckptd_v1_LoadRequestIn, metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_LoadResponse>;
  load(argument: _ckptd_v1_LoadRequestIn, options?: grpc.CallOptions): grpc.ClientReadableStream<_ckptd_v1_LoadResponse>;
  
  /**
   * LoadShared is Load for a client on the daemon's node: the daemon writes each
   * chunk's raw bytes into a slot of the client's shared-memory file and sends a
   * SharedChunk naming it instead of the bytes. The client's first message names the
   * load and the ring (by handle or path; a whole number of 4 MiB slots); it then reports the bytes it
   * has copied out, and the daemon reuses a slot only once the client released it.
   * In destination mode (LoadSharedStart.destination) the client answers the plan with
   * a LoadDestination instead, and the daemon writes every entry at its place in that
   * file: no slots, no copies out, no progress.
   */
  LoadShared(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_LoadSharedRequestIn, _ckptd_v1_LoadSharedResponse>;
  LoadShared(options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_LoadSharedRequestIn, _ckptd_v1_LoadSharedResponse>;
  /**
   * LoadShared is Load for a client on the daemon's node: the daemon writes each
   * chunk's raw bytes into a slot of the client's shared-memory file and sends a
   * SharedChunk naming it instead of the bytes. The client's first message names the
   * load and the ring (by handle or path; a whole number of 4 MiB slots); it then reports the bytes it
   * has copied out, and the daemon reuses a slot only once the client released it.
   * In destination mode (LoadSharedStart.destination) the client answers the plan with
   * a LoadDestination instead, and the daemon writes every entry at its place in that
   * file: no slots, no copies out, no progress.
   */
  loadShared(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_LoadSharedRequestIn, _ckptd_v1_LoadSharedResponse>;
  loadShared(options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_LoadSharedRequestIn, _ckptd_v1_LoadSharedResponse>;
  
  /**
   * Save streams one item (a named state dict) of one rank into the staging area
   * of a checkpoint. The first message is a header, then for each entry an entry
   * header followed by its data chunks, and last a trailer. The response is sent
   * once the item is durably staged (fsynced).
   */
  Save(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  Save(metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  Save(options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  Save(callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  /**
   * Save streams one item (a named state dict) of one rank into the staging area
   * of a checkpoint. The first message is a header, then for each entry an entry
   * header followed by its data chunks, and last a trailer. The response is sent
   * once the item is durably staged (fsynced).
   */
  save(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  save(metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  save(options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  save(callback: grpc.requestCallback<_ckptd_v1_SaveResponse>): grpc.ClientWritableStream<_ckptd_v1_SaveRequestIn>;
  
  /**
   * SaveShared is Save for a client on the daemon's node: data chunks may travel
   * through a shared-memory ring (SaveHeader.shared_memory_handle or shared_memory_path) as SharedChunk
   * messages that only name where their bytes are, so the bytes skip gRPC. Each
   * request wraps one message of a Save stream, in Save's order. The daemon answers with a SaveProgress once the file
   * is open (shared_bytes_released 0), another each time it has copied shared
   * chunks out of the file (the client may reuse that space), and last the result.
   */
  SaveShared(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_SaveSharedRequestIn, _ckptd_v1_SaveSharedResponse>;
  SaveShared(options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_SaveSharedRequestIn, _ckptd_v1_SaveSharedResponse>;
  /**
   * SaveShared is Save for a client on the daemon's node: data chunks may travel
   * through a shared-memory ring (SaveHeader.shared_memory_handle or shared_memory_path) as SharedChunk
   * messages that only name where their bytes are, so the bytes skip gRPC. Each
   * request wraps one message of a Save stream, in Save's order. The daemon answers with a SaveProgress once the file
   * is open (shared_bytes_released 0), another each time it has copied shared
   * chunks out of the file (the client may reuse that space), and last the result.
   */
  saveShared(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_SaveSharedRequestIn, _ckptd_v1_SaveSharedResponse>;
  saveShared(options?: grpc.CallOptions): grpc.ClientDuplexStream<_ckptd_v1_SaveSharedRequestIn, _ckptd_v1_SaveSharedResponse>;
  
}

/**
 * CheckpointService stages, commits and serves the checkpoints of training jobs.
 * 
 * Call order for one checkpoint, per rank:
 * Save x N (one stream per item) -> Commit (the rank's vote) | Abort
 * The checkpoint becomes visible to GetCheckpoint, ListCheckpoints and Load only
 * once every rank of the job has voted and the COMMIT decision is durable.
 */
export interface CheckpointServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * Abort votes no: the current attempt of the checkpoint is aborted for every rank.
   */
  Abort: grpc.handleUnaryCall<_ckptd_v1_AbortRequest, _ckptd_v1_AbortResponseIn>;
  
  /**
   * Commit is a rank's vote in the two-phase commit of a checkpoint. It waits for
   * the decision (bounded by the call's deadline) and returns it. Idempotent: a
   * retry gets the same decision.
   */
  Commit: grpc.handleUnaryCall<_ckptd_v1_CommitRequest, _ckptd_v1_CommitResponseIn>;
  
  /**
   * DeleteCheckpoint removes a committed checkpoint atomically: it is either fully
   * listed or not at all.
   */
  DeleteCheckpoint: grpc.handleUnaryCall<_ckptd_v1_DeleteCheckpointRequest, _ckptd_v1_DeleteCheckpointResponseIn>;
  
  /**
   * GetCheckpoint describes one committed checkpoint, by id or "latest".
   */
  GetCheckpoint: grpc.handleUnaryCall<_ckptd_v1_GetCheckpointRequest, _ckptd_v1_GetCheckpointResponseIn>;
  
  /**
   * ListCheckpoints lists the committed checkpoints of a job, newest step first.
   */
  ListCheckpoints: grpc.handleUnaryCall<_ckptd_v1_ListCheckpointsRequest, _ckptd_v1_ListCheckpointsResponseIn>;
  
  /**
   * Load streams one rank's items of a committed checkpoint: first a plan with the
   * device-mapping hints, then each entry's header followed by its raw bytes in
   * chunks, decompressed and checksum-verified.
   */
  Load: grpc.handleServerStreamingCall<_ckptd_v1_LoadRequest, _ckptd_v1_LoadResponseIn>;
  
  /**
   * LoadShared is Load for a client on the daemon's node: the daemon writes each
   * chunk's raw bytes into a slot of the client's shared-memory file and sends a
   * SharedChunk naming it instead of the bytes. The client's first message names the
   * load and the ring (by handle or path; a whole number of 4 MiB slots); it then reports the bytes it
   * has copied out, and the daemon reuses a slot only once the client released it.
   * In destination mode (LoadSharedStart.destination) the client answers the plan with
   * a LoadDestination instead, and the daemon writes every entry at its place in that
   * file: no slots, no copies out, no progress.
   */
  LoadShared: grpc.handleBidiStreamingCall<_ckptd_v1_LoadSharedRequest, _ckptd_v1_LoadSharedResponseIn>;
  
  /**
   * Save streams one item (a named state dict) of one rank into the staging area
   * of a checkpoint. The first message is a header, then for each entry an entry
   * header followed by its data chunks, and last a trailer. The response is sent
   * once the item is durably staged (fsynced).
   */
  Save: grpc.handleClientStreamingCall<_ckptd_v1_SaveRequest, _ckptd_v1_SaveResponseIn>;
  
  /**
   * SaveShared is Save for a client on the daemon's node: data chunks may travel
   * through a shared-memory ring (SaveHeader.shared_memory_handle or shared_memory_path) as SharedChunk
   * messages that only name where their bytes are, so the bytes skip gRPC. Each
   * request wraps one message of a Save stream, in Save's order. The daemon answers with a SaveProgress once the file
   * is open (shared_bytes_released 0), another each time it has copied shared
   * chunks out of the file (the client may reuse that space), and last the result.
   */
  SaveShared: grpc.handleBidiStreamingCall<_ckptd_v1_SaveSharedRequest, _ckptd_v1_SaveSharedResponseIn>;
  
}

export interface CheckpointServiceDefinition extends grpc.ServiceDefinition {
  Abort: MethodDefinition<_ckptd_v1_AbortRequestIn, _ckptd_v1_AbortResponseIn, _ckptd_v1_AbortRequest, _ckptd_v1_AbortResponse>
  Commit: MethodDefinition<_ckptd_v1_CommitRequestIn, _ckptd_v1_CommitResponseIn, _ckptd_v1_CommitRequest, _ckptd_v1_CommitResponse>
  DeleteCheckpoint: MethodDefinition<_ckptd_v1_DeleteCheckpointRequestIn, _ckptd_v1_DeleteCheckpointResponseIn, _ckptd_v1_DeleteCheckpointRequest, _ckptd_v1_DeleteCheckpointResponse>
  GetCheckpoint: MethodDefinition<_ckptd_v1_GetCheckpointRequestIn, _ckptd_v1_GetCheckpointResponseIn, _ckptd_v1_GetCheckpointRequest, _ckptd_v1_GetCheckpointResponse>
  ListCheckpoints: MethodDefinition<_ckptd_v1_ListCheckpointsRequestIn, _ckptd_v1_ListCheckpointsResponseIn, _ckptd_v1_ListCheckpointsRequest, _ckptd_v1_ListCheckpointsResponse>
  Load: MethodDefinition<_ckptd_v1_LoadRequestIn, _ckptd_v1_LoadResponseIn, _ckptd_v1_LoadRequest, _ckptd_v1_LoadResponse>
  LoadShared: MethodDefinition<_ckptd_v1_LoadSharedRequestIn, _ckptd_v1_LoadSharedResponseIn, _ckptd_v1_LoadSharedRequest, _ckptd_v1_LoadSharedResponse>
  Save: MethodDefinition<_ckptd_v1_SaveRequestIn, _ckptd_v1_SaveResponseIn, _ckptd_v1_SaveRequest, _ckptd_v1_SaveResponse>
  SaveShared: MethodDefinition<_ckptd_v1_SaveSharedRequestIn, _ckptd_v1_SaveSharedResponseIn, _ckptd_v1_SaveSharedRequest, _ckptd_v1_SaveSharedResponse>
}
