/**
 * The stored and broadcast form of a message: one header line of tab-separated fields, a newline,
 * then the body verbatim. Publishers build everything except `mid` and `createdMs`, which the
 * store assigns atomically (from one clock, Redis TIME), so the store prepends "mid\tcreated\t".
 */
export interface SenderInfo {
  /** Bitrix SenderType: 1 = client, 2 = backend (portal). */
  readonly type: number;
  /** Hex of the sender's public channel id for client-originated messages, '' otherwise. */
  readonly id: string;
}

export interface StoredMessage {
  readonly mid: string;
  readonly createdMs: number;
  /** Seconds the message is kept for replay; 0 = live delivery only. */
  readonly expiry: number;
  readonly type: string;
  readonly sender: SenderInfo;
  readonly body: string;
  /**
   * Redis Cluster only: the message was published to channels on several shards, part by part,
   * one id per part; these are the channels of the parts stored before this one and their (smaller)
   * ids. A connection that has one of those channels and was given that id already has the message,
   * so it skips this part (docs/architecture.md, "Redis Cluster"). Absent for a one-step message.
   */
  readonly earlier?: readonly EarlierPart[];
}

/** One earlier part of a message stored shard by shard (Redis Cluster): a channel and its id there. */
export interface EarlierPart {
  readonly channel: string;
  readonly mid: string;
}

export const BACKEND_SENDER: SenderInfo = Object.freeze({ type: 2, id: '' });

/** The part of a record the publisher knows: everything after "mid\tcreated\t". */
export function encodeRecordTail(expiry: number, type: string, sender: SenderInfo, body: string, earlier?: readonly EarlierPart[]): string {
  // "mid=channel,..." (mids are 26 digits; channel ids hold no comma).
  const parts = earlier === undefined || earlier.length === 0 ? '' : `\t${earlier.map((e) => `${e.mid}=${e.channel}`).join(',')}`;
  return `${expiry}\t${type}\t${sender.type}\t${sender.id}${parts}\n${body}`;
}

export function encodeRecord(msg: StoredMessage): string {
  return `${msg.mid}\t${msg.createdMs}\t${encodeRecordTail(msg.expiry, msg.type, msg.sender, msg.body, msg.earlier)}`;
}

/** Returns null for anything that is not a well-formed record (counted and dropped by callers). */
export function decodeRecord(raw: string): StoredMessage | null {
  const nl = raw.indexOf('\n');
  if (nl < 0) return null;
  const fields = raw.slice(0, nl).split('\t');
  // A seventh field lists the earlier parts (Cluster) as "mid=channel,...".
  if (fields.length !== 6 && fields.length !== 7) return null;
  const [mid, created, expiry, type, senderType, senderId, earlier] = fields as [string, string, string, string, string, string, string?];
  const createdMs = Number(created);
  const expirySeconds = Number(expiry);
  const st = Number(senderType);
  if (mid.length !== 26 || !Number.isFinite(createdMs) || !Number.isFinite(expirySeconds) || !Number.isFinite(st)) return null;
  const msg: StoredMessage = { mid, createdMs, expiry: expirySeconds, type, sender: { type: st, id: senderId }, body: raw.slice(nl + 1) };
  if (earlier === undefined) return msg;
  const parts: EarlierPart[] = [];
  for (const e of earlier.split(',')) {
    if (e.length < 28 || e[26] !== '=' || !/^[0-9]{26}$/.test(e.slice(0, 26))) return null;
    parts.push({ mid: e.slice(0, 26), channel: e.slice(27) });
  }
  return { ...msg, earlier: parts };
}
