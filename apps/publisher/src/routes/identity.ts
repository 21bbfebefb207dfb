import { parseRequestId } from '@push/protocol';
import { nonceWindowS, type PublishIdentity } from '@push/backend';
import type { Authenticated } from '../auth/publish-guard.js';

/**
 * A portal request's identity: its key id and nonce when signed, else its X-Push-Request-Id (if
 * any) in the portal's scope. The header's format is checked either way (400 4132 when malformed),
 * so a sender learns of a bad id before it relies on it.
 */
export function portalIdentity(auth: Authenticated, requestIdHeader: string, maxSkewS: number): PublishIdentity | undefined {
  const requestId = parseRequestId(requestIdHeader);
  if (auth.kind === 'signed') {
    const { keyId, nonce, timestamp } = auth.request;
    return { keyId, nonce, timestamp, maxSkewS };
  }
  return requestId === null ? undefined : { scope: 'b', requestId, windowS: nonceWindowS(maxSkewS) };
}

/**
 * A client's (`/bitrix/rest/`) identity: its X-Push-Request-Id in its sender's own scope, so one
 * client can neither replay nor block another's ids.
 */
export function clientIdentity(publicId: string, requestIdHeader: string, maxSkewS: number): PublishIdentity | undefined {
  const requestId = parseRequestId(requestIdHeader);
  return requestId === null ? undefined : { scope: `c:${publicId}`, requestId, windowS: nonceWindowS(maxSkewS) };
}
