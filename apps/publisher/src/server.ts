import { nanoid } from 'nanoid';
import {
  BACKEND_SENDER,
  Errors,
  PushError,
  parseBatchPublish,
  parsePublisherChannels,
  parseSinglePublish,
  parseV4Request,
  mintChannelId,
  signChannel,
  type NewMessage,
  type PublishLimits,
} from '@push/protocol';
import { instrumentStore, type Backend } from '@push/backend';
import { PublishGuard } from './auth/publish-guard.js';
import { VerifyPlacement } from './auth/verify-placement.js';
import { createPublisherMetrics, type PublisherMetrics } from './metrics.js';
import { serveStatusPage } from './status-page/routes.js';
import { answerV4, type V4RouteDeps } from './binary-publish.js';
import { handleRest, REST_PATHS, type RestDeps } from './rest.js';
import { CORS_ANY, Exchange, RateMeter, clientLimiter, every, listen, parseQuery, registerCommonRoutes, readBody, serveMetrics, startRedisProbe, type Config, type HttpRequest, type HttpResponse, type Logger, type TemplatedApp, type Uws } from '@push/runtime';

/** Publish paths, matched by prefix like the Bitrix servers (`/bitrix/pub/anything` publishes too). */
export const PUBLISH_PATHS = ['/pub', '/pub/*', '/bitrix/pub', '/bitrix/pub/*'];
const BATCH_SUFFIX = '/batch';
const TEXT = ['Content-Type', 'text/plain; charset=utf-8'] as const;
/** Browsers may preflight a client publish; the body is raw protobuf, so Content-Type is allowed. */
const REST_PREFLIGHT = [...CORS_ANY, ['Access-Control-Allow-Methods', 'POST, OPTIONS'], ['Access-Control-Allow-Headers', 'Content-Type'], TEXT] as const;
/** Channel minting (docs/security.md): POST /channels?count=N, authenticated like a publish. */
export const MINT_PATH = '/channels';
const MAX_MINT = 100;
const NO_BODY = Buffer.alloc(0);

export interface PublisherHandle {
  readonly port: number;
  readonly processUniqueId: string;
  stop(): Promise<void>;
}

interface Counters {
  requests: number;
  published: number;
  rejected: number;
  unavailable: number;
  byType: Map<string, number>;
}

export async function startPublisher(uws: Uws, config: Config, backend: Backend, log: Logger, metrics: PublisherMetrics = createPublisherMetrics()): Promise<PublisherHandle> {
  // Every Redis round trip of this process is timed for /metrics.
  const store = instrumentStore(backend.store, metrics);
  const processUniqueId = nanoid(8);
  const limits: PublishLimits = { maxChannels: config.maxChannels, maxBatchMessages: config.maxBatchMessages, ttl: config.ttl, maxFanoutBytes: config.maxFanoutBytes };
  const counters: Counters = { requests: 0, published: 0, rejected: 0, unavailable: 0, byType: new Map() };
  const pubLog = log.child({ component: 'publish' });
  // Ed25519 checks run inline while the event loop has time to spare, in the thread pool when busy.
  const placement = new VerifyPlacement();
  const guard = new PublishGuard(config, backend.replay, placement.inline);
  const channelSecret = { key: config.signatureKey, algorithm: config.signatureAlgorithm };
  let draining = false;
  let inFlight = 0;
  const v4Deps: V4RouteDeps = {
    store,
    presence: backend.presence,
    stats: backend.stats,
    ttl: config.ttl,
    limits: { maxMessages: config.maxRequestMessages, maxChannels: config.maxChannels, maxFanoutBytes: config.maxFanoutBytes },
  };
  const restDeps: RestDeps = {
    ...v4Deps,
    secret: { key: config.signatureKey, algorithm: config.signatureAlgorithm },
    maxChannels: config.maxChannels,
    maxBodyBytes: config.maxBodyBytes,
    limiter: clientLimiter(config, metrics.registry),
  };

  /**
   * While draining, answers 503 before reading or storing anything (nginx hands the request to
   * another publisher). Every request that gets past this counts in `inFlight` until answered, so
   * stop() waits for it.
   */
  function refuseWhileDraining(ex: Exchange): boolean {
    if (!draining) return false;
    metrics.requests.inc({ result: 'draining' });
    ex.sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
    return true;
  }

  function reject(ex: Exchange, err: unknown): void {
    if (err instanceof PushError) {
      counters.rejected++;
      metrics.requests.inc({ result: 'rejected' });
      // A streamed body past the limit closes the connection (readBody marks the exchange).
      ex.sendError(err);
      return;
    }
    counters.unavailable++;
    metrics.requests.inc({ result: 'unavailable' });
    pubLog.warn({ err: { message: (err as Error).message } }, 'publish failed: store unavailable');
    ex.sendError(Errors.STORE_UNAVAILABLE, [['Retry-After', '1']]);
  }

  function publish(res: HttpResponse, req: HttpRequest): void {
    // Copy everything out of `req` before the first await: uWS frees it when this returns.
    const url = req.getUrl();
    const query = parseQuery(req.getQuery() ?? '');
    const contentLength = req.getHeader('content-length');
    const expiryHeader = req.getHeader('message-expiry');
    const typeHeader = req.getHeader('message-type');
    const facts = guard.capture(res, req);
    const ex = new Exchange(res);
    counters.requests++;
    if (draining) {
      // 503 before reading or storing anything: nginx hands the request to another publisher.
      metrics.requests.inc({ result: 'draining' });
      ex.sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
      return;
    }
    const batch = url.endsWith(BATCH_SUFFIX) || url.endsWith(`${BATCH_SUFFIX}/`);
    // Protocol 4: the portal sends a protobuf RequestBatch (publish, channel stats, server stats).
    const binary = query.get('binaryMode') === 'true';
    inFlight++;
    const endTimer = metrics.publishDuration.startTimer();
    readBody(ex, contentLength, config.maxBodyBytes)
      .then(async (buf) => {
        // One signature check per HTTP request, batch or not; then the whole body is validated, and
        // only then is the nonce claimed (the first Redis write): bad input leaves Redis untouched.
        const auth = await guard.authenticate(facts, buf);
        if (binary) {
          // Validated here so a bad body cannot burn the nonce; answerV4 decodes it again to act.
          parseV4Request(buf, { trusted: true }, v4Deps.limits);
          await guard.admit(auth);
          counters.published += await answerV4(ex, buf, { trusted: true }, BACKEND_SENDER, v4Deps);
          metrics.requests.inc({ result: 'ok' });
          endTimer();
          return;
        }
        const text = buf.toString('utf8');
        const messages: NewMessage[] = batch
          ? parseBatchPublish(text, limits)
          : [parseSinglePublish({ channelParam: query.get('CHANNEL_ID') ?? null, body: text, expiryHeader: expiryHeader || null, typeHeader: typeHeader || null }, limits)];
        // Acknowledge only after Redis has stored and announced everything (not before, as Bitrix
        // does). A signed request's nonce is claimed inside the same atomic step (one round trip,
        // and a publish refused there, e.g. 410, leaves the nonce unused).
        await store.publish(messages, BACKEND_SENDER, guard.claimFor(auth));
        counters.published += messages.length;
        // push_messages_published_total is counted by the instrumented store, for every publish path.
        for (const m of messages) counters.byType.set(m.type, (counters.byType.get(m.type) ?? 0) + 1);
        metrics.requests.inc({ result: 'ok' });
        endTimer();
        ex.send(200, '', [...CORS_ANY, TEXT]);
      })
      .catch((err: unknown) => {
        if (ex.aborted) return;
        reject(ex, err);
      })
      .finally(() => inFlight--);
  }

  function onlineStatus(res: HttpResponse, req: HttpRequest): void {
    const query = parseQuery(req.getQuery() ?? '');
    const facts = guard.capture(res, req);
    const ex = new Exchange(res);
    if (refuseWhileDraining(ex)) return;
    inFlight++;
    guard
      .authenticate(facts, NO_BODY)
      .then(async (auth) => {
        const channels = parsePublisherChannels(query.get('CHANNEL_ID') ?? null, config.maxChannels);
        await guard.admit(auth);
        return { channels, flags: await backend.presence.online(channels) };
      })
      .then(
        ({ channels, flags }) => {
          const infos = channels.filter((_, i) => flags[i]).map((channel) => ({ channel, subscribers: 1 }));
          ex.send(200, JSON.stringify({ infos }), [...CORS_ANY, TEXT]);
        },
        (err: unknown) => reject(ex, err),
      )
      .finally(() => inFlight--);
  }

  /** Mints fresh channel ids, records their creation (Redis time) and returns them signed for subscribers. */
  function mint(res: HttpResponse, req: HttpRequest): void {
    const query = parseQuery(req.getQuery() ?? '');
    const contentLength = req.getHeader('content-length');
    const facts = guard.capture(res, req);
    const ex = new Exchange(res);
    counters.requests++;
    if (refuseWhileDraining(ex)) return;
    inFlight++;
    readBody(ex, contentLength, config.maxBodyBytes)
      .then(async (buf) => {
        const auth = await guard.authenticate(facts, buf);
        const raw = query.get('count') ?? '1';
        if (!/^[0-9]{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_MINT) throw new PushError(Errors.INVALID_MINT, `Got ${JSON.stringify(raw.slice(0, 20))}.`);
        await guard.admit(auth);
        const ids = Array.from({ length: Number(raw) }, () => mintChannelId());
        const times = await backend.channels.create(ids);
        const channels = ids.map((id, i) => {
          const created = times.created[i] ?? times.now;
          return { id, signed: signChannel(id, channelSecret), created, writableUntil: created + config.channelWriteS * 1000, readableUntil: created + config.channelReadS * 1000 };
        });
        ex.send(200, JSON.stringify({ serverTime: times.now, channels }), [...CORS_ANY, ['Content-Type', 'application/json']]);
      })
      .catch((err: unknown) => {
        if (ex.aborted) return;
        reject(ex, err);
      })
      .finally(() => inFlight--);
  }

  const app: TemplatedApp = uws.App();
  app.post(MINT_PATH, mint);
  app.any(MINT_PATH, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  for (const path of PUBLISH_PATHS) {
    app.post(path, publish);
    app.get(path, onlineStatus);
    app.any(path, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  }
  for (const path of REST_PATHS) {
    app.post(path, (res, req) => {
      counters.requests++;
      if (draining) {
        refuseWhileDraining(new Exchange(res));
        return;
      }
      inFlight++;
      const endTimer = metrics.publishDuration.startTimer();
      void handleRest(res, req, restDeps, reject, (n) => {
        counters.published += n;
        metrics.requests.inc({ result: 'ok' });
        endTimer();
      }).finally(() => inFlight--);
    });
    app.options(path, (res) => void new Exchange(res).send(200, '', REST_PREFLIGHT));
    app.any(path, (res) => void new Exchange(res).sendError(Errors.METHOD_NOT_ALLOWED));
  }
  const serverStat = (res: HttpResponse): void => {
    const ex = new Exchange(res);
    backend.stats.list().then(
      (list) => ex.send(200, JSON.stringify(list), [...CORS_ANY, TEXT]),
      (err: unknown) => reject(ex, err),
    );
  };
  app.get('/server-stat', serverStat);
  app.get('/server-stat/*', serverStat);
  serveMetrics(app, metrics.registry);
  const statusPage = serveStatusPage(app, { stats: backend.stats, ping: () => store.ping(), backend: backend.kind, log: log.child({ component: 'status-page' }) });
  registerCommonRoutes(app, { isDraining: () => draining, ping: () => store.ping() });
  const { socket: listenSocket, port } = await listen(uws, app, config.host, config.port);
  const redisProbe = startRedisProbe(metrics, () => store.ping());
  const publishRate = new RateMeter();
  const reporter = every(config.statsIntervalS * 1000, log.child({ component: 'stats' }), 'stats report', () =>
    backend.stats.report({
      pid: process.pid,
      date: Date.now(),
      processUniqueId,
      type: 'publisher',
      port,
      websockets: 0,
      pollings: 0,
      channels: 0,
      messages: { published: counters.published, rejected: counters.rejected, unavailable: counters.unavailable, byType: Object.fromEntries(counters.byType) },
      // Extra fields for the status page; Bitrix readers of /server-stat/ ignore them.
      rates: { published: publishRate.rate(counters.published, Date.now()) },
      draining,
    }),
  );

  return {
    port,
    processUniqueId,
    async stop(): Promise<void> {
      // Stop accepting (readiness 503, new publishes 503 so nginx retries them elsewhere, listen
      // socket closed), let in-flight publishes reach Redis and be acknowledged, then go.
      draining = true;
      metrics.draining.set(1);
      uws.us_listen_socket_close(listenSocket);
      reporter.stop();
      redisProbe.stop();
      statusPage.stop();
      placement.close();
      // Leave a second of the grace period for closing the Redis connections.
      const deadline = Date.now() + Math.max(500, config.shutdownGraceMs - 1000);
      while (inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await backend.stats.remove(processUniqueId).catch(() => {});
    },
  };
}
