/**
 * The WebSocket / browser Origin allow-list (PUSH_ALLOWED_ORIGINS). Entries are exact origins,
 * `scheme://host[:port]`, compared after the same normalisation browsers apply to the Origin header
 * (lower-case scheme and host, default port left out); `scheme://*.domain[:port]` matches any host
 * one or more labels below `domain` (not `domain` itself), the shape of portals served from
 * per-customer subdomains.
 */
export interface OriginRule {
  readonly scheme: 'http' | 'https';
  /** Lower-case host, or the domain below which any host matches when `wildcard`. */
  readonly host: string;
  /** '' for the scheme's default port, as browsers send it. */
  readonly port: string;
  readonly wildcard: boolean;
}

const WILDCARD_LABEL = 'origin-wildcard-label';

function parseOrigin(entry: string): OriginRule | null {
  const m = /^(https?):\/\/(\*\.)?([^/?#@\s]+)\/?$/i.exec(entry);
  if (m === null) return null;
  const wildcard = m[2] !== undefined;
  let url: URL;
  try {
    url = new URL(`${m[1]}://${wildcard ? `${WILDCARD_LABEL}.` : ''}${m[3]}`);
  } catch {
    return null;
  }
  if (url.username !== '' || url.password !== '' || url.pathname !== '/' || url.search !== '' || url.hash !== '') return null;
  const host = wildcard ? url.hostname.slice(WILDCARD_LABEL.length + 1) : url.hostname;
  // The URL parser lets through characters no real host name has (`*` elsewhere than in front).
  if (!/^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/.test(host)) return null;
  // A wildcard needs a real domain under it (`*.com` would admit half the web, `*.` nothing sane).
  if (host === '' || (wildcard && (!host.includes('.') || host.startsWith('[') || /^[0-9.]+$/.test(host)))) return null;
  return { scheme: m[1]?.toLowerCase() as 'http' | 'https', host, port: url.port, wildcard };
}

/** Parses "https://a.example, https://*.example.org" (commas or whitespace). Throws naming every bad entry. */
export function parseOrigins(text: string): OriginRule[] {
  const out: OriginRule[] = [];
  const bad: string[] = [];
  for (const entry of text.split(/[\s,]+/).filter((e) => e !== '')) {
    const rule = parseOrigin(entry);
    if (rule === null) bad.push(entry);
    else out.push(rule);
  }
  if (bad.length > 0) throw new Error(`not an origin (scheme://host[:port], optionally scheme://*.domain[:port]): ${bad.map((b) => JSON.stringify(b)).join(', ')}`);
  return out;
}

/** Allowed origins; an empty list allows every origin (the check is off). */
export class OriginPolicy {
  readonly enabled: boolean;
  constructor(private readonly rules: readonly OriginRule[]) {
    this.enabled = rules.length > 0;
  }

  /**
   * Whether a request with this Origin header value may proceed. A request without the header
   * ('') passes: browsers always send it on WebSocket handshakes and cross-origin requests, and
   * a non-browser client (mobile app, server) could send any value anyway, so the header only
   * protects users' browsers from foreign pages. `null` (sandboxed frames, file: pages) and
   * anything unparsable match no rule.
   */
  allows(origin: string): boolean {
    if (!this.enabled || origin === '') return true;
    const o = parseOrigin(origin);
    if (o === null || o.wildcard) return false;
    for (const r of this.rules) {
      if (r.scheme !== o.scheme || r.port !== o.port) continue;
      if (r.wildcard ? o.host.endsWith(`.${r.host}`) : o.host === r.host) return true;
    }
    return false;
  }
}
