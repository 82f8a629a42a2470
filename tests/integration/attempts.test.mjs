// The retry/failover policy of one request (conn_next_attempt), pinned on what reached the
// mock upstreams (the credential of every upstream request, when it arrived) and on the
// gateway's JSON request log line (`failed`, `error` / `last_failure`, `attempts`):
//
//   401/403 or 429 → the provider's next key serving the model, at once (no backoff, no retry
//                    spent); with no key left, the next candidate.
//   5xx, reset, refused connection → the SAME key again after a jittered backoff
//                    (50 ms << n, + up to as much again; or Retry-After up to 10 s), up to
//                    max_retries; then the next candidate.
//   timeout (504, the gateway's own deadline) → never retried on that provider, neither on
//                    the same key nor on another: the next candidate, at once.
//   nothing left → the client gets the last error.
//
// Every test starts its own gateway (no pooled upstream connection from an earlier test, so
// no silent stale-connection retry muddles the counts) with the circuit breaker out of reach.

import { test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, freePort, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const MSG = [{ role: 'user', content: 'hi' }];
const NO_CIRCUIT = { failures: 1000000, cooldown_ms: 1000 };
const KEYS = [{ value: 'sk-key-one', weight: 1 }, { value: 'sk-key-two', weight: 1 }];
const BEARERS = KEYS.map((k) => `Bearer ${k.value}`);
const ERR500 = { status: 500, body: { error: { message: 'boom', type: 'server_error', code: null } } };

const started = [];
afterEach(async () => {
  while (started.length) {
    const x = started.pop();
    await (x.stop ? x.stop('SIGKILL') : x.close());
  }
});

async function mock(name) { const m = await startMock({ name }); started.push(m); return m; }

/** a gateway with these providers (log lines on, circuit breaker never opening) */
async function gateway(providers, extra = {}) {
  const g = await startGateway({ workers: 1, config: { providers, circuit_breaker: NO_CIRCUIT, log_requests: true, ...extra } });
  started.push(g);
  return g;
}

/** the n-th (0-based) chat request's log line, parsed */
async function logLine(gw, n = 0) {
  const lines = () => gw.logLines().filter((l) => l.path === '/v1/chat/completions');
  for (let i = 0; i < 150 && lines().length <= n; i++) await sleep(20);
  const l = lines()[n];
  assert.ok(l, `no log line for chat request #${n}\n${gw.output()}`);
  return l;
}

/** the `failed` list of a log line as an array */
const failedOf = (l) => (l.failed === undefined ? [] : String(l.failed).split(' ').filter(Boolean));
const auths = (m) => m.requests.map((q) => q.headers.authorization);
const gap = (m, i) => m.requests[i].time - m.requests[i - 1].time;

// ---------------------------------------------------------------------------------------------
// 5xx and transport failures: the same key, after a backoff

test('500 then 200 with two keys and max_retries 1: the retry carries the SAME key, after >= 50 ms', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 1 }]);
  a.once(ERR500);
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'a/m');
  assert.equal(r.headers['x-bifrost-attempts'], '2');
  assert.equal(a.requests.length, 2, `upstream requests: ${auths(a)}`);
  const [k1, k2] = auths(a);
  assert.ok(BEARERS.includes(k1), `unexpected credential ${k1}`);
  assert.equal(k2, k1, 'a 5xx moved to another key instead of retrying the same one');
  assert.ok(gap(a, 1) >= 45, `retried ${gap(a, 1)} ms after the 500: no backoff (50 ms << 0 at least)`);
  assert.deepEqual(r.body, a.sent[1].body, 'the client did not get the retry\'s answer');
  const l = await logLine(gw);
  assert.equal(l.status, 200);
  assert.equal(l.provider, 'a/m');
  assert.equal(l.attempts, 2);
  assert.deepEqual(failedOf(l), ['a/m:500']);
  assert.match(String(l.last_failure), /provider a answered 500/, JSON.stringify(l));
});

test('500, 500, 200 with max_retries 2: both retries keep the key; the backoff doubles (>= 50, then >= 100 ms)', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 2 }]);
  a.once(ERR500).once(ERR500);
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  assert.equal(r.status, 200, show(r));
  assert.equal(a.requests.length, 3);
  assert.equal(new Set(auths(a)).size, 1, `the key changed across 5xx retries: ${auths(a)}`);
  assert.ok(gap(a, 1) >= 45, `first retry after ${gap(a, 1)} ms`);
  assert.ok(gap(a, 2) >= 95, `second retry after ${gap(a, 2)} ms: the backoff did not grow to 100 ms << 1`);
  const l = await logLine(gw);
  assert.deepEqual(failedOf(l), ['a/m:500', 'a/m:500']);
  assert.equal(l.attempts, 3);
});

test('a 5xx on every attempt with two keys: max_retries + 1 requests, all on one key, then the last error', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 1 }]);
  let n = 0;
  a.behave(() => ({ status: 503, body: { error: { message: `down #${++n}`, type: 'server_error', code: null } } }));
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  assert.equal(r.status, 503, show(r));
  assert.match(r.text, /down #2/, 'the client did not get the LAST upstream error');
  await sleep(200);
  assert.equal(a.requests.length, 2, `upstream requests: ${auths(a)}`);
  assert.equal(new Set(auths(a)).size, 1, `a 5xx rotated keys: ${auths(a)}`);
  const l = await logLine(gw);
  assert.equal(l.status, 503);
  assert.equal(l.provider, 'a/m');
  assert.equal(failedOf(l)[0], 'a/m:503');
  assert.match(String(l.error), /provider a answered 503/, JSON.stringify(l));
});

test('a connection reset after the request: the SAME key is retried after a backoff', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 1 }]);
  a.once({ raw: async (sock) => { sock.resetAndDestroy(); } });
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-attempts'], '2');
  assert.equal(a.requests.length, 2, `upstream requests: ${auths(a)}`);
  assert.equal(auths(a)[1], auths(a)[0], 'a transport failure moved to another key');
  assert.ok(gap(a, 1) >= 45, `retried ${gap(a, 1)} ms after the reset: no backoff`);
  const l = await logLine(gw);
  assert.equal(l.status, 200);
  assert.deepEqual(failedOf(l), ['a/m:502']);
});

test('a refused connection is retried on the same provider up to max_retries, then the fallback serves', async () => {
  const dead = await freePort(); // nothing listens here
  const b = await mock('b');
  const gw = await gateway([
    { name: 'dead', provider: 'openai', apiKey: 'sk-dead', base_url: `http://127.0.0.1:${dead}/v1`, max_retries: 1, connect_timeout_ms: 1000 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'dead/m', messages: MSG, fallbacks: ['b/m'] });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  assert.equal(r.headers['x-bifrost-attempts'], '3', 'refused connection: not retried once on the same provider');
  assert.ok(ms >= 45, `served in ${ms} ms: the retry of the refused connection had no backoff`);
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].headers.authorization, 'Bearer sk-b');
  const l = await logLine(gw);
  assert.equal(l.provider, 'b/m');
  assert.deepEqual(failedOf(l), ['dead/m:502', 'dead/m:502']);
});

test('a 503 whose Retry-After is over 10 s is not waited for: the fallback serves at once', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const gw = await gateway([
    { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 1 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  a.behave({ ...ERR500, status: 503, headers: { 'retry-after': '30' } });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] }, { timeout: 5000 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  assert.ok(ms < 2000, `served after ${ms} ms: a Retry-After of 30 s was waited for`);
  assert.equal(a.requests.length, 1, 'a was retried despite Retry-After beyond 10 s');
  assert.equal(b.requests.length, 1);
  const l = await logLine(gw);
  assert.deepEqual(failedOf(l), ['a/m:503']);
});

// ---------------------------------------------------------------------------------------------
// 401/403 and 429: the next key, at once

test('429 on the first key: the second request carries the OTHER key, without waiting for Retry-After', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 1 }]);
  // a Retry-After of 3 s: a backoff (which honours it) would show as a 3 s gap
  a.once({ status: 429, headers: { 'retry-after': '3' }, body: { error: { message: 'slow down', type: 'rate_limit', code: null } } });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/m', messages: MSG }, { timeout: 8000 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'a/m');
  assert.equal(a.requests.length, 2, `upstream requests: ${auths(a)}`);
  const [k1, k2] = auths(a);
  assert.ok(BEARERS.includes(k1) && BEARERS.includes(k2), `${k1} / ${k2}`);
  assert.notEqual(k2, k1, 'a 429 retried the same (rate-limited) key');
  assert.ok(gap(a, 1) < 1000 && ms < 2000, `the next key was tried ${gap(a, 1)} ms after the 429 (served in ${ms} ms): not at once`);
  const l = await logLine(gw);
  assert.equal(l.status, 200);
  assert.deepEqual(failedOf(l), ['a/m:429']);
});

for (const status of [401, 403]) {
  test(`${status} on the first key: the next request carries the OTHER key, with no backoff`, async () => {
    const a = await mock('a');
    const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 1 }]);
    a.once({ status, body: { error: { message: 'invalid api key', type: 'invalid_request_error', code: null } } });
    const r = await chat(gw.port, { model: 'a/m', messages: MSG });
    assert.equal(r.status, 200, show(r));
    assert.equal(a.requests.length, 2, `upstream requests: ${auths(a)}`);
    const [k1, k2] = auths(a);
    assert.ok(BEARERS.includes(k1) && BEARERS.includes(k2), `${k1} / ${k2}`);
    assert.notEqual(k2, k1, `a ${status} retried the refused key`);
    assert.ok(gap(a, 1) < 45, `the next key was tried ${gap(a, 1)} ms later: a backoff (>= 50 ms) was applied`);
    const l = await logLine(gw);
    assert.deepEqual(failedOf(l), [`a/m:${status}`]);
    assert.equal(l.attempts, 2);
  });
}

test('a key rotation spends no retry: 429 on one key, then 500 and 200 on the other (max_retries 1)', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 1 }]);
  a.once({ status: 429, body: { error: { message: 'slow down', type: 'rate_limit', code: null } } }).once(ERR500);
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  assert.equal(r.status, 200, `the 500 after a key rotation was not retried (the rotation spent the retry?): ${show(r)}`);
  assert.equal(a.requests.length, 3, `upstream requests: ${auths(a)}`);
  const [k1, k2, k3] = auths(a);
  assert.notEqual(k2, k1, 'the 429 did not move to the other key');
  assert.equal(k3, k2, 'the 5xx retry did not keep the key it failed on');
  assert.ok(gap(a, 2) >= 45, `retry after the 500 came ${gap(a, 2)} ms later: no backoff`);
  const l = await logLine(gw);
  assert.deepEqual(failedOf(l), ['a/m:429', 'a/m:500']);
  assert.equal(l.attempts, 3);
});

test('429 with one key and max_retries 2: no retry of the rate-limited key, the fallback serves at once', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const gw = await gateway([
    { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 2 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  a.behave({ status: 429, body: { error: { message: 'slow down', type: 'rate_limit', code: null } } });
  const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  assert.equal(a.requests.length, 1, `the rate-limited key was retried ${a.requests.length - 1} time(s)`);
  assert.equal(b.requests.length, 1);
  assert.ok(b.requests[0].time - a.requests[0].time < 45, 'the fallback was tried after a backoff');
  const l = await logLine(gw);
  assert.deepEqual(failedOf(l), ['a/m:429']);
});

// ---------------------------------------------------------------------------------------------
// timeouts: the next candidate, at once

test('a primary that times out (two keys, max_retries 2) is called once; the configured fallback answers', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const gw = await gateway([
    { name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 2, timeout_ms: 300 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ], { fallbacks: ['b/m'] });
  a.behave({ hang: true });
  const t0 = Date.now();
  const r = await chat(gw.port, { model: 'a/m', messages: MSG }, { timeout: 5000 });
  const ms = Date.now() - t0;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  assert.equal(r.headers['x-bifrost-attempts'], '2');
  assert.deepEqual(r.body, b.sent[0].body);
  assert.ok(ms >= 250 && ms < 1500, `served after ${ms} ms (timeout_ms 300, one timeout expected)`);
  await sleep(400); // a late retry or key rotation would show up here
  assert.equal(a.requests.length, 1, `the timed-out provider was called ${a.requests.length} times: ${auths(a)}`);
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].headers.authorization, 'Bearer sk-b');
  const l = await logLine(gw);
  assert.equal(l.status, 200);
  assert.equal(l.provider, 'b/m');
  assert.equal(l.attempts, 2);
  assert.deepEqual(failedOf(l), ['a/m:504']);
  assert.match(String(l.last_failure), /provider a did not answer within 300 ms/, JSON.stringify(l));
});

test('a timeout with nothing left: one upstream request, the client gets 504 and the log names the provider', async () => {
  const a = await mock('a');
  const gw = await gateway([{ name: 'a', provider: 'openai', base_url: a.baseUrl, keys: KEYS, max_retries: 2, timeout_ms: 300 }]);
  a.behave({ hang: true });
  const r = await chat(gw.port, { model: 'a/m', messages: MSG }, { timeout: 5000 });
  assert.equal(r.status, 504, show(r));
  assert.match(r.text, /provider a did not answer within 300 ms/);
  await sleep(400);
  assert.equal(a.requests.length, 1, `the timed-out provider was called ${a.requests.length} times: ${auths(a)}`);
  const l = await logLine(gw);
  assert.equal(l.status, 504);
  assert.equal(l.provider, 'a/m');
  assert.deepEqual(failedOf(l), ['a/m:504']);
  assert.match(String(l.error), /provider a did not answer/, JSON.stringify(l));
});

// ---------------------------------------------------------------------------------------------
// the log line of a failover

test('500 from a primary with max_retries 0: the fallback answers, `failed` lists a/m:500', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const gw = await gateway([
    { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 0 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  a.behave(ERR500);
  const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  assert.deepEqual(r.body, b.sent[0].body, 'the answer is not the fallback\'s');
  assert.equal(a.requests.length, 1, 'max_retries 0: a was retried');
  assert.equal(a.requests[0].headers.authorization, 'Bearer sk-a');
  assert.equal(b.requests.length, 1);
  assert.equal(b.requests[0].headers.authorization, 'Bearer sk-b');
  const l = await logLine(gw);
  assert.equal(l.status, 200);
  assert.equal(l.provider, 'b/m');
  assert.equal(l.attempts, 2);
  assert.deepEqual(failedOf(l), ['a/m:500']);
  assert.match(String(l.last_failure), /provider a answered 500/, JSON.stringify(l));
  assert.equal(l.error, undefined, 'a served request logged with "error"');
});

test('every candidate fails: the client gets the last error; the log names both, the error the last', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const gw = await gateway([
    { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 0 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  a.behave(ERR500);
  const lastErr = '{"error":{"message":"b down too","type":"server_error","code":"b503"}}';
  b.behave({ status: 503, body: lastErr });
  const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
  assert.equal(r.status, 503, show(r));
  assert.equal(r.text, lastErr);
  const l = await logLine(gw);
  assert.equal(l.status, 503);
  assert.equal(l.provider, 'b/m');
  assert.equal(failedOf(l)[0], 'a/m:500');
  assert.ok(failedOf(l).every((f) => f === 'a/m:500' || f === 'b/m:503'), JSON.stringify(l));
  assert.match(String(l.error), /provider b answered 503/, JSON.stringify(l));
});

test('a connection reset is logged under the provider that failed: `failed` and the reason name it', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const gw = await gateway([
    { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 0 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  a.once({ raw: async (sock) => { sock.resetAndDestroy(); } });
  const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  const l = await logLine(gw);
  assert.deepEqual(failedOf(l), ['a/m:502']);
  assert.match(String(l.last_failure), /provider a\b/, `the reset's reason does not name provider a: ${JSON.stringify(l)}`);
});

test('a refused connection is logged under the provider that failed: `failed` and the reason name it', async () => {
  const dead = await freePort(); // nothing listens here
  const b = await mock('b');
  const gw = await gateway([
    { name: 'dead', provider: 'openai', apiKey: 'sk-dead', base_url: `http://127.0.0.1:${dead}/v1`, max_retries: 0 },
    { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, max_retries: 0 },
  ]);
  const r = await chat(gw.port, { model: 'dead/m', messages: MSG, fallbacks: ['b/m'] });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'b/m');
  const l = await logLine(gw);
  assert.deepEqual(failedOf(l), ['dead/m:502']);
  assert.match(String(l.last_failure), /provider dead\b/, `the refused connection's reason does not name provider dead: ${JSON.stringify(l)}`);
});
