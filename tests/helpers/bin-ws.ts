import { createHmac } from 'node:crypto';
import { decodeResponseBatch, type DecodedResponse } from '@push/protocol';
import { TEST_KEY } from './apps.js';
import { TrackedSocket } from './clients.js';

/** Protocol-4 (binary) test clients and request builders, shared by the protocol and security suites. */

export type OutMsg = NonNullable<DecodedResponse['outgoingMessages']>['messages'][number];
export const hex = (h: string): Buffer => Buffer.from(h, 'hex');
/** The receiver signature a client sends for a public id: HMAC-SHA1 of "public:<id>" (raw bytes). */
export const publicSig = (pub: string): Buffer => createHmac('sha1', TEST_KEY).update(`public:${pub}`).digest();

/** A WebSocket subscriber that decodes ResponseBatch frames and keeps text frames as they are. */
export class BinWs extends TrackedSocket {
  readonly batches: DecodedResponse[][] = [];
  readonly messages: OutMsg[] = [];
  readonly textFrames: string[] = [];
  constructor(url: string) {
    super(url);
    this.ws.on('message', (data, isBinary) => {
      if (!isBinary) {
        this.textFrames.push(data.toString());
        return;
      }
      const batch = decodeResponseBatch(new Uint8Array(data as Buffer));
      this.batches.push(batch.responses);
      for (const r of batch.responses) if (r.outgoingMessages) this.messages.push(...r.outgoingMessages.messages);
    });
  }
  static async open(base: string, channels: string[], extra = '&binaryMode=true'): Promise<BinWs> {
    const c = new BinWs(`${base.replace(/^http/, 'ws')}/bitrix/subws/?CHANNEL_ID=${encodeURIComponent(channels.join('/'))}${extra}`);
    await c.opened;
    return c;
  }
}

/** One incomingMessages request with one message to `receivers`. */
export const incoming = (receivers: unknown[], body: unknown, expiry = 60): Record<string, unknown> => ({
  incomingMessages: { messages: [{ receivers, body: JSON.stringify(body), expiry, type: 'test_hello' }] },
});
