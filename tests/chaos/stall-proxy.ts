import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy on loopback in front of Redis that can go silent: `stall()` stops forwarding on
 * every connection open at that moment, in both directions, without closing anything, the way a
 * dropped network path or a wedged middlebox looks to both ends (the bytes wait in the kernel's
 * buffers; nothing is lost, nothing arrives). Connections opened later are forwarded normally, so
 * a client that notices and reconnects gets through. `resume()` lets the stalled ones flow again.
 */
export class StallProxy {
  private readonly pairs = new Set<[Socket, Socket]>();
  /** The first bytes each client sent (its `CLIENT SETNAME` names the connection's role). */
  private readonly heads = new Map<[Socket, Socket], string>();
  private readonly stalled = new Set<[Socket, Socket]>();
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static listen(targetPort: number): Promise<StallProxy> {
    return new Promise((resolve, reject) => {
      let proxy: StallProxy;
      const server = createServer((client) => {
        const upstream = connect(targetPort, '127.0.0.1');
        const pair: [Socket, Socket] = [client, upstream];
        proxy.pairs.add(pair);
        const close = (): void => {
          proxy.pairs.delete(pair);
          proxy.stalled.delete(pair);
          proxy.heads.delete(pair);
          client.destroy();
          upstream.destroy();
        };
        client.on('data', (d: Buffer) => {
          const head = proxy.heads.get(pair) ?? '';
          if (head.length < 512) proxy.heads.set(pair, head + d.toString('latin1', 0, Math.min(d.length, 512)));
          upstream.write(d);
        });
        upstream.on('data', (d) => client.write(d));
        for (const s of pair) {
          s.on('error', close);
          s.on('close', close);
        }
      });
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const addr = server.address();
        proxy = new StallProxy(server, typeof addr === 'object' && addr !== null ? addr.port : 0);
        resolve(proxy);
      });
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Connections currently open through the proxy. */
  get open(): number {
    return this.pairs.size;
  }

  /**
   * Freezes every open connection, or only those whose first bytes contain `match` (a listener's
   * subscriber connection starts with `CLIENT SETNAME push-sub`); returns how many are frozen.
   */
  stall(match = ''): number {
    for (const pair of this.pairs) {
      if (!(this.heads.get(pair) ?? '').includes(match)) continue;
      pair[0].pause();
      pair[1].pause();
      this.stalled.add(pair);
    }
    return this.stalled.size;
  }

  /** Lets the frozen connections (those still open) flow again. */
  resume(): void {
    for (const pair of this.stalled) {
      pair[0].resume();
      pair[1].resume();
    }
    this.stalled.clear();
  }

  close(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
