// Operations: SIGHUP reload (good and broken configs), SIGTERM drain and exit 0,
// the per-request JSON log line on stdout, log_requests: false, metrics after traffic.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, request, RawConn, rawRequest, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const MSG = [{ role: 'user', content: 'ops' }];
const mocks = [];
const gws = [];
async function mock(name) { const m = await startMock({ name }); mocks.push(m); return m; }
async function gateway(opts) { const g = await startGateway(opts); gws.push(g); return g; }

after(async () => {
  for (const g of gws) await g.stop('SIGKILL');
  for (const m of mocks) await m.close();
});

function chatReqBytes(model) {
  return rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ model, messages: MSG }) });
}

test('SIGHUP with a new provider: new route works, an open keep-alive connection keeps working', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const cfg1 = { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, models: ['a-*'] }] };
  const g = await gateway({ config: cfg1 });

  const c = await RawConn.open(g.port);
  try {
    await c.write(chatReqBytes('a/a-1'));
    const r1 = await c.readResponse();
    assert.equal(r1.status, 200, show(r1));

    const before = await chat(g.port, { model: 'b/b-1', messages: MSG });
    assert.equal(before.status, 400, `b/… must be unknown before the reload: ${before.status}`);

    await g.reload({ providers: [...cfg1.providers, { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, models: ['b-*'] }] });
    let r;
    const until = Date.now() + 3000;
    do {
      await sleep(100);
      r = await chat(g.port, { model: 'b/b-1', messages: MSG });
    } while (r.status !== 200 && Date.now() < until);
    assert.equal(r.status, 200, `new provider not routable 3 s after SIGHUP: ${r.status} ${r.text}`);
    assert.equal(r.headers['x-bifrost-provider'], 'b/b-1');
    assert.equal(b.requests.at(-1).headers.authorization, 'Bearer sk-b');

    // the connection opened before the reload still works, for old and new routes
    assert.equal(c.closed, false, 'keep-alive connection was dropped by the reload');
    await c.write(chatReqBytes('a/a-2'));
    const r2 = await c.readResponse();
    assert.equal(r2.status, 200, show(r2));
    await c.write(chatReqBytes('b/b-2'));
    const r3 = await c.readResponse();
    assert.equal(r3.status, 200, show(r3));
    assert.equal(r3.headers['x-bifrost-provider'], 'b/b-2');
    assert.equal(g.exited, null, 'gateway exited on SIGHUP');
  } finally {
    c.destroy();
  }
});

test('SIGHUP with a broken config: rejected with a logged reason, old config keeps serving', async () => {
  const a = await mock('a');
  const cfg = { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] };
  const g = await gateway({ config: cfg });
  const outBefore = g.stdout.length;
  const errBefore = g.stderr.length;
  const newLines = () => [...g.stdout.slice(outBefore), ...g.stderr.slice(errBefore)];

  for (const broken of ['{"providers": [ {"name": "a", ', JSON.stringify({ providers: [{ name: 'z', provider: 'no-such-provider-kind' }] })]) {
    await g.reload(broken);
    await sleep(500);
    assert.equal(g.exited, null, `gateway died on a broken config: ${g.output()}`);
    const r = await chat(g.port, { model: 'a/gpt-4o', messages: MSG });
    assert.equal(r.status, 200, `old config stopped serving after a bad reload: ${r.status} ${r.text}`);
  }
  const explains = (l) => /reload|config/i.test(l) && /invalid|error|reject|fail|keep|bad/i.test(l);
  const until0 = Date.now() + 2000;
  while (!newLines().some(explains) && Date.now() < until0) await sleep(50);
  assert.ok(newLines().some(explains), `no log line explains the rejected reload; new output:\n${newLines().join('\n')}`);

  // and a good config after the bad one is taken
  const b = await mock('b');
  await g.reload({ providers: [...cfg.providers, { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl }] });
  let r;
  const until = Date.now() + 3000;
  do { await sleep(100); r = await chat(g.port, { model: 'b/x', messages: MSG }); } while (r.status !== 200 && Date.now() < until);
  assert.equal(r.status, 200, 'a good config after a rejected one was not applied');
});

test('SIGHUP while a request is in flight: the request completes with 200', async () => {
  const a = await mock('a');
  a.behave({ delayMs: 700 });
  const cfg = { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] };
  const g = await gateway({ config: cfg });
  const inflight = chat(g.port, { model: 'a/slow', messages: MSG });
  await a.waitForRequests(1);
  await g.reload({ providers: [...cfg.providers, { name: 'c', provider: 'openai', apiKey: 'sk-c', base_url: a.baseUrl }] });
  const r = await inflight;
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json().choices[0].message.content, 'Hello from a');
});

test('SIGHUP with 2 workers: every worker takes the new config', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const cfg = { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, models: ['a-*'] }] };
  const g = await gateway({ config: cfg, workers: 2 });
  await g.reload({ providers: [...cfg.providers, { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl, models: ['b-*'] }] });
  let r;
  const until = Date.now() + 3000;
  do { await sleep(100); r = await chat(g.port, { model: 'b/x', messages: MSG }); } while (r.status !== 200 && Date.now() < until);
  assert.equal(r.status, 200, show(r));
  // fresh connections land on either worker (SO_REUSEPORT): all must know provider b
  const statuses = [];
  for (let i = 0; i < 30; i++) statuses.push((await chat(g.port, { model: 'b/x', messages: MSG })).status);
  assert.deepEqual([...new Set(statuses)], [200], `statuses after reload: ${statuses.join(',')}`);
});

test('SIGTERM → exit code 0', async () => {
  const a = await mock('a');
  const g = await gateway({ config: { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] } });
  const r = await chat(g.port, { model: 'a/x', messages: MSG });
  assert.equal(r.status, 200, show(r));
  const t0 = Date.now();
  const { code, signal } = await g.stop('SIGTERM', 10000);
  assert.equal(signal, null, `killed by ${signal} (SIGTERM handler missing or exit took > 10 s)`);
  assert.equal(code, 0, g.output());
  assert.ok(Date.now() - t0 < 5000, `exit took ${Date.now() - t0} ms with nothing in flight`);
});

test('SIGTERM drains an in-flight request: it completes with 200, then exit 0', async () => {
  const a = await mock('a');
  a.behave({ delayMs: 800 });
  const g = await gateway({ config: { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] } });
  const inflight = chat(g.port, { model: 'a/slow', messages: MSG });
  await a.waitForRequests(1);
  g.child.kill('SIGTERM');
  const r = await inflight;
  assert.equal(r.status, 200, `in-flight request cut by SIGTERM: ${r.status} ${r.text}`);
  assert.equal(r.json().choices[0].message.content, 'Hello from a');
  const { code } = await g.proc.wait(10000);
  assert.equal(code, 0);
});

test('SIGINT → exit code 0', async () => {
  const g = await gateway({ config: { providers: [] } });
  const { code, signal } = await g.stop('SIGINT');
  assert.equal(signal, null);
  assert.equal(code, 0, g.output());
});

test('stdout has one JSON log line per request with route/path, status, provider, timings, tokens', async () => {
  const a = await mock('a');
  const g = await gateway({ config: { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, models: ['gpt-*'], max_retries: 0 }] } });
  const r = await chat(g.port, { model: 'a/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, show(r));
  const bad = await chat(g.port, { model: 'nope/x', messages: MSG });
  assert.equal(bad.status, 400, show(bad));
  await sleep(200);
  const logs = g.logLines().filter((l) => (l.route ?? l.path ?? '').includes('chat/completions'));
  assert.equal(logs.length, 2, `expected 2 chat log lines, stdout:\n${g.stdout.join('\n')}`);
  const [ok, err] = logs;
  assert.equal(ok.status, 200, show(ok));
  assert.ok(ok.provider === 'a' || ok.provider === 'a/gpt-4o', `provider field: ${JSON.stringify(ok.provider)}`);
  for (const f of ['upstream_ms', 'overhead_us', 'in_tokens', 'out_tokens']) {
    assert.equal(typeof ok[f], 'number', `field ${f} missing or not a number in ${JSON.stringify(ok)}`);
  }
  assert.equal(ok.in_tokens, 11, 'in_tokens should come from upstream usage.prompt_tokens');
  assert.equal(ok.out_tokens, 7, 'out_tokens should come from upstream usage.completion_tokens');
  assert.ok(ok.overhead_us >= 0);
  assert.equal(err.status, 400, show(err));
});

test('a streamed request is logged with the tokens of the usage chunk', async () => {
  const a = await mock('a');
  a.behave({ usage: { prompt_tokens: 21, completion_tokens: 13 } });
  const g = await gateway({ config: { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] } });
  const r = await chat(g.port, { model: 'a/gpt-4o', stream: true, messages: MSG });
  assert.equal(r.status, 200, show(r));
  await sleep(200);
  const log = g.logLines().find((l) => (l.route ?? l.path ?? '').includes('chat/completions'));
  assert.ok(log, g.stdout.join('\n'));
  assert.equal(log.status, 200, show(log));
  assert.equal(log.in_tokens, 21);
  assert.equal(log.out_tokens, 13);
});

test('log_requests: false → no per-request lines on stdout', async () => {
  const a = await mock('a');
  const g = await gateway({ config: { log_requests: false, providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] } });
  const r = await chat(g.port, { model: 'a/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, show(r));
  await sleep(200);
  const logs = g.logLines().filter((l) => 'status' in l);
  assert.equal(logs.length, 0, `request lines logged: ${JSON.stringify(logs)}`);
});

test('/metrics: some request counter grows by the number of requests served', async () => {
  const a = await mock('a');
  const g = await gateway({ config: { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] } });
  const samples = async () => {
    const r = await request(g.port, { path: '/metrics' });
    assert.equal(r.status, 200, show(r));
    const out = new Map();
    for (const line of r.text.split('\n')) {
      const mm = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) ([0-9.eE+-]+)$/.exec(line);
      if (mm) out.set(mm[1], Number(mm[2]));
    }
    return { out, text: r.text };
  };
  const before = await samples();
  for (let i = 0; i < 5; i++) { const rr = await chat(g.port, { model: 'a/gpt-4o', messages: MSG }); assert.equal(rr.status, 200, show(rr)); }
  const afterM = await samples();
  const grew = [...afterM.out].filter(([k, v]) => /request/i.test(k) && v - (before.out.get(k) ?? 0) >= 5);
  assert.ok(grew.length > 0, `no request metric grew by 5:\n${afterM.text}`);
});
