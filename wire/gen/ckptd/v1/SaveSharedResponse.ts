// Original file: proto/ckptd/v1/checkpoint_service.proto

import type { SaveProgressIn as _ckptd_v1_SaveProgressIn, SaveProgress as _ckptd_v1_SaveProgress } from '../../ckptd/v1/SaveProgress.js';
import type { SaveResponseIn as _ckptd_v1_SaveResponseIn, SaveResponse as _ckptd_v1_SaveResponse } from '../../ckptd/v1/SaveResponse.js';

/**
 * SaveSharedResponse is one message of a SaveShared response stream: progress
 * messages, then the result.
 */
export interface SaveSharedResponseIn {
  /**
   * The daemon has copied shared chunks out of the file.
   */
  'progress'?: (_ckptd_v1_SaveProgressIn | null);
  /**
   * Last message: the item is durably staged.
   */
  'result'?: (_ckptd_v1_SaveResponseIn | null);
  /**
   * The message kind.
   */
  'msg'?: "progress"|"result";
}

/**
 * SaveSharedResponse is one message of a SaveShared response stream: progress
 * messages, then the result.
 */
export interface SaveSharedResponse {
  /**
   * The daemon has copied shared chunks out of the file.
   */
  'progress'?: (_ckptd_v1_SaveProgress | null);
  /**
   * Last message: the item is durably staged.
   */
  'result'?: (_ckptd_v1_SaveResponse | null);
  /**
   * The message kind.
   */
  'msg'?: "progress"|"result";
}
