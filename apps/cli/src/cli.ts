import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { KEY_ID_RE, SIGNATURE_ALGORITHMS, isChannelId, mintChannelId, signChannel, type SignatureAlgorithm } from '@push/protocol';
import { readSignatureKeyFile } from './signature-key-file.js';
import { generateKey, keyFromJson, ringEntry, type SigningKey } from './keys.js';
import { UnreachableError, signedRequest, type HttpReply } from './http.js';

export interface Io {
  out(text: string): void;
  err(text: string): void;
  readStdin(): Buffer;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export const EXIT = { OK: 0, REFUSED: 1, USAGE: 2, UNREACHABLE: 3, UNEXPECTED: 4 } as const;

export const HELP = `pushctl - push server command line

  pushctl keygen [--key-id ID] [--hmac] [--out FILE]
      New signing key. Writes the key file (secret; mode 0600) to FILE or stdout and prints the
      entry to add to the server's PUSH_PUBLISH_KEYS (to stderr when the key goes to stdout).
  pushctl mint [--count N] (--url URL --key FILE | --signature-key-file FILE [--algo sha1])
      Fresh channel ids, signed for subscribers. With --url the publisher mints them and records
      their creation (the channel lifecycle starts now); otherwise they are minted locally with the
      channel signature key: PUSH_SIGNATURE_KEY, or FILE holding only the key or KEY=VALUE settings
      with PUSH_SIGNATURE_KEY= (and PUSH_SIGNATURE_ALGO=), such as .push/config.env.
  pushctl publish --url URL --key FILE --channel ID[/ID...] [--expiry S] [--type T] [--file F]
      Signed publish of one JSON message read from F or stdin.
  pushctl online --url URL --key FILE --channel ID[/ID...]
      Which of the channels have subscribers (signed request).
  pushctl stats --url URL
      Per-process statistics of the cluster (/server-stat/). An admin page: from a host outside
      the server's PUSH_PUBLISH_TRUSTED_NETWORKS, set PUSH_ADMIN_TOKEN in the environment to the
      server's token (sent as Authorization: Bearer).

  pushctl client add --url URL --id CLIENT_ID
  pushctl client list --url URL
  pushctl client remove --url URL --id CLIENT_ID (--signature-key-file FILE | PUSH_SIGNATURE_KEY)
      Shared mode (PUSH_MODE=shared): register a portal and print its key (the portal's pull
      module "shared_server_key"; registering again prints the same key), list the registered
      portals (without keys), or remove one (signed with the installation's PUSH_SIGNATURE_KEY).
      CLIENT_ID is the portal's public licence code, 32 characters a-z 0-9. Admin requests: from
      outside PUSH_PUBLISH_TRUSTED_NETWORKS set PUSH_ADMIN_TOKEN in the environment.

Exit codes: 0 done, 1 refused by the server, 2 usage error, 3 server unreachable or file error,
4 unexpected failure (e.g. a reply that is not what a publisher sends: wrong URL or a proxy page).
`;

class UsageError extends Error {}
class IoError extends Error {}
/** A 2xx reply the command cannot use: the URL probably points at something that is not a publisher. */
class UnexpectedReply extends Error {}

const OPTIONS = {
  'key-id': { type: 'string' },
  hmac: { type: 'boolean' },
  out: { type: 'string' },
  count: { type: 'string' },
  url: { type: 'string' },
  key: { type: 'string' },
  'signature-key-file': { type: 'string' },
  algo: { type: 'string' },
  channel: { type: 'string' },
  expiry: { type: 'string' },
  type: { type: 'string' },
  file: { type: 'string' },
  id: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

function need(v: Values, name: keyof Values): string {
  const value = v[name];
  if (typeof value !== 'string' || value === '') throw new UsageError(`--${name} is required`);
  return value;
}

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new IoError(`cannot read ${what} ${path}: ${(err as Error).message}`);
  }
}

function loadKey(v: Values): SigningKey {
  const path = need(v, 'key');
  try {
    return keyFromJson(readFile(path, 'key file').toString('utf8'));
  } catch (err) {
    if (err instanceof IoError) throw err;
    throw new UsageError(`key file ${path}: ${(err as Error).message}`);
  }
}

function baseUrl(v: Values): string {
  const url = need(v, 'url');
  if (!/^https?:\/\/[^/]+/.test(url)) throw new UsageError('--url must be http(s)://host[:port] of a publisher');
  return url.replace(/\/+$/, '');
}

function channelList(v: Values): string[] {
  const ids = need(v, 'channel').split(/[/,]/).filter((s) => s !== '');
  const bad = ids.filter((id) => !isChannelId(id));
  if (ids.length === 0 || bad.length > 0) throw new UsageError(`--channel takes 32-character lowercase hex ids; bad: ${bad.join(', ') || '(none given)'}`);
  return ids;
}

/** Prints the reply; a non-2xx status is exit 1 with the server's "<code>: <reason>". */
function report(io: Io, reply: HttpReply, onOk: (body: string) => string): number {
  if (reply.status >= 200 && reply.status < 300) {
    let text: string;
    try {
      text = onOk(reply.body);
    } catch (err) {
      const excerpt = reply.body.slice(0, 80).replace(/\s+/g, ' ');
      throw new UnexpectedReply(`unexpected reply (HTTP ${reply.status}, ${(err as Error).message}): ${JSON.stringify(excerpt)}; is --url a publisher?`);
    }
    io.out(text);
    return EXIT.OK;
  }
  io.err(`pushctl: server refused (HTTP ${reply.status}): ${reply.body.trim() || '(no body)'}\n`);
  return EXIT.REFUSED;
}

/** An admin request (Authorization: Bearer PUSH_ADMIN_TOKEN when set); unreachable servers are exit 3. */
async function adminRequest(io: Io, url: string, path: string, init: { method: string; body?: string; headers?: Record<string, string> }): Promise<HttpReply> {
  const token = io.env['PUSH_ADMIN_TOKEN'] ?? '';
  const headers = { ...(init.headers ?? {}), ...(token === '' ? {} : { Authorization: `Bearer ${token}` }) };
  try {
    const res = await fetch(`${url}${path}`, { method: init.method, headers, ...(init.body === undefined ? {} : { body: init.body }) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    throw new UnreachableError(`cannot reach ${url}: ${(err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message}`);
  }
}

function clientId(v: Values): string {
  const id = need(v, 'id');
  if (!/^[a-z0-9]{32}$/.test(id)) throw new UsageError('--id is the portal\'s public licence code: 32 characters a-z 0-9');
  return id;
}

/** The installation's signature key and algorithm: PUSH_SIGNATURE_KEY or --signature-key-file. */
function installationKey(v: Values, io: Io): { key: string; algo: SignatureAlgorithm } {
  let key = io.env['PUSH_SIGNATURE_KEY'];
  let algo: string | undefined;
  const path = v['signature-key-file'];
  if (path !== undefined) {
    const read = readSignatureKeyFile(readFile(path, 'signature key file').toString('utf8'));
    if (!read.ok) throw new UsageError(`--signature-key-file ${path} ${read.reason}`);
    key = read.key;
    algo = read.algo;
  }
  if (key === undefined || key.length < 16) throw new UsageError('this needs the installation key: PUSH_SIGNATURE_KEY or --signature-key-file');
  algo = v.algo ?? algo ?? 'sha1';
  if (!(SIGNATURE_ALGORITHMS as readonly string[]).includes(algo)) throw new UsageError(`--algo must be one of ${SIGNATURE_ALGORITHMS.join(', ')}`);
  return { key, algo: algo as SignatureAlgorithm };
}

async function clientCommand(sub: string | undefined, v: Values, io: Io): Promise<number> {
  switch (sub) {
    case 'add': {
      const id = clientId(v);
      const form = `verificationQuery=${encodeURIComponent(`BX_LICENCE=${id}&BX_TYPE=CP`)}`;
      const reply = await adminRequest(io, baseUrl(v), '/register-client/', { method: 'POST', body: form, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
      return report(io, reply, (body) => {
        const key = (JSON.parse(body) as { securityKey?: unknown }).securityKey;
        if (typeof key !== 'string') throw new Error('no securityKey');
        return `client ${id}\nkey ${key}\n`;
      });
    }
    case 'list': {
      const reply = await adminRequest(io, baseUrl(v), '/register-client/', { method: 'GET' });
      return report(io, reply, (body) => {
        const clients = (JSON.parse(body) as { clients: Array<{ id: string; created: number; note: string }> }).clients;
        if (!Array.isArray(clients)) throw new Error('no client list');
        return clients.map((c) => `${c.id} ${new Date(c.created).toISOString()} ${c.note}\n`).join('') || '(no clients)\n';
      });
    }
    case 'remove': {
      const id = clientId(v);
      const { key, algo } = installationKey(v, io);
      const body = JSON.stringify({ method: 'unregister', params: { clientId: id } });
      const sig = createHmac(algo, key).update(body).digest('hex');
      const reply = await adminRequest(io, baseUrl(v), `/systemctl/?signature=${sig}`, { method: 'POST', body });
      if (reply.status === 200) {
        let answer: { error?: unknown };
        try {
          answer = JSON.parse(reply.body) as { error?: unknown };
        } catch {
          throw new UnexpectedReply(`unexpected reply: ${JSON.stringify(reply.body.slice(0, 80))}; is --url a publisher?`);
        }
        if (typeof answer.error === 'string') {
          io.err(`pushctl: server refused: ${answer.error}\n`);
          return EXIT.REFUSED;
        }
      }
      return report(io, reply, () => `removed ${id}\n`);
    }
    default:
      throw new UsageError('client takes add, list or remove');
  }
}

async function dispatch(command: string, v: Values, io: Io, sub?: string): Promise<number> {
  switch (command) {
    case 'client':
      return clientCommand(sub, v, io);
    case 'keygen': {
      const keyId = v['key-id'] ?? `key-${new Date().toISOString().slice(0, 10)}`;
      if (!KEY_ID_RE.test(keyId)) throw new UsageError('--key-id must be 1-64 characters from A-Z a-z 0-9 _ . -');
      const { file, key } = generateKey(keyId, v.hmac === true ? 'hmac-sha256' : 'ed25519');
      const entry = ringEntry(key);
      if (v.out !== undefined) {
        try {
          writeFileSync(v.out, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
          chmodSync(v.out, 0o600);
        } catch (err) {
          throw new IoError(`cannot write ${v.out}: ${(err as Error).message}`);
        }
        io.out(`${entry}\n`);
      } else {
        io.out(`${JSON.stringify(file, null, 2)}\n`);
        io.err(`add to PUSH_PUBLISH_KEYS on the server: ${entry}\n`);
      }
      return EXIT.OK;
    }
    case 'mint': {
      const countText = v.count ?? '1';
      if (!/^[0-9]{1,3}$/.test(countText) || Number(countText) < 1 || Number(countText) > 100) throw new UsageError('--count must be 1..100');
      if (v.url !== undefined) {
        const reply = await signedRequest(baseUrl(v), 'POST', `/channels?count=${countText}`, '', loadKey(v));
        return report(io, reply, (body) => `${JSON.stringify(JSON.parse(body), null, 2)}\n`);
      }
      let keyText = io.env['PUSH_SIGNATURE_KEY'];
      let fileAlgo: string | undefined;
      const keyPath = v['signature-key-file'];
      if (keyPath !== undefined) {
        const read = readSignatureKeyFile(readFile(keyPath, 'signature key file').toString('utf8'));
        if (!read.ok) throw new UsageError(`--signature-key-file ${keyPath} ${read.reason}`);
        if (read.key.length < 16) throw new UsageError(`--signature-key-file ${keyPath}: the key is shorter than 16 characters`);
        keyText = read.key;
        fileAlgo = read.algo;
      }
      if (keyText === undefined || keyText.length < 16) throw new UsageError('local minting needs the channel signature key: PUSH_SIGNATURE_KEY or --signature-key-file (or use --url to mint on the server)');
      const algo = v.algo ?? fileAlgo ?? 'sha1';
      if (!(SIGNATURE_ALGORITHMS as readonly string[]).includes(algo)) throw new UsageError(`${v.algo !== undefined ? '--algo' : `PUSH_SIGNATURE_ALGO in ${keyPath ?? 'the key file'}`} must be one of ${SIGNATURE_ALGORITHMS.join(', ')}`);
      const channels = Array.from({ length: Number(countText) }, () => {
        const id = mintChannelId();
        return { id, signed: signChannel(id, { key: keyText, algorithm: algo as SignatureAlgorithm }) };
      });
      io.out(`${JSON.stringify({ channels }, null, 2)}\n`);
      return EXIT.OK;
    }
    case 'publish': {
      const url = baseUrl(v);
      const key = loadKey(v);
      const channels = channelList(v);
      const body = v.file !== undefined ? readFile(v.file, 'message file') : io.readStdin();
      if (body.length === 0) throw new UsageError('the message is empty (give --file or pipe JSON to stdin)');
      const headers: Record<string, string> = {};
      if (v.expiry !== undefined) {
        if (!/^[0-9]{1,10}$/.test(v.expiry)) throw new UsageError('--expiry is whole seconds');
        headers['Message-Expiry'] = v.expiry;
      }
      if (v.type !== undefined) headers['Message-Type'] = v.type;
      // An identity on every publish (docs/reliability.md): resent unchanged, it is stored at most once.
      headers['X-Push-Request-Id'] = randomBytes(12).toString('hex');
      const reply = await signedRequest(url, 'POST', `/pub/?CHANNEL_ID=${channels.join('/')}`, body, key, headers);
      return report(io, reply, () => `published to ${channels.length} channel(s)\n`);
    }
    case 'online': {
      const channels = channelList(v);
      const reply = await signedRequest(baseUrl(v), 'GET', `/pub/?CHANNEL_ID=${channels.join('/')}`, '', loadKey(v));
      return report(io, reply, (body) => {
        const online = new Set(((JSON.parse(body) as { infos: Array<{ channel: string }> }).infos ?? []).map((i) => i.channel));
        return channels.map((c) => `${c} ${online.has(c) ? 'online' : 'offline'}\n`).join('');
      });
    }
    case 'stats': {
      const url = baseUrl(v);
      let reply: HttpReply;
      try {
        const token = io.env['PUSH_ADMIN_TOKEN'] ?? '';
        const res = await fetch(`${url}/server-stat/`, token === '' ? {} : { headers: { Authorization: `Bearer ${token}` } });
        reply = { status: res.status, body: await res.text() };
      } catch (err) {
        throw new UnreachableError(`cannot reach ${url}: ${(err as { cause?: { message?: string } }).cause?.message ?? (err as Error).message}`);
      }
      return report(io, reply, (body) => `${JSON.stringify(JSON.parse(body), null, 2)}\n`);
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
}

export async function run(argv: readonly string[], io: Io): Promise<number> {
  let parsed: { values: Values; positionals: string[] };
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    io.err(`pushctl: ${(err as Error).message}\n\n${HELP}`);
    return EXIT.USAGE;
  }
  const command = parsed.positionals[0];
  if (command === undefined || command === 'help' || parsed.values.help === true) {
    (command === undefined ? io.err : io.out)(HELP);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  const maxPositionals = command === 'client' ? 2 : 1;
  if (parsed.positionals.length > maxPositionals) {
    io.err(`pushctl: unexpected argument ${JSON.stringify(parsed.positionals[maxPositionals])}\n`);
    return EXIT.USAGE;
  }
  try {
    return await dispatch(command, parsed.values, io, parsed.positionals[1]);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`pushctl ${command}: ${err.message}\n(run "pushctl help")\n`);
      return EXIT.USAGE;
    }
    if (err instanceof IoError || err instanceof UnreachableError) {
      io.err(`pushctl ${command}: ${err.message}\n`);
      return EXIT.UNREACHABLE;
    }
    // Anything else is a defect or a reply we do not understand: say so, never pass it off as "unreachable".
    const what = err instanceof UnexpectedReply ? err.message : `unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
    io.err(`pushctl ${command}: ${what}\n`);
    return EXIT.UNEXPECTED;
  }
}
