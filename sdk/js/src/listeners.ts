import type { FlagDetail } from './types.js';

/** Called with the new detail of a flag whose value or variant changed. */
export type Listener = (detail: FlagDetail, key: string) => void;

/** Per-flag change listeners; the key '*' hears every flag. A listener that
 * throws is reported on the console and never breaks the others. */
export class Listeners {
  private m = new Map<string, Set<Listener>>();

  on(key: string, fn: Listener): () => void {
    let s = this.m.get(key);
    if (!s) this.m.set(key, (s = new Set()));
    s.add(fn);
    return () => void s.delete(fn);
  }

  emit(key: string, detail: FlagDetail): void {
    for (const k of [key, '*'])
      this.m.get(k)?.forEach((fn) => {
        try {
          fn(detail, key);
        } catch (e) {
          console.error('flagforge: a change listener threw', e);
        }
      });
  }
}
