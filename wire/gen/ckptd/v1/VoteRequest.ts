// Original file: proto/ckptd/v1/peer_service.proto

import type { StagedItemIn as _ckptd_v1_StagedItemIn, StagedItem as _ckptd_v1_StagedItem } from '../../ckptd/v1/StagedItem.js';
import type { Long } from '@grpc/proto-loader';

/**
 * VoteRequest relays one rank's vote with the records of the items it staged.
 */
export interface VoteRequestIn {
  /**
   * The job.
   */
  'job'?: (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId'?: (string);
  /**
   * The checkpoint's step.
   */
  'step'?: (number | string | Long);
  /**
   * The voting rank.
   */
  'rank'?: (number);
  /**
   * The checkpoint's world size.
   */
  'worldSize'?: (number);
  /**
   * The attempt the items were staged into.
   */
  'attempt'?: (number);
  /**
   * Deprecated: the item records as JSON, as daemons before `items` sent them. Never read: a vote that
   * carries it is refused with INVALID_ARGUMENT, so a daemon of an older version cannot cast a vote that
   * reads here as a vote for no items.
   * @deprecated
   */
  'itemsJson'?: (Buffer | Uint8Array | string);
  /**
   * The participant's node id.
   */
  'nodeId'?: (string);
  /**
   * The records of the items the rank names, staged and fsynced by the participant. The
   * coordinator validates each one completely (and checks the staged files) before it can
   * enter a manifest.
   */
  'items'?: (_ckptd_v1_StagedItemIn)[];
  /**
   * The rank's trainer incarnation from its CommitRequest (0: not sent); the coordinator fences with it.
   */
  'incarnation'?: (number | string | Long);
}

/**
 * VoteRequest relays one rank's vote with the records of the items it staged.
 */
export interface VoteRequest {
  /**
   * The job.
   */
  'job': (string);
  /**
   * The checkpoint's id.
   */
  'checkpointId': (string);
  /**
   * The checkpoint's step.
   */
  'step': (number);
  /**
   * The voting rank.
   */
  'rank': (number);
  /**
   * The checkpoint's world size.
   */
  'worldSize': (number);
  /**
   * The attempt the items were staged into.
   */
  'attempt': (number);
  /**
   * Deprecated: the item records as JSON, as daemons before `items` sent them. Never read: a vote that
   * carries it is refused with INVALID_ARGUMENT, so a daemon of an older version cannot cast a vote that
   * reads here as a vote for no items.
   * @deprecated
   */
  'itemsJson': (Buffer);
  /**
   * The participant's node id.
   */
  'nodeId': (string);
  /**
   * The records of the items the rank names, staged and fsynced by the participant. The
   * coordinator validates each one completely (and checks the staged files) before it can
   * enter a manifest.
   */
  'items': (_ckptd_v1_StagedItem)[];
  /**
   * The rank's trainer incarnation from its CommitRequest (0: not sent); the coordinator fences with it.
   */
  'incarnation': (number);
}
