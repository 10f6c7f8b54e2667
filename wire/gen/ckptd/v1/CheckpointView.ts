// Original file: proto/ckptd/v1/checkpoint_service.proto

/**
 * CheckpointView selects how much of a checkpoint is returned.
 */
export const CheckpointView = {
  /**
   * Same as CHECKPOINT_VIEW_BASIC.
   */
  CHECKPOINT_VIEW_UNSPECIFIED: 'CHECKPOINT_VIEW_UNSPECIFIED',
  /**
   * Summary only: ids, step, sizes, items per rank.
   */
  CHECKPOINT_VIEW_BASIC: 'CHECKPOINT_VIEW_BASIC',
  /**
   * Summary plus every entry of every item.
   */
  CHECKPOINT_VIEW_FULL: 'CHECKPOINT_VIEW_FULL',
} as const;

/**
 * CheckpointView selects how much of a checkpoint is returned.
 */
export type CheckpointViewIn =
  /**
   * Same as CHECKPOINT_VIEW_BASIC.
   */
  | 'CHECKPOINT_VIEW_UNSPECIFIED'
  | 0
  /**
   * Summary only: ids, step, sizes, items per rank.
   */
  | 'CHECKPOINT_VIEW_BASIC'
  | 1
  /**
   * Summary plus every entry of every item.
   */
  | 'CHECKPOINT_VIEW_FULL'
  | 2

/**
 * CheckpointView selects how much of a checkpoint is returned.
 */
export type CheckpointView = typeof CheckpointView[keyof typeof CheckpointView]
