import { randomBytes } from 'node:crypto';
import { Errors, PushError, checkRequestSignature, isClientId, parseRegisterRequest, parseSystemCommand, type ChannelSecret } from '@push/protocol';
import type { ClientDirectory, ClientRegistry, RegisteredClient } from '@push/backend';
import { CORS_ANY, Exchange, parseQuery, readBody, type HttpRequest, type HttpResponse, type Logger } from '@push/runtime';
import { answerError, type PipelineHost } from './publish-pipeline.js';

/** Push server 2.0's registration routes (its `routes.register` and `routes.systemctl`). */
export const REGISTER_PATHS = ['/register-client', '/register-client/*', '/bitrix/register-client', '/bitrix/register-client/*'];
export const SYSTEMCTL_PATHS = ['/systemctl', '/systemctl/*', '/bitrix/systemctl', '/bitrix/systemctl/*'];

/** Push server 2.0 reads at most this much of a registration body (and answers 413 beyond). */
const REGISTER_MAX_BYTES = 1024;
const JSON_TYPE = ['Content-Type', 'application/json'] as const;

/** A new portal key: 256 random bits as 64 hex characters (push server 2.0's keys have that length). */
export function newClientKey(): string {
  return randomBytes(32).toString('hex');
}

/** Registers a portal (or finds it registered) and returns its entry; the key is made here. */
export async function registerClient(registry: ClientRegistry, id: string, note: string): Promise<{ added: boolean; client: RegisteredClient }> {
  if (!isClientId(id)) throw new PushError(Errors.INVALID_CLIENT);
  return registry.add({ id, key: newClientKey(), created: Date.now(), note });
}

export interface ClientAdminDeps {
  readonly registry: ClientRegistry;
  readonly directory: ClientDirectory;
  /** PUSH_SIGNATURE_KEY: `/systemctl/` requests are signed with the installation's own key. */
  readonly installationSecret: ChannelSecret;
  readonly host: PipelineHost;
  readonly log: Logger;
}

function run(ex: Exchange, host: PipelineHost, work: () => Promise<void>): void {
  host.enter();
  work()
    .catch((err: unknown) => {
      if (!ex.aborted) answerError(ex, err, host);
    })
    .finally(() => host.leave());
}

/**
 * `POST /register-client/` with the form field `verificationQuery` (what the pull module's
 * `SharedServer\Client::register` sends). Push server 2.0 forwards the query to Bitrix's licence
 * server and takes the client id from its answer; this server makes no outside call: the id is
 * the query's `BX_LICENCE` (the portal's public licence code, which it sends as `clientId`
 * afterwards), and only callers the admin gate admits (trusted networks, admin token) reach this
 * handler. Answer: `{"status":"success","securityKey":"<key>"}`, the same key on every later
 * registration of that id.
 */
export function registerHandler(d: ClientAdminDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const contentLength = req.getHeader('content-length');
    const ex = new Exchange(res);
    run(ex, d.host, async () => {
      const body = (await readBody(ex, contentLength, REGISTER_MAX_BYTES)).toString('utf8');
      const { clientId } = parseRegisterRequest(body);
      const { added, client } = await registerClient(d.registry, clientId, 'register-client');
      d.directory.forget(clientId);
      // The key never reaches a log line.
      d.log.info({ clientId, added }, added ? 'portal registered' : 'portal registered again (key unchanged)');
      ex.send(200, JSON.stringify({ status: 'success', securityKey: client.key }), [...CORS_ANY, JSON_TYPE]);
    });
  };
}

/**
 * `POST /systemctl/?signature=<HMAC of the body with PUSH_SIGNATURE_KEY>`, body
 * `{"method":"unregister","params":{"clientId":"..."}}`. Answers
 * `{"result":{"status":"success"},"error":null}` or `{"result":null,"error":"Client not found."}`,
 * as push server 2.0 does.
 */
export function systemctlHandler(d: ClientAdminDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res, req) => {
    const contentLength = req.getHeader('content-length');
    const signature = parseQuery(req.getQuery() ?? '').get('signature');
    const ex = new Exchange(res);
    run(ex, d.host, async () => {
      const body = await readBody(ex, contentLength, d.host.maxBodyBytes);
      if (body.length === 0) throw new PushError(Errors.EMPTY_REQUEST);
      checkRequestSignature(body, signature, d.installationSecret);
      const cmd = parseSystemCommand(body.toString('utf8'));
      const removed = isClientId(cmd.clientId) && (await d.registry.remove(cmd.clientId));
      if (isClientId(cmd.clientId)) d.directory.forget(cmd.clientId);
      d.log.info({ clientId: cmd.clientId.slice(0, 64), removed }, 'portal unregistered');
      const answer = removed ? { result: { status: 'success' }, error: null } : { result: null, error: isClientId(cmd.clientId) ? 'Client not found.' : 'Wrong Client Id.' };
      ex.send(200, JSON.stringify(answer), [...CORS_ANY, JSON_TYPE]);
    });
  };
}

/**
 * `GET /register-client/`: the registered portals without their keys (`pushctl client list`), for
 * the admin gate's callers only. Not a push server 2.0 route (it keeps its licences in MySQL).
 */
export function listClientsHandler(d: ClientAdminDeps): (res: HttpResponse, req: HttpRequest) => void {
  return (res) => {
    const ex = new Exchange(res);
    run(ex, d.host, async () => {
      const clients = (await d.registry.list()).map((c) => ({ id: c.id, created: c.created, note: c.note }));
      ex.send(200, JSON.stringify({ clients }), [...CORS_ANY, JSON_TYPE]);
    });
  };
}
