// Billing of requests whose client left (bifrost.c conn_closing, conn_up_answer,
// conn_up_failed, conn_orphan_end) and the built-in prices of the Gemini and Groq models.
//
//   A governed, NON-streamed request whose client disconnects while the provider is still
//   working is kept alive (an "orphan"): the provider bills it whether or not anyone reads
//   the answer, so the gateway waits for the answer and charges the provider's real usage.
//   Its log line says "client_left":true. No retry, no failover: there is nobody to answer.
//     - 200 → charged the usage's exact cost;
//     - 500 → charged nothing, one upstream request;
//     - no answer within the provider's timeout_ms → 504 in the log, nothing charged, the
//       upstream connection closed, the gateway still serving.
//   A STREAMED request whose client leaves before the first byte is not kept: the upstream
//   connection is closed at once, nothing is charged, no client_left.
//
// Cost = ceil(Σ tokens × $/MTok) in whole micro-dollars (tests/lib/usage.mjs costMicros).
// Every test starts its own gateway (2 workers, log lines on, circuit breaker out of reach)
// and stops it at the end.

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, request, RawConn, rawRequest, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { costMicros, usage, entity, quiet } from '../lib/usage.mjs';

const ADMIN = 'adm-billing-token-1';
const KEY = 'sk-bf-billing-0001';
const KEY2 = 'sk-bf-billing-0002';
const NO_CIRCUIT = { failures: 1000000, cooldown_ms: 1000 };
const MSG = [{ role: 'user', content: 'bill me' }];

// an explicit price so the arithmetic is obvious: $1 / $4 per million tokens
const PRICE = { input: 1, output: 4 };
const USAGE = { prompt_tokens: 1234, completion_tokens: 567 };
const COST = costMicros({ in: USAGE.prompt_tokens, out: USAGE.completion_tokens }, PRICE); // 1234 + 2268 = 3502 µ$

const ERR500 = { error: { message: 'upstream exploded', type: 'server_error', code: null } };

let m; // the provider
let b; // a fallback provider (must never be used by an orphan)
const gws = [];

before(async () => {
  m = await startMock({ name: 'up' });
  b = await startMock({ name: 'backup' });
  assert.equal(COST, 3502, 'cost formula self-check');
});

afterEach(async () => {
  while (gws.length) await gws.pop().stop('SIGKILL');
});

after(async () => {
  while (gws.length) await gws.pop().stop('SIGKILL');
  await m?.close();
  await b?.close();
});

function config({ maxRetries = 2, timeoutMs, extraProviders = [], pricing = { 'mock/gpt-4o-mini': PRICE }, keys } = {}) {
  return {
    admin: { token: ADMIN },
    log_requests: true,
    circuit_breaker: NO_CIRCUIT,
    providers: [
      { name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: 'sk-up', max_retries: maxRetries,
        ...(timeoutMs ? { timeout_ms: timeoutMs } : {}) },
      { name: 'backup', provider: 'openai', base_url: b.baseUrl, apiKey: 'sk-backup', max_retries: 0 },
      ...extraProviders,
    ],
    pricing,
    governance: { enforce: true, virtual_keys: keys ?? [{ id: 'alice', value: KEY }] },
  };
}

async function gateway(cfg) {
  m.reset();
  b.reset();
  const g = await startGateway({ config: cfg, workers: 2 });
  gws.push(g);
  return g;
}

/** µ$ → the log line's "cost_usd" text ("%lld.%06lld") */
const usd = (micros) => `${Math.floor(micros / 1e6)}.${String(micros % 1e6).padStart(6, '0')}`;

/** The chat-completion log lines (parsed, with their raw text) from index `from` on. */
function chatLines(g, from = 0) {
  const out = [];
  for (const raw of g.stdout) {
    const t = raw.trim();
    if (!t.startsWith('{')) continue;
    let j;
    try { j = JSON.parse(t); } catch { continue; }
    if (j.path === '/v1/chat/completions') out.push({ ...j, raw: t });
  }
  return out.slice(from);
}

async function waitLine(g, pred, timeoutMs, from = 0) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const l = chatLines(g, from).find(pred);
    if (l) return l;
    if (Date.now() > until) return undefined;
    await sleep(20);
  }
}

/**
 * Send a chat completion on a raw connection, wait until the provider has it, and leave
 * (destroy the socket) before any byte of the answer came back. Returns the time it left.
 */
async function sendAndLeave(g, mock, body, headers, { afterMs = 100 } = {}) {
  const n0 = mock.requests.length;
  const c = await RawConn.open(g.port);
  await c.write(rawRequest('POST', '/v1/chat/completions', {
    headers: { 'Content-Type': 'application/json', ...headers },
    body: JSON.stringify(body),
  }));
  await mock.waitForRequests(n0 + 1, 3000);
  const sinceSend = Date.now();
  await sleep(Math.max(0, afterMs - (Date.now() - sinceSend)));
  assert.equal(c.all.length, 0, `the client got bytes before it left: ${JSON.stringify(c.all.toString('latin1').slice(0, 300))}`);
  assert.equal(c.closed, false, 'the gateway closed the client connection before the client left');
  c.destroy();
  return Date.now();
}

/** A mock behaviour that never answers and records when its connection closes. */
function holdOpen(track, { answerAfterMs = null, answer = null } = {}) {
  return {
    raw: async (sock, rec) => {
      const t = { rec, arrived: Date.now(), closedAt: null };
      track.push(t);
      const closed = new Promise((r) => sock.once('close', () => { t.closedAt = Date.now(); r(); }));
      if (answerAfterMs === null) { await closed; return; }
      await Promise.race([closed, sleep(answerAfterMs)]);
      if (!sock.destroyed && answer) sock.write(answer);
    },
  };
}

const vk = (k) => ({ 'x-bf-vk': k });
const chatBody = (extra = {}) => ({ model: 'mock/gpt-4o-mini', messages: MSG, ...extra });

// ---------------------------------------------------------------------------------------------
// 1. the provider answers 200 after the client left: billed from the real usage

test('non-streamed, client leaves before the answer, provider answers 200: billed the real usage exactly, client_left in the log, one upstream request', async (t) => {
  const g = await gateway(config());
  m.behave({ delayMs: 600, usage: USAGE });
  const left = await sendAndLeave(g, m, chatBody(), vk(KEY));

  // while the provider is still working the request is in flight, not settled
  await sleep(150);
  const during = entity(await usage(g.port, ADMIN), 'virtual_keys', 'alice');
  if (m.sent.length === 0) {
    assert.equal(during.in_flight, 1, `the orphan is not in flight while the provider works: ${JSON.stringify(during)}`);
    assert.equal(during.spend_micros, 0, `charged before the provider answered: ${JSON.stringify(during)}`);
  } else {
    t.diagnostic('the mock answered before the in-flight probe; probe skipped');
  }

  const line = await waitLine(g, (l) => l.status !== undefined, 3000);
  assert.ok(line, `no log line within 3 s of the client leaving\n${g.output().slice(-2000)}`);
  assert.equal(m.sent.length, 1, 'the provider never answered');
  assert.equal(line.client_left, true, `log line without "client_left":true: ${line.raw}`);
  assert.equal(line.status, 200, `log line status is not the provider's 200: ${line.raw}`);
  assert.equal(line.in_tokens, USAGE.prompt_tokens, line.raw);
  assert.equal(line.out_tokens, USAGE.completion_tokens, line.raw);
  const cost = /"cost_usd":([0-9.]+)/.exec(line.raw);
  assert.ok(cost, `log line without cost_usd: ${line.raw}`);
  assert.equal(cost[1], usd(COST), `cost_usd ${cost[1]} is not ${usd(COST)} (${COST} µ$): ${line.raw}`);
  assert.ok(Date.parse(line.ts) >= left - 50, `the line was logged before the client left? ${line.ts}`);

  const u = await quiet(g.port, ADMIN);
  const e = entity(u, 'virtual_keys', 'alice');
  assert.equal(e.spend_micros, COST, `spend must be exactly ${USAGE.prompt_tokens} in × $1 + ${USAGE.completion_tokens} out × $4 = ${COST} µ$: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, USAGE.prompt_tokens + USAGE.completion_tokens, JSON.stringify(e));
  assert.equal(e.requests, 1, JSON.stringify(e));
  assert.equal(e.in_flight, 0, `in_flight leaked: ${JSON.stringify(e)}`);
  assert.equal(e.reserved_micros, 0, `reservation leaked: ${JSON.stringify(e)}`);
  await sleep(300);
  assert.equal(m.requests.length, 1, `the provider saw ${m.requests.length} requests (a retry?)`);
  assert.equal(b.requests.length, 0, 'the fallback provider was used');
  assert.equal(chatLines(g).length, 1, `more than one log line: ${chatLines(g).map((l) => l.raw).join('\n')}`);

  // and the gateway goes on serving the same key; the next request adds its own cost
  m.behave({ usage: USAGE });
  const r = await request(g.port, { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify(chatBody()), headers: vk(KEY) });
  assert.equal(r.status, 200, show(r));
  const e2 = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'alice');
  assert.equal(e2.spend_micros, 2 * COST, JSON.stringify(e2));
});

// ---------------------------------------------------------------------------------------------
// 2. the provider answers 500 after the client left: nothing billed, no retry

test('non-streamed, client leaves, provider answers 500: nothing billed, no retry (a present client gets 3 attempts), log has client_left and 500', async () => {
  const g = await gateway(config({ maxRetries: 2 }));
  // control: with the client present, a 500 is retried twice on this provider
  m.behave({ status: 500, body: ERR500 });
  const ctl = await request(g.port, { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify(chatBody()), headers: vk(KEY), timeout: 5000 });
  assert.equal(ctl.status, 500, show(ctl));
  assert.equal(m.requests.length, 3, `control: a present client's 500 should be tried 1 + max_retries (2) times, saw ${m.requests.length}`);
  const ctlLine = await waitLine(g, () => true, 2000);
  assert.ok(ctlLine, 'no log line for the control request');
  assert.equal(ctlLine.client_left, undefined, `a request whose client stayed has client_left: ${ctlLine.raw}`);
  const from = chatLines(g).length;

  m.reset();
  m.behave({ delayMs: 600, status: 500, body: ERR500 });
  await sendAndLeave(g, m, chatBody(), vk(KEY));
  const line = await waitLine(g, () => true, 3000, from);
  assert.ok(line, `no log line within 3 s of the client leaving\n${g.output().slice(-2000)}`);
  assert.equal(line.client_left, true, `log line without "client_left":true: ${line.raw}`);
  assert.equal(line.status, 500, `log line status is not the provider's 500: ${line.raw}`);
  assert.equal(line.cost_usd ?? 0, 0, `a 500 was charged: ${line.raw}`);
  // a retry would start within 50–100 ms of the 500 (the backoff): wait well past it
  await sleep(500);
  assert.equal(m.requests.length, 1, `the provider saw ${m.requests.length} requests after the client left (retried)`);
  assert.equal(b.requests.length, 0, 'the fallback provider was used');
  const e = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'alice');
  assert.equal(e.spend_micros, 0, `a 500 was billed: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, 0, JSON.stringify(e));
  assert.equal(e.in_flight, 0, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, `reservation leaked: ${JSON.stringify(e)}`);
  assert.equal(chatLines(g, from).length, 1, `more than one log line for the orphan: ${chatLines(g, from).map((l) => l.raw).join('\n')}`);
});

// ---------------------------------------------------------------------------------------------
// 3. the provider never answers: the orphan ends at timeout_ms

test('non-streamed, client leaves, provider never answers: the orphan ends at timeout_ms (504, client_left, nothing billed, no failover), upstream closed, gateway keeps serving', async (t) => {
  const TIMEOUT = 800;
  const g = await gateway(config({ timeoutMs: TIMEOUT }));
  const held = [];
  m.behave(holdOpen(held));
  const body = chatBody({ fallbacks: ['backup/gpt-4o-mini'] });
  await sendAndLeave(g, m, body, vk(KEY));
  assert.equal(held.length, 1);
  const arrived = held[0].arrived;

  const line = await waitLine(g, () => true, TIMEOUT + 3000);
  assert.ok(line, `no log line within ${TIMEOUT + 3000} ms of the client leaving (the orphan never ended)\n${g.output().slice(-2000)}`);
  const endedAfter = Date.parse(line.ts) - arrived;
  t.diagnostic(`orphan logged ${endedAfter} ms after the provider got the request: ${line.raw}`);
  assert.equal(line.client_left, true, `log line without "client_left":true: ${line.raw}`);
  assert.equal(line.status, 504, `log line status is not 504: ${line.raw}`);
  assert.equal(typeof line.error, 'string', `a 504 line without its error: ${line.raw}`);
  assert.equal(line.cost_usd ?? 0, 0, `a timeout was charged: ${line.raw}`);
  assert.ok(endedAfter >= TIMEOUT - 100, `the orphan ended before timeout_ms (${endedAfter} ms < ${TIMEOUT})`);
  assert.ok(endedAfter <= TIMEOUT + 1500, `the orphan outlived timeout_ms by far (${endedAfter} ms)`);

  // the upstream connection is not kept forever
  const until = arrived + 2000;
  while (held[0].closedAt === null && Date.now() < until) await sleep(20);
  assert.notEqual(held[0].closedAt, null, 'the gateway still holds the upstream connection 2 s after sending the request');
  t.diagnostic(`upstream connection closed ${held[0].closedAt - arrived} ms after the request arrived`);

  assert.equal(m.requests.length, 1, `the provider saw ${m.requests.length} requests (retried after the timeout)`);
  assert.equal(b.requests.length, 0, `the orphan failed over to the fallback (${b.requests.length} requests there)`);
  let e = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'alice');
  assert.equal(e.spend_micros, 0, `a timed-out orphan was billed: ${JSON.stringify(e)}`);
  assert.equal(e.in_flight, 0, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, `reservation leaked: ${JSON.stringify(e)}`);
  assert.equal(g.exited, null, 'the gateway exited');

  // the gateway keeps serving: normal requests (fresh connections, either worker) succeed
  m.behave({ usage: USAGE });
  for (let i = 0; i < 4; i++) {
    const r = await request(g.port, { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify(chatBody()), headers: vk(KEY) });
    assert.equal(r.status, 200, `request ${i + 1} after the orphan: ${show(r)}`);
  }
  e = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'alice');
  assert.equal(e.spend_micros, 4 * COST, JSON.stringify(e));

  // control: a client that stays does fail over to the fallback at the timeout
  m.behave(holdOpen(held));
  const ctl = await request(g.port, { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify(body), headers: vk(KEY), timeout: 5000 });
  assert.equal(ctl.status, 200, `control: ${show(ctl)}`);
  assert.equal(b.requests.length, 1, 'control: a present client did not fail over to the fallback');
  m.behave({});
});

// ---------------------------------------------------------------------------------------------
// 4. a stream whose client leaves before the first byte is not kept

test('streamed, client leaves before the first byte: not kept (upstream closed at once, nothing billed, no client_left)', async (t) => {
  const g = await gateway(config());
  const held = [];
  const sse = 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n'
    + `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { role: 'assistant', content: 'late' }, finish_reason: 'stop' }] })}\n\n`
    + `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: USAGE })}\n\n`
    + 'data: [DONE]\n\n';
  m.behave(holdOpen(held, { answerAfterMs: 1500, answer: sse }));
  const left = await sendAndLeave(g, m, chatBody({ stream: true }), vk(KEY));
  // not kept: the upstream connection goes when the client does (an orphan would hold it
  // until the provider answers, 1.5 s after the request)
  while (held[0].closedAt === null && Date.now() < left + 1000) await sleep(20);
  assert.notEqual(held[0].closedAt, null, 'the upstream connection of a streamed request outlived its client by 1 s (kept as an orphan?)');
  assert.ok(held[0].closedAt - left <= 500, `the upstream connection closed ${held[0].closedAt - left} ms after the client left`);
  assert.ok(held[0].closedAt - held[0].arrived < 1500, 'the provider answered before the connection closed');

  await sleep(300);
  const lines = chatLines(g);
  t.diagnostic(`log lines for the cut stream: ${lines.length ? lines.map((l) => l.raw).join(' | ') : 'none'}`);
  for (const l of lines) assert.equal(l.client_left, undefined, `a streamed request that was not kept has client_left: ${l.raw}`);
  const e = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'alice');
  assert.equal(e.spend_micros, 0, `a stream cut before its first byte was billed: ${JSON.stringify(e)}`);
  assert.equal(e.in_flight, 0, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, `reservation leaked: ${JSON.stringify(e)}`);
  assert.equal(m.requests.length, 1);
  assert.equal(b.requests.length, 0);
  m.behave({});
});

// ---------------------------------------------------------------------------------------------
// 5. built-in prices: gemini-2.5-flash on a "gemini" provider, llama-3.3-70b-versatile on "groq"

test('built-in prices (no "pricing" entry): gemini-2.5-flash $0.30/$2.50, groq llama-3.3-70b-versatile $0.59/$0.79 per M, exact to the micro-dollar', async (t) => {
  const U = { prompt_tokens: 12345, completion_tokens: 6789 };
  const GEMINI = { input: 0.3, output: 2.5 };
  const GROQ = { input: 0.59, output: 0.79 };
  const cGem = costMicros({ in: U.prompt_tokens, out: U.completion_tokens }, GEMINI); // 3703.5 + 16972.5 = 20676
  const cGroq = costMicros({ in: U.prompt_tokens, out: U.completion_tokens }, GROQ);  // 7283.55 + 5363.31 → 12647
  assert.equal(cGem, 20676, 'cost formula self-check (gemini)');
  assert.equal(cGroq, 12647, 'cost formula self-check (groq)');
  // both kinds speak the OpenAI dialect (gemini via its /v1beta/openai endpoint): the mock
  // stands in for both; provider names differ from the kinds, so the kind is what prices them
  const g = await gateway(config({
    pricing: {},
    extraProviders: [
      { name: 'gem', provider: 'gemini', base_url: m.baseUrl, apiKey: 'gem-key', max_retries: 0 },
      { name: 'fastllm', provider: 'groq', base_url: m.baseUrl, apiKey: 'groq-key', max_retries: 0 },
    ],
    keys: [{ id: 'gemkey', value: KEY }, { id: 'groqkey', value: KEY2 }],
  }));
  m.behave({ usage: U });
  const r1 = await request(g.port, { method: 'POST', path: '/v1/chat/completions', headers: vk(KEY),
    body: JSON.stringify({ model: 'gem/gemini-2.5-flash', messages: MSG }) });
  assert.equal(r1.status, 200, show(r1));
  assert.equal(r1.headers['x-bifrost-provider'], 'gem/gemini-2.5-flash');
  const r2 = await request(g.port, { method: 'POST', path: '/v1/chat/completions', headers: vk(KEY2),
    body: JSON.stringify({ model: 'fastllm/llama-3.3-70b-versatile', messages: MSG }) });
  assert.equal(r2.status, 200, show(r2));
  assert.equal(r2.headers['x-bifrost-provider'], 'fastllm/llama-3.3-70b-versatile');
  assert.equal(m.requests.length, 2);
  assert.deepEqual(m.requests.map((q) => [q.path, q.json?.model, q.headers.authorization]), [
    ['/v1/chat/completions', 'gemini-2.5-flash', 'Bearer gem-key'],
    ['/v1/chat/completions', 'llama-3.3-70b-versatile', 'Bearer groq-key'],
  ]);

  const u = await quiet(g.port, ADMIN);
  const ge = entity(u, 'virtual_keys', 'gemkey');
  const gr = entity(u, 'virtual_keys', 'groqkey');
  t.diagnostic(`gemini ${ge.spend_micros} µ$ (expected ${cGem}), groq ${gr.spend_micros} µ$ (expected ${cGroq})`);
  assert.equal(ge.spend_micros, cGem, `gemini-2.5-flash: ${U.prompt_tokens} in × $0.30 + ${U.completion_tokens} out × $2.50 = ${cGem} µ$: ${JSON.stringify(ge)}`);
  assert.equal(gr.spend_micros, cGroq, `groq llama-3.3-70b-versatile: ${U.prompt_tokens} in × $0.59 + ${U.completion_tokens} out × $0.79 = ${cGroq} µ$: ${JSON.stringify(gr)}`);
  assert.equal(ge.tokens, U.prompt_tokens + U.completion_tokens, JSON.stringify(ge));
  assert.equal(gr.tokens, U.prompt_tokens + U.completion_tokens, JSON.stringify(gr));

  // (a line is written once the answer is out: it may trail the client's read)
  const lg = await waitLine(g, (l) => l.provider === 'gem/gemini-2.5-flash', 2000);
  const lq = await waitLine(g, (l) => l.provider === 'fastllm/llama-3.3-70b-versatile', 2000);
  assert.ok(lg && lq, `log lines missing: ${chatLines(g).map((l) => l.raw).join('\n')}`);
  assert.equal(/"cost_usd":([0-9.]+)/.exec(lg.raw)?.[1], usd(cGem), lg.raw);
  assert.equal(/"cost_usd":([0-9.]+)/.exec(lq.raw)?.[1], usd(cGroq), lq.raw);
  assert.equal(lg.client_left, undefined, lg.raw);
});
