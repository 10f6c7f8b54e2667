// Original file: proto/ckptd/v1/peer_service.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { AbortAttemptRequestIn as _ckptd_v1_AbortAttemptRequestIn, AbortAttemptRequest as _ckptd_v1_AbortAttemptRequest } from '../../ckptd/v1/AbortAttemptRequest.js';
import type { AbortAttemptResponseIn as _ckptd_v1_AbortAttemptResponseIn, AbortAttemptResponse as _ckptd_v1_AbortAttemptResponse } from '../../ckptd/v1/AbortAttemptResponse.js';
import type { GetDecisionRequestIn as _ckptd_v1_GetDecisionRequestIn, GetDecisionRequest as _ckptd_v1_GetDecisionRequest } from '../../ckptd/v1/GetDecisionRequest.js';
import type { GetDecisionResponseIn as _ckptd_v1_GetDecisionResponseIn, GetDecisionResponse as _ckptd_v1_GetDecisionResponse } from '../../ckptd/v1/GetDecisionResponse.js';
import type { HeartbeatRequestIn as _ckptd_v1_HeartbeatRequestIn, HeartbeatRequest as _ckptd_v1_HeartbeatRequest } from '../../ckptd/v1/HeartbeatRequest.js';
import type { HeartbeatResponseIn as _ckptd_v1_HeartbeatResponseIn, HeartbeatResponse as _ckptd_v1_HeartbeatResponse } from '../../ckptd/v1/HeartbeatResponse.js';
import type { OpenAttemptRequestIn as _ckptd_v1_OpenAttemptRequestIn, OpenAttemptRequest as _ckptd_v1_OpenAttemptRequest } from '../../ckptd/v1/OpenAttemptRequest.js';
import type { OpenAttemptResponseIn as _ckptd_v1_OpenAttemptResponseIn, OpenAttemptResponse as _ckptd_v1_OpenAttemptResponse } from '../../ckptd/v1/OpenAttemptResponse.js';
import type { VoteRequestIn as _ckptd_v1_VoteRequestIn, VoteRequest as _ckptd_v1_VoteRequest } from '../../ckptd/v1/VoteRequest.js';
import type { VoteResponseIn as _ckptd_v1_VoteResponseIn, VoteResponse as _ckptd_v1_VoteResponse } from '../../ckptd/v1/VoteResponse.js';

/**
 * PeerService is spoken between the daemons of a multi-node job. The coordinator
 * of every checkpoint (the peer with the lowest node id) serves it; participants
 * call it. Every call is idempotent, so participants retry until they get an answer.
 * 
 * Call order, per checkpoint, from a participant:
 * OpenAttempt (when a local rank begins a save) → Heartbeat* (while local saves
 * stream) → Vote (per local rank, carrying its staged items) → the decision;
 * AbortAttempt for a local no-vote; GetDecision after a participant restart.
 */
export interface PeerServiceClient extends grpc.Client {
  /**
   * AbortAttempt is a no-vote: the attempt is aborted.
   */
  AbortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  AbortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  AbortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  AbortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  /**
   * AbortAttempt is a no-vote: the attempt is aborted.
   */
  abortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  abortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  abortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  abortAttempt(argument: _ckptd_v1_AbortAttemptRequestIn, callback: grpc.requestCallback<_ckptd_v1_AbortAttemptResponse>): grpc.ClientUnaryCall;
  
  /**
   * GetDecision returns the durable decision of an attempt, or UNSPECIFIED while undecided.
   */
  GetDecision(argument: _ckptd_v1_GetDecisionRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  GetDecision(argument: _ckptd_v1_GetDecisionRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  GetDecision(argument: _ckptd_v1_GetDecisionRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  GetDecision(argument: _ckptd_v1_GetDecisionRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  /**
   * GetDecision returns the durable decision of an attempt, or UNSPECIFIED while undecided.
   */
  getDecision(argument: _ckptd_v1_GetDecisionRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  getDecision(argument: _ckptd_v1_GetDecisionRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  getDecision(argument: _ckptd_v1_GetDecisionRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  getDecision(argument: _ckptd_v1_GetDecisionRequestIn, callback: grpc.requestCallback<_ckptd_v1_GetDecisionResponse>): grpc.ClientUnaryCall;
  
  /**
   * Heartbeat reports activity on an attempt (so the prepare timeout does not fire
   * during long saves on a participant) and returns its state.
   */
  Heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  Heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  Heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  Heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  /**
   * Heartbeat reports activity on an attempt (so the prepare timeout does not fire
   * during long saves on a participant) and returns its state.
   */
  heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  heartbeat(argument: _ckptd_v1_HeartbeatRequestIn, callback: grpc.requestCallback<_ckptd_v1_HeartbeatResponse>): grpc.ClientUnaryCall;
  
  /**
   * OpenAttempt returns the checkpoint's open attempt, opening one if needed.
   */
  OpenAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  OpenAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  OpenAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  OpenAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  /**
   * OpenAttempt returns the checkpoint's open attempt, opening one if needed.
   */
  openAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  openAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  openAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  openAttempt(argument: _ckptd_v1_OpenAttemptRequestIn, callback: grpc.requestCallback<_ckptd_v1_OpenAttemptResponse>): grpc.ClientUnaryCall;
  
  /**
   * Vote is one rank's yes-vote relayed by the participant that staged its items;
   * it waits for the decision and returns it.
   */
  Vote(argument: _ckptd_v1_VoteRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  Vote(argument: _ckptd_v1_VoteRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  Vote(argument: _ckptd_v1_VoteRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  Vote(argument: _ckptd_v1_VoteRequestIn, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  /**
   * Vote is one rank's yes-vote relayed by the participant that staged its items;
   * it waits for the decision and returns it.
   */
  vote(argument: _ckptd_v1_VoteRequestIn, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  vote(argument: _ckptd_v1_VoteRequestIn, metadata: grpc.Metadata, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  vote(argument: _ckptd_v1_VoteRequestIn, options: grpc.CallOptions, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  vote(argument: _ckptd_v1_VoteRequestIn, callback: grpc.requestCallback<_ckptd_v1_VoteResponse>): grpc.ClientUnaryCall;
  
}

/**
 * PeerService is spoken between the daemons of a multi-node job. The coordinator
 * of every checkpoint (the peer with the lowest node id) serves it; participants
 * call it. Every call is idempotent, so participants retry until they get an answer.
 * 
 * Call order, per checkpoint, from a participant:
 * OpenAttempt (when a local rank begins a save) → Heartbeat* (while local saves
 * stream) → Vote (per local rank, carrying its staged items) → the decision;
 * AbortAttempt for a local no-vote; GetDecision after a participant restart.
 */
export interface PeerServiceHandlers extends grpc.UntypedServiceImplementation {
  /**
   * AbortAttempt is a no-vote: the attempt is aborted.
   */
  AbortAttempt: grpc.handleUnaryCall<_ckptd_v1_AbortAttemptRequest, _ckptd_v1_AbortAttemptResponseIn>;
  
  /**
   * GetDecision returns the durable decision of an attempt, or UNSPECIFIED while undecided.
   */
  GetDecision: grpc.handleUnaryCall<_ckptd_v1_GetDecisionRequest, _ckptd_v1_GetDecisionResponseIn>;
  
  /**
   * Heartbeat reports activity on an attempt (so the prepare timeout does not fire
   * during long saves on a participant) and returns its state.
   */
  Heartbeat: grpc.handleUnaryCall<_ckptd_v1_HeartbeatRequest, _ckptd_v1_HeartbeatResponseIn>;
  
  /**
   * OpenAttempt returns the checkpoint's open attempt, opening one if needed.
   */
  OpenAttempt: grpc.handleUnaryCall<_ckptd_v1_OpenAttemptRequest, _ckptd_v1_OpenAttemptResponseIn>;
  
  /**
   * Vote is one rank's yes-vote relayed by the participant that staged its items;
   * it waits for the decision and returns it.
   */
  Vote: grpc.handleUnaryCall<_ckptd_v1_VoteRequest, _ckptd_v1_VoteResponseIn>;
  
}

export interface PeerServiceDefinition extends grpc.ServiceDefinition {
  AbortAttempt: MethodDefinition<_ckptd_v1_AbortAttemptRequestIn, _ckptd_v1_AbortAttemptResponseIn, _ckptd_v1_AbortAttemptRequest, _ckptd_v1_AbortAttemptResponse>
  GetDecision: MethodDefinition<_ckptd_v1_GetDecisionRequestIn, _ckptd_v1_GetDecisionResponseIn, _ckptd_v1_GetDecisionRequest, _ckptd_v1_GetDecisionResponse>
  Heartbeat: MethodDefinition<_ckptd_v1_HeartbeatRequestIn, _ckptd_v1_HeartbeatResponseIn, _ckptd_v1_HeartbeatRequest, _ckptd_v1_HeartbeatResponse>
  OpenAttempt: MethodDefinition<_ckptd_v1_OpenAttemptRequestIn, _ckptd_v1_OpenAttemptResponseIn, _ckptd_v1_OpenAttemptRequest, _ckptd_v1_OpenAttemptResponse>
  Vote: MethodDefinition<_ckptd_v1_VoteRequestIn, _ckptd_v1_VoteResponseIn, _ckptd_v1_VoteRequest, _ckptd_v1_VoteResponse>
}
