import { randomBytes } from 'node:crypto';
import { authHeaders, canonicalString, ed25519PrivateKey, ed25519SignHex, hmacSignHex, sha256Hex } from '@push/protocol';
import { benchBody, nowUs } from './bench-body.js';
import { channelName } from './channels.js';
import { Histogram } from './histogram.js';
import { HttpLane } from './http-lane.js';
import { serve } from './ipc.js';
import { messagesPerRequest, shapeRequest, type PublishKind, type PublishShape } from './publish-shape.js';

/**
 * The publish driver (its own process): the portal side of a benchmark. Lanes publish in
 * parallel, each to its own slice of the channels and one request at a time, so every channel's
 * messages are accepted in sequence order and a subscriber may rightly demand them in that order.
 * With a rate the schedule is open-loop: each message is stamped with the moment it was due, so
 * time spent waiting behind a slow server counts as latency instead of silently lowering the load.
 */

export interface PublishTarget {
  readonly kind: PublishKind;
  /** Base URLs of the publishers (push), of nginx (nchan) or of the publisher process (bitrix); lanes are spread over them. */
  readonly urls: readonly string[];
  readonly prefix: string;
  /** Push only: how requests are signed (docs/security.md); null = unsigned, from a trusted address. */
  readonly auth: { readonly keyId: string; readonly algorithm: 'ed25519' | 'hmac-sha256'; readonly secret: string } | null;
}

export interface PublishPlan {
  readonly channels: number;
  /** Channels per message (picked at random within the lane's slice). */
  readonly fanout: number;
  readonly lanes: number;
  /** The request shape (publish-shape.ts); the single-message shapes ignore `batch`. */
  readonly shape: PublishShape;
  /** Messages per request of the batch shape (`POST /pub/batch`). */
  readonly batch: number;
  /**
   * With a rate: a lane starts at most one request per this many ms, carrying everything that fell
   * due meanwhile (up to `batch`), as a portal that flushes its outgoing queue on a timer does.
   * 0 = the next request leaves as soon as the previous one is answered.
   */
  readonly tickMs?: number;
  /** Messages per second over all lanes; 0 = as fast as the server accepts (closed loop). */
  readonly rate: number;
  readonly seconds: number;
  readonly bodyBytes: number;
  /** Message-Expiry in seconds (0 = live only). */
  readonly expiry: number;
  /** Sign this many requests before the clock starts (ingest: the generator's signing cost is not the server's). */
  readonly presign: number;
}

interface Prepared {
  /** The whole HTTP request, ready to write. */
  bytes: Buffer;
  messages: number;
}

let target: PublishTarget;
/** One connection per lane, kept across runs. */
const lanes = new Map<number, HttpLane>();
/** Sequence numbers per channel, cumulative over the driver's runs (subscribers count from 1). */
let seqs: Int32Array = new Int32Array(0);
let signKey: ReturnType<typeof ed25519PrivateKey> | Buffer | null = null;
/** Set by the `stop` command: lanes finish their request in flight and return. */
let stopRequested = false;
/** Messages handed to requests by the current run so far (the coordinator's lag estimate). */
let madeInRun = 0;

function laneFor(index: number): HttpLane {
  let l = lanes.get(index);
  if (l === undefined) {
    const u = new URL(target.urls[index % target.urls.length] as string);
    l = new HttpLane(u.hostname, Number(u.port));
    lanes.set(index, l);
  }
  return l;
}

function sign(method: string, path: string, body: Buffer): Record<string, string> {
  const auth = target.auth;
  if (auth === null || signKey === null) return {};
  const ts = Math.floor(Date.now() / 1000);
  const nonce = randomBytes(12).toString('base64url');
  const canonical = canonicalString({ method, target: path, timestamp: ts, nonce, keyId: auth.keyId, bodySha256: sha256Hex(body) });
  const sig = auth.algorithm === 'ed25519' ? ed25519SignHex(signKey as ReturnType<typeof ed25519PrivateKey>, canonical) : hmacSignHex(signKey as Buffer, canonical);
  return authHeaders(auth.keyId, ts, nonce, sig);
}

/** Builds one request carrying `messages` (each with its channel list), in the target's form and the plan's shape. */
function build(lane: HttpLane, messages: ReadonlyArray<{ channels: number[]; body: string }>, plan: PublishPlan): Prepared {
  const name = (c: number): string => channelName(target.prefix, c);
  const r = shapeRequest(target.kind, plan.shape, messages.map((m) => ({ channels: m.channels.map(name), body: m.body })), plan.expiry);
  const headers = { ...r.headers, ...sign(r.method, r.path, r.body) };
  return { bytes: HttpLane.build(lane.host, lane.port, r.method, r.path, headers, r.body), messages: r.messages };
}

/** `count` distinct channels of the slice, at random. */
function pick(slice: readonly number[], count: number): number[] {
  if (count >= slice.length) return [...slice];
  const out = new Set<number>();
  while (out.size < count) out.add(slice[Math.floor(Math.random() * slice.length)] as number);
  return [...out];
}

/** Requests signed by the `presign` command, per lane, for the next run. */
let presigned: Prepared[][] | null = null;

function slicesOf(plan: PublishPlan): number[][] {
  if (plan.channels / plan.lanes < plan.fanout) throw new Error(`${plan.channels} channels cannot give ${plan.lanes} lanes ${plan.fanout} channels each`);
  if (seqs.length !== plan.channels) seqs = new Int32Array(plan.channels);
  const slices: number[][] = Array.from({ length: plan.lanes }, () => []);
  for (let c = 0; c < plan.channels; c++) slices[c % plan.lanes]?.push(c);
  return slices;
}

function maker(plan: PublishPlan) {
  return (li: number, slice: readonly number[], n: number, dueUs: (k: number) => number): Prepared => {
    const msgs: Array<{ channels: number[]; body: string }> = [];
    // Built right before it is written (signing included), except requests signed ahead (ingest).
    const builtUs = nowUs();
    for (let k = 0; k < n; k++) {
      const chans = pick(slice, plan.fanout);
      const targets = chans.map((c) => [c, ++seqs[c]!] as const);
      msgs.push({ channels: chans, body: benchBody(dueUs(k), builtUs, targets, plan.bodyBytes) });
    }
    return build(laneFor(li), msgs, plan);
  };
}

/** Signs `plan.presign` requests ahead, dealt to the lanes in order (ingest). */
function presign(plan: PublishPlan): void {
  const slices = slicesOf(plan);
  const make = maker(plan);
  const perRequest = messagesPerRequest(plan.shape, plan.batch);
  const ready: Prepared[][] = slices.map(() => []);
  const stamp = nowUs();
  for (let i = 0; i < plan.presign; i++) {
    const lane = i % plan.lanes;
    (ready[lane] as Prepared[]).push(make(lane, slices[lane] as number[], perRequest, () => stamp));
  }
  presigned = ready;
}

async function run(plan: PublishPlan): Promise<Record<string, unknown>> {
  const slices = slicesOf(plan);
  const make = maker(plan);
  const perRequest = messagesPerRequest(plan.shape, plan.batch);

  // Ingest: requests signed ahead by `presign` (before the clock and the CPU sampling start).
  const ready: Prepared[][] = presigned ?? slices.map(() => []);
  presigned = null;
  const readyAt = slices.map(() => 0);

  const accept = new Histogram();
  let requests = 0;
  let messages = 0;
  let errors = 0;
  let firstError = '';
  let maxBehindMs = 0;
  let presignedUsed = 0;
  stopRequested = false;
  madeInRun = 0;
  const startUs = nowUs();
  const endUs = startUs + plan.seconds * 1e6;
  const laneRate = plan.rate / plan.lanes;

  const lane = async (li: number): Promise<void> => {
    const slice = slices[li] as number[];
    const conn = laneFor(li);
    let made = 0;
    let lastSentUs = 0;
    const tickUs = (plan.tickMs ?? 0) * 1000;
    for (;;) {
      const now = nowUs();
      if (now >= endUs || stopRequested) return;
      let p: Prepared;
      if (laneRate > 0 && now - lastSentUs < tickUs) {
        await new Promise((r) => setTimeout(r, Math.max(1, (lastSentUs + tickUs - now) / 1000)));
        continue;
      }
      if (laneRate > 0) {
        // Message k of the lane is due at k / laneRate seconds (the first at once).
        const due = Math.floor(((now - startUs) / 1e6) * laneRate) + 1 - made;
        if (due <= 0) {
          const nextUs = startUs + (made / laneRate) * 1e6;
          await new Promise((r) => setTimeout(r, Math.max(1, (nextUs - now) / 1000)));
          continue;
        }
        const n = Math.min(due, perRequest);
        const first = made;
        maxBehindMs = Math.max(maxBehindMs, (now - (startUs + (first / laneRate) * 1e6)) / 1000);
        p = make(li, slice, n, (k) => Math.round(startUs + ((first + k) / laneRate) * 1e6));
      } else {
        // In creation order: each lane's channels must see their sequence numbers ascending.
        const pre = (ready[li] as Prepared[])[readyAt[li] as number];
        readyAt[li] = (readyAt[li] as number) + 1;
        if (pre !== undefined) presignedUsed++;
        const stamp = nowUs();
        p = pre ?? make(li, slice, perRequest, () => stamp);
      }
      made += p.messages;
      madeInRun += p.messages;
      const t0 = nowUs();
      lastSentUs = t0;
      const res = await conn.request(p.bytes);
      accept.record(nowUs() - t0);
      requests++;
      if (res.status === 200 || res.status === 201 || res.status === 202) messages += p.messages;
      else {
        errors++;
        if (firstError === '') firstError = `HTTP ${res.status} ${res.text.slice(0, 200)}`;
      }
    }
  };
  await Promise.all(Array.from({ length: plan.lanes }, (_, i) => lane(i)));
  const seconds = (nowUs() - startUs) / 1e6;
  return {
    seconds,
    stopped: stopRequested,
    requests,
    messages,
    errors,
    firstError,
    presignedUsed,
    presignRanOut: plan.presign > 0 && presignedUsed >= plan.presign,
    maxBehindMs: Math.round(maxBehindMs),
    accept: accept.toJSON(),
    seqs: Array.from(seqs),
  };
}

serve({
  setup(req) {
    target = req['target'] as PublishTarget;
    const auth = target.auth;
    if (auth !== null) signKey = auth.algorithm === 'ed25519' ? ed25519PrivateKey(Buffer.from(auth.secret, 'base64')) : Buffer.from(auth.secret, 'utf8');
    return {};
  },
  run(req) {
    return run(req['plan'] as PublishPlan);
  },
  presign(req) {
    presign(req['plan'] as PublishPlan);
    return {};
  },
  progress() {
    return { made: madeInRun };
  },
  stop() {
    stopRequested = true;
    return {};
  },
});
