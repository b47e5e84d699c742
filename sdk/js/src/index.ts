/**
 * FlagForge browser SDK: evaluated flags of one user (client SDK keys only), from
 * a bootstrap object or the local cache at once, then live over SSE (polling with
 * ETag when SSE is blocked). Reads never throw: failures answer the caller's
 * default with a reason.
 */
export { createClient, FlagForgeClient, type Options } from './client.js';
export { backoff } from './backoff.js';
export type { Listener } from './listeners.js';
export type { Context, FlagDetail, FlagResult, Flags, Reason } from './types.js';
