/**
 * The page the Chromium suites of the official client's browser bundle run in: it serves
 * `window.startClient(name, userId, config)`, which starts a B24PullClientManager with a fake REST
 * API answering with `config`, and records what each client receives.
 */
export const CHROMIUM = '/usr/bin/chromium';
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

export const PAGE = `<!doctype html><html><head><meta charset="utf-8"><script src="/sdk.js"></script></head><body>
<script>
  window.clients = {};
  window.startClient = async (name, userId, config) => {
    const c = { received: [], fromClients: [], status: [], rest: [] };
    const b24 = {
      actions: { v2: { call: { make: async ({ method, params }) => {
        c.rest.push(method);
        return { getData: () => ({ result: method === 'pull.api.user.getLastSeen' ? {} : { ...config, serverTime: new Date().toISOString() } }) };
      } } } },
      callMethod: async () => ({ getData: () => ({ result: {} }) }),
    };
    c.pull = new B24Js.B24PullClientManager({ b24, userId, siteId: 's1', serverEnabled: true, skipStorageInit: true, skipCheckRevision: true, configTimestamp: 0 });
    c.pull.subscribe({ type: 'server', moduleId: 'test', callback: (data) => c.received.push(data.command) });
    c.pull.subscribe({ type: 'client', moduleId: 'test', callback: (data) => c.fromClients.push({ command: data.command, sender: data.extra.sender }) });
    window.clients[name] = c;
    await c.pull.start(config);
  };
</script></body></html>`;

export type PageClient = { pull: Record<string, (...args: unknown[]) => unknown>; received: string[]; fromClients: Array<{ command: string; sender: unknown }>; status: unknown[]; rest: string[] };
export type Win = { clients: Record<string, PageClient>; startClient: (n: string, u: number, c: unknown) => Promise<void> };

