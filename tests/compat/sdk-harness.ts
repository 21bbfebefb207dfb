/**
 * Drives the official Bitrix24 client (`@bitrix24/b24jssdk`, B24PullClientManager) in Node against
 * the real stack, as the protocol reference (section 10) describes: the SDK is imported before any
 * browser-like global exists (its HTTP library probes `window.location` at import time), then
 * `WebSocket`, `window`, `document` and `XMLHttpRequest` are provided, and a stand-in for the
 * portal's REST API returns configs that point at the stack. The SDK itself is used unmodified.
 */
import assert from 'node:assert/strict';
import { B24PullClientManager } from '@bitrix24/b24jssdk';
import WebSocket from 'ws';
// @ts-expect-error xhr2 ships no type declarations
import XMLHttpRequest from 'xhr2';
import { bytesToHex, decodeResponseBatch, signChannel, signChannelPair, signPublicChannel, signature, type ChannelSecret } from '@push/protocol';
import { channelId, SECRET } from '../helpers/clients.js';
import { eventually } from '../helpers/ports.js';

/**
 * What the clients put on the wire and got back, recorded by the socket and request classes the
 * SDK finds in the globals. The SDK's own callbacks cannot show this: it drops duplicate mids
 * silently and does not say which URL or route it used.
 */
export interface SocketRecord {
  readonly url: string;
  readonly createdAt: number;
  openedAt: number | null;
  closedAt: number | null;
  closeCode: number | null;
  closeReason: string;
  /** Frames the client sent. */
  readonly sent: Array<{ readonly at: number; readonly binary: boolean; readonly data: Uint8Array }>;
  /** Frames the server sent, as they arrived (text frames as strings). */
  readonly received: Array<{ readonly at: number; readonly data: Uint8Array | string }>;
}

export interface HttpRecord {
  readonly method: string;
  readonly url: string;
  readonly startedAt: number;
  doneAt: number | null;
  /** What the client sent as the request body (null for none). */
  requestBody: Uint8Array | null;
  /** 0 when no HTTP answer came (refused, reset, aborted). */
  status: number | null;
  /** Response headers, names in lower case. */
  headers: Record<string, string>;
  body: Uint8Array | string | null;
}

export const wire = { sockets: [] as SocketRecord[], requests: [] as HttpRecord[] };

const toBytes = (data: unknown): Uint8Array => {
  if (data instanceof ArrayBuffer) return new Uint8Array(data.slice(0));
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data as Buffer[]));
  if (ArrayBuffer.isView(data)) return new Uint8Array(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  return new Uint8Array(Buffer.from(String(data)));
};

/** `ws` WebSocket that records its URL, open/close and every frame both ways. */
class RecordingWebSocket extends WebSocket {
  constructor(address: string, protocols?: string | string[]) {
    super(address, protocols);
    const rec: SocketRecord = { url: address, createdAt: Date.now(), openedAt: null, closedAt: null, closeCode: null, closeReason: '', sent: [], received: [] };
    wire.sockets.push(rec);
    this.on('open', () => (rec.openedAt = Date.now()));
    this.on('close', (code, reason) => {
      rec.closedAt = Date.now();
      rec.closeCode = code;
      rec.closeReason = reason.toString();
    });
    this.on('message', (data, isBinary) => rec.received.push({ at: Date.now(), data: isBinary ? toBytes(data) : Buffer.from(toBytes(data)).toString('utf8') }));
    const send = this.send.bind(this) as (...args: unknown[]) => void;
    (this as unknown as { send: (...args: unknown[]) => void }).send = (data: unknown, ...rest: unknown[]) => {
      rec.sent.push({ at: Date.now(), binary: typeof data !== 'string', data: toBytes(data) });
      send(data, ...rest);
    };
  }
}

/** The part of xhr2's XMLHttpRequest used here. */
interface Xhr {
  readonly readyState: number;
  readonly status: number;
  readonly response: unknown;
  addEventListener(type: string, listener: () => void): void;
  getAllResponseHeaders(): string | null;
  open(method: string, url: string, ...rest: unknown[]): unknown;
  send(body?: unknown): void;
}
const XhrBase = XMLHttpRequest as new () => Xhr;

/** xhr2 XMLHttpRequest that records every request it makes (the SDK reuses one for long polling). */
class RecordingXhr extends XhrBase {
  private rec: HttpRecord | null = null;
  constructor() {
    super();
    // Registered before the SDK's own listener, so a request is complete here before the SDK
    // reacts to it (and, for long polling, reopens this object for the next request).
    this.addEventListener('readystatechange', () => {
      const rec = this.rec;
      if (this.readyState !== 4 || rec === null || rec.doneAt !== null) return;
      rec.doneAt = Date.now();
      rec.status = Number(this.status);
      for (const line of String(this.getAllResponseHeaders() ?? '').split(/\r?\n/)) {
        const at = line.indexOf(':');
        if (at > 0) rec.headers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
      }
      const body: unknown = this.response;
      rec.body = body instanceof ArrayBuffer ? toBytes(body) : typeof body === 'string' ? body : null;
    });
  }
  override open(method: string, url: string, ...rest: unknown[]): unknown {
    this.rec = { method, url, startedAt: Date.now(), doneAt: null, requestBody: null, status: null, headers: {}, body: null };
    wire.requests.push(this.rec);
    return super.open(method, url, ...rest);
  }
  override send(body?: unknown): void {
    if (this.rec !== null && body !== undefined && body !== null) this.rec.requestBody = toBytes(body);
    super.send(body);
  }
}

const g = globalThis as Record<string, unknown>;
g['WebSocket'] = RecordingWebSocket;
// The SDK checks WebSocket support on `window.WebSocket` and creates sockets from the global.
g['window'] = { WebSocket: RecordingWebSocket, addEventListener() {}, removeEventListener() {} };
// Version 4 evaluates `'attachEvent' in document`; an http: href selects the insecure URLs.
g['document'] = { location: { href: 'http://127.0.0.1/' } };
g['XMLHttpRequest'] = RecordingXhr;

/** One message as it came over the wire, with the frame (or long-poll answer) that carried it. */
export interface WireMessage {
  readonly mid: string;
  readonly moduleId: string;
  readonly command: string;
  /** Same value = same WebSocket frame or HTTP response. */
  readonly frame: string;
  /** Protobuf (true) or text (false) framing. */
  readonly binary: boolean;
  readonly at: number;
}

/** Messages in a text (`#!NGINXNMS!#...`) or protobuf ResponseBatch payload. */
export function decodeWire(data: Uint8Array | string): Array<{ mid: string; moduleId: string; command: string }> {
  const out: Array<{ mid: string; moduleId: string; command: string }> = [];
  if (typeof data === 'string') {
    for (const m of data.matchAll(/#!NGINXNMS!#(.*?)#!NGINXNME!#/g)) {
      const frame = JSON.parse(m[1] as string) as { mid: string; text: { module_id?: string; command?: string } };
      out.push({ mid: frame.mid, moduleId: String(frame.text.module_id ?? ''), command: String(frame.text.command ?? '') });
    }
    return out;
  }
  for (const r of decodeResponseBatch(data).responses) {
    for (const m of r.outgoingMessages?.messages ?? []) {
      const body = JSON.parse(m.body) as { module_id?: string; command?: string };
      out.push({ mid: bytesToHex(m.id), moduleId: String(body.module_id ?? ''), command: String(body.command ?? '') });
    }
  }
  return out;
}

export interface Mode {
  readonly name: string;
  /** 3 = Bitrix push server 1.0 protocol (text), 4 = 2.0 (protobuf frames, client publishing). */
  readonly version: 3 | 4;
  /** false sets websocket_enabled:false, which makes the client long-poll. */
  readonly websocket: boolean;
}

export const MODES: readonly Mode[] = [
  { name: 'WS text (v3)', version: 3, websocket: true },
  { name: 'WS protobuf (v4)', version: 4, websocket: true },
  { name: 'LP text (v3)', version: 3, websocket: false },
  { name: 'LP protobuf (v4)', version: 4, websocket: false },
];

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
const CHANNEL_TTL_MS = 43_205_000;

interface UserChannels {
  priv: string;
  pub: string;
  start: number;
}

/** The portal's side: channel ids per user (rotatable), configs, public-id lists, and publishing. */
export class Portal {
  readonly shared = channelId();
  private readonly users = new Map<number, UserChannels>();
  /** Every private id each user has had, oldest first (rotation adds one). */
  private readonly privHistory = new Map<number, string[]>();
  constructor(
    readonly pubUrl: string,
    public subUrl: string,
    /** The key the portal signs with: the installation's, or its own in shared mode. */
    readonly secret: ChannelSecret = SECRET,
    /** Shared mode: the portal's client id (config `server.mode = "shared"`, `clientId=` on requests). */
    readonly clientId: string | null = null,
  ) {}

  channels(userId: number): UserChannels {
    let u = this.users.get(userId);
    if (u === undefined) {
      u = { priv: channelId(), pub: channelId(), start: Date.now() };
      this.users.set(userId, u);
      this.privHistory.set(userId, [u.priv]);
    }
    return u;
  }

  /** Every private id this user has had; connection URLs name one of them. */
  privateIds(userId: number): readonly string[] {
    this.channels(userId);
    return this.privHistory.get(userId) ?? [];
  }

  /** What the portal does when a channel's 12 h lifetime ends: new ids; returns the old ones. */
  rotate(userId: number): UserChannels {
    const old = this.channels(userId);
    const fresh = { priv: channelId(), pub: channelId(), start: Date.now() };
    this.users.set(userId, fresh);
    this.privHistory.get(userId)?.push(fresh.priv);
    return old;
  }

  /** `signedPrivateId` as the portal's config carries it for this protocol version. */
  signedPrivate(userId: number, version: 3 | 4): string {
    const u = this.channels(userId);
    return version === 3 ? signChannel(u.priv, this.secret) : signChannelPair(u.priv, u.pub, this.secret);
  }

  /** PHP `Config::get(['JSON'=>true])` for one user; `breakSignature` gives a config the server refuses. */
  config(userId: number, mode: Mode, opts: { breakSignature?: boolean } = {}): Record<string, unknown> {
    const u = this.channels(userId);
    const now = Date.now();
    const ws = this.subUrl.replace(/^http/, 'ws');
    let privateId = this.signedPrivate(userId, mode.version);
    if (opts.breakSignature === true) privateId = `${privateId.slice(0, privateId.lastIndexOf('.'))}.${signature('not this channel', this.secret)}`;
    const privateChannel: Record<string, unknown> = { id: privateId, start: iso(u.start), end: iso(u.start + CHANNEL_TTL_MS), type: 'private' };
    if (mode.version === 4) privateChannel['public_id'] = signPublicChannel(u.pub, this.secret);
    return {
      server: {
        version: mode.version,
        server_enabled: true,
        mode: this.clientId === null ? 'personal' : 'shared',
        config_timestamp: 0,
        long_polling: `${this.subUrl}/bitrix/sub/`,
        long_pooling_secure: `${this.subUrl}/bitrix/sub/`,
        websocket_enabled: mode.websocket,
        websocket: `${ws}/bitrix/subws/`,
        websocket_secure: `${ws}/bitrix/subws/`,
        publish_enabled: mode.version === 4,
        publish: `${this.pubUrl}/bitrix/rest/`,
        publish_secure: `${this.pubUrl}/bitrix/rest/`,
      },
      api: { revision_web: 19, revision_mobile: 1 },
      channels: {
        shared: { id: signChannel(this.shared, this.secret), start: iso(now), end: iso(now + CHANNEL_TTL_MS), type: 'shared' },
        private: privateChannel,
      },
      publicChannels: mode.version === 4 ? this.publicList([userId]) : {},
      exp: 0,
      ...(this.clientId === null ? {} : { clientId: this.clientId }),
    };
  }

  /** `pull.channel.public.list` result. */
  publicList(users: readonly number[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const id of users) {
      const u = this.channels(id);
      const sig = signature(`public:${u.pub}`, this.secret);
      out[String(id)] = { user_id: id, public_id: u.pub, signature: sig, start: iso(u.start), end: iso(u.start + CHANNEL_TTL_MS) };
    }
    return out;
  }

  /** The portal's text publish (`CPullChannel::SendCommand`), with the body PHP builds. */
  async publish(channels: readonly string[], moduleId: string, command: string, params: Record<string, unknown>, expiry = 86400): Promise<void> {
    const body = { module_id: moduleId, command, params, extra: { server_time: new Date().toISOString(), server_time_unix: Date.now() / 1000, server_name: 'portal.test', revision_web: 19, revision_mobile: 1 } };
    const text = JSON.stringify(body);
    // Shared mode: the pull module adds its client id and the HMAC of the body with its key.
    const shared = this.clientId === null ? '' : `&clientId=${this.clientId}&signature=${signature(text, this.secret)}`;
    const res = await fetch(`${this.pubUrl}/bitrix/pub/?CHANNEL_ID=${channels.join('/')}${shared}`, { method: 'POST', headers: { 'Message-Expiry': String(expiry) }, body: text });
    if (res.status !== 200) throw new Error(`publish answered ${res.status}: ${await res.text()}`);
  }
}

export interface Received {
  readonly command: string;
  readonly params: Record<string, unknown>;
  readonly extra: Record<string, unknown>;
}

/** One official client, for one user, in one mode, with a fake REST API served by `portal`. */
export class SdkClient {
  readonly server: Received[] = [];
  readonly client: Received[] = [];
  readonly statuses: string[] = [];
  /** Methods the client called on the fake REST API, in order. */
  readonly restCalls: string[] = [];
  /** The same calls with the time each was made. */
  readonly restLog: Array<{ readonly method: string; readonly at: number }> = [];
  readonly pull: InstanceType<typeof B24PullClientManager>;

  constructor(
    readonly portal: Portal,
    readonly userId: number,
    readonly mode: Mode,
  ) {
    const restResult = (result: unknown) => ({ getData: () => ({ result }) });
    const b24 = {
      actions: {
        v2: {
          call: {
            make: async ({ method }: { method: string }) => {
              this.restCalls.push(method);
              this.restLog.push({ method, at: Date.now() });
              return restResult({ ...portal.config(userId, mode), serverTime: new Date().toISOString() });
            },
          },
        },
      },
      callMethod: async (method: string, params: { users?: number[] }) => {
        this.restCalls.push(method);
        this.restLog.push({ method, at: Date.now() });
        return restResult(portal.publicList(params.users ?? []));
      },
    };
    this.pull = new B24PullClientManager({ b24: b24 as never, userId, siteId: 's1', serverEnabled: true, skipStorageInit: true, skipCheckRevision: true, configTimestamp: 0 } as never);
    this.pull.subscribe({ type: 'server', moduleId: 'test', callback: (data: Received) => this.server.push(data) } as never);
    this.pull.subscribe({ type: 'client', moduleId: 'test', callback: (data: Received) => this.client.push(data) } as never);
    this.pull.subscribe({ type: 'status', callback: (data: { status: string }) => this.statuses.push(data.status) } as never);
  }

  async start(config: Record<string, unknown> = this.portal.config(this.userId, this.mode)): Promise<void> {
    await this.pull.start(config as never);
    await this.connected();
  }

  async connected(timeoutMs = 10_000): Promise<void> {
    await eventually(() => this.pull.isConnected(), timeoutMs, `${this.mode.name} client connected`);
  }

  /** Commands of the `test` module received from the server, in arrival order. */
  commands(): string[] {
    return this.server.map((m) => m.command);
  }

  async waitForCommands(expected: readonly string[], timeoutMs = 10_000): Promise<void> {
    await eventually(() => expected.every((c) => this.commands().includes(c)), timeoutMs, `${this.mode.name}: ${expected.join(',')} (have ${this.commands().join(',')})`);
  }

  /** Which framing the client negotiated ('protobuf' / 'text'), from the SDK's own debug info. */
  wsMode(): unknown {
    return (this.pull.getDebugInfo() as Record<string, unknown>)['WebSocket mode'];
  }

  /** The URL of the client's current connection (its CHANNEL_ID, binaryMode and mid parameters). */
  connectionPath(): string {
    return String((this.pull as unknown as { connector?: { connectionPath?: string } }).connector?.connectionPath ?? '');
  }

  private mine(url: string): boolean {
    return this.portal.privateIds(this.userId).some((priv) => url.includes(priv));
  }

  /** WebSockets this client opened (their URLs name its private id), oldest first. */
  sockets(): SocketRecord[] {
    return wire.sockets.filter((s) => this.mine(s.url));
  }

  /** HTTP requests this client made: long polls (GET) and client publishing (POST), oldest first. */
  requests(): HttpRecord[] {
    return wire.requests.filter((r) => this.mine(r.url));
  }

  /** Every message the server sent this client, in arrival order, before the SDK's duplicate filter. */
  wireMessages(): WireMessage[] {
    const out: WireMessage[] = [];
    this.sockets().forEach((s, i) =>
      s.received.forEach((f, j) => {
        for (const m of decodeWire(f.data)) out.push({ ...m, frame: `ws${i}:${j}`, binary: typeof f.data !== 'string', at: f.at });
      }),
    );
    this.requests().forEach((r, i) => {
      if (r.method === 'GET' && r.status === 200 && r.body !== null) for (const m of decodeWire(r.body)) out.push({ ...m, frame: `lp${i}`, binary: typeof r.body !== 'string', at: r.doneAt ?? 0 });
    });
    return out.sort((a, b) => a.at - b.at);
  }

  destroy(): void {
    this.pull.destroy();
  }
}

/** A client's `test`-module commands as they came over the wire; asserts none came twice. */
export function wireCommands(c: SdkClient): string[] {
  const msgs = c.wireMessages().filter((m) => m.moduleId === 'test');
  assert.equal(new Set(msgs.map((m) => m.mid)).size, msgs.length, `${c.mode.name}: a message came twice on the wire: ${msgs.map((m) => `${m.command}@${m.mid}`).join(',')}`);
  return msgs.map((m) => m.command);
}

/** Runs one scenario in every given client mode at once. */
export async function eachMode<T>(modes: readonly Mode[], run: (mode: Mode) => Promise<T>): Promise<T[]> {
  return Promise.all(modes.map(run));
}
