#!/usr/bin/env node
// HTTP probes for the bash scripts (curl is not on every fresh box; node always is here).
//   node probe.mjs wait TIMEOUT_S URL...   exit 0 once every URL answers 200, else 1 naming the laggards
//                                          (early when a pid listed in PROBE_PIDS has exited)
//   node probe.mjs status URL...           prints "<status>\t<url>" per URL (000 = no answer), exit 0
const [mode, ...rest] = process.argv.slice(2);

async function status(url, timeoutMs = 2000) {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return err.code === 'EPERM';
  }
}

if (mode === 'status') {
  const codes = await Promise.all(rest.map((u) => status(u)));
  rest.forEach((u, i) => process.stdout.write(`${String(codes[i]).padStart(3, '0')}\t${u}\n`));
} else if (mode === 'wait') {
  const [timeoutS, ...urls] = rest;
  const deadline = Date.now() + Number(timeoutS) * 1000;
  let pending = urls;
  while (pending.length > 0) {
    const codes = await Promise.all(pending.map((u) => status(u)));
    pending = pending.filter((_, i) => codes[i] !== 200);
    if (pending.length === 0) break;
    // PROBE_PIDS: processes whose death means waiting longer is pointless.
    const dead = (process.env['PROBE_PIDS'] ?? '').split(' ').filter((p) => p !== '' && !alive(Number(p)));
    if (dead.length > 0) {
      process.stderr.write(`process ${dead.join(' ')} exited; not ready: ${pending.join(' ')}\n`);
      process.exit(1);
    }
    if (Date.now() > deadline) {
      process.stderr.write(`not ready after ${timeoutS}s: ${pending.join(' ')}\n`);
      process.exit(1);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
} else {
  process.stderr.write('usage: probe.mjs wait TIMEOUT_S URL... | probe.mjs status URL...\n');
  process.exit(2);
}
