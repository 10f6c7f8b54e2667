// Original file: proto/ckptd/v1/evaluation_service.proto

/**
 * CheckpointEventType says what happened to a checkpoint.
 */
export const CheckpointEventType = {
  /**
   * Not set.
   */
  CHECKPOINT_EVENT_TYPE_UNSPECIFIED: 'CHECKPOINT_EVENT_TYPE_UNSPECIFIED',
  /**
   * The checkpoint was committed and is loadable.
   */
  CHECKPOINT_EVENT_TYPE_COMMITTED: 'CHECKPOINT_EVENT_TYPE_COMMITTED',
  /**
   * The checkpoint was deleted (by DeleteCheckpoint or by retention).
   */
  CHECKPOINT_EVENT_TYPE_DELETED: 'CHECKPOINT_EVENT_TYPE_DELETED',
} as const;

/**
 * CheckpointEventType says what happened to a checkpoint.
 */
export type CheckpointEventTypeIn =
  /**
   * Not set.
   */
  | 'CHECKPOINT_EVENT_TYPE_UNSPECIFIED'
  | 0
  /**
   * The checkpoint was committed and is loadable.
   */
  | 'CHECKPOINT_EVENT_TYPE_COMMITTED'
  | 1
  /**
   * The checkpoint was deleted (by DeleteCheckpoint or by retention).
   */
  | 'CHECKPOINT_EVENT_TYPE_DELETED'
  | 2

/**
 * CheckpointEventType says what happened to a checkpoint.
 */
export type CheckpointEventType = typeof CheckpointEventType[keyof typeof CheckpointEventType]
