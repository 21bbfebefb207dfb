/**
 * Drives the official Bitrix24 client (`@bitrix24/b24jssdk`, B24PullClientManager) in Node against
 * the real stack, as the protocol reference (section 10) describes: the SDK is imported before any
 * browser-like global exists (its HTTP library probes `window.location` at import time), then
 * `WebSocket`, `window`, `document` and `XMLHttpRequest` are provided, and a stand-in for the
 * portal's REST API returns configs that point at the stack. The SDK itself is used unmodified.
 */
import { B24PullClientManager } from '@bitrix24/b24jssdk';
import WebSocket from 'ws';
// @ts-expect-error xhr2 ships no type declarations
import XMLHttpRequest from 'xhr2';
import { signChannel, signChannelPair, signPublicChannel, signature } from '@push/protocol';
import { channelId, SECRET } from '../helpers/clients.js';
import { eventually } from '../helpers/ports.js';

const g = globalThis as Record<string, unknown>;
g['WebSocket'] = WebSocket;
// The SDK checks WebSocket support on `window.WebSocket` and creates sockets from the global.
g['window'] = { WebSocket, addEventListener() {}, removeEventListener() {} };
// Version 4 evaluates `'attachEvent' in document`; an http: href selects the insecure URLs.
g['document'] = { location: { href: 'http://127.0.0.1/' } };
g['XMLHttpRequest'] = XMLHttpRequest;

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
  constructor(
    readonly pubUrl: string,
    public subUrl: string,
  ) {}

  channels(userId: number): UserChannels {
    let u = this.users.get(userId);
    if (u === undefined) {
      u = { priv: channelId(), pub: channelId(), start: Date.now() };
      this.users.set(userId, u);
    }
    return u;
  }

  /** What the portal does when a channel's 12 h lifetime ends: new ids; returns the old ones. */
  rotate(userId: number): UserChannels {
    const old = this.channels(userId);
    this.users.set(userId, { priv: channelId(), pub: channelId(), start: Date.now() });
    return old;
  }

  /** `signedPrivateId` as the portal's config carries it for this protocol version. */
  signedPrivate(userId: number, version: 3 | 4): string {
    const u = this.channels(userId);
    return version === 3 ? signChannel(u.priv, SECRET) : signChannelPair(u.priv, u.pub, SECRET);
  }

  /** PHP `Config::get(['JSON'=>true])` for one user; `breakSignature` gives a config the server refuses. */
  config(userId: number, mode: Mode, opts: { breakSignature?: boolean } = {}): Record<string, unknown> {
    const u = this.channels(userId);
    const now = Date.now();
    const ws = this.subUrl.replace(/^http/, 'ws');
    let privateId = this.signedPrivate(userId, mode.version);
    if (opts.breakSignature === true) privateId = `${privateId.slice(0, privateId.lastIndexOf('.'))}.${signature('not this channel', SECRET)}`;
    const privateChannel: Record<string, unknown> = { id: privateId, start: iso(u.start), end: iso(u.start + CHANNEL_TTL_MS), type: 'private' };
    if (mode.version === 4) privateChannel['public_id'] = signPublicChannel(u.pub, SECRET);
    return {
      server: {
        version: mode.version,
        server_enabled: true,
        mode: 'personal',
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
        shared: { id: signChannel(this.shared, SECRET), start: iso(now), end: iso(now + CHANNEL_TTL_MS), type: 'shared' },
        private: privateChannel,
      },
      publicChannels: mode.version === 4 ? this.publicList([userId]) : {},
      exp: 0,
    };
  }

  /** `pull.channel.public.list` result. */
  publicList(users: readonly number[]): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const id of users) {
      const u = this.channels(id);
      const sig = signature(`public:${u.pub}`, SECRET);
      out[String(id)] = { user_id: id, public_id: u.pub, signature: sig, start: iso(u.start), end: iso(u.start + CHANNEL_TTL_MS) };
    }
    return out;
  }

  /** The portal's text publish (`CPullChannel::SendCommand`), with the body PHP builds. */
  async publish(channels: readonly string[], moduleId: string, command: string, params: Record<string, unknown>, expiry = 86400): Promise<void> {
    const body = { module_id: moduleId, command, params, extra: { server_time: new Date().toISOString(), server_time_unix: Date.now() / 1000, server_name: 'portal.test', revision_web: 19, revision_mobile: 1 } };
    const res = await fetch(`${this.pubUrl}/bitrix/pub/?CHANNEL_ID=${channels.join('/')}`, { method: 'POST', headers: { 'Message-Expiry': String(expiry) }, body: JSON.stringify(body) });
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
              return restResult({ ...portal.config(userId, mode), serverTime: new Date().toISOString() });
            },
          },
        },
      },
      callMethod: async (method: string, params: { users?: number[] }) => {
        this.restCalls.push(method);
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

  destroy(): void {
    this.pull.destroy();
  }
}
