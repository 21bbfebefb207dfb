/**
 * Which offered rate a ramp tries next, from the steps it has run so far. Pure, so the search is
 * table-tested apart from the processes it drives.
 *
 * 1. Geometric: start, start x factor, start x factor^2, ... while every step keeps up (at most
 *    `maxSteps` of them, none above `maxRate`).
 * 2. If even the first step fails: halve (at most four times) until one keeps up, so a slower
 *    system still gets a sustained figure.
 * 3. Refine: once a rate that kept up and a higher one that did not are known, try their geometric
 *    mean, up to `refine` times, narrowing the bracket each time. With factor 1.4 the geometric
 *    phase alone can report up to 29 % below the rate the system actually holds; two refinements
 *    bring that under 9 %. A refinement step is judged like every other step, so a lucky one
 *    counts only if it really kept up.
 */
export interface RampPlan {
  readonly startRate: number;
  readonly factor: number;
  readonly maxSteps: number;
  readonly maxRate: number;
  readonly refine: number;
}

export interface RampStep {
  readonly rate: number;
  readonly keptUp: boolean;
}

/** Brackets narrower than this ratio are not refined further (steps differ by less than noise). */
const MIN_BRACKET = 1.05;
const MAX_HALVINGS = 4;

export function nextRampRate(done: readonly RampStep[], p: RampPlan): number | null {
  if (done.length === 0) return p.startRate <= p.maxRate && p.maxSteps > 0 ? p.startRate : null;
  // The step at which a bracket (a kept-up rate below a failed one) first existed.
  let bracketAt = -1;
  for (let i = 0; i < done.length && bracketAt < 0; i++) if (bracket(done.slice(0, i + 1)) !== null) bracketAt = i;

  if (bracketAt < 0) {
    const last = done[done.length - 1] as RampStep;
    if (done.every((s) => s.keptUp)) {
      const next = p.startRate * p.factor ** done.length;
      return done.length < p.maxSteps && next <= p.maxRate ? next : null;
    }
    if (done.every((s) => !s.keptUp)) {
      const next = last.rate / 2;
      return done.length <= MAX_HALVINGS && next >= 1 ? next : null;
    }
    return null;
  }
  const refinements = done.length - 1 - bracketAt;
  const b = bracket(done) as { lo: number; hi: number };
  if (refinements >= p.refine || b.hi / b.lo < MIN_BRACKET) return null;
  const mid = Math.round(Math.sqrt(b.lo * b.hi));
  return mid > b.lo && mid < b.hi ? mid : null;
}

/** The highest rate that kept up and the lowest failed rate above it, or null. */
function bracket(done: readonly RampStep[]): { lo: number; hi: number } | null {
  const kept = done.filter((s) => s.keptUp).map((s) => s.rate);
  if (kept.length === 0) return null;
  const lo = Math.max(...kept);
  const above = done.filter((s) => !s.keptUp && s.rate > lo).map((s) => s.rate);
  return above.length === 0 ? null : { lo, hi: Math.min(...above) };
}

/**
 * Runs several systems' steps in turns until each says it is done (`next` resolves false): one
 * step each per round, the order reversed every other round, so that over a run no system keeps
 * the place right after the other's heaviest step. Returns who ran, in order (a `false` answer
 * counts as a turn that ran nothing, and is not listed).
 */
export async function takeTurns(next: ReadonlyArray<() => Promise<boolean>>): Promise<number[]> {
  const going = next.map(() => true);
  const ran: number[] = [];
  for (let round = 0; going.some(Boolean); round++) {
    const order = next.map((_, i) => i);
    if (round % 2 === 1) order.reverse();
    for (const i of order) {
      if (going[i] !== true) continue;
      going[i] = await (next[i] as () => Promise<boolean>)();
      if (going[i] === true) ran.push(i);
    }
  }
  return ran;
}
