import { connect, type Socket } from 'node:net';

export interface LaneResponse {
  /** HTTP status, or 0 when the connection failed. */
  status: number;
  text: string;
}

/**
 * One keep-alive HTTP/1.1 connection that sends one request at a time: a lane of the publish
 * driver. node:http costs about as much CPU per request as the server's whole publish path, and
 * on a shared two-core machine the generator's cost is taken from the server; this writes
 * prepared bytes and reads back the status line, the headers and a Content-Length body, nothing
 * else. A response without Content-Length (chunked) is not supported: neither server sends one.
 */
export class HttpLane {
  private sock: Socket | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: ((r: LaneResponse) => void) | null = null;

  constructor(
    readonly host: string,
    readonly port: number,
  ) {}

  /** `head` is everything up to and including the blank line; `body` follows it. */
  static build(host: string, port: number, method: string, path: string, headers: Readonly<Record<string, string>>, body: string | Buffer): Buffer {
    const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
    let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nContent-Length: ${payload.length}\r\n`;
    for (const [k, v] of Object.entries(headers)) head += `${k}: ${v}\r\n`;
    return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), payload]);
  }

  request(bytes: Buffer): Promise<LaneResponse> {
    if (this.waiting !== null) throw new Error('one request at a time per lane');
    return new Promise((resolve) => {
      this.waiting = resolve;
      this.socket().write(bytes);
    });
  }

  close(): void {
    this.sock?.destroy();
    this.sock = null;
  }

  private socket(): Socket {
    if (this.sock !== null && !this.sock.destroyed) return this.sock;
    const s = connect({ host: this.host, port: this.port, noDelay: true });
    this.buf = Buffer.alloc(0);
    s.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    const fail = (text: string): void => {
      if (this.sock === s) this.sock = null;
      const w = this.waiting;
      this.waiting = null;
      w?.({ status: 0, text });
    };
    s.on('error', (err) => fail(err.message));
    s.on('close', () => fail('connection closed'));
    this.sock = s;
    return s;
  }

  private parse(): void {
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const len = Number(/\r\ncontent-length:[ \t]*(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buf.length < end + 4 + len) return;
    const status = Number(head.slice(9, 12));
    const text = this.buf.toString('utf8', end + 4, end + 4 + len);
    this.buf = this.buf.subarray(end + 4 + len);
    if (/\r\nconnection:[ \t]*close/i.test(head)) this.close();
    const w = this.waiting;
    this.waiting = null;
    w?.({ status: Number.isFinite(status) ? status : 0, text });
  }
}
