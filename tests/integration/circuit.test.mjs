// Circuit breaking per provider key: repeated failures open the circuit (the key is
// skipped, traffic goes to the fallback), after the cooldown one probe closes it again.
// Visible in /health. Runs with one and with two workers (the breaker is shared). Requests
// pin provider a with b as their fallback, so nothing here depends on the weighted draw.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, request, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const MSG = [{ role: 'user', content: 'hi' }];
const started = [];
after(async () => { for (const x of started) await x.stop?.() ?? x.close?.(); });

async function setup(workers) {
  const a = await startMock({ name: 'a' });
  const b = await startMock({ name: 'b' });
  const gw = await startGateway({
    workers,
    config: {
      providers: [
        { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, models: ['m'], weight: 1000, max_retries: 0 },
        { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, models: ['m'], weight: 1, max_retries: 0 },
      ],
      circuit_breaker: { failures: 3, cooldown_ms: 700 },
      log_requests: false,
    },
  });
  started.push(gw, a, b);
  return { a, b, gw };
}

const health = async (port) => JSON.parse((await request(port, { path: '/health' })).text);
const circuitOf = (h, name) => h.providers.find((p) => p.name === name).keys[0].circuit;

for (const workers of [1, 2]) {
  test(`circuit opens after repeated failures, skips the key, recovers after a probe (${workers} worker(s))`, async () => {
    const { a, b, gw } = await setup(workers);
    a.behave({ status: 500, body: { error: { message: 'a is down', type: 'server_error' } } });
    // Until the breaker opens, each request tries a (500) then falls over to b.
    let triedA = 0;
    for (let i = 0; i < 3; i++) {
      const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
      assert.equal(r.status, 200, show(r));
      assert.equal(r.headers['x-bifrost-provider'], 'b/m');
    }
    triedA = a.requests.length;
    assert.equal(triedA, 3, 'a was tried once per request before the circuit opened');
    assert.equal(circuitOf(await health(gw.port), 'a'), 'open');
    // Open: a is skipped entirely, b serves at the first attempt.
    for (let i = 0; i < 5; i++) {
      const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
      assert.equal(r.status, 200, show(r));
      assert.equal(r.headers['x-bifrost-attempts'], '1', 'the open circuit was not skipped');
    }
    assert.equal(a.requests.length, triedA, 'a received traffic while its circuit was open');
    // After the cooldown a is healthy again: one probe goes to it and closes the circuit.
    a.behave({});
    await sleep(800);
    assert.equal(circuitOf(await health(gw.port), 'a'), 'half-open');
    const r = await chat(gw.port, { model: 'a/m', messages: MSG, fallbacks: ['b/m'] });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.headers['x-bifrost-provider'], 'a/m', 'the probe did not go to a');
    assert.equal(circuitOf(await health(gw.port), 'a'), 'closed');
    assert.ok(b.requests.length >= 8);
  });
}

test('a 401 from one provider key moves to the next key of the same provider', async () => {
  const a = await startMock({ name: 'keys' });
  const gw = await startGateway({
    config: { providers: [{ name: 'k', provider: 'openai', base_url: a.baseUrl, max_retries: 0,
      keys: [{ value: 'sk-bad', weight: 1 }, { value: 'sk-good', weight: 1 }] }], log_requests: false },
  });
  started.push(gw, a);
  a.behave((rec) => (rec.headers.authorization === 'Bearer sk-bad'
    ? { status: 401, body: { error: { message: 'invalid api key', type: 'invalid_request_error' } } } : {}));
  for (let i = 0; i < 6; i++) {
    const r = await chat(gw.port, { model: 'k/m', messages: MSG });
    assert.equal(r.status, 200, show(r));
  }
  assert.ok(a.requests.some((r) => r.headers.authorization === 'Bearer sk-bad'), 'the bad key was never drawn');
});

// Every candidate's circuit open: the request is answered 503 and logged (the log line and
// the per-target metric must not look past the end of the candidate list), and a key whose
// models list leaves one serving key rotates only through serving keys.
test('every circuit open: 503, logged, /metrics scraped, the gateway stays up', async () => {
  const a = await startMock({ name: 'a' });
  const gw = await startGateway({
    workers: 1,
    config: {
      providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, max_retries: 0 }],
      circuit_breaker: { failures: 1, cooldown_ms: 60000 },
    },
  });
  started.push(gw, a);
  a.behave({ status: 500, body: { error: { message: 'down', type: 'server_error' } } });
  assert.equal((await chat(gw.port, { model: 'a/m', messages: MSG })).status, 500);
  const r = await chat(gw.port, { model: 'a/m', messages: MSG });
  assert.equal(r.status, 503, show(r));
  assert.equal(a.requests.length, 1, 'the open circuit was skipped');
  const m = await request(gw.port, { path: '/metrics' });
  assert.equal(m.status, 200);
  assert.match(m.text, /bifrost_requests_by_target_total\{provider="a",model="m",status="500"\} 1/);
  await gw.waitForLine((l) => l.includes('"status":503'), 3000);
  assert.equal(gw.exited, null, gw.output());
  assert.equal((await request(gw.port, { path: '/health' })).status, 200);
});

test('keys with models: a 429 moves to the next key serving the model, never back to the same one', async () => {
  const a = await startMock({ name: 'a' });
  const gw = await startGateway({
    workers: 1,
    config: {
      providers: { openai: { base_url: a.baseUrl, max_retries: 0, keys: [
        { value: 'sk-one', models: ['m'], weight: 1 },
        { value: 'sk-other', models: ['o1'], weight: 1 },
        { value: 'sk-two', models: ['m'], weight: 1 },
      ] } },
      log_requests: false,
    },
  });
  started.push(gw, a);
  a.behave({ status: 429, body: { error: { message: 'slow down', type: 'rate_limit' } } });
  const r = await chat(gw.port, { model: 'openai/m', messages: MSG });
  assert.equal(r.status, 429, show(r));
  const keys = a.requests.map((q) => q.headers.authorization);
  assert.equal(keys.length, 2, `one attempt per serving key: ${keys}`);
  assert.deepEqual([...keys].sort(), ['Bearer sk-one', 'Bearer sk-two']);
});
