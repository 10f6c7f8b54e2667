// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { SaveRequestIn as _ckptd_v1_SaveRequestIn, SaveRequest as _ckptd_v1_SaveRequest } from '../../ckptd/v1/SaveRequest.js';

/**
 * SaveSharedRequest is one message of a SaveShared stream.
 */
export interface SaveSharedRequestIn {
  /**
   * The Save stream message it carries.
   */
  'request'?: (_ckptd_v1_SaveRequestIn | null);
}

/**
 * SaveSharedRequest is one message of a SaveShared stream.
 */
export interface SaveSharedRequest {
  /**
   * The Save stream message it carries.
   */
  'request': (_ckptd_v1_SaveRequest | null);
}
