import type { Context, Flags } from './types.js';

/** The part of the Web Storage API the cache uses (localStorage by default). */
export type Store = Pick<Storage, 'getItem' | 'setItem'>;

/** FNV-1a over a string, as 8 hex digits: a short, stable storage key. */
function hash(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return (h >>> 0).toString(16);
}

/** The storage key of one evaluator, client key and context. */
export function cacheKey(url: string, clientKey: string, context: Context): string {
  return 'flagforge:' + hash(url + ' ' + clientKey + ' ' + JSON.stringify(context));
}

/** Reads the values cached under key; undefined when absent, unreadable or the
 * storage refuses (private mode, quota). */
export function load(store: Store | undefined, key: string): Flags | undefined {
  try {
    const v = store && store.getItem(key);
    return v ? (JSON.parse(v) as Flags) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes flags under key; failures are ignored (the cache is an optimisation). */
export function save(store: Store | undefined, key: string, flags: Flags): void {
  try {
    store && store.setItem(key, JSON.stringify(flags));
  } catch {
    /* full or disabled storage: keep going from memory */
  }
}
