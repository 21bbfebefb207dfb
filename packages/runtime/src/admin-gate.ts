import { createHash, timingSafeEqual } from 'node:crypto';
import { Errors, NetworkSet, PushError } from '@push/protocol';
import { ClientAddresses } from './client-address.js';
import type { Config } from './config.js';
import { Exchange } from './http.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** What the gate needs to know about a request, copied out of uWS synchronously. */
export interface AdminRequest {
  /** The real client address (ClientAddresses): the peer, or a trusted proxy's header. */
  readonly client: string;
  /** The raw Authorization header ('' when absent). */
  readonly authorization: string;
}

export interface AdminPolicy {
  /** PUSH_PUBLISH_TRUSTED_NETWORKS: the hosts that may publish unsigned may also read the admin pages. */
  readonly trusted: NetworkSet;
  /** SHA-256 of PUSH_ADMIN_TOKEN, or null when none is configured. */
  readonly tokenDigest: Buffer | null;
}

const BEARER = /^bearer[ \t]+(\S+)[ \t]*$/i;
const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * Who may read the admin pages (process ids, ports, counters, message types): a request carrying
 * `Authorization: Bearer <PUSH_ADMIN_TOKEN>`, or one from a trusted network. A presented bearer
 * token is always checked, even from a trusted network (like a signature on a publish): a wrong
 * one is refused rather than silently ignored. Returns null to admit, else the refusal.
 * Pure, so the whole table of cases is tested without a server.
 */
export function adminDecision(req: AdminRequest, policy: AdminPolicy): PushError | null {
  const bearer = BEARER.exec(req.authorization);
  if (bearer !== null) {
    // Digests have one length whatever was sent, so timingSafeEqual never throws and the time taken
    // says nothing about the token, not even its length.
    if (policy.tokenDigest !== null && timingSafeEqual(digest(bearer[1] as string), policy.tokenDigest)) return null;
    return new PushError(Errors.ADMIN_BAD_TOKEN, policy.tokenDigest === null ? 'This server has no PUSH_ADMIN_TOKEN.' : undefined);
  }
  if (policy.trusted.has(req.client)) return null;
  return new PushError(Errors.ADMIN_CLOSED, `Source address ${req.client}.`);
}

type Handler = (res: HttpResponse, req: HttpRequest) => void;

/**
 * The one gate in front of every admin route of every process (`/status`, `/status/data`,
 * `/server-stat/`, `/metrics`); `/healthz` and `/readyz` stay open for load balancers. Route
 * helpers that serve admin data take the gate as a required argument, so none can be registered
 * without it.
 */
export class AdminGate {
  private readonly addresses: ClientAddresses;
  private readonly policy: AdminPolicy;
  constructor(config: Pick<Config, 'trustedProxies' | 'realIpHeader' | 'publishTrustedNetworks' | 'adminToken'>) {
    this.addresses = new ClientAddresses(config);
    this.policy = { trusted: new NetworkSet(config.publishTrustedNetworks), tokenDigest: config.adminToken === '' ? null : digest(config.adminToken) };
  }

  /** `handler` behind the gate: it runs only for an admitted request; others get 401 4128/4129. */
  guard(handler: Handler): Handler {
    return (res, req) => {
      const refusal = adminDecision({ client: this.addresses.of(res, req), authorization: req.getHeader('authorization') }, this.policy);
      if (refusal === null) {
        handler(res, req);
        return;
      }
      new Exchange(res).sendError(refusal, [['WWW-Authenticate', 'Bearer realm="push-admin"']]);
    };
  }
}
