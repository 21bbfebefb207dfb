import WebSocket from 'ws';
import { decodeTextFrames, signChannel, type ChannelSecret } from '@push/protocol';
import { TEST_KEY } from './apps.js';
import { eventually } from './ports.js';

export const SECRET: ChannelSecret = { key: TEST_KEY, algorithm: 'sha1' };

/** 32 random lowercase hex characters: a fresh channel id per test. */
export function channelId(): string {
  return [...crypto.getRandomValues(new Uint8Array(16))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

export function signed(id: string, secret: ChannelSecret = SECRET): string {
  return signChannel(id, secret);
}

export type Frame = ReturnType<typeof decodeTextFrames>[number];

export async function publish(pubUrl: string, channels: string[], body: unknown, headers: Record<string, string> = {}, path = '/bitrix/pub/'): Promise<Response> {
  return fetch(`${pubUrl}${path}?CHANNEL_ID=${channels.join('/')}`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** A WebSocket that remembers whether and how it closed; subclasses record what it receives. */
export class TrackedSocket {
  closeCode: number | null = null;
  closeReason = '';
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly closed: Promise<void>;
  constructor(url: string) {
    this.ws = new WebSocket(url);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        resolve();
      });
    });
  }
}

/** A WebSocket subscriber that records every frame and message it gets. */
export class WsClient extends TrackedSocket {
  readonly frames: string[] = [];
  readonly messages: Frame[] = [];
  constructor(url: string) {
    super(url);
    this.ws.on('message', (data) => {
      const text = data.toString();
      this.frames.push(text);
      this.messages.push(...decodeTextFrames(text));
    });
  }
  static async connect(base: string, channels: string[], extra = '', path = '/bitrix/subws/'): Promise<WsClient> {
    const c = new WsClient(`${base.replace(/^http/, 'ws')}${path}?CHANNEL_ID=${encodeURIComponent(channels.join('/'))}${extra}`);
    await c.opened;
    return c;
  }
  async waitFor(count: number, timeoutMs = 5000): Promise<Frame[]> {
    await eventually(() => this.messages.length >= count, timeoutMs, `${count} messages (have ${this.messages.length})`);
    return this.messages;
  }
  close(): void {
    this.ws.close();
  }
}

export interface PollResult {
  readonly status: number;
  readonly headers: Headers;
  readonly body: string;
  readonly messages: Frame[];
}

export async function longPoll(base: string, channels: string[], extra = '', path = '/bitrix/sub/'): Promise<PollResult> {
  const res = await fetch(`${base}${path}?CHANNEL_ID=${encodeURIComponent(channels.join('/'))}${extra}`);
  const body = await res.text();
  return { status: res.status, headers: res.headers, body, messages: res.status === 200 ? decodeTextFrames(body) : [] };
}
