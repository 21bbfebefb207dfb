import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy between a process and Redis (or anything) that can stall connections without
 * closing them: a stalled connection stops forwarding in both directions and stops reading (so
 * the peers see an open, silent socket, as behind a stalled NAT entry or firewall), and forwards
 * what it held once resumed. Connections are selected by what the client sent first (e.g. the
 * `CLIENT SETNAME push-sub` a listener's subscriber connection starts with), so one process's
 * subscriber path can stall while its command connection keeps working.
 */
export interface TcpProxy {
  readonly port: number;
  /** `redis://127.0.0.1:<port>` for processes that should connect through the proxy. */
  readonly url: string;
  /** Stalls every current and future connection whose first client bytes contain `match` ('' = all). */
  stall(match?: string): void;
  /** Ends the stall: held bytes are forwarded and reading resumes. */
  resume(): void;
  /** Connections currently open whose first client bytes contain `match`. */
  open(match?: string): number;
  close(): Promise<void>;
}

interface Pipe {
  readonly client: Socket;
  readonly upstream: Socket;
  /** The first bytes the client sent (up to HEAD_BYTES), to select connections by. */
  head: string;
  stalled: boolean;
  readonly held: { toUpstream: Buffer[]; toClient: Buffer[] };
}

const HEAD_BYTES = 1024;

export async function startTcpProxy(targetPort: number, targetHost = '127.0.0.1'): Promise<TcpProxy> {
  const pipes = new Set<Pipe>();
  let stallMatch: string | null = null;
  const matches = (p: Pipe, m: string): boolean => m === '' || p.head.includes(m);
  const apply = (p: Pipe): void => {
    if (p.stalled || stallMatch === null || !matches(p, stallMatch)) return;
    p.stalled = true;
    p.client.pause();
    p.upstream.pause();
  };
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, targetHost);
    const p: Pipe = { client, upstream, head: '', stalled: false, held: { toUpstream: [], toClient: [] } };
    pipes.add(p);
    client.on('data', (d: Buffer) => {
      if (p.head.length < HEAD_BYTES) p.head += d.toString('latin1', 0, Math.min(d.length, HEAD_BYTES));
      apply(p);
      if (p.stalled) p.held.toUpstream.push(d);
      else upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (p.stalled) p.held.toClient.push(d);
      else client.write(d);
    });
    const end = (): void => {
      pipes.delete(p);
      client.destroy();
      upstream.destroy();
    };
    client.on('close', end);
    upstream.on('close', end);
    client.on('error', end);
    upstream.on('error', end);
    // A connection opened during a stall that matches everything is stalled from its first byte.
    apply(p);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stall(match = '') {
      stallMatch = match;
      for (const p of pipes) apply(p);
    },
    resume() {
      stallMatch = null;
      for (const p of pipes) {
        if (!p.stalled) continue;
        p.stalled = false;
        for (const d of p.held.toUpstream.splice(0)) p.upstream.write(d);
        for (const d of p.held.toClient.splice(0)) p.client.write(d);
        p.client.resume();
        p.upstream.resume();
      }
    },
    open(match = '') {
      return [...pipes].filter((p) => matches(p, match)).length;
    },
    async close() {
      for (const p of pipes) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
