import { BACKEND_SENDER, statusChannelKey, userChannelKey } from '@push/protocol';
import type { Presence, Store } from '@push/backend';
import type { Logger } from '@push/runtime';

/**
 * Announces protocol-5 users going online and offline to the clients that called
 * `subscribeStatusChange` for them. A status change is a live-only message on the user's status
 * key, `{"module_id":"online","command":"userStatusChange","params":{"user_id":N,"online":bool}}`,
 * which the official client hands to its status callbacks.
 *
 * Presence is shared by every listener through the backend, so a change is judged from it:
 * online when a user's connection opens and the user was not online anywhere; offline when the
 * user's last connection on this listener has closed and the user's presence then lapses (after
 * the online TTL). Two listeners may both see the same change, so a subscriber may hear it twice;
 * callbacks get the same state again, which is harmless.
 */
export interface UserStatusOptions {
  readonly store: Store;
  readonly presence: Presence;
  readonly log: Logger;
  /** The online TTL (ms): presence lapses this long after the last refresh. */
  readonly onlineTtlMs: number;
  /** How long a channel stays subscribed (and presence refreshed) after its last connection. */
  readonly lingerMs: number;
}

/** Checks for an offline user this often after its last local connection closed, this many times. */
const OFFLINE_CHECKS = 4;

export class UserStatus {
  private readonly local = new Map<string, number>();
  private readonly checks = new Map<string, NodeJS.Timeout>();
  constructor(private readonly opts: UserStatusOptions) {}

  /** A connection of `userId` opened on this listener (before its presence is touched). */
  opened(userId: string): void {
    const n = this.local.get(userId) ?? 0;
    this.local.set(userId, n + 1);
    const pending = this.checks.get(userId);
    if (pending !== undefined) {
      // Back before it was ever announced offline: nothing changed for the subscribers.
      clearTimeout(pending);
      this.checks.delete(userId);
      return;
    }
    if (n > 0) return;
    this.opts.presence.online([userChannelKey(userId)]).then(
      ([online]) => {
        if (online !== true) this.announce(userId, true);
      },
      (err: Error) => this.opts.log.warn({ err: { message: err.message } }, 'user status check failed'),
    );
  }

  /** A connection of `userId` on this listener closed. */
  closed(userId: string): void {
    const n = (this.local.get(userId) ?? 1) - 1;
    if (n > 0) {
      this.local.set(userId, n);
      return;
    }
    this.local.delete(userId);
    this.scheduleCheck(userId, OFFLINE_CHECKS);
  }

  stop(): void {
    for (const t of this.checks.values()) clearTimeout(t);
    this.checks.clear();
  }

  private scheduleCheck(userId: string, left: number): void {
    const delay = this.opts.lingerMs + Math.max(500, Math.floor(this.opts.onlineTtlMs / 2));
    const timer = setTimeout(() => {
      this.checks.delete(userId);
      if (this.local.has(userId)) return;
      this.opts.presence.online([userChannelKey(userId)]).then(
        ([online]) => {
          if (this.local.has(userId)) return;
          if (online !== true) this.announce(userId, false);
          // Still online: another listener keeps it, or our refresh has not lapsed yet; that
          // listener announces when its own last connection goes.
          else if (left > 1) this.scheduleCheck(userId, left - 1);
        },
        (err: Error) => this.opts.log.warn({ err: { message: err.message } }, 'user status check failed'),
      );
    }, delay);
    timer.unref();
    this.checks.set(userId, timer);
  }

  private announce(userId: string, online: boolean): void {
    const body = JSON.stringify({ module_id: 'online', command: 'userStatusChange', params: { user_id: Number(userId), online } });
    this.opts.store.publish([{ channels: [statusChannelKey(userId)], body, type: 'online_userStatusChange', ttl: 0 }], BACKEND_SENDER).catch((err: Error) => this.opts.log.warn({ err: { message: err.message } }, 'user status announcement failed'));
  }
}
