// Server-sent event streams: forwarded as they arrive, byte-exact, the gateway's own usage
// chunk dropped unless the client asked for it, and broken/idle upstream streams ended.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, chat, errorBody, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

let m, gw;
const MSG = [{ role: 'user', content: 'stream please' }];

before(async () => {
  m = await startMock({ name: 's' });
  gw = await startGateway({
    config: {
      providers: [{ name: 's', provider: 'openai', apiKey: 'sk-s', base_url: m.baseUrl, max_retries: 0, stream_idle_timeout_ms: 600 }],
    },
  });
});

after(async () => {
  await gw?.stop();
  await m?.close();
});

/**
 * POST a streaming request; resolve when the response ends, closes, or errors (or timeoutMs).
 * Returns { status, headers, body: Buffer, arrivals: [{ t, bytes }], ended, aborted, tEnd }.
 */
function streamRequest(body, { timeoutMs = 8000, abortAfterFirst = false } = {}) {
  return new Promise((resolve, reject) => {
    const out = { arrivals: [], ended: false, aborted: false, tEnd: null };
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port: gw.port, method: 'POST', path: '/v1/chat/completions', agent: false,
      headers: { 'content-type': 'application/json', authorization: 'Bearer vk-x', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      out.tHeaders = Date.now();
      res.on('data', (d) => {
        out.arrivals.push({ t: Date.now(), bytes: d });
        if (abortAfterFirst) { req.destroy(); finish(); }
      });
      res.on('end', () => { out.ended = true; finish(); });
      res.on('aborted', () => { out.aborted = true; });
      res.on('close', finish);
      res.on('error', () => { out.aborted = true; finish(); });
    });
    let done = false;
    const timer = setTimeout(() => { out.timedOut = true; req.destroy(); finish(); }, timeoutMs);
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      out.tEnd = Date.now();
      out.body = Buffer.concat(out.arrivals.map((a) => a.bytes));
      resolve(out);
    }
    req.on('error', (e) => { if (out.status === undefined) { clearTimeout(timer); reject(e); } else { out.aborted = true; finish(); } });
    req.end(payload);
  });
}

const concat = (events, skip = -1) => Buffer.concat(events.filter((_, i) => i !== skip));

function assertSameBytes(actual, expected, what) {
  if (!actual.equals(expected)) {
    assert.fail(`${what}\n  expected: ${JSON.stringify(expected.toString())}\n  actual:   ${JSON.stringify(actual.toString())}`);
  }
}

test('stream without include_usage: the usage chunk the gateway asked for is dropped, the rest byte-exact', async () => {
  m.reset();
  m.behave({ chunks: 4 });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
  assert.equal(r.headers['x-bifrost-provider'], 's/gpt-4o');
  assert.equal(m.requests[0].json.stream_options?.include_usage, true, 'gateway did not ask the upstream for usage');
  const sent = m.sent[0];
  assert.ok(sent.usageIndex >= 0);
  assert.ok(r.ended, 'stream did not end cleanly');
  assertSameBytes(r.body, concat(sent.events, sent.usageIndex), 'client stream must be the upstream stream minus the usage chunk');
  assert.ok(!r.body.toString().includes('"usage"'), 'usage chunk leaked to a client that did not ask');
  assert.match(r.body.toString(), /data: \[DONE\]\n\n$/);
});

test('stream with include_usage:true: the usage chunk is kept, stream byte-exact', async () => {
  m.reset();
  m.behave({ chunks: 4 });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, stream_options: { include_usage: true }, messages: MSG });
  assert.equal(r.status, 200, show(r));
  const sent = m.sent[0];
  assertSameBytes(r.body, concat(sent.events), 'client stream must equal the upstream stream');
  const usageLine = r.body.toString().split('\n\n').find((e) => e.includes('"usage"'));
  assert.ok(usageLine, 'usage chunk missing');
  assert.deepEqual(JSON.parse(usageLine.slice(6)).choices, []);
});

test('events split across upstream writes (mid-JSON) are still forwarded exactly, usage dropped', async () => {
  m.reset();
  m.behave({ chunks: 3, writeMode: 'split' });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG });
  assert.equal(r.status, 200, show(r));
  const sent = m.sent[0];
  assertSameBytes(r.body, concat(sent.events, sent.usageIndex), 'split events');
});

test('all events in one upstream write (usage chunk coalesced with [DONE]) → usage still dropped', async () => {
  m.reset();
  m.behave({ chunks: 3, writeMode: 'coalesce' });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG });
  assert.equal(r.status, 200, show(r));
  const sent = m.sent[0];
  assertSameBytes(r.body, concat(sent.events, sent.usageIndex), 'coalesced events');
});

test('a long stream (300 chunks) is forwarded byte-exact', async () => {
  m.reset();
  m.behave({ chunks: 300, content: 'x'.repeat(3000) });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, stream_options: { include_usage: true }, messages: MSG });
  assert.equal(r.status, 200, show(r));
  assertSameBytes(r.body, concat(m.sent[0].events), 'long stream');
});

test('chunks are forwarded as they arrive (300 ms apart upstream → first chunk long before the last)', async () => {
  m.reset();
  m.behave({ chunks: 5, chunkDelayMs: 300 });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG });
  assert.equal(r.status, 200, show(r));
  const sent = m.sent[0];
  const tLastSent = sent.times[sent.times.length - 1];
  const firstContent = r.arrivals.find((a) => a.bytes.toString().includes('"content"'));
  assert.ok(firstContent, 'no content chunk received');
  const lead = tLastSent - firstContent.t;
  assert.ok(lead >= 1200, `first chunk reached the client only ${lead} ms before the upstream sent its last event (expected ≥ 1200 ms of the ~2100 ms stream): the stream is buffered`);
  // and each content chunk arrives within ~150 ms of being sent
  const recvTimes = [];
  let acc = '';
  for (const a of r.arrivals) {
    acc += a.bytes.toString();
    const n = (acc.match(/data: /g) || []).length;
    while (recvTimes.length < n) recvTimes.push(a.t);
  }
  for (let i = 0; i < 5; i++) {
    const lag = recvTimes[i] - sent.times[i];
    assert.ok(lag < 250, `event ${i} arrived ${lag} ms after the upstream sent it`);
  }
});

test('upstream goes silent mid-stream → stream ended after stream_idle_timeout_ms (600), no [DONE]', async () => {
  m.reset();
  m.behave({ chunks: 4, hangAfterChunks: 2 });
  const t0 = Date.now();
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG }, { timeoutMs: 6000 });
  assert.equal(r.status, 200, show(r));
  assert.ok(!r.timedOut, 'the client stream was never ended (waited 6 s)');
  const dt = r.tEnd - t0;
  assert.ok(dt < 4000, `stream ended only after ${dt} ms`);
  const text = r.body.toString();
  assert.ok(text.startsWith(m.sent[0].events[0].toString()), `first event not forwarded: ${JSON.stringify(text)}`);
  assert.ok(!text.includes('[DONE]'), 'a stream cut by the idle timeout must not look complete');
  const ok = await chat(gw.port, { model: 's/gpt-4o', messages: MSG });
  assert.equal(ok.status, 200, show(ok));
});

test('upstream resets mid-stream → client stream ends without [DONE], gateway keeps serving', async () => {
  m.reset();
  m.behave({ chunks: 4, resetAfterChunks: 2 });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG }, { timeoutMs: 6000 });
  assert.equal(r.status, 200, show(r));
  assert.ok(!r.timedOut, 'client stream not ended after the upstream reset');
  const text = r.body.toString();
  assert.ok(text.startsWith(Buffer.concat(m.sent[0].events.slice(0, 2)).toString()), `first events not forwarded: ${JSON.stringify(text)}`);
  assert.ok(!text.includes('[DONE]'), 'a broken stream must not look complete');
  m.behave({});
  const ok = await chat(gw.port, { model: 's/gpt-4o', messages: MSG });
  assert.equal(ok.status, 200, show(ok));
});

test('upstream error status on a stream request is returned as is (not as SSE)', async () => {
  m.reset();
  const err = '{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}';
  m.behave({ status: 429, body: err, headers: { 'retry-after': '1' } });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG });
  assert.equal(r.status, 429, show(r));
  assert.equal(r.body.toString(), err);
  m.behave({});
});

test('stream request to an unreachable provider → 502 JSON error before any SSE', async () => {
  const g = await startGateway({
    config: { providers: [{ name: 'x', provider: 'openai', apiKey: 'sk', base_url: 'http://127.0.0.1:1/v1', max_retries: 0 }] },
  });
  try {
    const r = await chat(g.port, { model: 'x/y', stream: true, messages: MSG });
    assert.equal(r.status, 502, r.text);
    errorBody(r);
  } finally {
    await g.stop();
  }
});

test('client disconnecting mid-stream does not disturb the gateway', async () => {
  m.reset();
  m.behave({ chunks: 10, chunkDelayMs: 100 });
  const r = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG }, { abortAfterFirst: true });
  assert.equal(r.status, 200, show(r));
  await sleep(300);
  m.behave({});
  const ok = await chat(gw.port, { model: 's/gpt-4o', messages: MSG });
  assert.equal(ok.status, 200, ok.text);
  const r2 = await streamRequest({ model: 's/gpt-4o', stream: true, messages: MSG });
  assert.equal(r2.status, 200, show(r2));
  assert.match(r2.body.toString(), /data: \[DONE\]\n\n$/);
});
