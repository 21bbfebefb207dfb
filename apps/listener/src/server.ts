import { nanoid } from 'nanoid';
import { Errors, OriginPolicy } from '@push/protocol';
import { ClientDirectory, instrumentStore, type Backend } from '@push/backend';
import { SubscriberClients } from './subscriber-clients.js';
import { AdminGate, Exchange, RateMeter, bitrixStatFields, clientLimiter, every, listen, registerCommonRoutes, registerRedisStalls, serveMetrics, startRedisProbe, type Config, type Logger, type TemplatedApp, type Uws, type WebSocket } from '@push/runtime';
import { LagWindow } from './lag-window.js';
import { Hub } from './hub.js';
import { createListenerMetrics, instrumentBroker, registerListenerGauges, type ListenerMetrics } from './metrics.js';
import { handleLongPoll, PREFLIGHT_HEADERS, type LongPoll, type LongPollOptions } from './transports/long-poll.js';
import { closeWebSocket, messageWebSocket, openWebSocket, upgradeWebSocket, type WebSocketOptions, type WsUserData } from './transports/websocket.js';
import { JSON_RPC_PING_INTERVAL_MS, PING_BYTES } from './transports/json-rpc.js';
import { UserStatus } from './user-status.js';

/**
 * Every path a subscriber may use. Each serves both long poll (plain GET) and WebSocket (GET with
 * Upgrade), because the Bitrix nginx layout may or may not rewrite /bitrix/sub/ to /bitrix/subws/.
 */
export const SUBSCRIBE_PATHS = ['/sub', '/sub/*', '/ws', '/ws/*', '/bitrix/sub', '/bitrix/sub/*', '/bitrix/subws', '/bitrix/subws/*'];

/**
 * A draining listener says goodbye to its clients at random moments within this share of
 * PUSH_SHUTDOWN_GRACE_S (3 s of the default 10 s): enough to spread the reconnect wave over the
 * other listeners, leaving most of the grace period for stragglers and closing Redis.
 */
export const DRAIN_SPREAD_SHARE = 0.3;

export interface ListenerHandle {
  readonly port: number;
  readonly processUniqueId: string;
  readonly hub: Hub;
  /** Stops accepting, tells clients to come back, answers parked polls, and releases everything. */
  stop(): Promise<void>;
}

export async function startListener(uws: Uws, config: Config, backend: Backend, log: Logger, metrics: ListenerMetrics = createListenerMetrics()): Promise<ListenerHandle> {
  const processUniqueId = nanoid(8);
  // Redis round trips and pub/sub lag are measured for /metrics by wrapping, not inside the hub.
  const store = instrumentStore(backend.store, metrics);
  const broker = instrumentBroker(backend.createBroker(), metrics);
  const secret = { key: config.signatureKey, algorithm: config.signatureAlgorithm };
  // Shared mode: subscribers name their portal; its key and namespace come from the registry.
  const clients = new SubscriberClients(secret, config.mode === 'shared' ? new ClientDirectory(backend.clients) : null, config.clientMaxConnections);
  const hub = new Hub({
    store,
    broker,
    presence: backend.presence,
    log: log.child({ component: 'hub' }),
    unsubscribeDelayMs: config.unsubscribeDelayMs,
    coalesceMaxMs: config.coalesceMaxMs,
    onlineTtlMs: config.onlineTtlS * 1000,
    maxConnPerPublicChannel: config.maxConnPerChannel,
    lifecycle: {
      registry: backend.channels,
      windows: { writeMs: config.channelWriteS * 1000, readMs: config.channelReadS * 1000 },
      signedId: (channel) => clients.signedId(channel),
    },
  });
  let draining = false;
  const isDraining = (): boolean => draining;
  const parked = new Set<LongPoll>();
  const sockets = new Set<WebSocket<WsUserData>>();
  registerRedisStalls(metrics.registry, () => backend.connectionStalls());
  registerListenerGauges(metrics, { subscriptions: () => broker.health(), websockets: () => sockets.size, longPolls: () => parked.size, channels: () => hub.channelCount, counters: hub.counters });
  const origins = new OriginPolicy(config.allowedOrigins);
  const userStatus = new UserStatus({ store, presence: backend.presence, log: log.child({ component: 'user-status' }), onlineTtlMs: config.onlineTtlS * 1000, lingerMs: config.unsubscribeDelayMs });
  const lpOpts: LongPollOptions = { hub, secret, maxChannels: config.maxChannels, holdMs: config.longPollTimeoutMs, log: log.child({ component: 'long-poll' }), parked, isDraining, origins, userStatus, clients };
  const wsOpts: WebSocketOptions = {
    hub,
    secret,
    maxChannels: config.maxChannels,
    maxBackpressureBytes: config.wsMaxBackpressureBytes,
    log: log.child({ component: 'websocket' }),
    sockets,
    isDraining,
    origins,
    clientRequests: {
      store,
      presence: backend.presence,
      stats: backend.stats,
      ttl: config.ttl,
      secret,
      limits: { maxMessages: config.maxRequestMessages, maxChannels: config.maxChannels, maxFanoutBytes: config.maxFanoutBytes },
      limiter: clientLimiter(config, metrics.registry),
    },
    userStatus,
    clients,
  };
  // Protocol-5 keep-alive: the official client answers "ping" with "pong" and, once pings have
  // started, reconnects when none came for 20 s (a stuck connection).
  const jsonRpcPing = setInterval(() => {
    for (const ws of sockets) {
      const data = ws.getUserData();
      if (data.session !== null) data.transport?.write(PING_BYTES);
    }
  }, JSON_RPC_PING_INTERVAL_MS);
  jsonRpcPing.unref();

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
      // Binary frames are protocol-4 client requests (publishing); text frames protocol-5 JSON-RPC.
      message: (ws, message, isBinary) => messageWebSocket(ws, message, isBinary, wsOpts),
      close: (ws) => closeWebSocket(ws, wsOpts),
    });
    app.get(path, (res, req) => handleLongPoll(res, req, lpOpts));
    app.options(path, (res) => void new Exchange(res).send(200, '', PREFLIGHT_HEADERS));
  }
  // /metrics: trusted networks or PUSH_ADMIN_TOKEN only, like the publishers' admin pages.
  serveMetrics(app, metrics.registry, new AdminGate(config));
  // Unready while a subscription is down: a balancer should send new clients to a listener whose
  // live messages flow (the ones connected here are refilled from history once it is back).
  registerCommonRoutes(app, { isDraining: () => draining, ping: () => store.ping(), unready: () => (broker.health().down > 0 ? Errors.SUBSCRIPTION_DOWN : null) });
  const { socket: listenSocket, port } = await listen(uws, app, config.host, config.port);

  const statsLog = log.child({ component: 'stats' });
  const deliveryRate = new RateMeter();
  const lagWindow = new LagWindow();
  const snapshot = async () => {
    const buckets = (await metrics.pubsubLag.get()).values.filter((v) => v.metricName === 'push_pubsub_lag_seconds_bucket');
    const latency = lagWindow.sample(
      buckets.map((b) => (b.labels['le'] === '+Inf' ? Infinity : Number(b.labels['le']))),
      buckets.map((b) => b.value),
    );
    const { ws, lp } = hub.countByTransport();
    const c = hub.counters;
    const now = Date.now();
    return {
      pid: process.pid,
      date: now,
      processUniqueId,
      type: 'listener',
      port,
      websockets: ws,
      pollings: lp,
      channels: hub.channelCount,
      messages: { received: c.received, delivered: c.delivered, frames: c.frames, bytesOut: c.bytesOut },
      ...bitrixStatFields(config, backend.kind),
      // Extra fields for the status page; Bitrix readers of /server-stat/ ignore them.
      rates: { delivered: deliveryRate.rate(c.delivered, now) },
      // Store-to-listener delay over the last interval (ms): the status page's end-to-end latency.
      latency,
      draining,
    };
  };
  const redisProbe = startRedisProbe(metrics, () => store.ping());
  const reporter = every(config.statsIntervalS * 1000, statsLog, 'stats report', async () => backend.stats.report(await snapshot()));

  return {
    port,
    processUniqueId,
    hub,
    async stop(): Promise<void> {
      // Graceful drain. Readiness turns 503 and the listen socket closes at once, so nginx sends
      // new clients to the other listeners (and retries the 503 a kept-alive upstream connection
      // may still get). Connected clients stay live and keep receiving until their goodbye, which
      // comes at a random moment within the spread window: parked long polls get their 304 with
      // the cursor, WebSockets close with 4111. The official clients treat any close other than
      // 4010 as "reconnect with backoff" and resume by mid, so nothing is lost; the random moment
      // is the jitter that keeps a restarted listener's clients from reconnecting in one burst.
      // (The Bitrix SERVER_RESTART command is not used: it is a pull message that would need a
      // fake mid in the client's cursor, and the client waits a fixed 15 s, longer than the grace.)
      draining = true;
      metrics.draining.set(1);
      uws.us_listen_socket_close(listenSocket);
      reporter.stop();
      redisProbe.stop();
      clearInterval(jsonRpcPing);
      clients.stop();
      userStatus.stop();
      const spreadMs = Math.floor(config.shutdownGraceMs * DRAIN_SPREAD_SHARE);
      const deadline = Date.now() + spreadMs + 1000;
      const scheduled = new WeakSet<object>();
      const timers: NodeJS.Timeout[] = [];
      const later = (target: object, goodbye: () => void): void => {
        if (scheduled.has(target)) return;
        scheduled.add(target);
        timers.push(setTimeout(goodbye, Math.floor(Math.random() * spreadMs)));
      };
      // Re-scan until everyone is gone: a long poll or WebSocket still in its setup (history read)
      // when the drain began joins the sets later and gets its goodbye too.
      while ((parked.size > 0 || sockets.size > 0) && Date.now() < deadline) {
        for (const poll of parked) later(poll, () => poll.timeout());
        // A socket the client closed meanwhile left the set; touching it then would throw.
        for (const ws of sockets) later(ws, () => sockets.has(ws) && ws.getUserData().transport?.end(Errors.SHUTTING_DOWN));
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const t of timers) clearTimeout(t);
      for (const poll of [...parked]) poll.timeout();
      for (const ws of [...sockets]) ws.getUserData().transport?.end(Errors.SHUTTING_DOWN);
      hub.flush();
      hub.stop();
      await backend.stats.remove(processUniqueId).catch(() => {});
      await broker.close();
    },
  };
}
