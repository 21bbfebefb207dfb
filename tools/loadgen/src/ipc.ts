import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The coordinator talks to its worker processes (subscriber workers and the publish driver) with
 * request/response messages over the Node IPC channel: `{ id, cmd, ... }` in, `{ id, ok, ... }`
 * or `{ id, error }` out.
 */
export interface Request {
  id: number;
  cmd: string;
  [k: string]: unknown;
}

export class Remote {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  readonly exited: Promise<number | null>;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
  ) {
    proc.on('message', (m: Record<string, unknown>) => {
      const w = this.waiting.get(m['id'] as number);
      if (w === undefined) return;
      this.waiting.delete(m['id'] as number);
      if (typeof m['error'] === 'string') w.reject(new Error(`${name}: ${m['error']}`));
      else w.resolve(m);
    });
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code) => {
        for (const w of this.waiting.values()) w.reject(new Error(`${name} exited with ${code}`));
        this.waiting.clear();
        resolve(code);
      }),
    );
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  call<T = Record<string, unknown>>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: Record<string, unknown>) => void, reject });
      this.proc.send({ id, cmd, ...args });
    });
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(t);
  }
}

/** Node options for the load generator's own children (`--profile` profiles them too). */
let childExecArgv: string[] = [];
export function profileChildren(dir: string): void {
  childExecArgv = ['--cpu-prof', '--cpu-prof-dir', dir];
}

/** Forks one of this package's entry points (worker.js, driver.js, floor-server.js) as a child with IPC. */
export function forkRemote(entry: 'worker' | 'driver' | 'floor-server', name: string): Remote {
  const file = fileURLToPath(new URL(`./${entry}.js`, import.meta.url));
  return new Remote(name, fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced', execArgv: childExecArgv }));
}

/** The child side: dispatches requests to handlers and replies with their result or error. */
export function serve(handlers: Record<string, (req: Request) => Promise<Record<string, unknown>> | Record<string, unknown>>): void {
  process.on('message', (req: Request) => {
    const h = handlers[req.cmd];
    Promise.resolve()
      .then(() => {
        if (h === undefined) throw new Error(`unknown command ${req.cmd}`);
        return h(req);
      })
      .then(
        (res) => process.send?.({ ...res, id: req.id }),
        (err: Error) => process.send?.({ id: req.id, error: err.message }),
      );
  });
  process.on('SIGTERM', () => process.exit(0));
  // The coordinator died: do not linger holding thousands of sockets.
  process.on('disconnect', () => process.exit(0));
}
