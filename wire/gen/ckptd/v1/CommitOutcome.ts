// Original file: proto/ckptd/v1/checkpoint_service.proto

/**
 * CommitOutcome is the decision of a checkpoint's two-phase commit.
 */
export const CommitOutcome = {
  /**
   * Not decided.
   */
  COMMIT_OUTCOME_UNSPECIFIED: 'COMMIT_OUTCOME_UNSPECIFIED',
  /**
   * Every rank voted and every item is durable: the checkpoint is visible.
   */
  COMMIT_OUTCOME_COMMITTED: 'COMMIT_OUTCOME_COMMITTED',
  /**
   * The attempt was aborted; nothing of it is visible and its staging is freed.
   */
  COMMIT_OUTCOME_ABORTED: 'COMMIT_OUTCOME_ABORTED',
} as const;

/**
 * CommitOutcome is the decision of a checkpoint's two-phase commit.
 */
export type CommitOutcomeIn =
  /**
   * Not decided.
   */
  | 'COMMIT_OUTCOME_UNSPECIFIED'
  | 0
  /**
   * Every rank voted and every item is durable: the checkpoint is visible.
   */
  | 'COMMIT_OUTCOME_COMMITTED'
  | 1
  /**
   * The attempt was aborted; nothing of it is visible and its staging is freed.
   */
  | 'COMMIT_OUTCOME_ABORTED'
  | 2

/**
 * CommitOutcome is the decision of a checkpoint's two-phase commit.
 */
export type CommitOutcome = typeof CommitOutcome[keyof typeof CommitOutcome]
