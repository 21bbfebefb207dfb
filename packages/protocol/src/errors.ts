/**
 * The one error catalogue. Every rejection the servers produce (HTTP status or WebSocket close)
 * comes from here, so clients see stable codes and `docs/errors.md` can be checked against it.
 *
 * Codes 4010-4029 are the Bitrix push server's own numbers (reference section 4.2 / 5.2) and keep
 * their meaning; 4100-4199 are this server's additions for cases Bitrix did not reject at all.
 * Bodies and close reasons have the Bitrix form "<code>: <reason>".
 */
export interface ErrorSpec {
  /** Stable numeric code; also the WebSocket close code when the error closes a socket. */
  readonly code: number;
  /** HTTP status used when the error answers an HTTP request. */
  readonly status: number;
  /** Human-readable reason; what a person should do about it where that is not obvious. */
  readonly reason: string;
}

export const Errors = {
  WRONG_CHANNEL_ID: { code: 4010, status: 400, reason: 'Wrong Channel Id.' },
  HISTORY_UNAVAILABLE: { code: 4011, status: 503, reason: 'Message history could not be read, reconnect later.' },
  PUBLIC_ID_REQUIRED: { code: 4012, status: 400, reason: 'Public Channel Id is Required.' },
  WRONG_REQUEST_DATA: { code: 4013, status: 400, reason: 'Wrong Request Data.' },
  COMMAND_NOT_ALLOWED: { code: 4014, status: 400, reason: 'Request command is not allowed.' },
  WRONG_REQUEST_COMMAND: { code: 4015, status: 400, reason: 'Wrong Request Command.' },
  TOO_MANY_MESSAGES: { code: 4016, status: 400, reason: 'Request exceeded the maximum number of messages.' },
  NO_CHANNELS: { code: 4017, status: 400, reason: 'No channels found.' },
  TOO_MANY_CHANNELS: { code: 4018, status: 400, reason: 'Request exceeded the maximum number of channels.' },
  INVALID_CHANNEL_ID: { code: 4019, status: 400, reason: 'Request has an invalid channel id.' },
  PRIVATE_CHANNEL_NOT_ALLOWED: { code: 4020, status: 400, reason: 'Private channel is not allowed.' },
  INVALID_CHANNEL_SIGNATURE: { code: 4021, status: 400, reason: 'Channel has an invalid signature.' },
  TOO_MANY_CONNECTIONS: { code: 4029, status: 429, reason: 'Too many connections' },
  // 4022-4036: shared (multi-portal) mode, with push server 2.0's numbers and texts (docs/shared-mode.md).
  EMPTY_REQUEST: { code: 4022, status: 400, reason: 'Empty request.' },
  VERIFICATION_QUERY_REQUIRED: { code: 4024, status: 400, reason: 'A verification query is required.' },
  CLIENT_ID_REQUIRED: { code: 4025, status: 400, reason: 'Client Id is required.' },
  WRONG_REQUEST_SIGNATURE: { code: 4026, status: 400, reason: 'Wrong request signature.' },
  BAD_JSON_REQUEST: { code: 4032, status: 400, reason: 'Bad JSON request.' },
  NO_METHOD: { code: 4033, status: 400, reason: "JSON object doesn't have 'method' property." },
  NO_PARAMS: { code: 4034, status: 400, reason: "JSON object doesn't have 'params' property." },
  UNKNOWN_COMMAND: { code: 4035, status: 400, reason: 'Unknown command.' },
  WRONG_CLIENT_ID: { code: 4036, status: 400, reason: 'Wrong Client Id.' },
  EMPTY_BODY: { code: 4100, status: 400, reason: 'Empty post requests are not allowed.' },
  BODY_TOO_LARGE: { code: 4101, status: 413, reason: 'Request body is larger than the configured limit (PUSH_MAX_BODY_BYTES).' },
  INVALID_JSON: { code: 4102, status: 400, reason: 'Message body is not valid JSON.' },
  BODY_NOT_OBJECT: { code: 4103, status: 400, reason: 'Message body must be a JSON object.' },
  INVALID_EXPIRY: { code: 4104, status: 400, reason: 'Message-Expiry must be a whole number of seconds, 0 or more.' },
  INVALID_TYPE: { code: 4105, status: 400, reason: 'Message-Type must be 1-64 characters from A-Z a-z 0-9 _ . : -.' },
  INVALID_BATCH: { code: 4106, status: 400, reason: 'Batch must be {"messages":[{"channels":[...],"body":...}]}.' },
  NOT_FOUND: { code: 4107, status: 404, reason: 'No such path on this server.' },
  METHOD_NOT_ALLOWED: { code: 4108, status: 405, reason: 'Method not allowed on this path.' },
  STORE_UNAVAILABLE: { code: 4109, status: 503, reason: 'Message store (Redis) unavailable; the request was not carried out. Retry later.' },
  SLOW_CONSUMER: { code: 4110, status: 503, reason: 'Client reads too slowly; reconnect with mid to resume.' },
  SHUTTING_DOWN: { code: 4111, status: 503, reason: 'Server is restarting; reconnect with mid to resume.' },
  FANOUT_TOO_LARGE: { code: 4112, status: 413, reason: 'Body bytes x channels exceed PUSH_MAX_FANOUT_BYTES: publish to fewer channels per request, or send a smaller body.' },
  CLIENT_RATE_LIMITED: { code: 4113, status: 429, reason: 'Client publishes to more receivers per second than PUSH_CLIENT_RATE allows; wait and send again.' },
  ORIGIN_NOT_ALLOWED: { code: 4114, status: 403, reason: 'Origin not allowed: serve the page from an origin listed in PUSH_ALLOWED_ORIGINS, or add it there.' },
  MALFORMED_HEADER: { code: 4115, status: 400, reason: 'A request header holds a control character; send header values as printable text.' },
  // 4120-4139: publish authentication and channel lifecycle (docs/security.md).
  AUTH_MISSING: { code: 4120, status: 401, reason: 'Unsigned request from an untrusted address: sign it (X-Push-Key-Id, X-Push-Timestamp, X-Push-Nonce, X-Push-Signature) or list the source in PUSH_PUBLISH_TRUSTED_NETWORKS.' },
  AUTH_MALFORMED: { code: 4121, status: 401, reason: 'Signature headers are malformed.' },
  AUTH_UNKNOWN_KEY: { code: 4122, status: 401, reason: 'Unknown signing key id; the server has no such key in PUSH_PUBLISH_KEYS.' },
  AUTH_BAD_SIGNATURE: { code: 4123, status: 401, reason: 'Signature does not match the request.' },
  AUTH_STALE: { code: 4124, status: 401, reason: 'Request timestamp is outside the allowed window; check the sender clock (PUSH_PUBLISH_MAX_SKEW_S).' },
  AUTH_REPLAY: { code: 4125, status: 403, reason: 'Nonce was already used; sign every request with a fresh nonce.' },
  CHANNEL_EXPIRED: { code: 4126, status: 410, reason: 'Channel is past its write window; rotate it: mint a new channel id and give clients a new config.' },
  INVALID_MINT: { code: 4127, status: 400, reason: 'Mint request must be count=1..100.' },
  // Admin pages (/status, /server-stat/, /metrics): the gate in packages/runtime/src/admin-gate.ts.
  ADMIN_CLOSED: { code: 4128, status: 401, reason: 'Admin page: read it from PUSH_PUBLISH_TRUSTED_NETWORKS or send Authorization: Bearer <PUSH_ADMIN_TOKEN>.' },
  ADMIN_BAD_TOKEN: { code: 4129, status: 401, reason: 'Wrong admin token: send Authorization: Bearer with the PUSH_ADMIN_TOKEN configured on the server.' },
  // 4136-4139: subscription liveness.
  SUBSCRIPTION_DOWN: { code: 4136, status: 503, reason: 'A Redis subscription of this listener is down (reconnecting); live messages resume once it is back.' },
  // 4132-4135: publish identity and outcome (docs/reliability.md).
  INVALID_REQUEST_ID: { code: 4132, status: 400, reason: 'X-Push-Request-Id must be 8-64 characters from A-Z a-z 0-9 . _ : -.' },
  REQUEST_ID_CONFLICT: { code: 4133, status: 409, reason: 'Identity already used by a different publish: give each new request a new identity; resend a retry unchanged.' },
  OUTCOME_UNKNOWN: { code: 4134, status: 504, reason: 'Publish outcome unknown (Redis too slow): resending with the same identity is safe, it is stored at most once.' },
  // 4140-4159: protocol 5 (docs/protocol-v5.md).
  PORTAL_RPC_SIGNATURE: { code: 4140, status: 401, reason: 'Portal JSON-RPC request needs signature=<hex HMAC of the body with the signature key> (the pull module adds it).' },
  PORTAL_RPC_INVALID: { code: 4141, status: 400, reason: 'Portal JSON-RPC request must be {"jsonrpc":"2.0","method":"publish" or "getUsersLastSeen","params":{...}} or an array of them.' },
  // 4180-4189: shared mode, this server's own (per-client limits, registration).
  CLIENT_CONNECTION_LIMIT: { code: 4180, status: 429, reason: 'This portal has as many connections on this listener as PUSH_CLIENT_MAX_CONNECTIONS allows.' },
  CLIENT_PUBLISH_LIMIT: { code: 4181, status: 429, reason: 'This portal publishes more messages per second than PUSH_CLIENT_PUBLISH_RATE allows; retry later.' },
  SHARED_MODE_ONLY: { code: 4182, status: 404, reason: 'Client registration exists in shared mode only (PUSH_MODE=shared).' },
  INVALID_CLIENT: { code: 4183, status: 400, reason: 'Client ids are 32 characters from a-z 0-9 (the portal sends its public licence code).' },
  // 4170-4179: Redis topologies and durability (docs/operations.md, "Redis topologies").
  NOT_REPLICATED: { code: 4170, status: 504, reason: 'Stored on the Redis master; no replica confirmed it in time (replicated durability). Resend with the same identity.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof Errors;

/** A rejection carrying its catalogue entry and an optional detail that names the offending input. */
export class PushError extends Error {
  readonly spec: ErrorSpec;
  readonly detail: string | undefined;
  /** Seconds after which the same request may succeed (sent as Retry-After on HTTP answers). */
  readonly retryAfterS: number | undefined;
  constructor(spec: ErrorSpec, detail?: string, retryAfterS?: number) {
    super(detail === undefined ? spec.reason : `${spec.reason} ${detail}`);
    this.spec = spec;
    this.detail = detail;
    this.retryAfterS = retryAfterS;
  }
  /** The "<code>: <reason>" text used as HTTP body and WebSocket close reason. */
  get wire(): string {
    return errorText(this.spec, this.detail);
  }
}

export function errorText(spec: ErrorSpec, detail?: string): string {
  return detail === undefined ? `${spec.code}: ${spec.reason}` : `${spec.code}: ${spec.reason} ${detail}`;
}

/** HTTP status line text for the statuses the servers use. */
export const statusLine: Readonly<Record<number, string>> = Object.freeze({
  200: '200 OK',
  204: '204 No Content',
  304: '304 Not Modified',
  400: '400 Bad Request',
  401: '401 Unauthorized',
  403: '403 Forbidden',
  404: '404 Not Found',
  405: '405 Method Not Allowed',
  409: '409 Conflict',
  410: '410 Gone',
  413: '413 Payload Too Large',
  429: '429 Too Many Requests',
  500: '500 Internal Server Error',
  503: '503 Service Unavailable',
  504: '504 Gateway Timeout',
});
