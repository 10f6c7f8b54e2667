// Original file: proto/ckptd/v1/peer_service.proto

import type { StagedEntryIn as _ckptd_v1_StagedEntryIn, StagedEntry as _ckptd_v1_StagedEntry } from '../../ckptd/v1/StagedEntry.js';
import type { Long } from '@grpc/proto-loader';

/**
 * StagedItem is the record of one item a rank staged: what the manifest will say about it.
 */
export interface StagedItemIn {
  /**
   * The item's name (a single path component, e.g. "model").
   */
  'name'?: (string);
  /**
   * Raw bytes of the item: the sum of its entries' raw bytes.
   */
  'rawBytes'?: (number | string | Long);
  /**
   * Stored bytes of the item: the sum of its entries' stored bytes.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * The item's entries, in the order they were saved.
   */
  'entries'?: (_ckptd_v1_StagedEntryIn)[];
}

/**
 * StagedItem is the record of one item a rank staged: what the manifest will say about it.
 */
export interface StagedItem {
  /**
   * The item's name (a single path component, e.g. "model").
   */
  'name': (string);
  /**
   * Raw bytes of the item: the sum of its entries' raw bytes.
   */
  'rawBytes': (number);
  /**
   * Stored bytes of the item: the sum of its entries' stored bytes.
   */
  'storedBytes': (number);
  /**
   * The item's entries, in the order they were saved.
   */
  'entries': (_ckptd_v1_StagedEntry)[];
}
