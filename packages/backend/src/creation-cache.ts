/**
 * What a publisher remembers of channel creation times ("ch:{ch}" in Redis), so that the publish
 * script need not read them on every publish (docs/benchmarks.md, "where the time goes").
 *
 * Why it is safe: a creation time is written once (SET NX) and never changed, so a remembered value
 * is the value Redis holds for as long as the key lives. The key lives `retentionMs` after the
 * creation; an entry is given out only until `marginMs` before that (by this process's clock, hence
 * the margin for clock skew), after which the script reads the key itself again, exactly as
 * without the cache. Bounded: two generations of at most `max / 2` entries each; the older one is
 * dropped whole when the younger fills, and an entry found in the older is carried over.
 */
export interface CreationCache {
  /** The remembered creation ms of `channel`, or undefined (unknown, or too close to its key's expiry). */
  get(channel: string, nowMs: number): number | undefined;
  set(channel: string, createdMs: number): void;
  readonly size: number;
}

export function createCreationCache(opts: { readonly max: number; readonly retentionMs: number; readonly marginMs: number }): CreationCache {
  const half = Math.max(1, Math.floor(opts.max / 2));
  const usableMs = opts.retentionMs - opts.marginMs;
  let young = new Map<string, number>();
  let old = new Map<string, number>();
  const put = (channel: string, createdMs: number): void => {
    if (young.size >= half) {
      old = young;
      young = new Map();
    }
    young.set(channel, createdMs);
  };
  return {
    get(channel, nowMs) {
      let created = young.get(channel);
      if (created === undefined) {
        created = old.get(channel);
        if (created === undefined) return undefined;
        old.delete(channel);
        put(channel, created);
      }
      if (nowMs - created >= usableMs) {
        young.delete(channel);
        return undefined;
      }
      return created;
    },
    set(channel, createdMs) {
      if (!young.has(channel)) put(channel, createdMs);
    },
    get size() {
      return young.size + old.size;
    },
  };
}
