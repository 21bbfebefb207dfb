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
 * prepared bytes and reads back the status line, the headers and the body (Content-Length, or
 * chunked: the Bitrix push server 1.0 answers its publishes with an empty chunked body), nothing else.
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
    for (;;) {
      const r = parseResponse(this.buf);
      if (r === null) return;
      this.buf = this.buf.subarray(r.consumed);
      if (r.close) this.close();
      const w = this.waiting;
      this.waiting = null;
      w?.({ status: r.status, text: r.text });
    }
  }
}

/**
 * One complete HTTP/1.1 response at the start of `buf`, or null while it is incomplete: its status
 * (0 when unreadable), its body as text and how many bytes it took. Bodies are Content-Length or
 * chunked (chunk extensions and trailers skipped); without either, the body is empty.
 */
export function parseResponse(buf: Buffer): { status: number; text: string; consumed: number; close: boolean } | null {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const head = buf.toString('latin1', 0, end);
  const statusNum = Number(head.slice(9, 12));
  const status = /^HTTP\/1\.[01] \d{3}/.test(head) && Number.isFinite(statusNum) ? statusNum : 0;
  const close = /\r\nconnection:[ \t]*close/i.test(head);
  if (/\r\ntransfer-encoding:[ \t]*chunked/i.test(head)) {
    const parts: Buffer[] = [];
    let at = end + 4;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', at);
      if (lineEnd < 0) return null;
      const size = parseInt(buf.toString('latin1', at, lineEnd).split(';')[0] as string, 16);
      if (!Number.isFinite(size)) return { status: 0, text: 'unreadable chunk size', consumed: buf.length, close: true };
      at = lineEnd + 2;
      if (size === 0) {
        // Trailers (normally none) end with an empty line.
        const trailerEnd = buf.indexOf('\r\n', at);
        if (trailerEnd < 0) return null;
        if (trailerEnd === at) return { status, text: Buffer.concat(parts).toString('utf8'), consumed: at + 2, close };
        const blank = buf.indexOf('\r\n\r\n', at);
        if (blank < 0) return null;
        return { status, text: Buffer.concat(parts).toString('utf8'), consumed: blank + 4, close };
      }
      if (buf.length < at + size + 2) return null;
      parts.push(buf.subarray(at, at + size));
      at += size + 2;
    }
  }
  const len = Number(/\r\ncontent-length:[ \t]*(\d+)/i.exec(head)?.[1] ?? 0);
  if (buf.length < end + 4 + len) return null;
  return { status, text: buf.toString('utf8', end + 4, end + 4 + len), consumed: end + 4 + len, close };
}
