/**
 * Retries of transient object-store failures: exponential backoff with full jitter, bounded both in
 * attempts and in total time, so an unreachable store fails within a known time.
 */
import { setTimeout as sleep } from "node:timers/promises";

export interface RetryPolicy {
  /** Attempts in all, the first included. @default 8 */
  attempts: number;
  /** The first backoff's upper bound; each retry doubles it. @default 100 */
  baseDelayMs: number;
  /** No single backoff is longer. @default 5000 */
  maxDelayMs: number;
  /** No retry starts later than this after the first attempt began. @default 60000 */
  totalMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 8, baseDelayMs: 100, maxDelayMs: 5_000, totalMs: 60_000 };

/**
 * Runs `fn` until it succeeds, throws an error `retryable` refuses, or the policy is spent; then throws
 * the last error. `fn` gets the attempt number (0 for the first).
 */
export async function withRetry<T>(
  policy: RetryPolicy,
  retryable: (err: unknown) => boolean,
  fn: (attempt: number) => Promise<T>,
): Promise<T> {
  const start = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!retryable(err) || attempt + 1 >= policy.attempts) throw err;
      // Full jitter: concurrent writers that failed together do not retry together.
      const delay = Math.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
      if (Date.now() - start + delay > policy.totalMs) throw err;
      await sleep(delay);
    }
  }
}
