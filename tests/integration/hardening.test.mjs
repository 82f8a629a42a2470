// The hardening issue, one test (or a few) per finding: a slow client on a stream whose
// provider goes idle (use-after-free), a TLS provider closing while the client's send is in
// flight, response splitting through the model name, the send and body deadlines, the end of
// HTTP/1.0 and `Connection: close` streams, huge provider-reported token counts, a provider
// that never answers, count_tokens with a duplicate key, the log line of a failover refused
// by a budget, a second gateway on a taken port, and /metrics under `promtool check metrics`.
// Every test asserts on the bytes the client and the mock upstream saw.

import { test, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import {
  BIN, startGateway, runBifrost, chat, request, RawConn, rawRequest, parseResponse, tempDir, sleep, show,
} from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { startAnthropicMock } from '../lib/mock_anthropic.mjs';
import { makeCA, makeServerCert } from '../lib/tlsca.mjs';

const MSG = [{ role: 'user', content: 'hi' }];
const INT64_MAX = 2n ** 63n - 1n;
const started = []; // this test's gateways and mocks, torn down after it
async function teardown() {
  while (started.length) {
    const x = started.pop();
    await (x.stop ? x.stop('SIGKILL') : x.close());
  }
}
after(teardown);

async function mock(name, opts) { const m = await startMock({ name, ...opts }); started.push(m); return m; }
async function antMock(name) { const m = await startAnthropicMock({ name }); started.push(m); return m; }
async function gateway(config, opts = {}) { const g = await startGateway({ config, ...opts }); started.push(g); return g; }

/** the gateway still answers a normal request on a fresh connection */
async function assertServing(gw, model = 'o/gpt-4o', what = '') {
  assert.equal(gw.exited, null, `the gateway exited ${what}: ${JSON.stringify(gw.exited)}\n${gw.output()}`);
  const r = await chat(gw.port, { model, messages: MSG }, { timeout: 5000 });
  assert.equal(r.status, 200, `a normal request after ${what}: ${show(r)}`);
}

/** A raw client socket that does not read until resume(): the kernel's receive window fills. */
function stalledConn(port) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: '127.0.0.1' });
    sock.pause();
    const c = { sock, chunks: [], closed: false, error: null };
    sock.on('data', (d) => c.chunks.push(d));
    sock.on('error', (e) => { c.error = e; });
    sock.on('close', () => { c.closed = true; });
    sock.once('connect', () => resolve(c));
    sock.once('error', reject);
  });
}

/** Resume a stalled client; read until done(buf) holds, the peer closes, or timeoutMs. */
async function drain(c, timeoutMs, done = () => false) {
  c.sock.resume();
  const until = Date.now() + timeoutMs;
  while (!c.closed && Date.now() < until) {
    if (c.chunks.length && done(Buffer.concat(c.chunks))) break;
    await sleep(20);
  }
  return Buffer.concat(c.chunks);
}

/** VmRSS of a process in kB. */
function rssKb(pid) {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** An ASan build keeps freed memory in quarantine: RSS says nothing about leaks there. */
const SANITIZED = (() => { try { return readFileSync(BIN).includes('__asan_init'); } catch { return false; } })();

/** ASan: fill freed memory with 'U' (0x55), so bytes sent from freed buffers show on the wire. */
const FREE_FILL = { ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'max_free_fill_size=67108864', 'free_fill_byte=85'].filter(Boolean).join(':') };

// after each test: a sanitizer report on a gateway's stderr fails it; then its gateways and mocks go
afterEach(async () => {
  const report = started.filter((g) => g.stderr).map((g) => {
    const i = g.stderr.findIndex((l) => /AddressSanitizer|LeakSanitizer|runtime error:/.test(l));
    return i < 0 ? null : g.stderr.slice(Math.max(0, i - 2), i + 40).join('\n');
  }).find(Boolean);
  await teardown();
  if (report) assert.fail(`sanitizer report from the gateway:\n${report}`);
});

/**
 * A TLS provider's answer that ends the connection right behind itself, as a server that closes
 * after each answer does: the whole HTTP answer in one write (with `Connection: close` unless
 * announce is false), then close_notify and FIN at once (or closeAfterMs later). The answer's
 * body is recorded in mock.sent.
 */
function answerThenClose(mockRef, { content, closeAfterMs = 0, announce = true } = {}) {
  return (rec) => ({
    raw: async (sock) => {
      const model = rec.json?.model ?? 'unknown';
      const body = Buffer.from(JSON.stringify({ id: `chatcmpl-close-${mockRef.requests.length}`, object: 'chat.completion', created: 1700000000, model,
        choices: [{ index: 0, message: { role: 'assistant', content: content ?? `closing answer ${mockRef.requests.length}` }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } }));
      mockRef.sent.push({ status: 200, body });
      sock.write(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n${announce ? 'Connection: close\r\n' : ''}\r\n`), body]));
      if (closeAfterMs) await sleep(closeAfterMs);
      sock.end();
    },
  });
}

/** Every header line of a raw head is `name: value` without CR, LF or other control bytes. */
function assertCleanHead(rawHead, what) {
  const lines = rawHead.split('\r\n');
  assert.match(lines[0], /^HTTP\/1\.[01] \d{3} [\x20-\x7e]*$/, `${what}: status line ${JSON.stringify(lines[0])}`);
  for (const l of lines.slice(1)) {
    assert.match(l, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$/, `${what}: a header line with a control byte or no name: ${JSON.stringify(l)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// streams and the upstream buffer

test('a slow client on a stream past the provider\'s stream_idle_timeout_ms gets only the provider\'s bytes (whole, or cut by an error event)', async () => {
  const KEY = 'sk-uaf-provider-KEY-0123456789abcdef';
  const SECRET = 'SECRET-OF-ANOTHER-TENANT-QQQQQQQQQQQQQQQQQQQQQQQQ';
  const up = await mock('uaf');
  const gw = await gateway({
    providers: [{ name: 'o', provider: 'openai', apiKey: KEY, base_url: up.baseUrl, max_retries: 0,
      timeout_ms: 60000, stream_idle_timeout_ms: 800 }],
    log_requests: false,
  }, { env: FREE_FILL });
  // the slow client's stream: ~22 MB of events in one upstream write, far more than the socket buffers hold
  up.behave((rec) => (rec.json?.messages?.[0]?.content === 'slow'
    ? { chunks: 20000, content: 'x'.repeat(20000 * 1000), writeMode: 'coalesce' }
    : { chunks: 40, content: `${SECRET} `.repeat(200) }));
  const slow = await stalledConn(gw.port);
  const body = JSON.stringify({ model: 'o/gpt-4o', stream: true, messages: [{ role: 'user', content: 'slow' }] });
  slow.sock.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json' }, body }));
  await up.waitForRequests(1);
  await sleep(800 * 3); // the provider's stream_idle_timeout_ms fires while the client's send is stuck
  // other tenants use the gateway meanwhile: their buffers may take the freed memory
  for (let round = 0; round < 4; round++) {
    const rs = await Promise.all(Array.from({ length: 5 }, () => chat(gw.port,
      { model: 'o/gpt-4o', stream: true, messages: [{ role: 'user', content: SECRET }] }, { timeout: 10000 })));
    for (const r of rs) assert.equal(r.status, 200, show(r));
  }
  const got = await drain(slow, 20000, (b) => { try { return parseResponse(b) !== null; } catch { return true; } });
  slow.sock.destroy();
  const text = got.toString('latin1');
  assert.ok(!text.includes(KEY), 'the provider key reached the client');
  assert.ok(!text.includes('SECRET-OF-ANOTHER'), 'another tenant\'s bytes reached the slow client');
  assert.ok(!/\0{16}/.test(text), 'runs of NUL bytes (freed memory) reached the client');
  assert.ok(!/U{32}/.test(text), 'runs of 0x55 (memory freed under ASan) reached the client');
  let res;
  try { res = parseResponse(got, { atEof: true }); } catch (e) { assert.fail(`the slow client's response is not valid HTTP (${e.message}): …${JSON.stringify(text.slice(-300))}`); }
  assert.ok(res, `no complete response for the slow client (${got.length} bytes): …${JSON.stringify(text.slice(-300))}`);
  assert.equal(res.status, 200);
  assert.equal(got.length, res.consumed, 'bytes after the end of the chunked stream');
  // the body: what the provider sent, whole, or cut at an event boundary and ended by one error event
  const sent = up.sent[0];
  const upstream = Buffer.concat(sent.events.filter((_, i) => i !== sent.usageIndex));
  if (!res.body.equals(upstream)) {
    const events = res.body.toString('latin1').split('\n\n');
    assert.equal(events.pop(), '', 'the stream does not end at an event boundary');
    const tail = events.pop() ?? '';
    assert.match(tail, /^data: \{"error":/, `a cut stream does not end with an error event: …${JSON.stringify(res.body.toString('latin1').slice(-300))}`);
    JSON.parse(tail.slice(6));
    const relayed = res.body.subarray(0, res.body.length - Buffer.byteLength(tail, 'latin1') - 2);
    assert.ok(relayed.length < upstream.length, 'more than the provider\'s stream was relayed');
    const firstDiff = relayed.findIndex((b, i) => b !== upstream[i]);
    assert.equal(firstDiff, -1, `byte ${firstDiff} of the relayed stream is not the provider's: ${JSON.stringify(relayed.subarray(Math.max(0, firstDiff - 40), firstDiff + 80).toString('latin1'))}`);
  }
  await assertServing(gw, 'o/gpt-4o', 'the idle timeout of a stalled stream');
});

// ---------------------------------------------------------------------------------------------
// TLS provider closing after its answer

test('TLS provider that closes after its answer while the client\'s send is in flight: one call, one 200, no failure', async () => {
  const dir = tempDir('bifrost-ca-');
  const ca = makeCA(dir, 'Hardening CA');
  const up = await mock('tlsclose', { tls: makeServerCert(dir, ca, { name: 'srv' }) });
  const gw = await gateway({
    // a budget makes the answer governed: its last byte waits for the journal commit, a wide window
    providers: [{ name: 'o', provider: 'openai', apiKey: 'sk-t', base_url: `https://localhost:${up.port}/v1`,
      tls: { ca_file: ca.certFile }, timeout_ms: 20000, stream_idle_timeout_ms: 20000, max_retries: 1,
      budget: { max_limit: 1000, reset_duration: '1d' } }],
    governance: { enforce: false },
    limits: { max_response_bytes: 64 << 20 },
    circuit_breaker: { failures: 5, cooldown_ms: 30000 }, // the defaults
  }, { env: FREE_FILL });
  // ~3 MB: far more than the socket buffers of a client that does not read take
  const runs = [[0, true], [300, true], [300, false]]; // [ms from the answer to the close, Connection: close in it]
  for (const [closeAfterMs, announce] of runs) {
    const what = `close ${closeAfterMs} ms after the answer${announce ? ' (announced by Connection: close)' : ''}`;
    up.reset();
    up.behave(answerThenClose(up, { content: 'tls-close '.repeat(300000), closeAfterMs, announce }));
    const c = await stalledConn(gw.port);
    c.sock.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'o/gpt-4o', messages: MSG }) }));
    await up.waitForRequests(1);
    await sleep(closeAfterMs + 1200); // the provider answered and closed; the client has not read yet
    const got = await drain(c, 10000, (b) => { try { return parseResponse(b) !== null; } catch { return true; } });
    await sleep(300); // anything after the answer (a second response) would be here by now
    const all = Buffer.concat(c.chunks);
    c.sock.destroy();
    let res;
    try { res = parseResponse(got); } catch (e) { assert.fail(`${what}: not valid HTTP: ${e.message}`); }
    assert.ok(res, `${what}: no complete answer (${got.length} bytes)`);
    assert.equal(res.status, 200, `${what}: ${res.rawHead}`);
    assert.ok(res.body.equals(up.sent[0].body), `${what}: the body is not the provider's (${res.body.length} vs ${up.sent[0].body.length} bytes)`);
    assert.equal(all.length, res.consumed, `${what}: bytes after the answer: ${JSON.stringify(all.subarray(res.consumed, res.consumed + 200).toString('latin1'))}`);
    assert.equal(up.requests.length, 1, `${what}: the finished exchange was retried`);
  }
  await sleep(200);
  const lines = gw.logLines().filter((l) => l.path === '/v1/chat/completions');
  assert.equal(lines.length, runs.length);
  const bad = lines.filter((l) => l.failed || l.attempts !== 1 || l.status !== 200);
  assert.equal(bad.length, 0, `successful requests logged with failed attempts: ${JSON.stringify(bad[0])}`);
  const h = await request(gw.port, { path: '/health' });
  const keys = h.json().providers.flatMap((p) => p.keys);
  assert.ok(keys.every((k) => k.circuit === 'closed' && !k.failures), `successful answers counted as circuit-breaker failures: ${h.text}`);
  up.behave({});
  await assertServing(gw, 'o/gpt-4o', 'a TLS close during a send');
});

test('TLS provider closing after each small answer (announced or not): 40 requests, 40 upstream calls, no failure logged, circuit closed', async () => {
  const dir = tempDir('bifrost-ca-');
  const ca = makeCA(dir, 'Hardening CA');
  const up = await mock('tlssmall', { tls: makeServerCert(dir, ca, { name: 'srv' }) });
  const gw = await gateway({
    // a budget makes the answers governed: the last byte waits for the journal commit
    providers: [{ name: 'o', provider: 'openai', apiKey: 'sk-t', base_url: `https://localhost:${up.port}/v1`,
      tls: { ca_file: ca.certFile }, max_retries: 1, budget: { max_limit: 1000, reset_duration: '1d' } }],
    governance: { enforce: false },
    circuit_breaker: { failures: 5, cooldown_ms: 30000 }, // the defaults
  }, { env: FREE_FILL });
  for (let i = 0; i < 40; i++) {
    up.behave(answerThenClose(up, { announce: i % 2 === 0 }));
    const r = await chat(gw.port, { model: 'o/gpt-4o', messages: [{ role: 'user', content: `n${i}` }] }, { timeout: 10000 });
    assert.equal(r.status, 200, `request ${i}: ${show(r)}`);
    assert.ok(r.body.equals(up.sent[up.sent.length - 1].body), `request ${i}: the body is not the provider's: ${show(r)}`);
  }
  assert.equal(up.requests.length, 40, 'finished exchanges were retried');
  await sleep(200);
  const lines = gw.logLines().filter((l) => l.path === '/v1/chat/completions');
  assert.equal(lines.length, 40);
  const bad = lines.filter((l) => l.failed || l.attempts !== 1 || l.status !== 200);
  assert.equal(bad.length, 0, `successful requests logged with failed attempts: ${JSON.stringify(bad[0])}`);
  const h = await request(gw.port, { path: '/health' });
  const keys = h.json().providers.flatMap((p) => p.keys);
  assert.ok(keys.every((k) => k.circuit === 'closed' && !k.failures), `successful traffic counted as failures: ${h.text}`);
});

// ---------------------------------------------------------------------------------------------
// response splitting

for (const stream of [false, true]) {
  test(`CR LF in the model name never reaches a response header (stream: ${stream})`, async () => {
    const up = await mock('crlf');
    const gw = await gateway({ providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: up.baseUrl, max_retries: 0 }] });
    const models = [
      'o/gpt-4o\r\nSet-Cookie: session=attacker\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 25\r\n\r\n<script>alert(1)</script>',
      'o/gpt-4o\rSet-Cookie: cr=1',
      'o/gpt-4o\nSet-Cookie: lf=1',
      'o/\u0000gpt\u0085\u2028',
    ];
    for (const model of models) {
      const body = JSON.stringify({ model, stream, messages: MSG });
      const c = await RawConn.open(gw.port);
      await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json', Connection: 'close' }, body }));
      await c.waitClose(5000);
      c.destroy();
      const all = c.all;
      const res = parseResponse(all, { atEof: true });
      assert.ok(res, `no response for ${JSON.stringify(model)}: ${JSON.stringify(all.toString('latin1').slice(0, 300))}`);
      assertCleanHead(res.rawHead, JSON.stringify(model));
      assert.equal(res.headers['set-cookie'], undefined, `an injected header: ${res.rawHead}`);
      const p = res.headers['x-bifrost-provider'];
      if (p !== undefined) assert.doesNotMatch(p, /[\0-\x1f\x7f]/, 'x-bifrost-provider carries a control byte');
      assert.equal(all.length, res.consumed, `a second response on the connection: ${JSON.stringify(all.subarray(res.consumed, res.consumed + 200).toString('latin1'))}`);
    }
    await assertServing(gw, 'o/gpt-4o', 'CR LF in model names');
  });
}

// ---------------------------------------------------------------------------------------------
// deadlines

test('a client that never reads a large answer is cut off at limits.send_timeout_ms and its memory released', async () => {
  const up = await mock('bigans');
  const gw = await gateway({
    providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: up.baseUrl, max_retries: 0, timeout_ms: 20000 }],
    limits: { send_timeout_ms: 1000, idle_timeout_ms: 60000 },
    log_requests: false,
  });
  await assertServing(gw, 'o/gpt-4o', 'start');
  const pid = gw.child.pid;
  const rss0 = rssKb(pid);
  up.behave({ content: 'never-read '.repeat(3_000_000) }); // ~33 MB
  const c = await stalledConn(gw.port);
  c.sock.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'o/gpt-4o', messages: MSG }) }));
  await up.waitForRequests(2);
  for (let i = 0; i < 250 && up.sent.length < 2; i++) await sleep(20);
  const full = up.sent[1].body.length;
  let peak = rss0;
  const t0 = Date.now();
  while (Date.now() - t0 < 1500) { peak = Math.max(peak, rssKb(pid)); await sleep(50); }
  // well past the deadline: the connection is given up, the answer freed
  let rss = rssKb(pid);
  while (Date.now() - t0 < 8000 && !(rss < rss0 + 10240)) { await sleep(100); rss = rssKb(pid); }
  const got = await drain(c, 5000);
  c.sock.destroy();
  assert.ok(c.closed, `the never-reading client still held its connection 8 s after a send deadline of 1 s (received ${got.length} bytes once it read)`);
  assert.ok(got.length < full, `the client got the whole answer (${got.length} of ${full} bytes): it was not cut off`);
  if (!SANITIZED) {
    assert.ok(rss < rss0 + 10240, `gateway RSS stays pinned: ${rss0} kB before, ${peak} kB peak, ${rss} kB after the deadline`);
  }
  up.behave({});
  await assertServing(gw, 'o/gpt-4o', 'a send deadline');
});

test('a body dribbled 1 byte every 200 ms is cut at limits.body_timeout_ms (408 or close); other connections are served', async () => {
  const up = await mock('slowbody');
  const gw = await gateway({
    providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: up.baseUrl, max_retries: 0 }],
    limits: { body_timeout_ms: 1500, idle_timeout_ms: 60000, header_timeout_ms: 10000 },
    log_requests: false,
  });
  const body = Buffer.from(JSON.stringify({ model: 'o/gpt-4o', messages: [{ role: 'user', content: 'd'.repeat(300) }] }));
  const c = await RawConn.open(gw.port);
  await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json', 'Content-Length': String(body.length) } }));
  const t0 = Date.now();
  let normal;
  for (let i = 0; i < body.length && !c.closed && c.buf.length === 0 && Date.now() - t0 < 9000; i++) {
    c.sock.write(body.subarray(i, i + 1), () => {});
    if (i === 3) normal = chat(gw.port, { model: 'o/gpt-4o', messages: MSG }); // meanwhile, on another connection
    await sleep(200);
  }
  const ms = Date.now() - t0;
  const rn = await normal;
  assert.equal(rn.status, 200, `a normal request during the slow body: ${show(rn)}`);
  assert.ok(c.closed || c.buf.length > 0, `the dribbled body was still being accepted after ${ms} ms (body_timeout_ms 1500)`);
  assert.ok(ms < 1500 * 4, `cut only after ${ms} ms`);
  if (c.buf.length > 0) {
    const r = await c.readResponse({ timeoutMs: 2000 });
    assert.equal(r.status, 408, `a slow body answered ${r.status}: ${r.rawHead}`);
  }
  c.destroy();
  assert.equal(up.requests.length, 1, 'the truncated body reached the provider');
  await assertServing(gw, 'o/gpt-4o', 'a slow body');
});

// ---------------------------------------------------------------------------------------------
// end of a stream without chunking / with Connection: close

test('HTTP/1.0 streams end with the connection, whatever way the provider ends its stream', async () => {
  const o = await mock('h10');
  const an = await antMock('h10a');
  const gw = await gateway({
    providers: [
      { name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl, max_retries: 0 },
      { name: 'an', provider: 'anthropic', apiKey: 'sk-a', base_url: an.origin, max_retries: 0 },
    ],
    limits: { stream_ping_ms: 10000, idle_timeout_ms: 30000 },
    log_requests: false,
  });
  const cases = [
    ['OpenAI provider, chunked', 'o/gpt-4o', () => o.behave({})],
    ['OpenAI provider, close-delimited', 'o/gpt-4o', () => o.behave({ closeDelimited: true })],
    ['Anthropic provider (translated), chunked', 'an/claude-sonnet-4-5', () => an.behave({})],
    ['Anthropic provider (translated), close-delimited', 'an/claude-sonnet-4-5', () => an.behave({ closeDelimited: true })],
  ];
  for (const [name, model, setup] of cases) {
    setup();
    const body = JSON.stringify({ model, stream: true, messages: MSG });
    const c = await RawConn.open(gw.port);
    const t0 = Date.now();
    await c.write(Buffer.from(`POST /v1/chat/completions HTTP/1.0\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`));
    const closed = await c.waitClose(4000);
    const ms = Date.now() - t0;
    c.destroy();
    const text = c.all.toString('latin1');
    assert.ok(closed, `${name}: the HTTP/1.0 stream was not ended by a close within 4 s (stream_ping_ms 10 s): ${JSON.stringify(text.slice(-200))}`);
    const res = parseResponse(c.all, { atEof: true });
    assert.equal(res.status, 200, `${name}: ${res.rawHead}`);
    assert.equal(res.headers['transfer-encoding'], undefined, `${name}: chunked to an HTTP/1.0 client`);
    assert.match(res.body.toString(), /data: \[DONE\]\n\n$/, `${name}: the stream is incomplete: ${JSON.stringify(res.body.toString().slice(-200))}`);
    assert.ok(ms < 4000, `${name}: closed after ${ms} ms`);
  }
  o.behave({});
  an.behave({});
  await assertServing(gw, 'o/gpt-4o', 'HTTP/1.0 streams');
});

test('Connection: close on a streamed request: the stream ends with the last chunk and the connection closes', async () => {
  const o = await mock('cclose');
  const gw = await gateway({
    providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl, max_retries: 0 }],
    limits: { stream_ping_ms: 10000, idle_timeout_ms: 30000 },
    log_requests: false,
  });
  for (const [name, b] of [['chunked upstream', {}], ['close-delimited upstream', { closeDelimited: true }]]) {
    for (const stream of [false, true]) {
      o.behave(b);
      const c = await RawConn.open(gw.port);
      await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json', Connection: 'close' },
        body: JSON.stringify({ model: 'o/gpt-4o', stream, messages: MSG }) }));
      const r = await c.readResponse({ timeoutMs: 4000 });
      assert.equal(r.status, 200, `${name}, stream ${stream}: ${r.rawHead}`);
      if (stream) assert.match(r.body.toString(), /data: \[DONE\]\n\n$/);
      const closed = await c.waitClose(3000);
      c.destroy();
      assert.ok(closed, `${name}, stream ${stream}: the connection stayed open after the answer to a Connection: close request`);
      assert.equal(c.buf.length, 0, 'bytes after the answer');
    }
  }
  o.behave({});
  await assertServing(gw, 'o/gpt-4o', 'Connection: close streams');
});

// ---------------------------------------------------------------------------------------------
// huge provider-reported usage

test('huge provider-reported token counts (9e18, 2^63-1, 20 digits) in answers and streams: no crash, counts saturate', async () => {
  const o = await mock('bigusage');
  const an = await antMock('bigusagea');
  const gw = await gateway({
    providers: [
      { name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl, max_retries: 0 },
      { name: 'an', provider: 'anthropic', apiKey: 'sk-a', base_url: an.origin, max_retries: 0 },
    ],
    admin: { token: 'adm' },
    pricing: { 'o/gpt-4o': { input: 2.5, output: 10, cache_read: 1.25 }, 'an/claude-sonnet-4-5': { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 } },
    // one budgeted key per request: a saturated charge exhausts a budget, and each charge must still be made
    governance: { enforce: false, virtual_keys: Array.from({ length: 30 }, (_, i) => ({ id: `k${i}`, value: `sk-bf-big-${i}`,
      budget: { max_limit: 1000000, reset_duration: '1d' } })) },
  });
  let nk = 0;
  const key = () => ({ authorization: `Bearer sk-bf-big-${nk++}` });
  const NINE = 9000000000000000000n;
  const HUGE = 99999999999999999999n;
  const oUsages = [
    { prompt_tokens: NINE, completion_tokens: NINE },
    { prompt_tokens: INT64_MAX, completion_tokens: INT64_MAX, prompt_tokens_details: { cached_tokens: INT64_MAX } },
    { prompt_tokens: HUGE, completion_tokens: HUGE },
  ];
  const aUsages = [
    { input_tokens: NINE, output_tokens: NINE, cache_read_input_tokens: NINE, cache_creation_input_tokens: NINE },
    { input_tokens: INT64_MAX, output_tokens: INT64_MAX, cache_read_input_tokens: INT64_MAX, cache_creation_input_tokens: INT64_MAX },
    { input_tokens: HUGE, output_tokens: 5, cache_read_input_tokens: HUGE, cache_creation_input_tokens: 0 },
  ];
  /** every token count the client sees is a whole number in [0, 2^63-1] */
  const checkCounts = (text, what) => {
    for (const m of text.matchAll(/"(prompt_tokens|completion_tokens|total_tokens|cached_tokens|input_tokens|output_tokens|cache_read_input_tokens|cache_creation_input_tokens)"\s*:\s*(-?[0-9.eE+]+)/g)) {
      assert.match(m[2], /^\d+$/, `${what}: ${m[1]} is ${m[2]}`);
      assert.ok(BigInt(m[2]) <= INT64_MAX, `${what}: ${m[1]} is ${m[2]}, beyond 2^63-1`);
    }
    const p = /"prompt_tokens"\s*:\s*(\d+)/.exec(text);
    const t = /"total_tokens"\s*:\s*(\d+)/.exec(text);
    if (p && t) assert.ok(BigInt(t[1]) >= BigInt(p[1]), `${what}: total_tokens ${t[1]} < prompt_tokens ${p[1]} (wrapped)`);
  };
  for (let i = 0; i < oUsages.length; i++) {
    for (const stream of [false, true]) {
      o.behave({ usage: oUsages[i] });
      an.behave({ usage: aUsages[i] });
      const what = `usage set ${i}, stream ${stream}`;
      // same dialect both ways: the numbers pass through untouched; the gateway only bills them
      const r1 = await chat(gw.port, { model: 'o/gpt-4o', stream, stream_options: stream ? { include_usage: true } : undefined, messages: MSG }, { headers: key() });
      assert.equal(r1.status, 200, `${what}, OpenAI→OpenAI: ${show(r1)}`);
      const r2 = await chat(gw.port, { model: 'an/claude-sonnet-4-5', max_tokens: 10, stream, messages: MSG }, { headers: key(), path: '/v1/messages' });
      assert.equal(r2.status, 200, `${what}, Anthropic→Anthropic: ${show(r2)}`);
      // translated both ways: the gateway writes the numbers itself
      const r3 = await chat(gw.port, { model: 'an/claude-sonnet-4-5', stream, stream_options: stream ? { include_usage: true } : undefined, messages: MSG }, { headers: key() });
      assert.equal(r3.status, 200, `${what}, OpenAI→Anthropic: ${show(r3)}`);
      checkCounts(r3.text, `${what}, OpenAI client of an Anthropic provider`);
      const r4 = await chat(gw.port, { model: 'o/gpt-4o', max_tokens: 10, stream, messages: MSG }, { headers: key(), path: '/v1/messages' });
      assert.equal(r4.status, 200, `${what}, Anthropic→OpenAI: ${show(r4)}`);
      checkCounts(r4.text, `${what}, Anthropic client of an OpenAI provider`);
      o.behave({});
      an.behave({});
      await assertServing(gw, 'o/gpt-4o', what);
    }
  }
  await sleep(200);
  const posts = gw.stdout.filter((l) => l.startsWith('{') && l.includes('"method":"POST"'));
  const clamped = posts.filter((l) => l.includes('"usage_clamped":true')).length;
  assert.equal(clamped, 24, `the 24 answers with out-of-range counts are flagged usage_clamped, the ${posts.length - 24} normal ones not`);
  for (const l of gw.stdout) {
    if (!l.startsWith('{')) continue;
    assert.doesNotThrow(() => JSON.parse(l), `a log line is not JSON: ${l}`);
    for (const m of l.matchAll(/"(in_tokens|out_tokens|cached_tokens|cache_write_tokens)":(-?[0-9.eE+]+)/g)) {
      assert.match(m[2], /^\d+$/, `log ${m[1]} is ${m[2]}: ${l}`);
      assert.ok(BigInt(m[2]) <= INT64_MAX, `log ${m[1]} is ${m[2]}: ${l}`);
    }
  }
  const u = await request(gw.port, { path: '/api/usage', headers: { authorization: 'Bearer adm' } });
  assert.equal(u.status, 200, show(u));
  assert.doesNotThrow(() => u.json());
  assert.doesNotMatch(u.text, /:\s*-\d/, `negative numbers in /api/usage: ${u.text.slice(0, 600)}`);
  const met = await request(gw.port, { path: '/metrics' });
  assert.equal(met.status, 200);
  for (const m of met.text.matchAll(/^bifrost_tokens_total\{[^}]*\} (\S+)$/gm)) assert.match(m[1], /^\d+$/, `token counter ${m[0]}`);
});

// ---------------------------------------------------------------------------------------------
// a provider that never answers

test('a provider that accepts the request and never answers costs one timeout_ms, not one per retry', async () => {
  const a = await mock('hung');
  const b = await mock('spare');
  const gw = await gateway({
    providers: [
      { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, timeout_ms: 1000, max_retries: 2 },
      { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
    ],
    fallbacks: ['b/m'],
    circuit_breaker: { failures: 1000000, cooldown_ms: 1000 },
    log_requests: false,
  });
  a.behave({ hang: true });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/m', messages: MSG }, { timeout: 10000 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  assert.ok(ms < 2000, `served after ${ms} ms: the hung provider (timeout_ms 1000) was waited for more than once`);
  await sleep(300);
  assert.equal(a.requests.length, 1, `the hung provider was called ${a.requests.length} times`);
  assert.equal(b.requests.length, 1);
});

// ---------------------------------------------------------------------------------------------
// count_tokens

test('count_tokens estimated locally refuses a duplicate `messages` key (400), plain or escaped', async () => {
  const o = await mock('ct');
  const gw = await gateway({ providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl }], log_requests: false });
  const ok = await request(gw.port, { method: 'POST', path: '/v1/messages/count_tokens',
    body: '{"model":"o/gpt-4o","messages":[{"role":"user","content":"abcdefgh"}]}' });
  assert.equal(ok.status, 200, show(ok));
  assert.equal(typeof ok.json().input_tokens, 'number');
  for (const body of [
    '{"model":"o/gpt-4o","messages":[{"role":"user","content":"a"}],"messages":[{"role":"user","content":"bbbbbbbbbbbbbbbbbbbb"}]}',
    '{"model":"o/gpt-4o","messages":[{"role":"user","content":"a"}],"m\\u0065ssages":[{"role":"user","content":"bbbbbbbbbbbbbbbbbbbb"}]}',
  ]) {
    for (const path of ['/v1/messages/count_tokens', '/anthropic/v1/messages/count_tokens']) {
      const r = await request(gw.port, { method: 'POST', path, body });
      assert.equal(r.status, 400, `${path} ${body}: ${show(r)}`);
      assert.equal(r.json().type, 'error', `not in the Anthropic error shape: ${r.text}`);
    }
  }
  assert.equal(o.requests.length, 0);
});

// ---------------------------------------------------------------------------------------------
// the log line of a failover refused by a budget

test('a 500 from a, then a refusal by b\'s budget: the log line names each under its own provider', async () => {
  const a = await mock('a500');
  const b = await mock('bbudget');
  const gw = await gateway({
    providers: [
      { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 0 },
      { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0,
        budget: { max_limit: 0.000001, reset_duration: '1d' } },
    ],
    pricing: { 'b/m': { input: 1000, output: 1000 } },
    governance: { enforce: false },
    circuit_breaker: { failures: 1000000, cooldown_ms: 1000 },
  });
  // b's first answer spends more than its budget; from then on b refuses at admission
  const r0 = await chat(gw.port, { model: 'b/m', messages: MSG });
  assert.equal(r0.status, 200, show(r0));
  const r1 = await chat(gw.port, { model: 'b/m', messages: MSG });
  assert.equal(r1.status, 402, `b's budget does not refuse: ${show(r1)}`);
  b.reset();
  a.behave({ status: 500, body: { error: { message: 'a-exploded' } } });
  const r = await chat(gw.port, { model: 'a/m', fallbacks: ['b/m'], messages: MSG });
  assert.ok(r.status >= 400, show(r));
  assert.equal(a.requests.length, 1);
  assert.equal(b.requests.length, 0, 'b was called although its budget refused');
  const chatLines = () => gw.stdout.filter((l) => l.includes('"path":"/v1/chat/completions"'));
  for (let i = 0; i < 150 && chatLines().length < 3; i++) await sleep(20);
  const line = chatLines()[2]; // the third request's
  assert.ok(line, `no log line for the failover\n${gw.output()}`);
  const j = JSON.parse(line);
  const failed = String(j.failed ?? '');
  assert.match(failed, /(^|\s)a\/m:500(\s|$)/, `a's 500 is not in "failed": ${line}`);
  const bInTrail = /(^|\s)b\/m:(402|429)(\s|$)/.test(failed);
  const bAsFinal = j.provider === 'b/m' && (j.status === 402 || j.status === 429) && /budget|limit/i.test(String(j.error ?? ''));
  assert.ok(bInTrail || bAsFinal, `b's refusal is not named under b: ${line}`);
  if (j.provider === 'a/m') assert.equal(j.status, 500, `the final status is not a's: ${line}`);
  if (j.provider === 'b/m') assert.doesNotMatch(String(j.error ?? j.last_failure ?? ''), /a-exploded/, `a's failure is reported under b: ${line}`);
});

// ---------------------------------------------------------------------------------------------
// a second gateway on a taken port

test('a second gateway on a port already held refuses to start with a clear message', async () => {
  const o = await mock('port');
  const gw = await gateway({ providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl }], log_requests: false });
  const dir = tempDir();
  const r = await runBifrost(['-c', gw.cfgPath, '-l', `127.0.0.1:${gw.port}`, '-w', '1', '-d', join(dir, 'data')], { timeoutMs: 5000 });
  assert.equal(r.signal, null, `the second gateway did not exit by itself within 5 s (it shares the port)\n${r.stderr}`);
  assert.notEqual(r.code, 0, `the second gateway exited 0\n${r.stderr}`);
  assert.match(r.stderr, /in use/i, `stderr does not say the address is in use: ${r.stderr}`);
  assert.match(r.stderr, new RegExp(String(gw.port)), `stderr does not name the port: ${r.stderr}`);
  await assertServing(gw, 'o/gpt-4o', 'a second gateway tried the port');
});

// ---------------------------------------------------------------------------------------------
// /metrics

test('/metrics passes promtool check metrics', async () => {
  const promtool = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p))
    ?? (spawnSync('sh', ['-c', 'command -v promtool']).stdout?.toString().trim() || null);
  assert.ok(promtool, 'promtool is not installed (Debian package `prometheus`): ./build.sh installs it');
  const o = await mock('prom');
  const gw = await gateway({
    providers: [{ name: 'o', provider: 'openai', apiKey: 'sk', base_url: o.baseUrl, max_retries: 0 }],
    pricing: { 'o/gpt-4o': { input: 1, output: 1 } },
    governance: { enforce: false, virtual_keys: [{ id: 'k', value: 'sk-bf-prom', budget: { max_limit: 10, reset_duration: '1d' } }] },
  });
  // some traffic of every class first
  assert.equal((await chat(gw.port, { model: 'o/gpt-4o', messages: MSG })).status, 200);
  assert.equal((await chat(gw.port, { model: 'o/gpt-4o', stream: true, messages: MSG }, { headers: { authorization: 'Bearer sk-bf-prom' } })).status, 200);
  assert.equal((await chat(gw.port, '{"model":"o/gpt-4o","messages":[}')).status, 400);
  assert.equal((await request(gw.port, { path: '/nope' })).status, 404);
  o.once({ status: 503, body: { error: { message: 'x' } } });
  assert.equal((await chat(gw.port, { model: 'o/gpt-4o', messages: MSG })).status, 503);
  const r = await request(gw.port, { path: '/metrics' });
  assert.equal(r.status, 200);
  const out = spawnSync(promtool, ['check', 'metrics'], { input: r.body, encoding: 'utf8' });
  assert.equal(out.status, 0, `promtool check metrics failed (exit ${out.status}):\n${out.stdout}${out.stderr}\n--- /metrics ---\n${r.text}`);
});

// ---------------------------------------------------------------------------------------------
// total_timeout_ms bounds a whole attempt, a stream that keeps trickling included; the JSON
// value budget (limits.max_json_tokens) refuses a body of many tiny values with 413.

test('providers[].total_timeout_ms ends a stream that trickles on for ever with an error event', async () => {
  const o = await mock('o');
  const gw = await gateway({ providers: [{ name: 'o', provider: 'openai', apiKey: 'sk-o', base_url: o.baseUrl,
    stream_idle_timeout_ms: 5000, total_timeout_ms: 800 }] });
  o.behave({ chunks: 200, chunkDelayMs: 50 }); // 10 s of events, never idle for 5 s
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'o/gpt-4o', messages: MSG, stream: true });
  const took = Date.now() - t0;
  assert.equal(r.status, 200);
  assert.ok(took < 3000, `the stream ran ${took} ms past a total_timeout_ms of 800`);
  assert.match(r.text, /total_timeout_ms/, `no error event naming the deadline: ${r.text.slice(-300)}`);
  o.behave({});
  await assertServing(gw);
});

test('limits.max_json_tokens: a body of more JSON values than the limit gets 413, a normal one passes', async () => {
  const o = await mock('o');
  const gw = await gateway({ providers: [{ name: 'o', provider: 'openai', apiKey: 'sk-o', base_url: o.baseUrl }],
    limits: { max_json_tokens: 5000 } });
  const body = JSON.stringify({ model: 'o/gpt-4o', messages: MSG, junk: new Array(6000).fill(1) });
  const r = await request(gw.port, { method: 'POST', path: '/v1/chat/completions', body });
  assert.equal(r.status, 413, show(r));
  assert.match(r.text, /max_json_tokens/);
  assert.equal(o.requests.length, 0);
  await assertServing(gw);
});
