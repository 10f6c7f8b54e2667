// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { EntryManifestIn as _ckptd_v1_EntryManifestIn, EntryManifest as _ckptd_v1_EntryManifest } from '../../ckptd/v1/EntryManifest.js';
import type { Long } from '@grpc/proto-loader';

/**
 * ItemManifest describes one item of one rank.
 */
export interface ItemManifestIn {
  /**
   * The item's name.
   */
  'name'?: (string);
  /**
   * Raw bytes of all its entries.
   */
  'rawBytes'?: (number | string | Long);
  /**
   * Stored bytes of all its entries.
   */
  'storedBytes'?: (number | string | Long);
  /**
   * Number of entries.
   */
  'entryCount'?: (number);
  /**
   * The entries (CHECKPOINT_VIEW_FULL only).
   */
  'entries'?: (_ckptd_v1_EntryManifestIn)[];
}

/**
 * ItemManifest describes one item of one rank.
 */
export interface ItemManifest {
  /**
   * The item's name.
   */
  'name': (string);
  /**
   * Raw bytes of all its entries.
   */
  'rawBytes': (number);
  /**
   * Stored bytes of all its entries.
   */
  'storedBytes': (number);
  /**
   * Number of entries.
   */
  'entryCount': (number);
  /**
   * The entries (CHECKPOINT_VIEW_FULL only).
   */
  'entries': (_ckptd_v1_EntryManifest)[];
}
