import { hexEqual, isChannelId, signature, type ChannelSecret } from '../channel-id.js';
import { Errors, PushError } from '../errors.js';
import { checkBody, checkFanout, typeFromBody, type NewMessage, type PublishLimits } from '../publish-request.js';
import { effectiveTtl } from '../ttl-policy.js';
import { userChannelKey, type RpcId } from './json-rpc.js';

/**
 * The portal's side of protocol 5: `POST <path_to_json_rpc>?signature=<hmac>` (default
 * `/bitrix/api/`), as the pull module sends it (`Bitrix\Pull\JsonRpcTransport`): a JSON-RPC array
 * of `publish` calls (no ids), or one `getUsersLastSeen` call, with the hex HMAC of the raw body
 * (signature key and algorithm of channel signatures) in the query and its host id in `X-HostId`.
 * Pure: body and signature in, validated calls out; any problem refuses the whole request.
 */

export type PortalCall =
  | { readonly kind: 'publish'; readonly id: RpcId | undefined; readonly message: NewMessage }
  | { readonly kind: 'getUsersLastSeen'; readonly id: RpcId | undefined; readonly users: readonly number[] };

/** Throws PORTAL_RPC_SIGNATURE unless `given` is the HMAC of the body. */
export function checkPortalSignature(body: Uint8Array, given: string | null | undefined, secret: ChannelSecret): void {
  if (given === null || given === undefined || given === '') throw new PushError(Errors.PORTAL_RPC_SIGNATURE);
  // The same HMAC as channel signatures, over the raw bytes (latin1 keeps every byte as it is).
  if (!hexEqual(signature(Buffer.from(body).toString('latin1'), { ...secret }), given.toLowerCase())) throw new PushError(Errors.PORTAL_RPC_SIGNATURE, 'The signature does not match the body.');
}

function bad(index: number, what: string): PushError {
  return new PushError(Errors.PORTAL_RPC_INVALID, `[${index}]: ${what}`);
}

function userIds(v: unknown, i: number, max: number): number[] {
  if (!Array.isArray(v) || !v.every((u) => (typeof u === 'number' && Number.isSafeInteger(u) && u > 0) || (typeof u === 'string' && /^[1-9][0-9]{0,15}$/.test(u)))) throw bad(i, '"userList" must be an array of user ids');
  if (v.length > max) throw new PushError(Errors.TOO_MANY_CHANNELS);
  return [...new Set(v.map(Number))];
}

function publishMessage(p: Record<string, unknown>, i: number, limits: PublishLimits): NewMessage {
  const channels: string[] = [];
  if (p['userList'] !== undefined && p['userList'] !== null) for (const u of userIds(p['userList'], i, limits.maxChannels)) channels.push(userChannelKey(u));
  if (p['channelList'] !== undefined && p['channelList'] !== null) {
    if (!Array.isArray(p['channelList'])) throw bad(i, '"channelList" must be an array of channel ids');
    for (const c of p['channelList']) {
      // Bare private/shared ids, as the portal keeps them; a signed form is accepted like on /pub/.
      const id = typeof c === 'string' ? (c.split('.')[0] as string) : '';
      if (!isChannelId(id)) throw bad(i, `channel ${JSON.stringify(c)} is not 32 lowercase hex characters`);
      if (!channels.includes(id)) channels.push(id);
    }
  }
  if (channels.length === 0) throw new PushError(Errors.NO_CHANNELS);
  if (channels.length > limits.maxChannels) throw new PushError(Errors.TOO_MANY_CHANNELS);
  if (p['body'] === undefined) throw bad(i, '"body" is missing');
  let text: string;
  try {
    text = typeof p['body'] === 'string' ? p['body'] : JSON.stringify(p['body']);
  } catch {
    throw bad(i, '"body" is nested too deeply');
  }
  let expiry: number | null = null;
  if (p['expiry'] !== undefined && p['expiry'] !== null) {
    const e = p['expiry'];
    if (typeof e !== 'number' || !Number.isSafeInteger(e) || e < 0) throw bad(i, '"expiry" must be a whole number of seconds, 0 or more');
    expiry = e;
  }
  let checked: ReturnType<typeof checkBody>;
  try {
    checked = checkBody(text);
  } catch (err) {
    throw err instanceof PushError ? bad(i, err.message) : err;
  }
  const type = typeFromBody(checked.parsed);
  // The portal sends 86400 by default; no expiry at all means its default too, not "live only".
  return { channels, body: checked.body, type, ttl: effectiveTtl(limits.ttl, type, expiry ?? 86400) };
}

/** Parses and validates the whole request before anything is done (all or nothing). */
export function parsePortalRpc(text: string, limits: PublishLimits): { readonly batch: boolean; readonly calls: PortalCall[] } {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new PushError(Errors.PORTAL_RPC_INVALID, err instanceof Error ? err.message.slice(0, 200) : undefined);
  }
  const batch = Array.isArray(doc);
  const list = batch ? (doc as unknown[]) : [doc];
  if (list.length === 0) throw new PushError(Errors.PORTAL_RPC_INVALID, 'The batch is empty.');
  if (list.length > limits.maxBatchMessages) throw new PushError(Errors.TOO_MANY_MESSAGES, `At most ${limits.maxBatchMessages} per request.`);
  const calls = list.map((entry, i): PortalCall => {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) throw bad(i, 'not an object');
    const o = entry as Record<string, unknown>;
    if (o['jsonrpc'] !== '2.0') throw bad(i, '"jsonrpc" must be "2.0"');
    const id = o['id'];
    if (id !== undefined && id !== null && typeof id !== 'string' && typeof id !== 'number') throw bad(i, '"id" must be a number or a string');
    const p = o['params'];
    if (p === null || typeof p !== 'object' || Array.isArray(p)) throw bad(i, '"params" must be an object');
    const params = p as Record<string, unknown>;
    if (o['method'] === 'publish') return { kind: 'publish', id: id as RpcId | undefined, message: publishMessage(params, i, limits) };
    if (o['method'] === 'getUsersLastSeen') return { kind: 'getUsersLastSeen', id: id as RpcId | undefined, users: userIds(params['userList'], i, limits.maxChannels) };
    throw bad(i, `unknown method ${JSON.stringify(o['method']).slice(0, 40)}`);
  });
  checkFanout(calls.flatMap((c) => (c.kind === 'publish' ? [c.message] : [])), limits.maxFanoutBytes);
  return { batch, calls };
}
