import type { KeyObject } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ed25519PublicKey, threadPoolEd25519, type Ed25519Check, type PublishKeySpec } from '@push/protocol';
import type { Logger } from '@push/runtime';
import { packBatch, type BatchEntry, type VerifyWorkerData } from './ed25519-wire.js';

/**
 * The worker script next to this module. Under the test runner this module is TypeScript source,
 * and a worker thread does not inherit the runner's TypeScript loader: it runs the built file
 * (npm test builds first).
 */
const WORKER_URL = fileURLToPath(import.meta.url).endsWith('.ts') ? new URL('../../dist/auth/ed25519-worker.js', import.meta.url) : new URL('./ed25519-worker.js', import.meta.url);
/**
 * Batches a thread may have queued at once: while it checks one, the next is already waiting in its
 * message queue, so the thread never idles for a round trip through the busy event loop.
 */
const IN_FLIGHT_PER_THREAD = 2;
const MAX_BATCH = 256;
const RESPAWN_DELAY_MS = 1000;

interface Check extends BatchEntry {
  readonly keyId: string;
  readonly key: KeyObject;
  readonly resolve: (ok: boolean) => void;
  readonly reject: (err: unknown) => void;
}

interface Thread {
  readonly worker: Worker;
  /** Batches posted and not answered yet, oldest first (a worker answers in order). */
  readonly inFlight: Check[][];
  alive: boolean;
  /** Whether it ever answered: a thread that dies before that cannot start here, and is not retried. */
  answered: boolean;
}

/**
 * Ed25519 verification on dedicated worker threads, in batches.
 *
 * The default (one libuv thread-pool job per signature) costs the event loop about 20 us per check
 * on top of the ~75-140 us the check itself takes elsewhere: queueing the job, waking a pool thread,
 * the completion callback. Here checks that arrive while the threads are busy wait in one queue
 * and travel as one message, so under load the event loop pays per batch, not per check, and the
 * verifying threads (as many as configured, one suits a 2-core box) never contend with each other.
 *
 * A thread that dies is replaced; the checks it held are redone in the thread pool, so a crash
 * costs time, never a wrong answer or a failed publish. One that cannot start at all (it died
 * before answering anything) is not retried: its share goes to the thread pool for good.
 */
export class Ed25519Threads {
  private readonly keyIndex = new Map<string, number>();
  private readonly spkiKeys: Uint8Array[] = [];
  private readonly threads: Thread[] = [];
  private readonly queue: Check[] = [];
  private closed = false;

  constructor(
    keys: readonly PublishKeySpec[],
    count: number,
    private readonly log: Logger,
  ) {
    for (const k of keys) {
      if (k.algorithm !== 'ed25519') continue;
      this.keyIndex.set(k.id, this.spkiKeys.length);
      this.spkiKeys.push(ed25519PublicKey(k.material).export({ type: 'spki', format: 'der' }));
    }
    for (let i = 0; i < count; i++) this.spawn();
  }

  /** The live worker threads (tests stop one to check recovery). */
  get workers(): readonly Worker[] {
    return this.threads.map((t) => t.worker);
  }

  /** Batches posted to the threads so far: fewer than checks once they queue up under load. */
  batches = 0;

  readonly check: Ed25519Check = (keyId, key, data, signature) => {
    const keyIndex = this.keyIndex.get(keyId);
    if (this.closed || keyIndex === undefined || signature.length !== 64) return threadPoolEd25519(keyId, key, data, signature);
    return new Promise<boolean>((resolve, reject) => {
      this.queue.push({ keyId, key, keyIndex, data, signature, resolve, reject });
      this.dispatch();
    });
  };

  /** Stops the threads; checks still queued or in flight are finished in the thread pool. */
  async close(): Promise<void> {
    this.closed = true;
    const threads = this.threads.splice(0);
    const stranded = this.queue.splice(0);
    for (const t of threads) {
      t.alive = false;
      for (const batch of t.inFlight.splice(0)) stranded.push(...batch);
    }
    redo(stranded);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private spawn(): void {
    if (this.closed) return;
    const workerData: VerifyWorkerData = { spkiKeys: this.spkiKeys };
    const worker = new Worker(WORKER_URL, { workerData });
    // The publisher's own handles decide when the process may exit, not this helper.
    worker.unref();
    const thread: Thread = { worker, inFlight: [], alive: true, answered: false };
    this.threads.push(thread);
    worker.on('message', (results: Uint8Array) => {
      thread.answered = true;
      const batch = thread.inFlight.shift();
      if (batch !== undefined) batch.forEach((c, i) => c.resolve(results[i] === 1));
      this.dispatch();
    });
    const lost = (why: string): void => {
      if (!thread.alive) return;
      thread.alive = false;
      this.threads.splice(this.threads.indexOf(thread), 1);
      const stranded = thread.inFlight.splice(0).flat();
      redo(stranded);
      this.dispatch();
      if (!thread.answered) {
        this.log.error({ stranded: stranded.length }, `signature thread ${why} before its first answer; Ed25519 checks of this slot stay in the thread pool`);
        return;
      }
      this.log.error({ stranded: stranded.length }, `signature thread ${why}; its checks go to the thread pool, a new thread starts in ${RESPAWN_DELAY_MS} ms`);
      setTimeout(() => this.spawn(), RESPAWN_DELAY_MS).unref();
    };
    worker.on('error', (err) => lost(`failed: ${err.message}`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
  }

  /** Hands queued checks to threads with room; with no thread up, to the thread pool. */
  private dispatch(): void {
    if (this.queue.length === 0) return;
    if (this.threads.length === 0) {
      redo(this.queue.splice(0));
      return;
    }
    for (const t of this.threads) {
      while (this.queue.length > 0 && t.inFlight.length < IN_FLIGHT_PER_THREAD) {
        const batch = this.queue.splice(0, MAX_BATCH);
        t.inFlight.push(batch);
        this.batches++;
        const packed = packBatch(batch);
        t.worker.postMessage(packed, [packed.buffer as ArrayBuffer]);
      }
    }
  }
}

function redo(checks: readonly Check[]): void {
  for (const c of checks) threadPoolEd25519(c.keyId, c.key, Buffer.from(c.data), Buffer.from(c.signature)).then(c.resolve, c.reject);
}
