// Original file: proto/ckptd/v1/retention_service.proto

/**
 * MetricMode says whether a smaller or a larger metric is better.
 */
export const MetricMode = {
  /**
   * Not set: keep_best is off.
   */
  METRIC_MODE_UNSPECIFIED: 'METRIC_MODE_UNSPECIFIED',
  /**
   * Smaller is better (loss).
   */
  METRIC_MODE_MIN: 'METRIC_MODE_MIN',
  /**
   * Larger is better (accuracy).
   */
  METRIC_MODE_MAX: 'METRIC_MODE_MAX',
} as const;

/**
 * MetricMode says whether a smaller or a larger metric is better.
 */
export type MetricModeIn =
  /**
   * Not set: keep_best is off.
   */
  | 'METRIC_MODE_UNSPECIFIED'
  | 0
  /**
   * Smaller is better (loss).
   */
  | 'METRIC_MODE_MIN'
  | 1
  /**
   * Larger is better (accuracy).
   */
  | 'METRIC_MODE_MAX'
  | 2

/**
 * MetricMode says whether a smaller or a larger metric is better.
 */
export type MetricMode = typeof MetricMode[keyof typeof MetricMode]
