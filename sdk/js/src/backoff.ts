/** Floor of every reconnect delay: never hammer a recovering evaluator. */
export const MIN_DELAY = 1000;

/**
 * Full-jitter exponential backoff: a uniformly random delay in
 * [0, min(cap, 1 s * 2^attempt)], never below the 1 s floor.
 */
export function backoff(attempt: number, cap = 30000, random = Math.random): number {
  return Math.max(MIN_DELAY, Math.floor(random() * Math.min(cap, MIN_DELAY * 2 ** attempt)));
}
