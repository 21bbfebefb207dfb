import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { Errors, PushError } from './errors.js';
import { bareChannelKey, channelKeyClient, checkRequestSignature, clientChannelKey, isClientId, parseRegisterRequest, parseSystemCommand, requestSignatureValid } from './shared-mode.js';

const CLIENT = 'fd818684484258a5c6f0442a070661d6';
const SECRET = { key: 'k'.repeat(64), algorithm: 'sha1' as const };

function code(fn: () => unknown): number | null {
  try {
    fn();
    return null;
  } catch (err) {
    assert.ok(err instanceof PushError, String(err));
    return err.spec.code;
  }
}

describe('shared mode: client ids and channel namespaces', () => {
  it('client ids are 32 characters a-z 0-9', () => {
    const table: Array<[string, boolean]> = [[CLIENT, true], ['z'.repeat(32), true], [CLIENT.toUpperCase(), false], [CLIENT.slice(1), false], [`${CLIENT}0`, false], ['', false], [`${CLIENT.slice(1)}/`, false]];
    for (const [id, ok] of table) assert.equal(isClientId(id), ok, id);
  });
  it('namespaced keys round-trip and name their client; personal keys have none', () => {
    const table = ['3c8264bab589b0de7174e7b0523a40db', 'p:c18beb389c3e49131dbb2dde597df615', 'user:17'];
    for (const key of table) {
      const ns = clientChannelKey(CLIENT, key);
      assert.notEqual(ns, key);
      assert.equal(bareChannelKey(ns), key);
      assert.equal(channelKeyClient(ns), CLIENT);
      assert.equal(channelKeyClient(key), null);
      assert.equal(bareChannelKey(key), key);
    }
    assert.notEqual(clientChannelKey(CLIENT, 'x'), clientChannelKey('a'.repeat(32), 'x'));
  });
});

describe('shared mode: request signatures', () => {
  const body = 'hello';
  const good = createHmac('sha1', SECRET.key).update(body).digest('hex');
  it('table', () => {
    const table: Array<[string | undefined, boolean]> = [[good, true], [good.toUpperCase(), false], [good.slice(1), false], [undefined, false], ['', false], [createHmac('sha1', 'other').update(body).digest('hex'), false], [`${good}00`, false]];
    for (const [sig, ok] of table) assert.equal(requestSignatureValid(body, sig, SECRET), ok, String(sig));
    assert.equal(code(() => checkRequestSignature(body, undefined, SECRET)), Errors.WRONG_REQUEST_SIGNATURE.code);
    assert.equal(code(() => checkRequestSignature(Buffer.from(body), good, SECRET)), null);
  });
});

describe('shared mode: /register-client/ and /systemctl/ bodies', () => {
  it('register: table of codes', () => {
    const vq = (q: string) => `verificationQuery=${encodeURIComponent(q)}`;
    const table: Array<[string, number | null]> = [
      ['', 4022],
      ['x=1', 4024],
      ['verificationQuery=', 4024],
      [vq('BX_TYPE=CP'), 4183],
      [vq(`BX_LICENCE=${CLIENT.toUpperCase()}&BX_TYPE=CP`), 4183],
      [vq(`BX_LICENCE=${CLIENT}&BX_TYPE=CP&BX_HASH=abc&BX_ALL=y`), null],
    ];
    for (const [body, c] of table) assert.equal(code(() => parseRegisterRequest(body)), c, body);
    assert.equal(parseRegisterRequest(vq(`BX_LICENCE=${CLIENT}&BX_TYPE=CP`)).clientId, CLIENT);
  });
  it('systemctl: table of codes in push server 2.0 order', () => {
    const table: Array<[string, number | null]> = [
      ['{', 4032],
      ['"x"', 4032],
      ['null', 4032],
      ['{}', 4033],
      ['{"method":1,"params":{}}', 4033],
      ['{"method":"unregister"}', 4034],
      ['{"method":"unregister","params":"x"}', 4034],
      ['{"method":"register","params":{}}', 4035],
      [`{"method":"unregister","params":{"clientId":"${CLIENT}"}}`, null],
    ];
    for (const [body, c] of table) assert.equal(code(() => parseSystemCommand(body)), c, body);
    assert.deepEqual(parseSystemCommand(`{"method":"unregister","params":{"clientId":"${CLIENT}","host":"h"}}`), { method: 'unregister', clientId: CLIENT });
  });
});
