/** An evaluation context: the user (and anything else rules look at). */
export type Context = Record<string, unknown>;

/** Why a value was served. The evaluator's reasons, plus ERROR for fail-open answers. */
export type Reason =
  | 'STATIC'
  | 'TARGETING_MATCH'
  | 'SPLIT'
  | 'DISABLED'
  | 'DEFAULT'
  | 'PREREQUISITE_FAILED'
  | 'ERROR'
  | (string & {});

/** One flag's evaluated result as the evaluator sent it. value is absent when the
 * caller's default applies (a flag off without an off variant). */
export interface FlagResult {
  value?: unknown;
  variant?: string;
  reason: Reason;
  errorCode?: string;
}

/** What get/detail answer: always a value, never an exception. */
export interface FlagDetail<T = unknown> {
  value: T;
  variant?: string;
  reason: Reason;
  /** Set with reason ERROR: FLAG_NOT_FOUND, TYPE_MISMATCH, PROVIDER_NOT_READY,
   * UNAUTHORIZED, or the evaluator's own code (PARSE_ERROR, ...). */
  errorCode?: string;
  /** True while the value comes from the bootstrap or the local cache and the
   * evaluator has not confirmed it yet. */
  stale?: boolean;
}

/** Flag values by key. */
export type Flags = Record<string, FlagResult>;
