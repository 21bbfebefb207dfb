import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect, type AddressInfo, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';

/**
 * `node tools/loadgen/dist/pingpong.js`: what one wake-up costs on this machine. Two node processes
 * bounce one byte over loopback TCP, back to back and with a pause before each round trip, and the
 * CPU both used (from /proc/<pid>/stat) is divided by the round trips. Every delivery of a push
 * server pays a few of these hops, so this figure explains why per-message costs fall as load rises
 * (docs/benchmarks.md, private). Linux only.
 */

const CLK_TCK = 100;

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return Number(fields[11]) + Number(fields[12]);
}

async function main(): Promise<void> {
  const child = fork(fileURLToPath(import.meta.url), ['echo'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)));
  const sock = connect(port, '127.0.0.1');
  sock.setNoDelay(true);
  await new Promise((resolve) => sock.once('connect', resolve));
  const pids = [process.pid, child.pid as number];
  const round = (s: Socket): Promise<unknown> =>
    new Promise((resolve) => {
      s.once('data', resolve);
      s.write('x');
    });
  for (const [count, pauseMs] of [[20_000, 0], [2_000, 1], [1_000, 2], [20_000, 0]] as const) {
    const cpu0 = pids.reduce((s, p) => s + cpuTicks(p), 0);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) {
      if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      await round(sock);
    }
    const cpuUs = ((pids.reduce((s, p) => s + cpuTicks(p), 0) - cpu0) / CLK_TCK) * 1e6;
    const wallUs = (performance.now() - t0) * 1000;
    process.stdout.write(`pause ${pauseMs} ms: ${count} round trips, ${(cpuUs / count).toFixed(1)} µs CPU per round trip (both processes), ${(wallUs / count - pauseMs * 1000).toFixed(0)} µs wall each beyond the pause\n`);
  }
  sock.destroy();
  child.kill();
}

if (process.argv[2] === 'echo') {
  const srv = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
  });
  srv.listen(0, '127.0.0.1', () => process.send?.((srv.address() as AddressInfo).port));
} else {
  await main();
}
