import { userChannelKey } from '@push/protocol';
import type { Presence } from './types.js';

/**
 * Protocol-5 `getUsersLastSeen` answer, the same for clients and the portal: user id -> 0 when
 * connected now, else whole seconds since the user's last sign of life; users never seen (or
 * forgotten, LAST_SEEN_KEEP_S) are left out, and the official client then asks the portal.
 */
export async function usersLastSeen(presence: Presence, users: readonly number[], nowMs = Date.now()): Promise<Record<string, number>> {
  const keys = users.map((u) => userChannelKey(u));
  const [online, seen] = await Promise.all([presence.online(keys), presence.lastSeen(keys)]);
  const out: Record<string, number> = {};
  users.forEach((u, i) => {
    const at = seen[i];
    if (online[i] === true) out[String(u)] = 0;
    else if (at !== null && at !== undefined) out[String(u)] = Math.max(0, Math.floor((nowMs - at) / 1000));
  });
  return out;
}
