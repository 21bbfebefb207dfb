import { customAlphabet } from 'nanoid';

/**
 * Channel ids minted by this server: 32 lowercase hex characters = 128 random bits, which matches
 * both Bitrix server regexes (reference section 2) and the md5-shaped ids portals mint themselves.
 */
export const mintChannelId: () => string = customAlphabet('0123456789abcdef', 32);

/**
 * Where a channel is in its life, measured on one clock (Redis TIME) from its first creation:
 * writable for the write window, then readable only (backlog and `channel_expire`) until the read
 * window ends, then gone (subscribing is refused like an invalid id). A channel the server has
 * never seen (`created` null) is writable: portals mint ids without telling the server.
 */
export type ChannelPhase = 'writable' | 'read-only' | 'gone';

export interface ChannelWindows {
  /** Milliseconds after creation during which publishing is accepted. */
  readonly writeMs: number;
  /** Milliseconds after creation during which subscribing is accepted (>= writeMs). */
  readonly readMs: number;
}

export function channelPhase(created: number | null, nowMs: number, w: ChannelWindows): ChannelPhase {
  if (created === null) return 'writable';
  const age = nowMs - created;
  if (age >= w.readMs) return 'gone';
  if (age >= w.writeMs) return 'read-only';
  return 'writable';
}

/**
 * The Bitrix system message that makes official clients fetch a new config and reconnect
 * (reference section 2: module "pull", command "channel_expire", action "get_config"). `signedId`
 * is the old channel in its signed wire form, as the portal would send it. Compact single-line
 * JSON, because text frames splice bodies verbatim.
 */
export function channelExpireBody(signedId: string, nowMs: number): string {
  return JSON.stringify({
    module_id: 'pull',
    command: 'channel_expire',
    params: { action: 'get_config', channel: { id: signedId, type: 'private' } },
    extra: { server_time: new Date(nowMs).toISOString(), server_time_unix: nowMs / 1000 },
  });
}
