import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { netnsUnavailable, type Host } from '../helpers/netns.js';
import { eventually } from '../helpers/ports.js';
import { LISTENER_PORT, startInstallation, type Installation } from '../helpers/hosts.js';
import { connectionsOn, faultRunner, NGINX_READ_TIMEOUT_MS, SUITE_OPTIONS, type FaultRunner } from '../helpers/host-faults.js';
import type { ClientOutcome } from '../helpers/publish-stream.js';

/**
 * The same installation as multi-host-sentinel.test.ts (tests/helpers/hosts.ts), with the faults
 * of the application hosts: a listener host cut off the network (its connections neither close nor
 * answer: only timers notice, and the test measures whose), a listener host and the publisher host
 * restarted (every process killed with SIGKILL and started again). Same client mix, stream and
 * guarantees (tests/helpers/host-faults.ts); figures in docs/reliability.md ("Several hosts").
 */
const reason = await netnsUnavailable();

describe('several hosts, application host faults: two listener hosts and a publisher host behind nginx', { skip: reason ?? false }, () => {
  let inst: Installation;
  let run: FaultRunner;
  before(async () => {
    inst = await startInstallation(SUITE_OPTIONS);
    run = faultRunner(inst);
  });
  after(async () => {
    await inst?.stop();
  });

  it('a listener host cut off the network: its clients notice by their own timers and resume through nginx on the other one', async () => {
    let cut: Host | null = null;
    try {
      const { r, browserOn } = await run.streamAcross(
        'partition of a listener host',
        async (on) => {
          cut = inst.listenerHosts[on] as Host;
          await cut.link(false);
        },
        // The browser-like socket learns only from nginx's read timeout.
        { deliveryTimeoutMs: NGINX_READ_TIMEOUT_MS + 30_000 },
      );
      run.guarantees(r);
      const browser = r.clients[0] as ClientOutcome;
      console.log(`browser-like WebSocket on the cut host ${browserOn + 1}: connection given up ${run.ms(browser.droppedMs)} after the cut (nginx proxy_read_timeout ${NGINX_READ_TIMEOUT_MS} ms), resumed ${run.ms(browser.resumedMs)}`);
      // It cannot learn sooner than nginx gives up on the silent upstream, and does learn then.
      assert.ok(browser.droppedMs >= NGINX_READ_TIMEOUT_MS - 15_000, `the browser-like socket was closed by nginx's read timeout, not before (${browser.droppedMs} ms)`);
      // nginx says why in its error log.
      assert.match(inst.nginxErrors(), /upstream timed out/, 'nginx logs the timed-out upstream');
      // The cut listener can no longer report to Redis: /server-stat/ (and /status) through nginx
      // stop listing it once its last report is older than two intervals + 10 s (the stream above
      // lasted longer than that).
      const cutId = /"processUniqueId":"([^"]+)"/.exec((inst.listeners[browserOn] as { output(): string }).output())?.[1];
      assert.ok(cutId !== undefined, 'the listener logged its process id');
      const listed = async (): Promise<string[]> => ((await (await fetch(`${inst.front}/server-stat/`)).json()) as Array<{ processUniqueId: string }>).map((p) => p.processUniqueId);
      await eventually(async () => !(await listed()).includes(cutId), 20_000, 'the cut listener gone from /server-stat/');
    } finally {
      await (cut as Host | null)?.link(true);
    }
    // Back on the network, the listener serves again: ready, and its clients of before are gone.
    const back = cut as unknown as Host;
    await eventually(async () => (await fetch(`http://${back.addr}:${LISTENER_PORT}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, 30_000, 'the cut listener ready again');
    await eventually(async () => {
      const n = await connectionsOn(back);
      return n.ws === 0 && n.lp === 0;
    }, 60_000, 'the cut listener dropped the connections whose clients left during the cut');
  });

  it('a listener host restarted (every process killed and started again): its clients resume through nginx', async () => {
    let up: Promise<void> = Promise.resolve();
    const { r, browserOn } = await run.streamAcross('restart of a listener host', async (on) => {
      ({ up } = await inst.restartHost(inst.listenerHosts[on] as Host));
    });
    await up;
    run.guarantees(r);
    assert.ok((r.clients[0] as ClientOutcome).droppedMs >= 0, `the browser-like socket on the restarted host ${browserOn + 1} was closed and resumed`);
  });

  it('the publisher host restarted: publishes resume (resent after 502/504 with their identity), nothing acknowledged lost or stored twice', async () => {
    let up: Promise<void> = Promise.resolve();
    const { r } = await run.streamAcross('restart of the publisher host', async () => {
      ({ up } = await inst.restartHost(inst.publisherHost));
    });
    await up;
    run.guarantees(r);
  });
});
