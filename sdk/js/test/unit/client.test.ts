import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoff, createClient, type Options } from '../../src/index.js';
import { bulk, fakeFetch, FakeEventSource, MemoryStorage, offline, status } from './fakes.js';

const URL_ = 'https://flags.example';
const on = { value: true, variant: 'on', reason: 'TARGETING_MATCH' };
const off = { value: false, variant: 'off', reason: 'DEFAULT' };

function client(o: Partial<Options> & Pick<Options, 'fetch'>) {
  return createClient({ url: URL_, clientKey: 'cli-key', EventSource: FakeEventSource as any, storage: null, ...o });
}

/** Lets pending promises (fetch answers) settle. */
const settle = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
  await vi.advanceTimersByTimeAsync(0);
};

beforeEach(() => {
  vi.useFakeTimers();
  FakeEventSource.all = [];
});
afterEach(() => vi.useRealTimers());

describe('backoff', () => {
  it('is never below the 1 s floor', () => {
    expect(backoff(0, 30000, () => 0)).toBe(1000);
    expect(backoff(5, 30000, () => 0)).toBe(1000);
  });
  it('is full jitter: uniform up to 1 s * 2^attempt', () => {
    expect(backoff(3, 30000, () => 0.999)).toBe(7992);
    expect(backoff(3, 30000, () => 0.5)).toBe(4000);
  });
  it('is capped', () => {
    expect(backoff(20, 30000, () => 0.999)).toBe(29970);
    expect(backoff(20, 5000, () => 1)).toBe(5000);
  });
});

describe('values and caching', () => {
  it('serves the bootstrap at once (stale), then the live values, telling only changed flags', async () => {
    const { fetch } = fakeFetch(bulk({ a: on, b: on }));
    const c = client({ fetch, bootstrap: { a: on, b: off } });
    expect(c.detail('b', true)).toEqual({ value: false, variant: 'off', reason: 'DEFAULT', stale: true });
    const seen: string[] = [];
    c.on('a', () => seen.push('a'));
    c.on('b', (d) => seen.push('b=' + d.value));
    await settle();
    expect(await c.ready()).toBe(true);
    expect(c.detail('b', false)).toEqual({ value: true, variant: 'on', reason: 'TARGETING_MATCH', stale: false });
    // a did not change, but it was stale until confirmed: its listeners hear it once.
    expect(seen.sort()).toEqual(['a', 'b=true']);
  });

  it('keeps the last values per context in storage and serves them stale-while-revalidate', async () => {
    const storage = new MemoryStorage();
    const first = client({ fetch: fakeFetch(bulk({ a: on })).fetch, storage, context: { targetingKey: 'u1' } });
    await settle();
    first.close();
    // A new page load with the evaluator unreachable: the cached value, stale.
    const second = client({ fetch: fakeFetch(offline).fetch, storage, context: { targetingKey: 'u1' } });
    expect(second.detail('a', false)).toEqual({ value: true, variant: 'on', reason: 'TARGETING_MATCH', stale: true });
    const ready = second.ready(500);
    await vi.advanceTimersByTimeAsync(500);
    expect(await ready).toBe(false);
    // Another user has no cache: defaults.
    const third = client({ fetch: fakeFetch(offline).fetch, storage, context: { targetingKey: 'u2' } });
    expect(third.detail('a', false)).toEqual({ value: false, reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY', variant: undefined });
  });

  it('survives a storage that throws', async () => {
    const storage = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('quota'); } };
    const c = client({ fetch: fakeFetch(bulk({ a: on })).fetch, storage });
    await settle();
    expect(c.get('a', false)).toBe(true);
  });
});

describe('streaming', () => {
  it('applies the first event whole and later changes per flag (null: gone)', async () => {
    const c = client({ fetch: fakeFetch(offline).fetch });
    const es = FakeEventSource.last();
    expect(es.url).toBe(URL_ + '/v1/sse?key=cli-key&context=%7B%7D');
    const changes: Array<[string, unknown]> = [];
    c.on('*', (d, k) => changes.push([k, d.value]));
    es.open();
    es.send('flags', { a: on, b: on });
    expect(await c.ready()).toBe(true);
    changes.length = 0;
    es.send('changes', { a: off, b: null });
    expect(c.get('a', true)).toBe(false);
    expect(c.detail('b', 'x')).toMatchObject({ value: 'x', reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(changes.sort()).toEqual([['a', false], ['b', undefined]]);
  });

  it('never goes back to values of an older manifest version than it applied', async () => {
    // The bulk fetch was evaluated from version 3 but answers after the stream's v5 events.
    let answer!: () => void;
    const slow = new Promise<void>((r) => (answer = r));
    const { fetch } = fakeFetch(async () => {
      await slow;
      return bulk({ a: off, b: off }, '"old"', 3)();
    });
    const c = client({ fetch });
    const es = FakeEventSource.last();
    es.open();
    es.send('flags', { a: off, b: off }, '4');
    es.send('changes', { a: on }, '5');
    answer();
    await settle();
    expect(c.get('a', false)).toBe(true);
    // A stream event from an evaluator still behind (a reconnect elsewhere) is ignored too.
    es.send('changes', { a: off }, '4');
    expect(c.get('a', false)).toBe(true);
    es.send('changes', { b: on }, '6');
    expect(c.all()).toEqual({ a: on, b: on });
  });

  it('reconnects after an error with full jitter, never sooner than 1 s, and catches up', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const c = client({ fetch: fakeFetch(offline).fetch });
    const es = FakeEventSource.last();
    es.open();
    es.send('flags', { a: off });
    es.fail();
    expect(es.closed).toBe(true);
    await vi.advanceTimersByTimeAsync(999);
    expect(FakeEventSource.all.length).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeEventSource.all.length).toBe(2);
    // The evaluator is back: its first event brings what changed meanwhile.
    const seen: unknown[] = [];
    c.on('a', (d) => seen.push(d.value));
    FakeEventSource.last().open();
    FakeEventSource.last().send('flags', { a: on });
    expect(seen).toEqual([true]);
    vi.mocked(Math.random).mockRestore();
  });

  it('falls back to polling with ETag when SSE never connects, and stops polling once it does', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0);
    const { fetch, calls } = fakeFetch(bulk({ a: off }, '"v1"'), status(304), bulk({ a: on }, '"v2"'));
    const c = client({ fetch, pollInterval: 5000 });
    await settle();
    FakeEventSource.last().fail(); // blocked by a proxy
    await vi.advanceTimersByTimeAsync(1000);
    FakeEventSource.last().fail(); // twice without ever opening: poll
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls[1].headers['If-None-Match']).toBe('"v1"');
    expect(c.get('a', true)).toBe(false); // 304: unchanged
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls[2].headers['If-None-Match']).toBe('"v1"');
    expect(c.get('a', false)).toBe(true);
    // SSE gets through: polling stops.
    await vi.advanceTimersByTimeAsync(30000);
    const n = calls.length;
    FakeEventSource.last().open();
    await vi.advanceTimersByTimeAsync(20000);
    expect(calls.length).toBe(n);
    c.close();
    vi.mocked(Math.random).mockRestore();
  });

  it('polls only when streaming is off', async () => {
    const { fetch, calls } = fakeFetch(bulk({ a: on }));
    client({ fetch, streaming: false, pollInterval: 1000 });
    await vi.advanceTimersByTimeAsync(3000);
    expect(FakeEventSource.all.length).toBe(0);
    expect(calls.length).toBe(4);
  });
});

describe('identify', () => {
  it('re-evaluates for the new context and tells listeners what changed', async () => {
    const { fetch, calls } = fakeFetch(bulk({ a: off }), bulk({ a: on }));
    const c = client({ fetch, context: { targetingKey: 'u1' } });
    await settle();
    const seen: unknown[] = [];
    c.on('a', (d) => seen.push(d.value));
    const ok = c.identify({ targetingKey: 'u2', region: 'us-east-1' });
    expect(FakeEventSource.all[0].closed).toBe(true);
    expect(FakeEventSource.last().context()).toEqual({ targetingKey: 'u2', region: 'us-east-1' });
    await settle();
    expect(await ok).toBe(true);
    expect(calls[1].body).toEqual({ context: { targetingKey: 'u2', region: 'us-east-1' } });
    expect(c.get('a', false)).toBe(true);
    expect(seen).toEqual([true]);
  });

  it('serves the new context from its cache at once', async () => {
    const storage = new MemoryStorage();
    const c = client({ fetch: fakeFetch(bulk({ a: on }), bulk({ a: off }), offline).fetch, storage, context: { targetingKey: 'u1' } });
    await settle();
    const p2 = c.identify({ targetingKey: 'u2' });
    await settle();
    expect(await p2).toBe(true);
    expect(c.get('a', true)).toBe(false);
    const p1 = c.identify({ targetingKey: 'u1' }, 10);
    await vi.advanceTimersByTimeAsync(10);
    expect(await p1).toBe(false);
    expect(c.detail('a', false)).toMatchObject({ value: true, stale: true });
  });
});

describe('listeners', () => {
  it('can be removed, and one that throws does not stop the others', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const c = client({ fetch: fakeFetch(offline).fetch });
    const es = FakeEventSource.last();
    es.send('flags', { a: off });
    const seen: string[] = [];
    const off1 = c.on('a', () => seen.push('removed'));
    c.on('a', () => {
      throw new Error('app bug');
    });
    c.on('a', () => seen.push('second'));
    off1();
    expect(() => es.send('changes', { a: on })).not.toThrow();
    expect(seen).toEqual(['second']);
    expect(err).toHaveBeenCalledOnce();
    err.mockRestore();
  });

  it('are not called when nothing changed', async () => {
    const c = client({ fetch: fakeFetch(offline).fetch });
    const es = FakeEventSource.last();
    es.send('flags', { a: on });
    const seen = vi.fn();
    c.on('*', seen);
    es.send('flags', { a: { ...on } });
    expect(seen).not.toHaveBeenCalled();
  });
});

describe('fail open', () => {
  it('answers defaults with a reason when nothing is known', () => {
    const c = client({ fetch: fakeFetch(offline).fetch });
    expect(c.detail('a', 'dflt')).toEqual({ value: 'dflt', reason: 'ERROR', errorCode: 'PROVIDER_NOT_READY', variant: undefined });
  });

  it('answers FLAG_NOT_FOUND, TYPE_MISMATCH and the evaluator’s error codes with the default', async () => {
    const c = client({ fetch: fakeFetch(bulk({ a: on, broken: { errorCode: 'PARSE_ERROR', errorDetails: 'x' }, code: { reason: 'DISABLED' } })).fetch });
    await settle();
    expect(c.detail('nope', 1)).toMatchObject({ value: 1, reason: 'ERROR', errorCode: 'FLAG_NOT_FOUND' });
    expect(c.detail('a', 'str')).toMatchObject({ value: 'str', reason: 'ERROR', errorCode: 'TYPE_MISMATCH' });
    expect(c.detail('broken', false)).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'PARSE_ERROR' });
    // No value from the evaluator (off without an off variant): the code default, reason kept.
    expect(c.detail('code', 7)).toEqual({ value: 7, reason: 'DISABLED', variant: undefined, stale: false });
  });

  it.each([401, 403])('stops for good when the key is refused (%i)', async (code) => {
    const { fetch, calls } = fakeFetch(status(code));
    const c = client({ fetch, bootstrap: { a: on } });
    const ready = c.ready();
    await settle();
    expect(await ready).toBe(false);
    expect(FakeEventSource.all.every((e) => e.closed)).toBe(true);
    expect(c.detail('a', false)).toEqual({ value: false, reason: 'ERROR', errorCode: 'UNAUTHORIZED', variant: undefined });
    await vi.advanceTimersByTimeAsync(120000);
    expect(calls.length).toBe(1);
    expect(FakeEventSource.all.length).toBe(1);
  });

  it('refuses a server key before any request', async () => {
    const err = vi.spyOn(console, 'error').mockImplementation(() => {});
    const { fetch, calls } = fakeFetch(bulk({ a: on }));
    const c = client({ fetch, clientKey: 'ffsk_secret' });
    expect(await c.ready()).toBe(false);
    expect(c.detail('a', false)).toMatchObject({ value: false, reason: 'ERROR', errorCode: 'UNAUTHORIZED' });
    expect(await c.identify({ targetingKey: 'u2' })).toBe(false);
    expect(calls.length + FakeEventSource.all.length).toBe(0);
    expect(err).toHaveBeenCalledOnce();
    err.mockRestore();
  });

  it('treats a malformed answer as a failure, not an exception', async () => {
    const c = client({ fetch: fakeFetch(() => new Response('not json', { status: 200 })).fetch });
    await settle();
    expect(c.get('a', 'd')).toBe('d');
    const es = FakeEventSource.last();
    expect(() => es.send('flags', undefined)).not.toThrow();
  });
});
