// Original file: proto/ckptd/v1/retention_service.proto

import type { MetricModeIn as _ckptd_v1_MetricModeIn, MetricMode as _ckptd_v1_MetricMode } from '../../ckptd/v1/MetricMode.js';

/**
 * RetentionPolicy is a job's set of keep rules. All zero keeps everything.
 */
export interface RetentionPolicyIn {
  /**
   * Keep the N checkpoints with the highest steps; 0 disables the rule.
   */
  'keepLast'?: (number);
  /**
   * Keep every checkpoint whose step is a multiple of K; 0 disables the rule.
   */
  'keepEverySteps'?: (number);
  /**
   * Keep the M checkpoints with the best value of best_metric; 0 disables the rule.
   */
  'keepBest'?: (number);
  /**
   * The metric keep_best ranks by, as reported by evaluators (e.g. "loss").
   */
  'bestMetric'?: (string);
  /**
   * Whether smaller or larger best_metric is better.
   */
  'bestMode'?: (_ckptd_v1_MetricModeIn);
}

/**
 * RetentionPolicy is a job's set of keep rules. All zero keeps everything.
 */
export interface RetentionPolicy {
  /**
   * Keep the N checkpoints with the highest steps; 0 disables the rule.
   */
  'keepLast': (number);
  /**
   * Keep every checkpoint whose step is a multiple of K; 0 disables the rule.
   */
  'keepEverySteps': (number);
  /**
   * Keep the M checkpoints with the best value of best_metric; 0 disables the rule.
   */
  'keepBest': (number);
  /**
   * The metric keep_best ranks by, as reported by evaluators (e.g. "loss").
   */
  'bestMetric': (string);
  /**
   * Whether smaller or larger best_metric is better.
   */
  'bestMode': (_ckptd_v1_MetricMode);
}
