import type { Context, Flags, FlagResult } from './types.js';

/** What a bulk fetch answered: status 200 with flags and an ETag, 304 (unchanged),
 * or an error status (0: the network failed). */
export interface Fetched {
  status: number;
  flags?: Flags;
  etag?: string | null;
  /** The manifest version the evaluator answered from (0: not said). */
  version?: number;
}

interface OfrepItem {
  key: string;
  value?: unknown;
  variant?: string;
  reason?: string;
  errorCode?: string;
}

/**
 * Evaluates every client-visible flag for context with the evaluator's OFREP bulk
 * endpoint, conditionally on etag (If-None-Match). Never throws.
 */
export async function fetchFlags(
  f: typeof fetch,
  url: string,
  key: string,
  context: Context,
  etag?: string | null,
): Promise<Fetched> {
  try {
    const headers: Record<string, string> = { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' };
    if (etag) headers['If-None-Match'] = etag;
    const r = await f(url + '/ofrep/v1/evaluate/flags', { method: 'POST', headers, body: JSON.stringify({ context }) });
    if (r.status != 200) return { status: r.status };
    const flags: Flags = {};
    const b = (await r.json()) as { flags: OfrepItem[]; metadata?: { manifestVersion?: number } };
    for (const i of b.flags) {
      flags[i.key] = i.errorCode
        ? { reason: 'ERROR', errorCode: i.errorCode }
        : { value: i.value, variant: i.variant, reason: i.reason || 'UNKNOWN' };
    }
    return { status: 200, flags, etag: r.headers.get('ETag'), version: +(b.metadata?.manifestVersion || 0) };
  } catch {
    return { status: 0 };
  }
}

/** Handlers of a stream: full is the first event (every flag), partial a later
 * change (null: the flag is gone); version is the event's id, the manifest
 * version it was evaluated from (0: not said). */
export interface StreamHandlers {
  open(): void;
  full(flags: Flags, version: number): void;
  partial(flags: Record<string, FlagResult | null>, version: number): void;
  error(): void;
}

/**
 * Opens the evaluator's server-sent events for context (/v1/sse). The key travels
 * in the URL because EventSource cannot set headers; client keys are public by
 * design. Any error or server-side close is reported once through error() and
 * the stream is closed: the caller decides when to reconnect. Returns a closer.
 */
export function openStream(
  ES: typeof EventSource,
  url: string,
  key: string,
  context: Context,
  h: StreamHandlers,
): () => void {
  const es = new ES(url + '/v1/sse?key=' + encodeURIComponent(key) + '&context=' + encodeURIComponent(JSON.stringify(context)));
  let done = false;
  const close = () => {
    done = true;
    es.close();
  };
  const fail = () => {
    if (!done) {
      close();
      h.error();
    }
  };
  const on = (ev: string, fn: (data: any, version: number) => void) =>
    es.addEventListener(ev, (e) => {
      try {
        fn(JSON.parse((e as MessageEvent).data), +(e as MessageEvent).lastEventId || 0);
      } catch {
        fail();
      }
    });
  es.onopen = () => h.open();
  es.onerror = fail;
  on('flags', h.full);
  on('changes', h.partial);
  on('closing', fail);
  return close;
}
