import { parseV4Request, type SenderInfo, type V4Limits, type V4Request, type V4Trust } from '@push/protocol';
import { executeV4Request, type V4Deps } from '@push/backend';
import { CORS_ANY, type Exchange } from '@push/runtime';

/**
 * Protocol-version-4 requests over HTTP: the portal's `POST /pub?binaryMode=true` (trusted) and the
 * clients' `POST /bitrix/rest/` (untrusted, see rest.ts). The body is a protobuf RequestBatch.
 */
export interface V4RouteDeps extends V4Deps {
  readonly limits: V4Limits;
}

/**
 * Validates and carries out one RequestBatch and answers it: an empty 200 for publishing (only
 * after the store accepted everything), `application/octet-stream` ResponseBatch for stats.
 * Throws PushError for bad requests and backend errors as they are; the caller answers those.
 * `admit` may refuse a valid request before anything is stored (client rate limits, by throwing).
 * Resolves with the number of messages published.
 */
export async function answerV4(ex: Exchange, body: Uint8Array, trust: V4Trust, sender: SenderInfo, deps: V4RouteDeps, admit?: (req: V4Request) => void): Promise<number> {
  const req = parseV4Request(body, trust, deps.limits);
  // An empty incomingMessages list is a no-op 200, as in Bitrix: the store is not even asked.
  const empty = req.kind === 'incomingMessages' && req.messages.length === 0;
  if (!empty) admit?.(req);
  const response = empty ? null : await executeV4Request(req, sender, deps);
  if (response === null) ex.send(200, '', [...CORS_ANY, ['Content-Type', 'text/plain; charset=utf-8']]);
  else ex.send(200, response, [...CORS_ANY, ['Content-Type', 'application/octet-stream']]);
  return req.kind === 'incomingMessages' ? req.messages.length : 0;
}
