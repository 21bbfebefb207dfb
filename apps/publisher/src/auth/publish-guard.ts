import { AUTH_HEADERS, Errors, NetworkSet, isUnsigned, PublishVerifier, PushError, parseAuthHeaders, requestTarget, type RawAuthHeaders, type SignedRequest } from '@push/protocol';
import type { ReplayGuard } from '@push/backend';
import { ClientAddresses, type Config, type HttpRequest, type HttpResponse } from '@push/runtime';

/** What authentication needs from a request, copied out of uWS before the first await. */
export interface RequestFacts {
  readonly method: string;
  /** Path and raw query as on the request line: the signed target. */
  readonly target: string;
  readonly headers: RawAuthHeaders;
  /**
   * The client's address: the socket peer, or the trusted proxy's header (`ClientAddresses`);
   * '' for a request carrying any signature header (never judged by its address).
   */
  readonly client: string;
}

export type AuthOutcome = { readonly kind: 'trusted-network' } | { readonly kind: 'signed'; readonly keyId: string };

/**
 * A request whose headers and signature have been checked but whose nonce is not claimed yet
 * (`PublishGuard.authenticate`); `PublishGuard.admit` turns it into an AuthOutcome.
 */
export type Authenticated = { readonly kind: 'trusted-network' } | { readonly kind: 'signed'; readonly request: SignedRequest };

/**
 * Decides whether a publisher request may proceed: a valid signature by a configured key with a
 * fresh timestamp and an unused nonce, or no signature at all from a trusted network (what
 * unmodified Bitrix portals send; off unless PUSH_PUBLISH_TRUSTED_NETWORKS lists sources).
 * A request carrying any signature header is always verified, even from a trusted network.
 */
export class PublishGuard {
  private readonly verifier: PublishVerifier;
  private readonly trusted: NetworkSet;
  private readonly addresses: ClientAddresses;
  private readonly maxSkewS: number;

  /** `inlineVerify`: where each Ed25519 check runs (verify-placement.ts; default: the thread pool). */
  constructor(
    config: Config,
    private readonly replay: ReplayGuard,
    inlineVerify?: () => boolean,
  ) {
    this.verifier = new PublishVerifier(config.publishKeys, inlineVerify === undefined ? {} : { inline: inlineVerify });
    this.trusted = new NetworkSet(config.publishTrustedNetworks);
    this.addresses = new ClientAddresses(config);
    this.maxSkewS = config.publishMaxSkewS;
  }

  /** Call synchronously in the uWS handler: `req` is gone after the first await. */
  capture(res: HttpResponse, req: HttpRequest): RequestFacts {
    const headers: RawAuthHeaders = {
      keyId: req.getHeader(AUTH_HEADERS.keyId),
      timestamp: req.getHeader(AUTH_HEADERS.timestamp),
      nonce: req.getHeader(AUTH_HEADERS.nonce),
      signature: req.getHeader(AUTH_HEADERS.signature),
    };
    // Only an unsigned request is judged by its source; asking the kernel for the peer address is
    // a system call per request, which a signed request does not need.
    const client = isUnsigned(headers) ? this.addresses.of(res, req) : '';
    return { method: req.getMethod().toUpperCase(), target: requestTarget(req.getUrl(), req.getQuery() ?? ''), headers, client };
  }

  /**
   * Checks everything about the request's origin that needs no Redis: trusted network or
   * well-formed headers, known key, valid signature. Has no side effects, so the caller can then
   * validate the whole body and call `admit` only for a request it is going to carry out: a
   * request refused for its content must leave nothing behind, not even its nonce.
   * Rejects with a 401 PushError (4120-4123).
   */
  async authenticate(facts: RequestFacts, body: Uint8Array): Promise<Authenticated> {
    const signed = parseAuthHeaders(facts.headers);
    if (signed === null) {
      if (this.trusted.has(facts.client)) return { kind: 'trusted-network' };
      throw new PushError(Errors.AUTH_MISSING, `Source address ${facts.client}.`);
    }
    // Signature before the claim: a forged request must not be able to burn nonces in the replay cache.
    await this.verifier.verify(signed, facts.method, facts.target, body);
    return { kind: 'signed', request: signed };
  }

  /**
   * The one step that writes, for a request that is not a publish (online status, mint, protocol-4
   * stats): timestamp window (Redis time) and nonce claim, atomically in Redis. Publishes never
   * call it: their nonce is their identity, claimed inside `Store.publish` with the store itself
   * (routes/identity.ts). Rejects with 401 4124 (stale) or 403 4125 (replayed). Call it last.
   */
  async admit(auth: Authenticated): Promise<AuthOutcome> {
    if (auth.kind === 'trusted-network') return auth;
    const { keyId, nonce, timestamp } = auth.request;
    const claim = await this.replay.claim(keyId, nonce, timestamp, this.maxSkewS);
    if (claim === 'stale') throw new PushError(Errors.AUTH_STALE);
    if (claim === 'replay') throw new PushError(Errors.AUTH_REPLAY);
    return { kind: 'signed', keyId };
  }
}

/** What routes need of a guard: PublishGuard, or the shared-mode stand-in below. */
export type RequestGuard = Pick<PublishGuard, 'capture' | 'authenticate' | 'admit'>;

const NO_FACTS: RequestFacts = { method: '', target: '', headers: { keyId: '', timestamp: '', nonce: '', signature: '' }, client: '' };

/**
 * Shared mode: a portal's request has already been authenticated by its client id and the
 * signature of its body with the portal's own key (routes/shared-portal.ts) before its route
 * runs, so the route's own check passes it. Such requests carry no nonce (push server 2.0's form).
 */
export const PORTAL_SIGNED: RequestGuard = {
  capture: () => NO_FACTS,
  authenticate: async () => ({ kind: 'trusted-network' }),
  admit: async () => ({ kind: 'trusted-network' }),
};
