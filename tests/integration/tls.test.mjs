// HTTPS upstreams (BearSSL in the gateway): a test CA made with openssl at test time,
// RSA and EC server certificates, unknown CA / wrong host name → 502, insecure_skip_verify.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, errorBody, tempDir, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { makeCA, makeServerCert } from '../lib/tlsca.mjs';

let rsa, ec, rogue, wrongName, gw;
const MSG = [{ role: 'user', content: 'over tls' }];

before(async () => {
  const dir = tempDir('bifrost-ca-');
  const ca = makeCA(dir, 'Bifrost Test CA', { name: 'ca' });
  const otherCa = makeCA(dir, 'Unrelated CA', { name: 'otherca' });
  rsa = await startMock({ name: 'rsa', tls: makeServerCert(dir, ca, { name: 'rsa', keyType: 'rsa' }) });
  ec = await startMock({ name: 'ec', tls: makeServerCert(dir, ca, { name: 'ec', keyType: 'ec' }) });
  rogue = await startMock({ name: 'rogue', tls: makeServerCert(dir, otherCa, { name: 'rogue' }) });
  wrongName = await startMock({ name: 'wrongname', tls: makeServerCert(dir, ca, { name: 'wrong', cn: 'not-localhost.example', san: ['DNS:not-localhost.example'] }) });
  const tls = { ca_file: ca.certFile };
  const https = (mk) => `https://localhost:${mk.port}/v1`;
  gw = await startGateway({
    config: {
      providers: [
        { name: 'rsa', provider: 'openai', apiKey: 'sk-rsa', base_url: https(rsa), tls, max_retries: 0 },
        { name: 'ec', provider: 'openai', apiKey: 'sk-ec', base_url: https(ec), tls, max_retries: 0 },
        { name: 'rogue', provider: 'openai', apiKey: 'sk-rogue', base_url: https(rogue), tls, max_retries: 0 },
        { name: 'wrongname', provider: 'openai', apiKey: 'sk-w', base_url: https(wrongName), tls, max_retries: 0 },
        { name: 'insecure', provider: 'openai', apiKey: 'sk-i', base_url: https(rogue), max_retries: 0,
          tls: { insecure_skip_verify: true } },
      ],
    },
  });
});

after(async () => {
  await gw?.stop();
  for (const m of [rsa, ec, rogue, wrongName]) await m?.close();
});

test('https upstream with an RSA certificate from tls.ca_file → 200, body byte-exact', async () => {
  rsa.reset();
  const r = await chat(gw.port, { model: 'rsa/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['x-bifrost-provider'], 'rsa/gpt-4o');
  assert.equal(rsa.requests.length, 1);
  assert.equal(rsa.requests[0].headers.authorization, 'Bearer sk-rsa');
  assert.equal(rsa.requests[0].headers.host, `localhost:${rsa.port}`);
  assert.equal(rsa.requests[0].json.model, 'gpt-4o');
  assert.deepEqual(r.body, rsa.sent[0].body);
});

test('https upstream with an EC P-256 certificate → 200', async () => {
  ec.reset();
  const r = await chat(gw.port, { model: 'ec/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().choices[0].message.content, 'Hello from ec');
});

test('streaming over TLS is forwarded byte-exact (usage chunk dropped)', async () => {
  rsa.reset();
  rsa.behave({ chunks: 5 });
  const r = await chat(gw.port, { model: 'rsa/gpt-4o', stream: true, messages: MSG });
  rsa.behave({});
  assert.equal(r.status, 200, r.text);
  const sent = rsa.sent[0];
  const expected = Buffer.concat(sent.events.filter((_, i) => i !== sent.usageIndex));
  assert.equal(r.text, expected.toString());
});

test('a large response over TLS (several TLS records) is byte-exact', async () => {
  rsa.reset();
  rsa.once({ content: 'tls-record '.repeat(20000) });
  const r = await chat(gw.port, { model: 'rsa/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, show(r));
  assert.ok(r.body.equals(rsa.sent[0].body), `got ${r.body.length} bytes, upstream sent ${rsa.sent[0].body.length}`);
});

test('a large request over TLS arrives byte-exact except the model', async () => {
  rsa.reset();
  const body = `{"model":"rsa/gpt-4o","messages":[{"role":"user","content":"${'q'.repeat(300000)}"}]}`;
  const r = await chat(gw.port, body);
  assert.equal(r.status, 200, show(r));
  assert.ok(rsa.requests[0].body.equals(Buffer.from(body.replace('"rsa/gpt-4o"', '"gpt-4o"'))), 'request body changed in transit');
});

test('sequential requests reuse one TLS connection to the upstream', async () => {
  ec.reset();
  const before = ec.connections;
  for (let i = 0; i < 4; i++) {
    const r = await chat(gw.port, { model: `ec/m${i}`, messages: MSG });
    assert.equal(r.status, 200, r.text);
  }
  assert.equal(ec.socketIds().length, 1, `4 requests used ${ec.socketIds().length} TLS connections`);
  assert.ok(ec.connections - before <= 1);
});

test('certificate from an unknown CA → 502 mentioning TLS/certificate, nothing reaches the upstream handler', async () => {
  rogue.reset();
  const r = await chat(gw.port, { model: 'rogue/gpt-4o', messages: MSG });
  assert.equal(r.status, 502, r.text);
  const e = errorBody(r);
  assert.match(e.message, /tls|certificate|x\.?509/i);
  assert.equal(rogue.requests.length, 0, 'request was sent over an untrusted connection');
});

test('certificate for another host name → 502, nothing sent', async () => {
  wrongName.reset();
  const r = await chat(gw.port, { model: 'wrongname/gpt-4o', messages: MSG });
  assert.equal(r.status, 502, r.text);
  const e = errorBody(r);
  assert.match(e.message, /tls|certificate|x\.?509|name/i);
  assert.equal(wrongName.requests.length, 0);
});

test('tls.insecure_skip_verify: true accepts the unknown CA → 200', async () => {
  rogue.reset();
  const r = await chat(gw.port, { model: 'insecure/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, r.text);
  assert.equal(rogue.requests.length, 1);
  assert.equal(rogue.requests[0].headers.authorization, 'Bearer sk-i');
});

test('the gateway keeps serving TLS routes after TLS failures', async () => {
  const r = await chat(gw.port, { model: 'rsa/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, r.text);
});

test('a new TLS connection to the same upstream resumes the previous session', async () => {
  const dir = tempDir('bifrost-ca-');
  const ca = makeCA(dir, 'Resume CA', { name: 'ca' });
  const m = await startMock({ name: 'resume', tls: makeServerCert(dir, ca, { name: 'resume', keyType: 'ec' }) });
  const sessions = new Map(); // session-ID resumption: the server keeps the sessions it hands out
  let resumed = 0;
  m.server.on('newSession', (id, data, cb) => { sessions.set(id.toString('hex'), data); cb(); });
  m.server.on('resumeSession', (id, cb) => {
    const data = sessions.get(id.toString('hex')) || null;
    if (data) resumed++;
    cb(null, data);
  });
  m.behave({ headers: { connection: 'close' } }); // every request needs a new connection
  const g = await startGateway({
    config: { providers: [{ name: 'r', provider: 'openai', apiKey: 'k', base_url: `https://localhost:${m.port}/v1`,
      tls: { ca_file: ca.certFile }, max_retries: 0 }], log_requests: false },
  });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await chat(g.port, { model: 'r/m', messages: MSG });
      assert.equal(r.status, 200, show(r));
    }
    assert.ok(m.socketIds().length >= 3, 'the upstream connections were reused, nothing to resume');
    assert.ok(resumed >= 2, `only ${resumed} of the later handshakes resumed the session`);
  } finally {
    await g.stop();
    await m.close();
  }
});
