/**
 * The official client in protocol 5 (JSON-RPC, token subscriptions), shared by the Node and
 * Chromium suites: the portal's config for version 5 and its JSON-RPC publishing. Importing
 * sdk-harness.js first gives the Node client its browser-like globals and the wire recorder.
 */
import { createHmac } from 'node:crypto';
import { B24PullClientManager } from '@bitrix24/b24jssdk';
import { signChannel, signSubscriptionToken } from '@push/protocol';
import { TEST_KEY } from '../helpers/apps.js';
import { channelId, SECRET } from '../helpers/clients.js';
import { eventually } from '../helpers/ports.js';
import { wire, type SocketRecord } from './sdk-harness.js';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
/** Bitrix\Pull\Auth\Jwt::TTL */
const TOKEN_TTL_S = 12 * 3600;

/** The portal in protocol-5 mode: configs carry the shared channel and a token per user. */
export class PortalV5 {
  readonly shared = channelId();
  constructor(
    readonly pubUrl: string,
    public subUrl: string,
    /** The portal's signature key: the installation's, or its own in shared mode. */
    readonly key: string = TEST_KEY,
    /** Shared mode: the portal's client id (config `server.mode = "shared"`, `clientId=` on requests). */
    readonly clientId: string | null = null,
  ) {}

  /** `Bitrix\Pull\Auth\Jwt::create([shared], userId)`. */
  token(userId: number, nowS = Math.floor(Date.now() / 1000)): string {
    return signSubscriptionToken({ iss: 'portal-host-id', iat: nowS, exp: nowS + TOKEN_TTL_S, sub: String(userId), chan: [this.shared] }, this.key);
  }

  /** PHP `Config::get(['JSON'=>true])` with `pull/nginx_version` 5. */
  config(userId: number, opts: { websocket?: boolean | undefined; token?: string | undefined } = {}): Record<string, unknown> {
    const now = Date.now();
    const ws = this.subUrl.replace(/^http/, 'ws');
    const jwt = opts.token ?? this.token(userId);
    // The config's own expiry; a token handed in by a test may be expired inside a fresh config
    // (the portal's clock, a token cached too long), which only the server can notice.
    const exp = opts.token === undefined ? (JSON.parse(Buffer.from(jwt.split('.')[1] ?? '', 'base64url').toString()) as { exp: number }) : { exp: Math.floor(now / 1000) + 3600 };
    return {
      server: {
        version: 5,
        server_enabled: true,
        mode: this.clientId === null ? 'personal' : 'shared',
        config_timestamp: 0,
        long_polling: `${this.subUrl}/bitrix/sub/`,
        long_pooling_secure: `${this.subUrl}/bitrix/sub/`,
        websocket_enabled: opts.websocket ?? true,
        websocket: `${ws}/bitrix/subws/`,
        websocket_secure: `${ws}/bitrix/subws/`,
        publish_enabled: true,
        publish: `${this.pubUrl}/bitrix/rest/`,
        publish_secure: `${this.pubUrl}/bitrix/rest/`,
      },
      api: { revision_web: 19, revision_mobile: 1 },
      channels: { shared: { id: signChannel(this.shared, { ...SECRET, key: this.key }), start: iso(now), end: iso(now + 43_205_000), type: 'shared' } },
      publicChannels: {},
      jwt,
      exp: exp.exp,
      ...(this.clientId === null ? {} : { clientId: this.clientId }),
    };
  }

  /** `Bitrix\Pull\JsonRpcTransport::sendMessages`: publish calls to users and/or channels. */
  async publish(target: { users?: number[]; channels?: string[] }, moduleId: string, command: string, params: Record<string, unknown>, expiry = 86400): Promise<void> {
    const body = { module_id: moduleId, command, params, extra: { server_time: new Date().toISOString(), server_time_unix: Date.now() / 1000, server_name: 'portal.test', revision_web: 19, revision_mobile: 1 } };
    const doc = JSON.stringify([{ jsonrpc: '2.0', method: 'publish', params: { userList: target.users ?? [], channelList: target.channels ?? [], body, expiry } }]);
    const sig = createHmac('sha1', this.key).update(doc).digest('hex');
    // Shared mode: the pull module's getJsonRpcUrl() adds the portal's client id.
    const shared = this.clientId === null ? '' : `&clientId=${this.clientId}`;
    const res = await fetch(`${this.pubUrl}/bitrix/api/?signature=${sig}${shared}`, { method: 'POST', headers: { 'X-HostId': 'portal-host-id' }, body: doc });
    if (res.status !== 200) throw new Error(`json-rpc publish answered ${res.status}: ${await res.text()}`);
  }
}

export interface Received {
  readonly command: string;
  readonly params: Record<string, unknown>;
  readonly extra: Record<string, unknown>;
}

/** One official client in protocol 5 with a fake REST API. */
export class SdkV5Client {
  readonly server: Received[] = [];
  readonly client: Received[] = [];
  readonly restCalls: Array<{ method: string; params: unknown }> = [];
  readonly pull: InstanceType<typeof B24PullClientManager>;
  /** Configs handed out so far (a reload after a refused token gets a fresh one). */
  configs = 0;

  constructor(
    readonly portal: PortalV5,
    readonly userId: number,
    readonly opts: { websocket?: boolean; firstToken?: string } = {},
  ) {
    const restResult = (result: unknown) => ({ getData: () => ({ result }) });
    const b24 = {
      actions: {
        v2: {
          call: {
            make: async ({ method, params }: { method: string; params: unknown }) => {
              this.restCalls.push({ method, params });
              // The portal knows no last-seen times here: the answer shows what the server said.
              if (method === 'pull.api.user.getLastSeen') return restResult({});
              this.configs++;
              return restResult({ ...portal.config(userId, { websocket: opts.websocket }), serverTime: new Date().toISOString() });
            },
          },
        },
      },
      callMethod: async (method: string, params: unknown) => {
        this.restCalls.push({ method, params });
        return restResult({});
      },
    };
    this.pull = new B24PullClientManager({ b24: b24 as never, userId, siteId: 's1', serverEnabled: true, skipStorageInit: true, skipCheckRevision: true, configTimestamp: 0 } as never);
    this.pull.subscribe({ type: 'server', moduleId: 'test', callback: (data: Received) => this.server.push(data) } as never);
    this.pull.subscribe({ type: 'client', moduleId: 'test', callback: (data: Received) => this.client.push(data) } as never);
  }

  async start(): Promise<void> {
    await this.pull.start(this.portal.config(this.userId, { websocket: this.opts.websocket, token: this.opts.firstToken }) as never);
  }

  async connected(timeoutMs = 10_000): Promise<void> {
    await eventually(() => this.pull.isConnected(), timeoutMs, `user ${this.userId} connected`);
  }

  commands(): string[] {
    return this.server.map((m) => m.command);
  }

  async waitForCommands(expected: readonly string[], timeoutMs = 10_000): Promise<void> {
    await eventually(() => expected.every((c) => this.commands().includes(c)), timeoutMs, `user ${this.userId}: ${expected.join(',')} (have ${this.commands().join(',')})`);
  }

  connectionPath(): string {
    return String((this.pull as unknown as { connector?: { connectionPath?: string } }).connector?.connectionPath ?? '');
  }

  /** WebSockets of this client (their URL carries its token's user), oldest first. */
  sockets(): SocketRecord[] {
    return wire.sockets.filter((s) => {
      const t = new URL(s.url).searchParams.get('token');
      if (t === null) return false;
      const claims = JSON.parse(Buffer.from(t.split('.')[1] ?? '', 'base64url').toString()) as { sub?: string };
      return claims.sub === String(this.userId);
    });
  }

  destroyed = false;

  destroy(): void {
    this.destroyed = true;
    this.pull.destroy();
  }
}
