// Failover with one and with several workers: every failure class of one provider is absorbed
// by the other (the client sees a normal 200), a stream cut mid-way is never switched, a
// 70/30 split holds over 2,000 requests, and Retry-After is honoured.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, request, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const MSG = [{ role: 'user', content: 'hi' }];
const started = [];
after(async () => { for (const x of started) await (x.stop ? x.stop() : x.close()); });

async function pair(workers, extra = {}) {
  const a = await startMock({ name: 'a' });
  const b = await startMock({ name: 'b' });
  const gw = await startGateway({
    workers,
    config: {
      providers: [
        { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, models: ['m'], weight: 70,
          max_retries: 0, timeout_ms: 500, ...extra },
        { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, models: ['m'], weight: 30, max_retries: 0 },
      ],
      circuit_breaker: { failures: 1000000, cooldown_ms: 1000 }, // keep every request going to a first
      log_requests: false,
    },
  });
  started.push(gw, a, b);
  return { a, b, gw };
}

for (const workers of [1, 2]) {
  test(`every failure class of the first provider fails over to the second (${workers} worker(s))`, async () => {
    const { a, b, gw } = await pair(workers);
    const classes = {
      '500': { status: 500, body: { error: { message: 'boom' } } },
      '503': { status: 503, body: { error: { message: 'unavailable' } } },
      '529 (overloaded)': { status: 529, body: { error: { message: 'overloaded' } } },
      '429': { status: 429, body: { error: { message: 'slow down' } } },
      'reset mid-body': { resetAfterBytes: 10 },
      'first-byte timeout': { delayMs: 1500 },
      'garbage': { raw: 'this is not HTTP\r\n\r\n' },
    };
    for (const [name, behaviour] of Object.entries(classes)) {
      a.behave(behaviour);
      let r;
      for (let i = 0; i < 20; i++) { // bare model "m": a is drawn 70% of the time; stop once it was
        const before = a.requests.length;
        r = await chat(gw.port, { model: 'm', messages: MSG });
        assert.equal(r.status, 200, `${name}: ${show(r)}`);
        if (a.requests.length > before) break;
      }
      assert.equal(r.headers['x-bifrost-provider'], 'b/m', `${name}: not served by b`);
      assert.equal(r.headers['x-bifrost-attempts'], '2', `${name}: attempts`);
    }
    a.behave({});
    assert.ok(b.requests.length >= Object.keys(classes).length);
  });

  test(`a stream cut mid-way ends with an error event and no second provider (${workers} worker(s))`, async () => {
    const { a, b, gw } = await pair(workers);
    a.behave({ chunks: 6, chunkDelayMs: 20, resetAfterChunks: 2 });
    let r;
    for (let i = 0; i < 20; i++) {
      const before = a.requests.length;
      r = await chat(gw.port, { model: 'a/m', messages: MSG, stream: true });
      if (a.requests.length > before) break;
    }
    assert.equal(r.status, 200, show(r));
    assert.match(r.text, /"error"/, 'no error event at the end of the cut stream');
    assert.doesNotMatch(r.text, /\[DONE\]/);
    assert.equal(b.requests.length, 0, 'the stream was switched to another provider');
    a.behave({});
  });
}

test('70/30 weights hold within a few percent over 2,000 requests', async () => {
  const { a, b, gw } = await pair(2);
  const N = 2000;
  const batch = 50;
  for (let i = 0; i < N; i += batch) {
    const rs = await Promise.all(Array.from({ length: batch }, () => chat(gw.port, { model: 'm', messages: MSG })));
    for (const r of rs) assert.equal(r.status, 200, show(r));
  }
  const share = a.requests.length / N;
  assert.equal(a.requests.length + b.requests.length, N);
  assert.ok(share > 0.66 && share < 0.74, `a served ${(share * 100).toFixed(1)}%, want 70% ± 4% (4 sigma)`);
});

test('Retry-After is honoured before retrying the same provider', async () => {
  const { a, gw } = await pair(1, { max_retries: 1 });
  a.once({ status: 503, headers: { 'retry-after': '1' }, body: { error: { message: 'later' } } });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'a/m');
  assert.equal(r.headers['x-bifrost-attempts'], '2');
  assert.ok(ms >= 950, `retried after ${ms} ms, Retry-After said 1 s`);
});

test('a provider streaming one endless event is cut at limits.max_response_bytes with an error event', async () => {
  const http = await import('node:http');
  let stop = false;
  const srv = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write('data: ');
    const pump = () => { // never a blank line: one event that does not end
      if (stop || res.destroyed) return;
      res.write('x'.repeat(8192), () => setImmediate(pump));
    };
    pump();
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  started.push({ close: () => { stop = true; srv.closeAllConnections?.(); return new Promise((r) => srv.close(r)); } });
  const gw = await startGateway({
    config: {
      providers: [{ name: 'e', provider: 'openai', apiKey: 'k', base_url: `http://127.0.0.1:${srv.address().port}/v1` }],
      limits: { max_response_bytes: 65536 },
      log_requests: false,
    },
  });
  started.push(gw);
  const r = await chat(gw.port, { model: 'e/m', messages: MSG, stream: true }, { timeout: 5000 });
  assert.equal(r.status, 200, show(r));
  assert.match(r.text, /max_response_bytes/, `no error event: ${r.text.slice(0, 200)}`);
  assert.ok(r.text.length < 4096, 'the endless event reached the client');
  const health = await request(gw.port, { path: '/health' });
  assert.equal(health.status, 200, 'the gateway stopped serving');
});

test('a retried request counts once against a request-rate limit', async () => {
  const a = await startMock({ name: 'rl' });
  const gw = await startGateway({
    config: {
      providers: [{ name: 'a', provider: 'openai', apiKey: 'sk', base_url: a.baseUrl, max_retries: 1 }],
      governance: { enforce: true, virtual_keys: [{ id: 'k', value: 'sk-bf-k',
        rate_limit: { request_max_limit: 2, request_reset_duration: '1h' } }] },
      log_requests: false,
    },
  });
  started.push(gw, a);
  const auth = { authorization: 'Bearer sk-bf-k' };
  a.once({ status: 500, body: { error: { message: 'once' } } });
  const r1 = await chat(gw.port, { model: 'a/m', messages: MSG }, { headers: auth });
  assert.equal(r1.status, 200, show(r1));
  assert.equal(r1.headers['x-bifrost-attempts'], '2');
  const r2 = await chat(gw.port, { model: 'a/m', messages: MSG }, { headers: auth });
  assert.equal(r2.status, 200, `the retry was counted as a second request: ${show(r2)}`);
  const r3 = await chat(gw.port, { model: 'a/m', messages: MSG }, { headers: auth });
  assert.equal(r3.status, 429, show(r3));
});

test('a quiet stream gets keep-alive pings: Anthropic `ping` events, SSE comments for OpenAI', async () => {
  const o = await startMock({ name: 'slow' });
  const gw = await startGateway({
    config: {
      providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl }],
      limits: { stream_ping_ms: 200 },
      log_requests: false,
    },
  });
  started.push(gw, o);
  o.behave({ chunks: 2, chunkDelayMs: 500 });
  const r = await chat(gw.port, { model: 'o/m', messages: MSG, stream: true });
  assert.equal(r.status, 200, show(r));
  assert.match(r.text, /^: ping$/m, 'no keep-alive comment in a stream silent for 500 ms');
  assert.match(r.text, /data: \[DONE\]/);
  const chunks = r.text.split('\n').filter((l) => l.startsWith('data: {'));
  assert.equal(chunks.length, 3, `events lost or duplicated around the pings: ${r.text}`); // 2 content + finish
  // the same through translation, for an Anthropic client: real `event: ping` events
  const a = await chat(gw.port, { model: 'o/m', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] },
    { path: '/v1/messages' });
  assert.equal(a.status, 200, show(a));
  assert.match(a.text, /event: ping\ndata: \{"type": "ping"\}/);
  assert.match(a.text, /event: message_stop/);
});
