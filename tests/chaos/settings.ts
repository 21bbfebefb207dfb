import type { Timing } from './run-scenario.js';

/**
 * The stack every fault runs against: like `npm start` (2 publishers, 3 listeners, nginx, private
 * Redis with AOF), with a history deep enough that a client away for the longest fault resumes
 * from history — a resume past the history limit is a different subject (the loss signal).
 */
export const CHAOS_STACK = {
  listeners: 3,
  publishers: 2,
  appEnv: {
    PUSH_HISTORY_LIMIT: '5000',
    PUSH_LONGPOLL_TIMEOUT_S: '5',
    PUSH_SHUTDOWN_GRACE_S: '5',
    PUSH_STATS_INTERVAL_S: '1',
  },
} as const;

/** `npm run chaos`: the stall lasts 30 s, as in the outside fault run. */
export const FULL_TIMING: Timing = { beforeMs: 3000, afterMs: 5000, settleMs: 30_000, faultMs: 30_000 };

/** CI: the same scenarios, shorter. */
export const CI_TIMING: Timing = { beforeMs: 2000, afterMs: 3000, settleMs: 20_000, faultMs: 8000 };
