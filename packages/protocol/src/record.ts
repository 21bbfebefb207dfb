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
}

export const BACKEND_SENDER: SenderInfo = Object.freeze({ type: 2, id: '' });

/** The part of a record the publisher knows: everything after "mid\tcreated\t". */
export function encodeRecordTail(expiry: number, type: string, sender: SenderInfo, body: string): string {
  return `${expiry}\t${type}\t${sender.type}\t${sender.id}\n${body}`;
}

export function encodeRecord(msg: StoredMessage): string {
  return `${msg.mid}\t${msg.createdMs}\t${encodeRecordTail(msg.expiry, msg.type, msg.sender, msg.body)}`;
}

/** Returns null for anything that is not a well-formed record (counted and dropped by callers). */
export function decodeRecord(raw: string): StoredMessage | null {
  const nl = raw.indexOf('\n');
  if (nl < 0) return null;
  const fields = raw.slice(0, nl).split('\t');
  if (fields.length !== 6) return null;
  const [mid, created, expiry, type, senderType, senderId] = fields as [string, string, string, string, string, string];
  const createdMs = Number(created);
  const expirySeconds = Number(expiry);
  const st = Number(senderType);
  if (mid.length !== 26 || !Number.isFinite(createdMs) || !Number.isFinite(expirySeconds) || !Number.isFinite(st)) return null;
  return { mid, createdMs, expiry: expirySeconds, type, sender: { type: st, id: senderId }, body: raw.slice(nl + 1) };
}
