/**
 * Group commit: requests that arrive while earlier ones are still on their way to the backend are
 * sent together as one call when a slot frees up.
 *
 * Why: on a busy publisher most of the cost of a single-message publish is per call, not per
 * message (one script invocation in Redis, one command's encoding and reply parsing, a write and a
 * read system call, which are dear on virtualised hosts). At low load nothing waits: with a free
 * slot a request is sent at once, alone. Under load the groups grow by themselves, because
 * requests pile up exactly while the slots are busy; there is no timer and no added latency
 * beyond waiting for a slot.
 */
export interface GroupCommitOptions<T> {
  /** Calls allowed on the wire at once; further requests queue and leave together. */
  readonly maxInFlight: number;
  /** Most requests in one group. */
  readonly maxItems: number;
  /** A group's summed weight stays within this (a single heavier request still goes, alone). */
  readonly maxWeight: number;
  readonly weight: (item: T) => number;
  /**
   * Longest wait for a request's outcome, from `submit`. When it passes, the request is rejected
   * with NotSentError if it is still queued (it is taken out: it will never be sent) or with
   * UnansweredError if its group is on the wire (the backend may still carry it out; a late
   * outcome is dropped). Unset: wait for `send` however long it takes.
   */
  readonly timeoutMs?: number;
}

/** The request waited out its deadline in the queue and was never sent: nothing was done. */
export class NotSentError extends Error {}
/** The request was sent but its outcome did not come back in time: it may or may not be done. */
export class UnansweredError extends Error {}

/**
 * `send` gets the items of one group in arrival order and must resolve with one outcome per item,
 * in the same order. If it rejects, every item of that group is rejected with the same error.
 */
export type GroupSender<T, R> = (items: readonly T[]) => Promise<readonly R[]>;

interface Waiting<T, R> {
  readonly item: T;
  readonly resolve: (r: R) => void;
  readonly reject: (err: unknown) => void;
  sent: boolean;
  /** Settled (by its group or by its deadline); a later outcome is ignored. */
  done: boolean;
  timer: NodeJS.Timeout | null;
}

export interface GroupCommit<T, R> {
  submit(item: T): Promise<R>;
  /** Requests queued and not yet sent. */
  readonly queued: number;
}

export function createGroupCommit<T, R>(send: GroupSender<T, R>, opts: GroupCommitOptions<T>): GroupCommit<T, R> {
  if (!(opts.maxInFlight >= 1) || !(opts.maxItems >= 1) || !(opts.maxWeight >= 1)) throw new RangeError('group commit needs maxInFlight, maxItems and maxWeight of at least 1');
  let queue: Array<Waiting<T, R>> = [];
  let inFlight = 0;

  const takeGroup = (): Array<Waiting<T, R>> => {
    let total = 0;
    let n = 0;
    while (n < queue.length && n < opts.maxItems) {
      const w = opts.weight(queue[n]!.item);
      if (n > 0 && total + w > opts.maxWeight) break;
      total += w;
      n++;
    }
    if (n === queue.length) {
      const all = queue;
      queue = [];
      return all;
    }
    return queue.splice(0, n);
  };

  const finish = (w: Waiting<T, R>): boolean => {
    if (w.done) return false;
    w.done = true;
    if (w.timer !== null) clearTimeout(w.timer);
    return true;
  };
  const fail = (w: Waiting<T, R>, err: unknown): void => {
    if (finish(w)) w.reject(err);
  };

  const settle = (group: ReadonlyArray<Waiting<T, R>>, results: readonly R[]): void => {
    if (results.length !== group.length) {
      const err = new Error(`group commit: ${results.length} outcomes for ${group.length} requests`);
      for (const w of group) fail(w, err);
      return;
    }
    for (let i = 0; i < group.length; i++) {
      const w = group[i]!;
      if (finish(w)) w.resolve(results[i]!);
    }
  };

  const expire = (w: Waiting<T, R>): void => {
    w.timer = null;
    if (w.sent) {
      fail(w, new UnansweredError(`no outcome within ${opts.timeoutMs} ms`));
      return;
    }
    const at = queue.indexOf(w);
    if (at >= 0) queue.splice(at, 1);
    fail(w, new NotSentError(`not sent within ${opts.timeoutMs} ms`));
  };

  const pump = (): void => {
    while (inFlight < opts.maxInFlight && queue.length > 0) {
      const group = takeGroup();
      for (const w of group) w.sent = true;
      inFlight++;
      let sent: Promise<readonly R[]>;
      try {
        sent = send(group.map((w) => w.item));
      } catch (err) {
        sent = Promise.reject(err);
      }
      sent
        .then(
          (results) => settle(group, results),
          (err: unknown) => {
            for (const w of group) fail(w, err);
          },
        )
        .finally(() => {
          inFlight--;
          pump();
        });
    }
  };

  return {
    submit(item: T): Promise<R> {
      return new Promise<R>((resolve, reject) => {
        const w: Waiting<T, R> = { item, resolve, reject, sent: false, done: false, timer: null };
        if (opts.timeoutMs !== undefined) w.timer = setTimeout(() => expire(w), opts.timeoutMs);
        queue.push(w);
        pump();
      });
    },
    get queued() {
      return queue.length;
    },
  };
}
