// What the upstream receives, byte for byte: the client's body with only the `model` value
// replaced, `fallbacks` removed, and stream_options.include_usage forced for streams.
// Also: the response body is passed back unchanged, errors included.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, RawConn, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

let m, gw;

before(async () => {
  m = await startMock({ name: 'up' });
  gw = await startGateway({
    config: {
      providers: [
        { name: 'p1', provider: 'openai', apiKey: 'sk-p1', base_url: m.baseUrl, models: ['gpt-*'], max_retries: 0 },
      ],
    },
  });
});

after(async () => {
  await gw?.stop();
  await m?.close();
});

/** send `body` (exact string), return the bytes the mock received */
async function roundTrip(body) {
  m.reset();
  const res = await chat(gw.port, body);
  assert.equal(res.status, 200, `status ${res.status}: ${res.text}`);
  assert.equal(m.requests.length, 1);
  return { res, up: m.requests[0].body };
}

function assertBytes(actual, expectedStr) {
  const exp = Buffer.from(expectedStr, 'utf8');
  if (!actual.equals(exp)) {
    assert.fail(`upstream body differs\n  expected: ${JSON.stringify(expectedStr)}\n  actual:   ${JSON.stringify(actual.toString('utf8'))}`);
  }
}

const ODD = '{ "messages" :[{"role":"user","content":"h\\u00e9llo \\ud83d\\ude00 \\"quoted\\" \\\\ back\\/slash"}] ,\n'
  + '  "model"\t:  "p1/gpt-odd-1"  , "temperature":0.5e0, "meta":{"model":"inner/untouched","k":[1,2,{"model":"x/y"}]},"n":1 }';

test('odd spacing, key order and \\u escapes arrive byte-identical except the model value', async () => {
  const { res, up } = await roundTrip(ODD);
  assertBytes(up, ODD.replace('"p1/gpt-odd-1"', '"gpt-odd-1"'));
  assert.equal(res.headers['x-bifrost-provider'], 'p1/gpt-odd-1');
});

test('raw UTF-8 (multi-byte) content arrives byte-identical', async () => {
  const body = '{"model":"p1/gpt-utf8","messages":[{"role":"user","content":"Grüße, 世界 🌍 — ok"}]}';
  const { up } = await roundTrip(body);
  assertBytes(up, body.replace('"p1/gpt-utf8"', '"gpt-utf8"'));
});

test('model as the last key, bare model (no prefix) is sent unchanged', async () => {
  const body = '{"messages":[{"role":"user","content":"x"}],"model":"gpt-bare"}';
  const { up } = await roundTrip(body);
  assertBytes(up, body);
});

test('a 1 MiB body arrives byte-identical except the model value', async () => {
  const filler = 'abcdefghij\\n'.repeat(90000); // ~1 MiB of JSON string with escapes
  const body = `{"model":"p1/gpt-big","messages":[{"role":"user","content":"${filler}"}],"max_tokens":5}`;
  const { up } = await roundTrip(body);
  assert.equal(up.length, body.length - 3);
  assertBytes(up, body.replace('"p1/gpt-big"', '"gpt-big"'));
});

test('stream:false: no stream_options added, bytes identical except model', async () => {
  const body = '{"model":"p1/gpt-s","stream":false,"messages":[{"role":"user","content":"x"}]}';
  const { up } = await roundTrip(body);
  assertBytes(up, body.replace('"p1/gpt-s"', '"gpt-s"'));
});

test('stream:true with include_usage:true: bytes identical except model', async () => {
  const body = '{"model":"p1/gpt-s","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}';
  const { up } = await roundTrip(body);
  assertBytes(up, body.replace('"p1/gpt-s"', '"gpt-s"'));
});

test('stream:true without stream_options: include_usage:true is inserted, the rest kept', async () => {
  const msgs = '[{"role":"user","content":"keep \\u00e9 me"}]';
  const body = `{"model":"p1/gpt-s", "stream" : true,"messages":${msgs},"temperature":1}`;
  const { up } = await roundTrip(body);
  const text = up.toString('utf8');
  let j;
  assert.doesNotThrow(() => { j = JSON.parse(text); }, `upstream body is not JSON: ${text}`);
  assert.deepEqual(j, { model: 'gpt-s', stream: true, messages: [{ role: 'user', content: 'keep é me' }], temperature: 1, stream_options: { include_usage: true } });
  assert.ok(text.includes(msgs), `messages span not verbatim in ${text}`);
  const order = Object.keys(j).filter((k) => k !== 'stream_options');
  assert.deepEqual(order, ['model', 'stream', 'messages', 'temperature']);
});

test('stream:true with include_usage:false: forced to true, other stream_options kept', async () => {
  const body = '{"model":"p1/gpt-s","stream":true,"stream_options":{"include_usage":false},"messages":[{"role":"user","content":"x"}]}';
  const { up } = await roundTrip(body);
  const j = JSON.parse(up.toString('utf8'));
  assert.deepEqual(j, { model: 'gpt-s', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'x' }] });
});

for (const [where, body, expected] of [
  ['first', '{"fallbacks":["p1/gpt-b"],"model":"p1/gpt-a","messages":[{"role":"user","content":"\\u0041"}]}', ['model', 'messages']],
  ['middle', '{"model":"p1/gpt-a", "fallbacks": ["p1/gpt-b", "x/y"] , "messages":[{"role":"user","content":"\\u0041"}]}', ['model', 'messages']],
  ['last', '{"model":"p1/gpt-a","messages":[{"role":"user","content":"\\u0041"}],"fallbacks":["p1/gpt-b"]}', ['model', 'messages']],
]) {
  test(`"fallbacks" (${where} key) is removed; the result is valid JSON with the rest kept`, async () => {
    const { up } = await roundTrip(body);
    const text = up.toString('utf8');
    let j;
    assert.doesNotThrow(() => { j = JSON.parse(text); }, `upstream body is not valid JSON: ${JSON.stringify(text)}`);
    assert.deepEqual(j, { model: 'gpt-a', messages: [{ role: 'user', content: 'A' }] });
    assert.deepEqual(Object.keys(j), expected);
    assert.ok(!text.includes('fallbacks'), text);
    assert.ok(text.includes('[{"role":"user","content":"\\u0041"}]'), `messages span not verbatim: ${text}`);
  });
}

test('chunked request body (model split across chunks) arrives de-chunked, byte-identical except model', async () => {
  m.reset();
  const body = '{"model":"p1/gpt-chunked","messages":[{"role":"user","content":"chunk me \\u00e9"}]}';
  const pieces = [body.slice(0, 5), body.slice(5, 14), body.slice(14, 40), body.slice(40)];
  const enc = pieces.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
  const c = await RawConn.open(gw.port);
  try {
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n'
      + 'Authorization: Bearer vk-x\r\nTransfer-Encoding: chunked\r\n\r\n');
    for (const p of enc.match(/[\s\S]{1,17}/g)) { await c.write(p); await new Promise((r) => setTimeout(r, 5)); }
    const r = await c.readResponse({ timeoutMs: 5000 });
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(m.requests.length, 1);
    assertBytes(m.requests[0].body, body.replace('"p1/gpt-chunked"', '"gpt-chunked"'));
    assert.deepEqual(r.body, m.sent[0].body);
  } finally {
    c.destroy();
  }
});

test('upstream 4xx error: status and body passed through unchanged, not retried', async () => {
  m.reset();
  const errBody = '{\n  "error": {"message": "This model\'s maximum context length is 8 tokens", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}\n}\n';
  m.behave({ status: 400, body: errBody });
  const res = await chat(gw.port, { model: 'p1/gpt-err', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(res.status, 400, show(res));
  assert.equal(res.text, errBody);
  assert.equal(m.requests.length, 1, '4xx (other than 429) must not be retried');
  m.behave({});
});

test('upstream 500 with max_retries 0 and no fallback: its status and body reach the client', async () => {
  m.reset();
  const errBody = '{"error":{"message":"upstream exploded","type":"server_error","code":null}}';
  m.behave({ status: 500, body: errBody });
  const res = await chat(gw.port, { model: 'p1/gpt-err', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(res.status, 500, res.text);
  assert.equal(res.text, errBody);
  m.behave({});
});

test('response with non-ASCII and large content is byte-identical', async () => {
  m.reset();
  const content = 'ünïcødé ✓ '.repeat(20000);
  m.behave({ content });
  const res = await chat(gw.port, { model: 'p1/gpt-large-resp', messages: [{ role: 'user', content: 'x' }] });
  assert.equal(res.status, 200, show(res));
  assert.ok(res.body.equals(m.sent[0].body), `response differs (got ${res.body.length} bytes, upstream sent ${m.sent[0].body.length})`);
  assert.equal(res.json().choices[0].message.content, content);
  m.behave({});
});

test('a model value written with JSON escapes is decoded for routing ("p1\\/gpt-\\u0034o" → p1, gpt-4o)', async () => {
  const body = '{"model":"p1\\/gpt-\\u0034o","messages":[{"role":"user","content":"\\u00e9"}]}';
  const { res, up } = await roundTrip(body);
  const text = up.toString('utf8');
  const j = JSON.parse(text);
  assert.equal(j.model, 'gpt-4o');
  assert.ok(text.endsWith(',"messages":[{"role":"user","content":"\\u00e9"}]}'), `rest of the body changed: ${text}`);
  assert.equal(res.headers['x-bifrost-provider'], 'p1/gpt-4o');
});

test('upstream JSON sent with Transfer-Encoding: chunked is relayed byte-identical', async () => {
  m.reset();
  m.behave({ chunkedBody: true, content: 'chunked upstream '.repeat(50) });
  try {
    const res = await chat(gw.port, { model: 'p1/gpt-te', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res.status, 200, res.text);
    assert.ok(res.body.equals(m.sent[0].body), `got ${JSON.stringify(res.text.slice(0, 200))}…`);
    // and the pooled upstream connection is still usable after a chunked response
    const res2 = await chat(gw.port, { model: 'p1/gpt-te2', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(res2.status, 200, res2.text);
    assert.ok(res2.body.equals(m.sent[1].body));
    assert.equal(m.socketIds().length, 1);
  } finally {
    m.behave({});
  }
});
