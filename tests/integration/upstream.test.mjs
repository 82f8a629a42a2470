// The upstream side: connection reuse, unreachable upstreams (502), deadlines (504),
// upstream resets, failover on 5xx / connection errors with body "fallbacks".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, chat, errorBody, freePort, RawConn, rawRequest, parseResponse, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

let a, b, gw, deadPort;
const MSG = [{ role: 'user', content: 'hi' }];

before(async () => {
  a = await startMock({ name: 'a' });
  b = await startMock({ name: 'b' });
  deadPort = await freePort(); // nothing listens here
  gw = await startGateway({
    workers: 1,
    config: {
      providers: [
        { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, models: ['a-*'], max_retries: 0, timeout_ms: 800 },
        { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, models: ['b-*'], max_retries: 0 },
        { name: 'dead', provider: 'openai', apiKey: 'sk-dead', base_url: `http://127.0.0.1:${deadPort}/v1`, models: ['dead-*'],
          max_retries: 0, connect_timeout_ms: 1000 },
      ],
    },
  });
});

after(async () => {
  await gw?.stop();
  await a?.close();
  await b?.close();
});

test('sequential requests through one worker reuse ONE upstream TCP connection', async () => {
  a.reset();
  const before = a.connections;
  for (let i = 0; i < 6; i++) {
    const r = await chat(gw.port, { model: `a/a-${i}`, messages: MSG });
    assert.equal(r.status, 200, r.text);
  }
  assert.equal(a.requests.length, 6);
  assert.deepEqual(a.socketIds().length, 1, `requests came on ${a.socketIds().length} upstream sockets`);
  assert.equal(a.connections - before, 1, `${a.connections - before} new upstream TCP connections for 6 sequential requests`);
});

test('upstream connection is reused across client connections and after a streamed response', async () => {
  a.reset();
  const r1 = await chat(gw.port, { model: 'a/a-1', messages: MSG, stream: true });
  assert.equal(r1.status, 200, show(r1));
  assert.match(r1.text, /data: \[DONE\]/);
  const r2 = await chat(gw.port, { model: 'a/a-2', messages: MSG });
  assert.equal(r2.status, 200, show(r2));
  const r3 = await chat(gw.port, { model: 'a/a-3', messages: MSG, stream: true });
  assert.equal(r3.status, 200, show(r3));
  assert.equal(a.socketIds().length, 1, `3 requests used ${a.socketIds().length} upstream sockets`);
});

test('a new upstream connection is made when the upstream closed the idle one', async () => {
  a.reset();
  const r1 = await chat(gw.port, { model: 'a/a-1', messages: MSG });
  assert.equal(r1.status, 200, show(r1));
  a.server.closeIdleConnections(); // upstream drops its keep-alive sockets
  await sleep(100);
  const r2 = await chat(gw.port, { model: 'a/a-2', messages: MSG });
  assert.equal(r2.status, 200, `request after the upstream closed the pooled connection: ${r2.status} ${r2.text}`);
  assert.equal(a.requests.length, 2);
});

test('upstream answering Connection: close is not reused; every request still succeeds', async () => {
  a.reset();
  a.behave({ headers: { connection: 'close' } });
  try {
    for (let i = 0; i < 3; i++) {
      const r = await chat(gw.port, { model: `a/a-close-${i}`, messages: MSG });
      assert.equal(r.status, 200, show(r));
    }
  } finally {
    a.behave({});
  }
  assert.equal(a.requests.length, 3);
  assert.equal(a.socketIds().length, 3, 'a connection the upstream closed must not be reused');
});

test('with 2 workers, sequential requests use at most 2 upstream connections (one pool per worker)', async () => {
  const m = await startMock({ name: 'pool2' });
  const g = await startGateway({ workers: 2, config: { providers: [{ name: 'p', provider: 'openai', apiKey: 'sk', base_url: m.baseUrl }] } });
  try {
    for (let i = 0; i < 12; i++) {
      const r = await chat(g.port, { model: `p/m${i}`, messages: MSG });
      assert.equal(r.status, 200, show(r));
    }
    assert.ok(m.connections <= 2, `${m.connections} upstream connections for 12 sequential requests on 2 workers`);
  } finally {
    await g.stop();
    await m.close();
  }
});

test('upstream that refuses connections → 502 OpenAI error', async () => {
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'dead/dead-1', messages: MSG });
  assert.equal(r.status, 502, r.text);
  errorBody(r);
  assert.ok(Date.now() - t0 < 5000, 'took too long to report a refused connection');
});

test('upstream slower than timeout_ms (800) to send headers → 504', async () => {
  a.reset();
  a.once({ delayMs: 3000 });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/a-slow', messages: MSG });
  const dt = Date.now() - t0;
  assert.equal(r.status, 504, r.text);
  errorBody(r);
  assert.ok(dt >= 600 && dt < 2500, `504 after ${dt} ms (timeout_ms 800)`);
});

test('upstream that accepts and never answers → 504', async () => {
  a.reset();
  a.once({ hang: true });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/a-hang', messages: MSG });
  assert.equal(r.status, 504, r.text);
  errorBody(r);
  assert.ok(Date.now() - t0 < 2500);
  // and the gateway still serves
  const ok = await chat(gw.port, { model: 'a/a-after', messages: MSG });
  assert.equal(ok.status, 200, ok.text);
});

test('upstream resets mid-body: the client never sees a complete 200, gateway keeps serving', async () => {
  a.reset();
  a.once({ resetAfterBytes: 40 });
  const c = await RawConn.open(gw.port);
  try {
    await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json' }, body: '{"model":"a/a-reset","messages":[]}' }));
    const parse = () => { try { return parseResponse(c.all); } catch (e) { return { status: -1, error: e }; } };
    await c.waitFor(() => c.closed || parse() !== null, 5000);
    const got = c.all.toString('latin1');
    const full = parse();
    if (full && full.status === 200) {
      assert.fail(`a truncated upstream body was delivered as a complete 200 response: ${JSON.stringify(got)}`);
    }
    if (!full) {
      // headers + partial body then close is acceptable; it must close, not hang
      assert.ok(await c.waitClose(3000), `connection left hanging with a partial response: ${JSON.stringify(got)}`);
    } else {
      assert.equal(full.status, 502, got);
    }
  } finally {
    c.destroy();
  }
  const ok = await chat(gw.port, { model: 'a/a-after', messages: MSG });
  assert.equal(ok.status, 200, ok.text);
});

test('failover: body "fallbacks" is tried when the first provider answers 500', async () => {
  a.reset(); b.reset();
  a.once({ status: 500, body: '{"error":{"message":"boom","type":"server_error","code":null}}' });
  const r = await chat(gw.port, { model: 'a/a-primary', messages: MSG, fallbacks: ['b/b-backup'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['x-bifrost-provider'], 'b/b-backup');
  assert.equal(a.requests.length, 1);
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].json.model, 'b-backup');
  assert.equal(b.requests[0].headers.authorization, 'Bearer sk-b');
  assert.ok(!('fallbacks' in b.requests[0].json), 'fallbacks forwarded upstream');
  assert.deepEqual(r.body, b.sent[0].body);
});

test('failover: body "fallbacks" is tried when the first provider is unreachable', async () => {
  b.reset();
  const r = await chat(gw.port, { model: 'dead/dead-x', messages: MSG, fallbacks: ['b/b-backup2'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['x-bifrost-provider'], 'b/b-backup2');
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].json.model, 'b-backup2');
});

test('failover on 429 from the first provider', async () => {
  a.reset(); b.reset();
  a.once({ status: 429, body: '{"error":{"message":"slow down","type":"rate_limit","code":null}}' });
  const r = await chat(gw.port, { model: 'a/a-x', messages: MSG, fallbacks: ['b/b-y'] });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers['x-bifrost-provider'], 'b/b-y');
});

test('no failover on a 400 from the first provider: the 400 is returned', async () => {
  a.reset(); b.reset();
  const err = '{"error":{"message":"bad request upstream","type":"invalid_request_error","code":"x"}}';
  a.once({ status: 400, body: err });
  const r = await chat(gw.port, { model: 'a/a-x', messages: MSG, fallbacks: ['b/b-y'] });
  assert.equal(r.status, 400, r.text);
  assert.equal(r.text, err);
  assert.equal(b.requests.length, 0, '4xx must not fail over');
});

test('every candidate fails: the last upstream status and body reach the client', async () => {
  a.reset(); b.reset();
  a.once({ status: 500, body: '{"error":{"message":"a down","type":"server_error","code":null}}' });
  const lastErr = '{"error":{"message":"b down too","type":"server_error","code":"b503"}}';
  b.once({ status: 503, body: lastErr });
  const r = await chat(gw.port, { model: 'a/a-x', messages: MSG, fallbacks: ['b/b-y'] });
  assert.equal(r.status, 503, r.text);
  assert.equal(r.text, lastErr);
});

test('max_retries: a provider with max_retries 2 is tried 3 times on 500 before giving up', async () => {
  const m = await startMock({ name: 'retry' });
  const g = await startGateway({
    config: { providers: [{ name: 'r', provider: 'openai', apiKey: 'sk-r', base_url: m.baseUrl, max_retries: 2 }] },
  });
  try {
    m.behave({ status: 500, body: '{"error":{"message":"nope","type":"server_error","code":null}}' });
    const r = await chat(g.port, { model: 'r/m', messages: MSG }, { timeout: 10000 });
    assert.equal(r.status, 500, r.text);
    assert.equal(m.requests.length, 3, `upstream saw ${m.requests.length} attempts`);
    m.reset();
    m.once({ status: 500, body: '{"error":{"message":"once","type":"server_error","code":null}}' });
    const r2 = await chat(g.port, { model: 'r/m', messages: MSG }, { timeout: 10000 });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(m.requests.length, 2);
  } finally {
    await g.stop();
    await m.close();
  }
});

test('concurrent requests on one worker each get their own upstream answer', async () => {
  a.reset();
  a.behave((rec) => ({ delayMs: 100, content: `reply to ${rec.json?.model}` }));
  const agent = new http.Agent({ keepAlive: false });
  try {
    const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => chat(gw.port, { model: `a/a-c${i}`, messages: MSG }, { agent })));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().choices[0].message.content, `reply to a-c${i}`);
      assert.equal(r.headers['x-bifrost-provider'], `a/a-c${i}`);
    });
  } finally {
    a.behave({});
    agent.destroy();
  }
});
