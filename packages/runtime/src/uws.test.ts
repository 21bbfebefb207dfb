import { it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadUws, UWS_DISTRIBUTIONS, type UwsDistribution } from './uws.js';

const file = (abi: string): string => `uws_${process.platform}_${process.arch}_${abi}.node`;

/** glibc's version as major * 1000 + minor, or undefined on another C library. */
function glibc(): number | undefined {
  const v = (process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime;
  if (v === undefined) return undefined;
  const [major = 0, minor = 0] = v.split('.').map(Number);
  return major * 1000 + minor;
}

it('loads the uWebSockets.js 20.57.0 binding on this machine and names the distribution it came from', (t) => {
  const loaded = loadUws();
  t.diagnostic(`Node ${process.versions.node}: ${loaded.detail}`);
  const from = UWS_DISTRIBUTIONS.find((d) => loaded.detail === `${file(process.versions.modules)} from ${d.label}`);
  assert.ok(from !== undefined, loaded.detail);
  assert.equal(loadUws('').detail, loaded.detail, "'' means this Node's ABI");
  assert.equal(typeof loaded.uws.App, 'function');
  // Every distribution preferred to the one that loaded is listed with its reason.
  assert.equal(loaded.skipped.length, UWS_DISTRIBUTIONS.indexOf(from));
  for (const [i, why] of loaded.skipped.entries()) assert.ok(why.startsWith(`${UWS_DISTRIBUTIONS[i]?.label}: `), why);
});

it('takes the first distribution whose binding loads, skipping one that is missing or broken with its reason', () => {
  const loadsAlone = (d: UwsDistribution): boolean => {
    try {
      return typeof loadUws('', { distributions: [d] }).uws.App === 'function';
    } catch {
      return false;
    }
  };
  const real = UWS_DISTRIBUTIONS.find(loadsAlone) as UwsDistribution;
  const missing: UwsDistribution = { label: 'missing 1.0', directory: () => join(real.directory(), 'no-such-dir') };
  const unresolvable: UwsDistribution = {
    label: 'not installed 2.0',
    directory: () => {
      throw new Error("Cannot find module 'not-installed'\nRequire stack: ...");
    },
  };
  const loaded = loadUws('', { distributions: [missing, unresolvable, real] });
  assert.equal(loaded.detail, `${file(process.versions.modules)} from ${real.label}`);
  assert.equal(loaded.skipped.length, 2);
  assert.match(loaded.skipped[0] ?? '', /^missing 1\.0: Cannot find module .*no-such-dir/);
  assert.equal(loaded.skipped[1], "not installed 2.0: Cannot find module 'not-installed'", 'first line of the error only');
});

it('when no binding loads it throws one error naming every distribution tried and why', () => {
  assert.throws(() => loadUws('1'), /^Error: uWebSockets\.js native binding uws_.*_1\.node did not load \(.*\)\.$/s);
  assert.throws(() => loadUws('1'), (err: Error) => UWS_DISTRIBUTIONS.every((d) => err.message.includes(`${d.label}: Cannot find module`)));
  assert.throws(() => loadUws('1', { distributions: [] }), /native binding uws_.*_1\.node did not load/, 'no distribution at all');
});

it('the copy made for glibc before 2.38 runs exactly where the published binding cannot (Node 20 there), and is the published code', (t) => {
  const version = glibc();
  const [published, copy] = UWS_DISTRIBUTIONS;
  assert.ok(published !== undefined && copy !== undefined);
  const loaded = loadUws();
  if (version === undefined || version >= 2038 || process.versions.modules !== '115') {
    // Node 22 and 24 run only here (the platform tests), on the published files.
    assert.equal(loaded.detail, `${file(process.versions.modules)} from ${published.label}`);
    assert.deepEqual(loaded.skipped, []);
    const shown = version === undefined ? 'none' : `${Math.floor(version / 1000)}.${version % 1000}`;
    t.diagnostic(`glibc ${shown}, Node ABI ${process.versions.modules}: the published binding`);
    return;
  }
  assert.equal(loaded.detail, `${file('115')} from ${copy.label}`);
  assert.equal(loaded.skipped.length, 1);
  assert.match(loaded.skipped[0] ?? '', /GLIBC_2\.38' not found/, 'the published file fails only for glibc 2.38');
  // The copy differs from the published file only in what it asks of the dynamic loader: its code
  // and read-only data are byte for byte the same (scripts/uws-compat.sh checks .data too).
  const tmp = mkdtempSync(join(tmpdir(), 'uws-sections-'));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const section = (dir: string, name: string): Buffer => {
    const to = join(tmp, 'section.bin');
    execFileSync('objcopy', ['-O', 'binary', `--only-section=${name}`, join(dir, file('115')), to]);
    return readFileSync(to);
  };
  for (const name of ['.text', '.rodata']) {
    const a = section(published.directory(), name);
    assert.ok(a.length > 100_000, name);
    assert.ok(a.equals(section(copy.directory(), name)), `${name} differs`);
  }
  const deps = execFileSync('ldd', [join(copy.directory(), file('115'))], { encoding: 'utf8' });
  assert.match(deps, /libisoc23-compat\.so => \S+\/uws-compat\/libisoc23-compat\.so/);
  assert.doesNotMatch(deps, /not found/);
});

it("the binding in use answers 400 at once to a header with a control character (20.57's parser), and reads UWS_HTTP_MAX_HEADERS_SIZE", async () => {
  // Fresh process: the limit is read once, when the binding loads. The copy for older glibc gets
  // the number through the C23 strtol its small library supplies, so this covers that library.
  const script = `
    import { loadUws } from ${JSON.stringify(new URL('./uws.ts', import.meta.url).href)};
    const { uws } = loadUws('', { maxHeaderBytes: 2048 });
    uws.App().any('/*', (res) => res.end('ok')).listen('127.0.0.1', 0, (s) => console.log(uws.us_socket_local_port(s)));`;
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', (code) => reject(new Error(`exited with ${code}`)));
    });
    const ask = (head: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = connect(port, '127.0.0.1', () => s.write(head));
        let got = '';
        s.on('data', (d) => {
          got += d.toString('latin1');
          if (got.includes('\r\n\r\n')) {
            s.destroy();
            resolve(got.split('\r\n')[0] ?? '');
          }
        });
        s.on('error', reject);
        s.on('close', () => reject(new Error(`closed without an answer (got ${JSON.stringify(got)})`)));
        s.setTimeout(30_000, () => s.destroy(new Error('no answer within 30 s')));
      });
    assert.equal(await ask('GET / HTTP/1.1\r\nHost: x\r\nMessage-Type: a\x01b\r\n\r\n'), 'HTTP/1.1 400 Bad Request');
    assert.equal(await ask(`GET / HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(1500)}\r\n\r\n`), 'HTTP/1.1 200 OK');
    assert.equal(await ask(`GET / HTTP/1.1\r\nHost: x\r\nX-A: ${'a'.repeat(2500)}\r\n\r\n`), 'HTTP/1.1 431 Request Header Fields Too Large');
  } finally {
    child.kill();
  }
});
