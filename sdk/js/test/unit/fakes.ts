// Test doubles for the browser APIs the SDK uses.

/** A controllable EventSource; every instance is kept in FakeEventSource.all. */
export class FakeEventSource {
  static all: FakeEventSource[] = [];
  onopen: (() => void) | null = null;
  onerror: (() => void) | null = null;
  closed = false;
  private handlers: Record<string, (e: { data: string; lastEventId: string }) => void> = {};
  constructor(public url: string) {
    FakeEventSource.all.push(this);
  }
  addEventListener(ev: string, fn: (e: { data: string; lastEventId: string }) => void) {
    this.handlers[ev] = fn;
  }
  close() {
    this.closed = true;
  }
  /** The server sends event ev with data (JSON-encoded) and id (the manifest version). */
  send(ev: string, data: unknown, id = '') {
    this.handlers[ev]?.({ data: JSON.stringify(data), lastEventId: id });
  }
  open() {
    this.onopen?.();
  }
  fail() {
    this.onerror?.();
  }
  static last() {
    return FakeEventSource.all[FakeEventSource.all.length - 1];
  }
  /** The context the stream was opened for. */
  context() {
    return JSON.parse(new URL(this.url).searchParams.get('context')!);
  }
}

export interface Call {
  url: string;
  headers: Record<string, string>;
  body: any;
}

/** A fetch answering from a queue of handlers (the last one repeats) and recording calls. */
export function fakeFetch(...answers: Array<(c: Call) => Response | Promise<Response>>) {
  const calls: Call[] = [];
  const f = async (url: string, init: RequestInit) => {
    const c = { url, headers: init.headers as Record<string, string>, body: JSON.parse(init.body as string) };
    calls.push(c);
    const a = answers.length > 1 ? answers.shift()! : answers[0];
    return a(c);
  };
  return { fetch: f as unknown as typeof fetch, calls };
}

/** An OFREP bulk answer with flags given as key -> item. */
export function bulk(flags: Record<string, object>, etag = '"e1"', manifestVersion = 1) {
  return () =>
    new Response(JSON.stringify({ flags: Object.entries(flags).map(([key, v]) => ({ key, ...v })), metadata: { manifestVersion } }), {
      status: 200,
      headers: { 'Content-Type': 'application/json', ETag: etag },
    });
}

export const status = (code: number) => () => new Response(code == 304 ? null : '{"errorDetails":"x"}', { status: code });
export const offline = () => Promise.reject(new TypeError('Failed to fetch'));

/** A Storage in memory. */
export class MemoryStorage {
  m = new Map<string, string>();
  getItem(k: string) {
    return this.m.get(k) ?? null;
  }
  setItem(k: string, v: string) {
    this.m.set(k, v);
  }
}
