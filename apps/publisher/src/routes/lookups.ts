import { Errors, PushError, mintChannelId, parsePublisherChannels, signChannel, type ChannelSecret } from '@push/protocol';
import type { Backend } from '@push/backend';
import { CORS_ANY, Exchange, parseQuery, readBody, type HttpRequest, type HttpResponse } from '@push/runtime';
import type { RequestGuard } from '../auth/publish-guard.js';
import { answerError, type PipelineHost } from './publish-pipeline.js';

/**
 * The publisher's two authenticated requests that are not publishes: online status
 * (`GET /pub?CHANNEL_ID=a/b`) and channel minting (`POST /channels?count=N`). Like a publish they
 * are checked completely first; their one write before acting is a signed request's nonce claim.
 */
export interface LookupDeps {
  readonly guard: RequestGuard;
  readonly backend: Backend;
  readonly host: PipelineHost;
  readonly maxChannels: number;
  readonly channelSecret: ChannelSecret;
  readonly channelWriteS: number;
  readonly channelReadS: number;
}

/** Channel minting (docs/security.md): POST /channels?count=N, authenticated like a publish. */
export const MINT_PATH = '/channels';
const MAX_MINT = 100;
const NO_BODY = Buffer.alloc(0);
const TEXT = ['Content-Type', 'text/plain; charset=utf-8'] as const;

/** Runs `work` as an in-flight request (unless draining) and answers its errors. */
function guarded(ex: Exchange, host: PipelineHost, work: () => Promise<void>): void {
  if (host.isDraining()) {
    host.metrics.requests.inc({ result: 'draining' });
    ex.sendError(Errors.SHUTTING_DOWN, [['Retry-After', '1']], true);
    return;
  }
  host.enter();
  work()
    .catch((err: unknown) => {
      if (!ex.aborted) answerError(ex, err, host);
    })
    .finally(() => host.leave());
}

export function onlineStatusHandler(d: LookupDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const query = parseQuery(req.getQuery() ?? '');
    const facts = d.guard.capture(res, req);
    const ex = new Exchange(res);
    guarded(ex, d.host, async () => {
      const auth = await d.guard.authenticate(facts, NO_BODY);
      const channels = parsePublisherChannels(query.get('CHANNEL_ID') ?? null, d.maxChannels);
      await d.guard.admit(auth);
      const flags = await d.backend.presence.online(channels);
      const infos = channels.filter((_, i) => flags[i]).map((channel) => ({ channel, subscribers: 1 }));
      ex.send(200, JSON.stringify({ infos }), [...CORS_ANY, TEXT]);
    });
  };
}

/** Mints fresh channel ids, records their creation (Redis time) and returns them signed for subscribers. */
export function mintHandler(d: LookupDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const query = parseQuery(req.getQuery() ?? '');
    const contentLength = req.getHeader('content-length');
    const facts = d.guard.capture(res, req);
    const ex = new Exchange(res);
    d.host.counted('request');
    guarded(ex, d.host, async () => {
      const buf = await readBody(ex, contentLength, d.host.maxBodyBytes);
      const auth = await d.guard.authenticate(facts, buf);
      const raw = query.get('count') ?? '1';
      if (!/^[0-9]{1,3}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_MINT) throw new PushError(Errors.INVALID_MINT, `Got ${JSON.stringify(raw.slice(0, 20))}.`);
      await d.guard.admit(auth);
      const ids = Array.from({ length: Number(raw) }, () => mintChannelId());
      const times = await d.backend.channels.create(ids);
      const channels = ids.map((id, i) => {
        const created = times.created[i] ?? times.now;
        return { id, signed: signChannel(id, d.channelSecret), created, writableUntil: created + d.channelWriteS * 1000, readableUntil: created + d.channelReadS * 1000 };
      });
      ex.send(200, JSON.stringify({ serverTime: times.now, channels }), [...CORS_ANY, ['Content-Type', 'application/json']]);
    });
  };
}
