import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { signature } from '../channel-id.js';
import type { StoredMessage } from '../record.js';
import { encodeIncomingMessage, isMessageAck, parseClientFrame, parseV5Call, rpcBatch, rpcError, rpcResult, RpcFailure, wrapIncomingMessages, type V5Context } from './json-rpc.js';

const secret = { key: 'k', algorithm: 'sha1' as const };
const ctx: V5Context = { secret, limits: { maxMessages: 2, maxChannels: 3, maxFanoutBytes: 1000 } };
const P = 'c'.repeat(32);
const sig = signature(`public:${P}`, secret);

describe('protocol 5 client frames', () => {
  const table: Array<[string, string, unknown]> = [
    ['pong', 'pong', { kind: 'pong' }],
    ['message ack', 'mack:00000000010000000000000001', { kind: 'ack', mid: '00000000010000000000000001' }],
    ['a request', '{"jsonrpc":"2.0","method":"ping","params":{},"id":1}', { kind: 'rpc', batch: false, calls: [{ kind: 'call', id: 1, method: 'ping', params: {} }] }],
    ['a notification (no id), params default {}', '{"jsonrpc":"2.0","method":"ping"}', { kind: 'rpc', batch: false, calls: [{ kind: 'call', id: undefined, method: 'ping', params: {} }] }],
    ['a string id', '{"jsonrpc":"2.0","method":"ping","id":"x"}', { kind: 'rpc', batch: false, calls: [{ kind: 'call', id: 'x', method: 'ping', params: {} }] }],
    ['a batch, one entry invalid', '[{"jsonrpc":"2.0","method":"ping","id":1},{"method":"ping","id":2}]', { kind: 'rpc', batch: true, calls: [{ kind: 'call', id: 1, method: 'ping', params: {} }, { kind: 'invalid', id: 2, error: { code: -32600, message: 'Invalid Request' } }] }],
    ['not JSON', '{oops', { kind: 'unparsable', error: { code: -32700, message: 'Parse error' } }],
    ['an empty batch', '[]', { kind: 'unparsable', error: { code: -32600, message: 'Invalid Request' } }],
    ['a batch over the limit', '[1,2,3]', { kind: 'unparsable', error: { code: 4016, message: '4016: Request exceeded the maximum number of messages.' } }],
    ['wrong version', '{"jsonrpc":"1.0","method":"ping","id":3}', { kind: 'rpc', batch: false, calls: [{ kind: 'invalid', id: 3, error: { code: -32600, message: 'Invalid Request' } }] }],
    ['method not a string', '{"jsonrpc":"2.0","method":5,"id":4}', { kind: 'rpc', batch: false, calls: [{ kind: 'invalid', id: 4, error: { code: -32600, message: 'Invalid Request' } }] }],
    ['params a string', '{"jsonrpc":"2.0","method":"ping","params":"x","id":5}', { kind: 'rpc', batch: false, calls: [{ kind: 'invalid', id: 5, error: { code: -32600, message: 'Invalid Request' } }] }],
    ['id an object', '{"jsonrpc":"2.0","method":"ping","id":{}}', { kind: 'rpc', batch: false, calls: [{ kind: 'invalid', id: null, error: { code: -32600, message: 'Invalid Request' } }] }],
    ['a scalar', '7', { kind: 'rpc', batch: false, calls: [{ kind: 'invalid', id: null, error: { code: -32600, message: 'Invalid Request' } }] }],
  ];
  for (const [name, text, expected] of table) it(name, () => assert.deepEqual(parseClientFrame(text, 2), expected));
});

describe('message acks posted over long poll', () => {
  const table: Array<[string, boolean]> = [
    ['mack:00000000010000000000000001', true],
    ['mack:', true],
    ['mack', false],
    ['{"jsonrpc":"2.0"}', false],
    [`mack:${'1'.repeat(100)}`, false],
  ];
  for (const [body, ack] of table) it(`${body.slice(0, 30)} -> ${ack}`, () => assert.equal(isMessageAck(Buffer.from(body)), ack));
});

describe('protocol 5 methods', () => {
  it('publish to users and signed public channels becomes one protocol-4 message (user keys, public ids)', () => {
    const call = parseV5Call('publish', { userList: [5, 5, 6], channelList: [`${P}.${sig}`], body: { module_id: 'im', command: 'x', params: {} } }, ctx);
    assert.deepEqual(call, {
      method: 'publish',
      usesUsers: true,
      request: { kind: 'incomingMessages', messages: [{ receivers: [{ id: 'user:5', isPrivate: true }, { id: 'user:6', isPrivate: true }, { id: P, isPrivate: false }], body: '{"module_id":"im","command":"x","params":{}}', expiry: 0, type: '' }] },
    });
  });
  it('publish: {publicId, signature} form, expiry kept, any JSON body', () => {
    const call = parseV5Call('publish', { channelList: [{ publicId: P, signature: sig }], body: 'A', expiry: 60 }, ctx);
    assert.equal(call.method, 'publish');
    if (call.method === 'publish') {
      assert.equal(call.usesUsers, false);
      assert.deepEqual(call.request.messages[0], { receivers: [{ id: P, isPrivate: false }], body: '"A"', expiry: 60, type: '' });
    }
  });
  it('the other methods', () => {
    assert.deepEqual(parseV5Call('getUsersLastSeen', { userList: [1, 2, 1] }, ctx), { method: 'getUsersLastSeen', users: [1, 2] });
    assert.deepEqual(parseV5Call('ping', {}, ctx), { method: 'ping' });
    assert.deepEqual(parseV5Call('listChannels', {}, ctx), { method: 'listChannels' });
    assert.deepEqual(parseV5Call('subscribeStatusChange', { userId: 9 }, ctx), { method: 'subscribeStatusChange', userId: 9 });
    assert.deepEqual(parseV5Call('unsubscribeStatusChange', { userId: 9 }, ctx), { method: 'unsubscribeStatusChange', userId: 9 });
    // The client re-subscribes after a reconnect with the ids as strings (object keys).
    assert.deepEqual(parseV5Call('subscribeStatusChange', { userId: '9' }, ctx), { method: 'subscribeStatusChange', userId: 9 });
    assert.deepEqual(parseV5Call('getUsersLastSeen', { userList: ['3', 3] }, ctx), { method: 'getUsersLastSeen', users: [3] });
  });
  const refused: Array<[string, string, unknown, number]> = [
    ['unknown method', 'frobnicate', {}, -32601],
    ['publish without body', 'publish', { userList: [1] }, -32602],
    ['publish without receivers', 'publish', { body: {} }, 4017],
    ['publish with empty lists', 'publish', { userList: [], channelList: [], body: {} }, 4017],
    ['publish to too many receivers', 'publish', { userList: [1, 2, 3, 4], body: {} }, 4018],
    ['publish: users and channels together over the limit', 'publish', { userList: [1, 2, 3], channelList: [`${P}.${sig}`], body: {} }, 4018],
    ['publish: user id not a number', 'publish', { userList: ['x1'], body: {} }, -32602],
    ['publish: user id 0', 'publish', { userList: [0], body: {} }, -32602],
    ['publish: channelList not an array', 'publish', { channelList: P, body: {} }, -32602],
    ['publish: channel without signature', 'publish', { channelList: [P], body: {} }, -32602],
    ['publish: bad channel signature', 'publish', { channelList: [`${P}.${'0'.repeat(40)}`], body: {} }, 4021],
    ['publish: channel id not 32 hex', 'publish', { channelList: [`abc.${sig}`], body: {} }, 4019],
    ['publish: negative expiry', 'publish', { userList: [1], body: {}, expiry: -1 }, -32602],
    ['publish: fractional expiry', 'publish', { userList: [1], body: {}, expiry: 1.5 }, -32602],
    ['publish: fan-out over the limit', 'publish', { userList: [1, 2, 3], body: { pad: 'x'.repeat(400) } }, 4112],
    ['getUsersLastSeen without list', 'getUsersLastSeen', {}, -32602],
    ['getUsersLastSeen over the limit', 'getUsersLastSeen', { userList: [1, 2, 3, 4] }, 4018],
    ['subscribeStatusChange without userId', 'subscribeStatusChange', {}, -32602],
    ['unsubscribeStatusChange with a string that is no id', 'unsubscribeStatusChange', { userId: '1a' }, -32602],
    ['subscribeStatusChange with 0', 'subscribeStatusChange', { userId: 0 }, -32602],
    ['params an array', 'publish', [1], -32602],
  ];
  for (const [name, method, params, code] of refused) {
    it(`refuses ${name} with ${code}`, () => {
      assert.throws(() => parseV5Call(method, params, ctx), (e: unknown) => e instanceof RpcFailure && e.error.code === code && e.error.message.length > 0);
    });
  }
});

describe('protocol 5 frames to the client', () => {
  const msg = (body: string, sender = { type: 2, id: '' }): StoredMessage => ({ mid: '17000000000000000000000012', createdMs: 1_700_000_000_500, expiry: 60, type: 't', sender, body });
  it('incoming.message: mid, body with server time in extra, sender', () => {
    const frame = JSON.parse(encodeIncomingMessage(msg('{"module_id":"im","command":"x","params":{"a":1}}')));
    assert.deepEqual(frame, {
      jsonrpc: '2.0',
      method: 'incoming.message',
      params: { mid: '17000000000000000000000012', body: { module_id: 'im', command: 'x', params: { a: 1 }, extra: { server_time: '2023-11-14T22:13:20.500Z', server_time_unix: 1700000000.5 } }, sender: { type: 2, id: '' } },
    });
  });
  it('the portal\'s own server time is kept; other extra fields stay', () => {
    const frame = JSON.parse(encodeIncomingMessage(msg('{"module_id":"im","extra":{"server_time_unix":5,"revision_web":19}}')));
    assert.deepEqual(frame.params.body.extra, { server_time_unix: 5, revision_web: 19 });
  });
  it('client senders: public id as is, a token user by its id', () => {
    assert.deepEqual(JSON.parse(encodeIncomingMessage(msg('{}', { type: 1, id: 'c'.repeat(32) }))).params.sender, { type: 1, id: 'c'.repeat(32) });
    assert.deepEqual(JSON.parse(encodeIncomingMessage(msg('{}', { type: 1, id: 'user:42' }))).params.sender, { type: 1, id: '42' });
  });
  it('bodies that are not objects go as they are and the frame is valid JSON', () => {
    for (const body of ['1', '"A"', '[1]', 'null']) assert.deepEqual(JSON.parse(encodeIncomingMessage(msg(body))).params.body, JSON.parse(body));
  });
  it('a body nested too deeply to re-encode is delivered unchanged', () => {
    const deep = '{"a":' + '['.repeat(100000) + ']'.repeat(100000) + '}';
    assert.ok(encodeIncomingMessage(msg(deep)).includes(deep));
  });
  it('several notifications in one frame are a JSON array; one stays an object', () => {
    const a = Buffer.from(encodeIncomingMessage(msg('{"n":1}')));
    const b = Buffer.from(encodeIncomingMessage(msg('{"n":2}')));
    assert.equal(wrapIncomingMessages([a]), a);
    const both = JSON.parse(Buffer.from(wrapIncomingMessages([a, b])).toString());
    assert.deepEqual(both.map((f: { params: { body: { n: number } } }) => f.params.body.n), [1, 2]);
  });
  it('responses: results, errors, batches, nothing for notifications', () => {
    assert.equal(rpcResult(1, {}), '{"jsonrpc":"2.0","id":1,"result":{}}');
    assert.equal(rpcError('a', { code: -32601, message: 'Method not found' }), '{"jsonrpc":"2.0","id":"a","error":{"code":-32601,"message":"Method not found"}}');
    assert.equal(rpcResult(undefined, {}), null);
    assert.equal(rpcBatch([rpcResult(1, 1), null, rpcResult(2, 2)], true), '[{"jsonrpc":"2.0","id":1,"result":1},{"jsonrpc":"2.0","id":2,"result":2}]');
    assert.equal(rpcBatch([null], true), null);
    assert.equal(rpcBatch([rpcResult(1, 1)], false), '{"jsonrpc":"2.0","id":1,"result":1}');
  });
});
