import { nanoid } from 'nanoid';
import { Errors } from '@push/protocol';
import type { Backend } from '@push/backend';
import { Exchange, every, listen, registerCommonRoutes, type Config, type Logger, type TemplatedApp, type Uws, type WebSocket } from '@push/runtime';
import { Hub } from './hub.js';
import { handleLongPoll, PREFLIGHT_HEADERS, type LongPoll, type LongPollOptions } from './transports/long-poll.js';
import { closeWebSocket, messageWebSocket, openWebSocket, upgradeWebSocket, type WebSocketOptions, type WsUserData } from './transports/websocket.js';

/**
 * Every path a subscriber may use. Each serves both long poll (plain GET) and WebSocket (GET with
 * Upgrade), because the Bitrix nginx layout may or may not rewrite /bitrix/sub/ to /bitrix/subws/.
 */
export const SUBSCRIBE_PATHS = ['/sub', '/sub/*', '/ws', '/ws/*', '/bitrix/sub', '/bitrix/sub/*', '/bitrix/subws', '/bitrix/subws/*'];

export interface ListenerHandle {
  readonly port: number;
  readonly processUniqueId: string;
  readonly hub: Hub;
  /** Stops accepting, tells clients to come back, answers parked polls, and releases everything. */
  stop(): Promise<void>;
}

export async function startListener(uws: Uws, config: Config, backend: Backend, log: Logger): Promise<ListenerHandle> {
  const processUniqueId = nanoid(8);
  const broker = backend.createBroker();
  const hub = new Hub({
    store: backend.store,
    broker,
    presence: backend.presence,
    log: log.child({ component: 'hub' }),
    unsubscribeDelayMs: config.unsubscribeDelayMs,
    onlineTtlMs: config.onlineTtlS * 1000,
    maxConnPerPublicChannel: config.maxConnPerChannel,
  });
  const secret = { key: config.signatureKey, algorithm: config.signatureAlgorithm };
  let draining = false;
  const isDraining = (): boolean => draining;
  const parked = new Set<LongPoll>();
  const sockets = new Set<WebSocket<WsUserData>>();
  const lpOpts: LongPollOptions = { hub, secret, maxChannels: config.maxChannels, holdMs: config.longPollTimeoutMs, log: log.child({ component: 'long-poll' }), parked, isDraining };
  const wsOpts: WebSocketOptions = {
    hub,
    secret,
    maxChannels: config.maxChannels,
    maxBackpressureBytes: config.wsMaxBackpressureBytes,
    log: log.child({ component: 'websocket' }),
    sockets,
    isDraining,
    clientRequests: {
      store: backend.store,
      presence: backend.presence,
      stats: backend.stats,
      ttl: config.ttl,
      secret,
      limits: { maxMessages: config.maxRequestMessages, maxChannels: config.maxChannels },
    },
  };

  const app: TemplatedApp = uws.App();
  for (const path of SUBSCRIBE_PATHS) {
    app.ws<WsUserData>(path, {
      compression: uws.DISABLED,
      maxPayloadLength: 1024 * 1024,
      idleTimeout: config.wsIdleTimeoutS,
      sendPingsAutomatically: true,
      // Our own slow-consumer check closes sockets; uWS must never silently drop a frame instead.
      maxBackpressure: 1024 * 1024 * 1024,
      upgrade: (res, req, context) => upgradeWebSocket(res, req, context, wsOpts),
      open: (ws) => openWebSocket(ws, wsOpts),
      // Binary frames are protocol-4 client requests (publishing); text frames are ignored.
      message: (ws, message, isBinary) => messageWebSocket(ws, message, isBinary, wsOpts),
      close: (ws) => closeWebSocket(ws, wsOpts),
    });
    app.get(path, (res, req) => handleLongPoll(res, req, lpOpts));
    app.options(path, (res) => void new Exchange(res).send(200, '', PREFLIGHT_HEADERS));
  }
  registerCommonRoutes(app, { isDraining: () => draining, ping: () => backend.store.ping() });
  const { socket: listenSocket, port } = await listen(uws, app, config.host, config.port);

  const statsLog = log.child({ component: 'stats' });
  const snapshot = () => {
    const { ws, lp } = hub.countByTransport();
    const c = hub.counters;
    return { pid: process.pid, date: Date.now(), processUniqueId, type: 'listener', port, websockets: ws, pollings: lp, channels: hub.channelCount, messages: { received: c.received, delivered: c.delivered, frames: c.frames, bytesOut: c.bytesOut } };
  };
  const reporter = every(config.statsIntervalS * 1000, statsLog, 'stats report', () => backend.stats.report(snapshot()));

  return {
    port,
    processUniqueId,
    hub,
    async stop(): Promise<void> {
      draining = true;
      uws.us_listen_socket_close(listenSocket);
      reporter.stop();
      for (const poll of [...parked]) poll.timeout();
      for (const ws of [...sockets]) ws.getUserData().transport?.end(Errors.SHUTTING_DOWN);
      hub.flush();
      hub.stop();
      await backend.stats.remove(processUniqueId).catch(() => {});
      await broker.close();
    },
  };
}
