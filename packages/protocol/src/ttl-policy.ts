/**
 * Per-type retention. A message's type is "<module_id>_<command>" (or the Message-Type header);
 * the first matching rule gives the longest time the message may be kept for replay. The sender
 * may ask for less with Message-Expiry, never for more; 0 means live delivery only.
 */
export interface TtlRule {
  readonly pattern: string;
  readonly seconds: number;
  readonly re: RegExp;
}

export interface TtlPolicy {
  readonly rules: readonly TtlRule[];
  /** Longest TTL of any rule: how long an idle channel's index may need to live. */
  readonly maxSeconds: number;
}

/** Typing indicators are worthless after a couple of minutes, presence after ~4 (Bitrix uses 240 s). */
export const DEFAULT_TTL_TABLE = '*writing*=120,online_*=240,*=86400';

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`, 'i');
}

/** Parses "pattern=seconds,pattern=seconds"; throws with every problem listed. */
export function parseTtlTable(table: string): TtlPolicy {
  const rules: TtlRule[] = [];
  const problems: string[] = [];
  for (const entry of table.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    const eq = entry.lastIndexOf('=');
    const pattern = eq > 0 ? entry.slice(0, eq).trim() : '';
    const secondsText = eq > 0 ? entry.slice(eq + 1).trim() : '';
    const seconds = Number(secondsText);
    if (pattern === '' || !/^[A-Za-z0-9_.:*-]+$/.test(pattern)) problems.push(`bad pattern in "${entry}"`);
    else if (!/^[0-9]+$/.test(secondsText) || seconds <= 0 || seconds > 31 * 86400) problems.push(`"${entry}": seconds must be 1..${31 * 86400}`);
    else rules.push({ pattern, seconds, re: globToRegExp(pattern) });
  }
  if (!rules.some((r) => r.pattern === '*')) problems.push('the table needs a catch-all rule "*=<seconds>"');
  if (problems.length > 0) throw new Error(problems.join('; '));
  return { rules, maxSeconds: Math.max(...rules.map((r) => r.seconds)) };
}

export function typeMaxTtl(policy: TtlPolicy, type: string): number {
  for (const rule of policy.rules) if (rule.re.test(type)) return rule.seconds;
  return policy.maxSeconds;
}

/** Effective retention: min(requested, type maximum); a request of 0 means "do not store". */
export function effectiveTtl(policy: TtlPolicy, type: string, requested: number | null): number {
  const max = typeMaxTtl(policy, type);
  return requested === null ? max : Math.min(requested, max);
}
