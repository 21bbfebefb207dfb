import { BACKEND_SENDER, clientChannelKey, statusChannelKey, userChannelKey } from '@push/protocol';
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

/** A user of a portal (null in personal mode), and the string its local state is kept under. */
interface UserRef {
  readonly key: string;
  readonly clientId: string | null;
  readonly userId: string;
}
function userRef(userId: string, clientId: string | null): UserRef {
  return { key: clientId === null ? userId : `${clientId} ${userId}`, clientId, userId };
}
/** A user key in its portal's namespace (as is in personal mode). */
function scoped(user: UserRef, key: string): string {
  return user.clientId === null ? key : clientChannelKey(user.clientId, key);
}

export class UserStatus {
  private readonly local = new Map<string, number>();
  private readonly checks = new Map<string, NodeJS.Timeout>();
  constructor(private readonly opts: UserStatusOptions) {}

  /**
   * A connection of `userId` opened on this listener (before its presence is touched). In shared
   * mode `clientId` names the user's portal: user 17 of one portal is not user 17 of another, and
   * its presence and status announcements live in that portal's namespace.
   */
  opened(userId: string, clientId: string | null = null): void {
    const user = userRef(userId, clientId);
    const n = this.local.get(user.key) ?? 0;
    this.local.set(user.key, n + 1);
    const pending = this.checks.get(user.key);
    if (pending !== undefined) {
      // Back before it was ever announced offline: nothing changed for the subscribers.
      clearTimeout(pending);
      this.checks.delete(user.key);
      return;
    }
    if (n > 0) return;
    this.opts.presence.online([scoped(user, userChannelKey(user.userId))]).then(
      ([online]) => {
        if (online !== true) this.announce(user, true);
      },
      (err: Error) => this.opts.log.warn({ err: { message: err.message } }, 'user status check failed'),
    );
  }

  /** A connection of `userId` (of portal `clientId` in shared mode) on this listener closed. */
  closed(userId: string, clientId: string | null = null): void {
    const user = userRef(userId, clientId);
    const n = (this.local.get(user.key) ?? 1) - 1;
    if (n > 0) {
      this.local.set(user.key, n);
      return;
    }
    this.local.delete(user.key);
    this.scheduleCheck(user, OFFLINE_CHECKS);
  }

  stop(): void {
    for (const t of this.checks.values()) clearTimeout(t);
    this.checks.clear();
  }

  private scheduleCheck(user: UserRef, left: number): void {
    const delay = this.opts.lingerMs + Math.max(500, Math.floor(this.opts.onlineTtlMs / 2));
    const timer = setTimeout(() => {
      this.checks.delete(user.key);
      if (this.local.has(user.key)) return;
      this.opts.presence.online([scoped(user, userChannelKey(user.userId))]).then(
        ([online]) => {
          if (this.local.has(user.key)) return;
          if (online !== true) this.announce(user, false);
          // Still online: another listener keeps it, or our refresh has not lapsed yet; that
          // listener announces when its own last connection goes.
          else if (left > 1) this.scheduleCheck(user, left - 1);
        },
        (err: Error) => this.opts.log.warn({ err: { message: err.message } }, 'user status check failed'),
      );
    }, delay);
    timer.unref();
    this.checks.set(user.key, timer);
  }

  private announce(user: UserRef, online: boolean): void {
    const body = JSON.stringify({ module_id: 'online', command: 'userStatusChange', params: { user_id: Number(user.userId), online } });
    this.opts.store.publish([{ channels: [scoped(user, statusChannelKey(user.userId))], body, type: 'online_userStatusChange', ttl: 0 }], BACKEND_SENDER).catch((err: Error) => this.opts.log.warn({ err: { message: err.message } }, 'user status announcement failed'));
  }
}
