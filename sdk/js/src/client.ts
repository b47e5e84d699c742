import { backoff } from './backoff.js';
import { cacheKey, load, save, type Store } from './cache.js';
import { Listeners, type Listener } from './listeners.js';
import { fetchFlags, openStream, type Fetched } from './transport.js';
import type { Context, FlagDetail, FlagResult, Flags } from './types.js';

/** Options of createClient. */
export interface Options {
  /** The evaluator's base URL, e.g. https://flags.example.com. */
  url: string;
  /** A client SDK key (public; server keys are refused by the evaluator). */
  clientKey: string;
  /** The first user's context. */
  context?: Context;
  /** Values rendered by the server: served at once, before any request. */
  bootstrap?: Flags;
  /** Where the last values per context are kept (default localStorage; null: none). */
  storage?: Store | null;
  /** Stream changes over SSE (default true); false: poll only. */
  streaming?: boolean;
  /** Polling period when SSE is unavailable, in ms (default 30000). */
  pollInterval?: number;
  /** Longest wait between reconnects, in ms (default 30000; the floor is 1 s). */
  maxReconnectDelay?: number;
  /** Consecutive SSE failures without ever connecting before polling starts (default 2). */
  sseFailuresBeforePolling?: number;
  /** fetch and EventSource to use (default: the globals). */
  fetch?: typeof fetch;
  EventSource?: typeof EventSource;
}

const same = (a?: FlagResult | null, b?: FlagResult | null) =>
  !!a == !!b && (!a || (a.variant == b!.variant && a.reason == b!.reason && JSON.stringify(a.value) == JSON.stringify(b!.value)));

/**
 * A FlagForge browser client: evaluated flags of one user, served from memory.
 * Reads never throw and never wait: before live values arrive they come from the
 * bootstrap or the local cache (stale), and without any, the caller's default
 * with reason ERROR.
 */
export class FlagForgeClient {
  private o: Options;
  private ctx: Context;
  private flags: Flags;
  private stale = true;
  private live = false;
  private fatal?: string;
  private etag?: string | null;
  /** The newest manifest version applied for this context: an answer evaluated
   * from an older one (a bulk fetch overtaken by a stream event) is ignored. */
  private ver = 0;
  private ls = new Listeners();
  private stop?: () => void;
  private timer?: ReturnType<typeof setTimeout>;
  private poller?: ReturnType<typeof setInterval>;
  private attempts = 0;
  private failures = 0;
  private gen = 0;
  private first!: Promise<boolean>;
  private done!: (ok: boolean) => void;
  private store?: Store;
  private f: typeof fetch;

  constructor(o: Options) {
    this.o = o;
    this.ctx = o.context || {};
    this.f = o.fetch || fetch.bind(globalThis);
    try {
      this.store = o.storage === undefined ? localStorage : o.storage || undefined;
    } catch {
      /* no localStorage (SSR, sandboxed frame) */
    }
    this.flags = o.bootstrap || load(this.store, this.key()) || {};
    // A server key must never reach a browser: refuse it before any request.
    if (o.clientKey.startsWith('ffsk_')) {
      console.error('flagforge: a server SDK key was given; use a client SDK key (ffck_...)');
      this.fatal = 'UNAUTHORIZED';
    }
    this.start();
  }

  private key() {
    return cacheKey(this.o.url, this.o.clientKey, this.ctx);
  }

  private start() {
    const g = ++this.gen;
    this.first = new Promise((r) => (this.done = r));
    if (this.fatal) return this.done(false);
    this.live = false;
    this.etag = undefined;
    this.ver = 0;
    this.attempts = this.failures = 0;
    this.refresh(g);
    if (this.o.streaming !== false && (this.o.EventSource || typeof EventSource != 'undefined')) this.connect(g);
    else this.poll(g);
  }

  private halt() {
    this.stop && this.stop();
    clearTimeout(this.timer);
    clearInterval(this.poller);
    this.stop = this.poller = undefined;
  }

  /** Fetches every flag (conditionally on the last ETag). */
  private async refresh(g: number) {
    const r: Fetched = await fetchFlags(this.f, this.o.url, this.o.clientKey, this.ctx, this.etag);
    if (g != this.gen) return;
    if (r.status == 200) {
      if (r.version && r.version < this.ver) return;
      this.etag = r.etag;
      this.apply(r.flags!, true, r.version);
    } else if (r.status == 304) this.confirm();
    else if (r.status == 401 || r.status == 403) {
      this.fatal = 'UNAUTHORIZED';
      this.halt();
      this.done(false);
    }
  }

  private connect(g: number) {
    let opened = false;
    this.stop = openStream(this.o.EventSource || EventSource, this.o.url, this.o.clientKey, this.ctx, {
      open: () => {
        opened = true;
        this.attempts = this.failures = 0;
        clearInterval(this.poller);
        this.poller = undefined;
      },
      full: (fl, v) => this.apply(fl, true, v),
      partial: (fl, v) => this.apply(fl as Flags, false, v),
      error: () => {
        if (g != this.gen || this.fatal) return;
        if (!opened && ++this.failures >= (this.o.sseFailuresBeforePolling || 2)) this.poll(g);
        this.timer = setTimeout(() => g == this.gen && this.connect(g), backoff(this.attempts++, this.o.maxReconnectDelay));
      },
    });
  }

  private poll(g: number) {
    if (!this.poller) this.poller = setInterval(() => this.refresh(g), this.o.pollInterval || 30000);
  }

  private confirm() {
    this.live = true;
    this.stale = false;
    this.done(true);
  }

  /** Replaces (full) or patches the values and tells the listeners of each flag
   * whose value, variant or reason changed. Values evaluated from an older
   * manifest version than already applied never replace newer ones. */
  private apply(next: Flags, full: boolean, version = 0) {
    if (version && version < this.ver) return;
    this.ver = Math.max(this.ver, version);
    const old = this.flags;
    const cur: Flags = full ? { ...next } : { ...old };
    if (!full) for (const k in next) next[k] ? (cur[k] = next[k]) : delete cur[k];
    this.flags = cur;
    const wasStale = this.stale;
    this.confirm();
    save(this.store, this.key(), cur);
    for (const k of new Set([...Object.keys(old), ...Object.keys(cur)]))
      if (!same(old[k], cur[k]) || (wasStale && cur[k])) this.ls.emit(k, this.detail(k));
  }

  /** The flag's detail: value, variant, reason; the caller's default with reason
   * ERROR when the flag is unknown, of another type, or nothing is known yet. */
  detail<T>(key: string, defaultValue?: T): FlagDetail<T> {
    const r = this.flags[key];
    const err = (errorCode: string, reason = 'ERROR', variant?: string): FlagDetail<T> => ({ value: defaultValue as T, reason, errorCode, variant });
    if (this.fatal) return err(this.fatal);
    if (!r) return err(this.live || Object.keys(this.flags).length ? 'FLAG_NOT_FOUND' : 'PROVIDER_NOT_READY');
    if (r.reason == 'ERROR') return err(r.errorCode || 'GENERAL');
    if (r.value == null) return { value: defaultValue as T, variant: r.variant, reason: r.reason, stale: this.stale };
    if (defaultValue != null && typeof defaultValue != typeof r.value) return err('TYPE_MISMATCH');
    return { value: r.value as T, variant: r.variant, reason: r.reason, stale: this.stale };
  }

  /** The flag's value, or defaultValue (see detail). */
  get<T>(key: string, defaultValue: T): T {
    return this.detail(key, defaultValue).value;
  }

  /** Every flag known, as the evaluator sent them. */
  all(): Flags {
    return { ...this.flags };
  }

  /** Calls fn whenever key's value, variant or reason changes ('*': any flag).
   * Returns the function that removes it. */
  on(key: string, fn: Listener): () => void {
    return this.ls.on(key, fn);
  }

  /** Resolves true once live values have arrived, false after timeout ms (default
   * 3000) or when the key is refused. Never rejects. */
  ready(timeout = 3000): Promise<boolean> {
    return Promise.race([this.first, new Promise<boolean>((r) => setTimeout(r, timeout, false))]);
  }

  /** Switches to another user: serves that context's cached values at once (or
   * keeps the current ones, stale), then fetches and streams for it. */
  identify(context: Context, timeout?: number): Promise<boolean> {
    this.halt();
    this.ctx = context;
    this.flags = load(this.store, this.key()) || this.flags;
    this.stale = true;
    this.start();
    return this.ready(timeout);
  }

  /** Stops streaming and polling; values stay readable. */
  close(): void {
    this.gen++;
    this.halt();
  }
}

/** Creates a client and starts fetching and streaming at once. */
export function createClient(options: Options): FlagForgeClient {
  return new FlagForgeClient(options);
}
