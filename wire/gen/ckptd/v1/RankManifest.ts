// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { ItemManifestIn as _ckptd_v1_ItemManifestIn, ItemManifest as _ckptd_v1_ItemManifest } from '../../ckptd/v1/ItemManifest.js';

/**
 * RankManifest lists what one rank saved.
 */
export interface RankManifestIn {
  /**
   * The rank.
   */
  'rank'?: (number);
  /**
   * Its items.
   */
  'items'?: (_ckptd_v1_ItemManifestIn)[];
}

/**
 * RankManifest lists what one rank saved.
 */
export interface RankManifest {
  /**
   * The rank.
   */
  'rank': (number);
  /**
   * Its items.
   */
  'items': (_ckptd_v1_ItemManifest)[];
}
