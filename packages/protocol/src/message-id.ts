/**
 * Bitrix message ids ("mid"): 26 decimal digits. On one Redis: 10-digit unix start time of the id
 * space (kept in Redis, set once) followed by a 16-digit zero-padded global counter. On Redis
 * Cluster: S (10 digits, unix seconds) 0 U (6, microseconds) L (5, the channel's slot) Q (4, a
 * sequence), issued per channel (docs/architecture.md, "Redis Cluster"); the leading 0 of the last
 * 16 digits keeps the text frame's numeric id below 2^53. Fixed width makes string order equal
 * publish order, which is what cursors compare.
 */
export const MID_LENGTH = 26;
const MID_RE = /^[0-9]{26}$/;
/** Sorts below every mid a store issues: the resume cursor of a client on a store that issued none yet. */
export const ORIGIN_MID = '0'.repeat(MID_LENGTH);

export function isMid(value: unknown): value is string {
  return typeof value === 'string' && MID_RE.test(value);
}

/** A query `mid` that is not exactly 26 digits is treated as absent (checklist 32), never an error. */
export function parseMid(value: string | null | undefined): string | null {
  return value !== null && value !== undefined && MID_RE.test(value) ? value : null;
}

export function formatMid(startSeconds: number, counter: number): string {
  if (!Number.isSafeInteger(startSeconds) || startSeconds < 0 || startSeconds > 9_999_999_999) {
    throw new RangeError(`start time out of range: ${startSeconds}`);
  }
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`counter out of range: ${counter}`);
  return String(startSeconds).padStart(10, '0') + String(counter).padStart(16, '0');
}

/** The text frame's numeric `id`: the counter half of the mid. */
export function midCounter(mid: string): number {
  return Number(mid.slice(10));
}

/** True when `a` was published after `b`; `null` counts as "before everything". */
export function midAfter(a: string, b: string | null): boolean {
  return b === null || a > b;
}
