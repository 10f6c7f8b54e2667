// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { LoadResponseIn as _ckptd_v1_LoadResponseIn, LoadResponse as _ckptd_v1_LoadResponse } from '../../ckptd/v1/LoadResponse.js';

/**
 * LoadSharedResponse is one message of a LoadShared response stream.
 */
export interface LoadSharedResponseIn {
  /**
   * The Load stream message it carries (plan, entry or shared_chunk).
   */
  'response'?: (_ckptd_v1_LoadResponseIn | null);
}

/**
 * LoadSharedResponse is one message of a LoadShared response stream.
 */
export interface LoadSharedResponse {
  /**
   * The Load stream message it carries (plan, entry or shared_chunk).
   */
  'response': (_ckptd_v1_LoadResponse | null);
}
