import { NetworkSet } from '@push/protocol';
import type { Config } from './config.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/**
 * The peer is the client unless the peer is a configured trusted proxy (nginx) that names the
 * client in `headerValue`. X-Forwarded-For style lists are read from the right: the last entry is
 * the one our own proxy wrote; anything to its left was written by the client and proves nothing.
 * (The bundled nginx replaces the header with the peer it sees, never appending to the client's.)
 */
export function clientAddress(peer: string, headerValue: string, trustedProxies: NetworkSet): string {
  if (headerValue === '' || !trustedProxies.has(peer)) return peer;
  const parts = headerValue.split(',');
  const last = (parts[parts.length - 1] ?? '').trim();
  return last === '' ? peer : last;
}

/**
 * The one place a process learns who sent a request, for every decision made by address (unsigned
 * publishing, the admin pages): PUSH_TRUSTED_PROXIES and PUSH_REAL_IP_HEADER applied the same way.
 */
export class ClientAddresses {
  private readonly proxies: NetworkSet;
  private readonly header: string;
  constructor(config: Pick<Config, 'trustedProxies' | 'realIpHeader'>) {
    this.proxies = new NetworkSet(config.trustedProxies);
    this.header = config.realIpHeader;
  }
  /** Call synchronously in the uWS handler (`req` is gone after the first await). */
  of(res: HttpResponse, req: HttpRequest): string {
    return clientAddress(Buffer.from(res.getRemoteAddressAsText()).toString('latin1'), req.getHeader(this.header), this.proxies);
  }
}
