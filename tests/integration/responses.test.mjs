// OpenAI's Responses API (POST /v1/responses and /openai/v1/responses) through the gateway:
// routed like chat completions, forwarded natively to "openai" and "azure" providers with
// only "model" changed (other kinds translate it: responses_translate.test.mjs for Chat-only
// providers, responses_anthropic.test.mjs for Anthropic ones; here an unreachable anthropic-kind
// candidate shows the failover and the log's `failed` list), billed from the Responses usage
// (plain: top-level "usage"; stream: response.completed's response.usage; a stream the client
// cuts: the "delta" characters / 4), max_output_tokens in the admission estimate, and a stream
// the provider breaks ends with `event: response.failed`.
//
// The upstream is a mock speaking the Responses API itself (JSON answers and the SSE sequence
// response.created … response.completed, each event with its sequence_number); the client is
// the official `openai` SDK, or raw HTTP where the exact bytes matter.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, request, RawConn, rawRequest, sleep, show, errorBody, freePort } from '../lib/gateway.mjs';
import { requestRecorder } from '../lib/record.mjs';
import { costMicros, entity, quiet } from '../lib/usage.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the "openai" package is not installed: run (cd tests && npm ci) — ${e.message}`);
}

const T = { timeout: 30000 }; // every test is bounded
const TEXT = 'The quick brown fox jumps over the lazy dog.';
const DEFAULT_USAGE = { input_tokens: 36, cached: 0, output_tokens: 11, reasoning: 0 };
const ADMIN = 'adm-responses-token-1';
const KA = 'sk-bf-resp-alice-0001';
const KB = 'sk-bf-resp-bob-0002';
const KC = 'sk-bf-resp-carol-0003';

// ---------------------------------------------------------------------------------------------
// a Responses API upstream

function usageObj({ input_tokens, cached = 0, output_tokens, reasoning = 0 }) {
  return {
    input_tokens, input_tokens_details: { cached_tokens: cached },
    output_tokens, output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: input_tokens + output_tokens,
  };
}

function responseObj({ id, model, status, output, usage, req }) {
  return {
    id, object: 'response', created_at: 1741476542, status, background: false, error: null,
    incomplete_details: null, instructions: req?.instructions ?? null,
    max_output_tokens: req?.max_output_tokens ?? null, model, output, parallel_tool_calls: true,
    previous_response_id: null, reasoning: { effort: null, summary: null }, service_tier: 'default',
    store: true, temperature: 1.0, text: { format: { type: 'text' }, verbosity: 'medium' },
    tool_choice: 'auto', tools: req?.tools ?? [], top_p: 1.0, truncation: 'disabled',
    usage, user: null, metadata: {},
  };
}

function messageItem(id, text, status = 'completed') {
  return { id, type: 'message', status, role: 'assistant', content: status === 'completed' ? [{ type: 'output_text', text, annotations: [], logprobs: [] }] : [] };
}

function splitText(text, n) {
  const size = Math.ceil(text.length / n);
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

/**
 * The SSE events of a streamed text answer: [{ name, data }], sequence numbers from 0.
 * deltas: the text pieces.
 */
function streamEvents({ id, model, deltas, usage, req }) {
  const text = deltas.join('');
  const msgId = `msg_${id.slice(5)}`;
  const evs = [];
  const push = (name, data) => evs.push({ name, data: { type: name, ...data, sequence_number: evs.length } });
  push('response.created', { response: responseObj({ id, model, status: 'in_progress', output: [], usage: null, req }) });
  push('response.in_progress', { response: responseObj({ id, model, status: 'in_progress', output: [], usage: null, req }) });
  push('response.output_item.added', { output_index: 0, item: messageItem(msgId, '', 'in_progress') });
  push('response.content_part.added', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } });
  for (const d of deltas) push('response.output_text.delta', { item_id: msgId, output_index: 0, content_index: 0, delta: d, logprobs: [] });
  push('response.output_text.done', { item_id: msgId, output_index: 0, content_index: 0, text, logprobs: [] });
  push('response.content_part.done', { item_id: msgId, output_index: 0, content_index: 0, part: { type: 'output_text', text, annotations: [], logprobs: [] } });
  push('response.output_item.done', { output_index: 0, item: messageItem(msgId, text) });
  push('response.completed', { response: responseObj({ id, model, status: 'completed', output: [messageItem(msgId, text)], usage, req }) });
  return evs;
}

const sseBytes = (ev) => Buffer.from(`event: ${ev.name}\ndata: ${JSON.stringify(ev.data)}\n\n`);

/**
 * const m = await startResponsesMock('a');   m.baseUrl = http://127.0.0.1:PORT/v1, m.origin
 * m.behave({ text, usage, deltas, gapMs, cutAfterDeltas, hangAfterDeltas, output, gate })
 * m.once(...) for the next request only; a behaviour may be a function (rec) → behaviour.
 * m.requests[i]: what arrived (record.mjs); m.sent[i]: { status, json } or { events }.
 */
async function startResponsesMock(name) {
  const record = requestRecorder();
  const open = new Set();
  const m = {
    name, requests: [], sent: [], _default: {}, _queue: [],
    behave(b) { this._default = b || {}; return this; },
    once(b) { this._queue.push(b); return this; },
    reset() { this.requests.length = 0; this.sent.length = 0; this._queue.length = 0; this._default = {}; },
  };
  const server = http.createServer({ keepAliveTimeout: 60000 }, async (req, res) => {
    open.add(res);
    res.on('close', () => open.delete(res));
    const rec = await record(req);
    m.requests.push(rec);
    let b = m._queue.length ? m._queue.shift() : m._default;
    if (typeof b === 'function') b = b(rec) || {};
    try {
      await respond(m, rec, b, res);
    } catch { /* the gateway went away */ }
  });
  server.on('clientError', (err, sock) => sock.destroy());
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  m.server = server;
  m.port = server.address().port;
  m.origin = `http://127.0.0.1:${m.port}`;
  m.baseUrl = `${m.origin}/v1`;
  m.close = () => new Promise((resolve) => {
    for (const r of open) r.socket?.destroy();
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
  return m;
}

async function respond(m, rec, b, res) {
  if (b.gate) await b.gate; // hold the answer until the test says so
  const isResponses = rec.method === 'POST' && /\/responses$/.test(rec.path);
  if (!isResponses || !rec.json) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `mock ${m.name}: no route ${rec.method} ${rec.url}`, type: 'invalid_request_error', code: null } }));
    return;
  }
  const n = m.requests.length;
  const id = `resp_${m.name}${String(n).padStart(4, '0')}67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b`;
  const model = rec.json.model;
  const usage = usageObj({ ...DEFAULT_USAGE, ...(b.usage || {}) });
  const text = b.text ?? TEXT;
  if (rec.json.stream === true && !b.output) {
    const evs = streamEvents({ id, model, deltas: b.deltas ?? splitText(text, 5), usage, req: rec.json });
    const sent = { status: 200, events: [] };
    m.sent.push(sent);
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-request-id': `req_${n}` });
    res.flushHeaders();
    let deltas = 0;
    for (const ev of evs) {
      if (b.gapMs) await sleep(b.gapMs);
      await new Promise((r) => res.write(sseBytes(ev), r));
      sent.events.push(ev);
      if (ev.name === 'response.output_text.delta') deltas++;
      if (b.cutAfterDeltas !== undefined && deltas === b.cutAfterDeltas) {
        await sleep(50);
        res.socket.destroy(); // the provider dies mid-stream
        return;
      }
      if (b.hangAfterDeltas !== undefined && deltas === b.hangAfterDeltas) return; // silent, kept open
    }
    res.end();
    return;
  }
  const output = b.output ? b.output(rec) : [messageItem(`msg_${id.slice(5)}`, text)];
  const json = responseObj({ id, model, status: 'completed', output, usage, req: rec.json });
  const body = Buffer.from(JSON.stringify(json));
  m.sent.push({ status: 200, json, body });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'x-request-id': `req_${n}` });
  res.end(body);
}

// ---------------------------------------------------------------------------------------------
// helpers

/** An SDK client whose every request body is recorded (exactly the bytes sent). */
function sdkClient(port, { apiKey = 'vk-anything', prefix = '/v1' } = {}) {
  const sent = [];
  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${port}${prefix}`, apiKey, maxRetries: 0, timeout: 10000,
    fetch: async (url, init) => {
      sent.push({ url: String(url), method: init?.method, body: init?.body });
      return fetch(url, init);
    },
  });
  return { client, sent };
}

/** The client's body with the one "model" value replaced, as the upstream must see it. */
function expectUpstreamBody(clientBody, from, to) {
  assert.equal(typeof clientBody, 'string', 'the SDK did not send a string body');
  const needle = `"model":${JSON.stringify(from)}`;
  assert.equal(clientBody.split(needle).length, 2, `expected exactly one ${needle} in ${clientBody}`);
  return clientBody.replace(needle, `"model":${JSON.stringify(to)}`);
}

/** Exactly the client's body but "model" (bytes and parsed), and the upstream model name. */
function assertForwardedNatively(up, clientBody, from, to) {
  const want = expectUpstreamBody(clientBody, from, to);
  const got = up.body.toString('utf8');
  const strip = (s) => { const j = JSON.parse(s); delete j.model; return j; };
  assert.deepEqual(strip(got), strip(clientBody), 'the upstream body differs from the client\'s beyond "model"');
  assert.equal(up.json.model, to, 'upstream model');
  assert.equal(got, want, 'the upstream body is not byte-identical to the client\'s (model aside)');
}

/** Parse an SSE text into [{ name, data (parsed JSON or raw) }]. */
function parseSse(text) {
  const out = [];
  for (const block of text.split('\n\n')) {
    if (!block.trim()) continue;
    let name = null;
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) name = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (name === null && data.length === 0) continue; // a comment (ping)
    const raw = data.join('\n');
    let json;
    try { json = JSON.parse(raw); } catch { json = undefined; }
    out.push({ name, raw, data: json });
  }
  return out;
}

/** The first log line of a Responses request that pred accepts, parsed. */
async function logLine(gw, pred, what) {
  for (let i = 0; i < 150; i++) {
    const l = gw.logLines().filter((x) => /\/responses$/.test(x.path ?? '')).find(pred);
    if (l) return l;
    await sleep(20);
  }
  assert.fail(`no log line for ${what}\n${gw.output().slice(-3000)}`);
}
const failedOf = (l) => (l.failed === undefined ? [] : String(l.failed).split(' ').filter(Boolean));

function post(port, path, body, headers = {}) {
  return request(port, {
    method: 'POST', path, body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { authorization: 'Bearer vk-anything', ...headers }, timeout: 10000,
  });
}

// ---------------------------------------------------------------------------------------------
// the shared gateway: oai (openai), antp (anthropic), oai2 (openai) on the bare "shared-*" models

let oa; // Responses mock behind "oai" and "oai2"
let deadPort; // the anthropic-kind provider's port: nothing listens there (every attempt fails, 502)
let az; // Responses mock behind the azure provider
let gw;
const gws = [];

before(async () => {
  oa = await startResponsesMock('oa');
  deadPort = await freePort(); // nothing listens here
  az = await startResponsesMock('az');
  gw = await startGateway({
    config: {
      log_requests: true,
      circuit_breaker: { failures: 1000000, cooldown_ms: 1000 },
      providers: [
        { name: 'oai', provider: 'openai', apiKey: 'sk-oai-upstream-0001', base_url: oa.baseUrl, models: ['gpt-*'], max_retries: 0 },
        // (weights in thousandths: 1000000 vs 0.001 → antp is drawn first but once in 10^9;
        // it is unreachable: the Responses request, translated for it, fails over with 502)
        { name: 'antp', provider: 'anthropic', apiKey: 'sk-ant-upstream-0002', base_url: `http://127.0.0.1:${deadPort}`, models: ['shared-*', 'llama-*'], weight: 1000000, max_retries: 0 },
        { name: 'oai2', provider: 'openai', apiKey: 'sk-oai2-upstream-0003', base_url: oa.baseUrl, models: ['shared-*'], weight: 0.001, max_retries: 0 },
        { name: 'az', provider: 'azure', apiKey: 'AZKEY-0004', base_url: az.origin, api_version: '2025-04-01-preview',
          models: ['gpt-*'], deployments: { 'gpt-4.1': 'my-dep' }, max_retries: 0 },
      ],
    },
  });
  gws.push(gw);
});

after(async () => {
  for (const g of gws) await g.stop('SIGKILL');
  await oa?.close();
  await az?.close();
});

function resetMocks() { oa.reset(); az.reset(); }

// ---------------------------------------------------------------------------------------------
// 1. plain

test('SDK responses.create through the gateway: output_text, body forwarded unchanged but "model", provider key, /v1/responses', T, async () => {
  resetMocks();
  const { client, sent } = sdkClient(gw.port);
  const { data: r, response } = await client.responses.create({
    model: 'oai/gpt-4.1', input: 'hi', instructions: 'Answer with the pangram.', temperature: 0.2,
    max_output_tokens: 64, metadata: { trace: 'é ü 中文 "quoted"' },
  }).withResponse();
  assert.equal(r.output_text, TEXT);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.model, 'gpt-4.1');
  assert.equal(response.headers.get('x-bifrost-provider'), 'oai/gpt-4.1');
  assert.equal(oa.requests.length, 1);
  const up = oa.requests[0];
  assert.equal(up.method, 'POST');
  assert.equal(up.url, '/v1/responses');
  assert.equal(up.headers.authorization, 'Bearer sk-oai-upstream-0001');
  assert.ok(!JSON.stringify(up.rawHeaders).includes('vk-anything'), 'the client credential reached the provider');
  assert.equal(sent.length, 1);
  assert.match(sent[0].url, /\/v1\/responses$/);
  assertForwardedNatively(up, sent[0].body, 'oai/gpt-4.1', 'gpt-4.1');
  // the answer is the provider's own (no translation)
  assert.deepEqual({ ...r, output_text: undefined }, { ...oa.sent[0].json, output_text: undefined });
  assert.deepEqual(r.usage, usageObj(DEFAULT_USAGE));
});

// ---------------------------------------------------------------------------------------------
// 2. streamed

test('SDK streamed responses.create: every event in order with the provider\'s sequence numbers, deltas make the text, response.completed last', T, async () => {
  resetMocks();
  const deltas = ['The quick ', 'brown fox ', 'jumps over ', 'the lazy ', 'dog.'];
  oa.behave({ deltas, gapMs: 5 });
  const { client, sent } = sdkClient(gw.port);
  const stream = await client.responses.create({ model: 'oai/gpt-4.1', input: [{ role: 'user', content: 'stream it' }], stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  assert.equal(oa.sent.length, 1, 'the mock did not stream');
  const mockEvents = oa.sent[0].events.map((e) => e.data);
  assert.deepEqual(events.map((e) => `${e.sequence_number}:${e.type}`), mockEvents.map((e) => `${e.sequence_number}:${e.type}`));
  assert.deepEqual(events, mockEvents, 'the events reached the client changed');
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i));
  const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
  assert.equal(text, deltas.join(''));
  assert.equal(text, TEXT);
  const last = events.at(-1);
  assert.equal(last.type, 'response.completed');
  assert.deepEqual(last.response.usage, usageObj(DEFAULT_USAGE));
  const up = oa.requests[0];
  assert.equal(up.url, '/v1/responses');
  assert.equal(up.headers.authorization, 'Bearer sk-oai-upstream-0001');
  assert.match(up.headers.accept ?? '', /text\/event-stream/);
  assertForwardedNatively(up, sent[0].body, 'oai/gpt-4.1', 'gpt-4.1');
  assert.ok(!('stream_options' in up.json), 'stream_options was added to a Responses request');
});

// ---------------------------------------------------------------------------------------------
// 3. function tool round trip

test('SDK function-tool round trip: function_call output, then the function_call_output reaches the provider intact', T, async () => {
  resetMocks();
  const CALL = { id: 'fc_67ccf18f64008190a39b619f4c8455ef087bb177ab789d5c', type: 'function_call', status: 'completed',
    arguments: '{"location":"Paris, France","unit":"celsius"}', call_id: 'call_4Zl4TlqR2XbNbdzzDOP3vQpL', name: 'get_weather' };
  const ANSWER = 'It is 18 °C and sunny in Paris.';
  oa.behave((rec) => {
    const inp = Array.isArray(rec.json?.input) ? rec.json.input : [];
    return inp.some((x) => x?.type === 'function_call_output') ? { text: ANSWER } : { output: () => [CALL] };
  });
  const tools = [{
    type: 'function', name: 'get_weather', description: 'Current weather for a location', strict: true,
    parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
      required: ['location', 'unit'], additionalProperties: false },
  }];
  const { client, sent } = sdkClient(gw.port);
  const input = [{ role: 'user', content: 'What is the weather in Paris?' }];
  const first = await client.responses.create({ model: 'oai/gpt-4.1', input, tools, tool_choice: 'auto' });
  assert.equal(first.output.length, 1, JSON.stringify(first.output));
  const call = first.output[0];
  assert.equal(call.type, 'function_call');
  assert.deepEqual(call, CALL);
  assert.equal(first.output_text, '');
  const result = { type: 'function_call_output', call_id: call.call_id, output: JSON.stringify({ temperature: 18, unit: 'celsius', sky: 'sunny' }) };
  const second = await client.responses.create({ model: 'oai/gpt-4.1', input: [...input, call, result], tools });
  assert.equal(second.output_text, ANSWER);
  assert.equal(oa.requests.length, 2);
  const up = oa.requests[1];
  assert.deepEqual(up.json.input, [...input, CALL, result]);
  const got = up.json.input.find((x) => x.type === 'function_call_output');
  assert.deepEqual(got, result);
  assert.deepEqual(up.json.tools, tools);
  assertForwardedNatively(oa.requests[0], sent[0].body, 'oai/gpt-4.1', 'gpt-4.1');
  assertForwardedNatively(up, sent[1].body, 'oai/gpt-4.1', 'gpt-4.1');
});

// ---------------------------------------------------------------------------------------------
// 4. the /openai prefix

test('/openai/v1/responses is served like /v1/responses (SDK with baseURL …/openai/v1, plain and streamed)', T, async () => {
  resetMocks();
  const { client, sent } = sdkClient(gw.port, { prefix: '/openai/v1' });
  const r = await client.responses.create({ model: 'oai/gpt-4.1', input: 'hi' });
  assert.equal(r.output_text, TEXT);
  assert.match(sent[0].url, /\/openai\/v1\/responses$/);
  assert.equal(oa.requests.length, 1);
  assert.equal(oa.requests[0].url, '/v1/responses');
  assertForwardedNatively(oa.requests[0], sent[0].body, 'oai/gpt-4.1', 'gpt-4.1');
  const stream = await client.responses.create({ model: 'oai/gpt-4.1', input: 'hi', stream: true });
  let text = '';
  let last;
  for await (const ev of stream) { if (ev.type === 'response.output_text.delta') text += ev.delta; last = ev; }
  assert.equal(text, TEXT);
  assert.equal(last?.type, 'response.completed');
  assert.equal(oa.requests.length, 2);
  const l = await logLine(gw, (x) => x.path === '/openai/v1/responses' && x.stream === true, 'the /openai stream');
  assert.equal(l.status, 200);
  assert.equal(l.provider, 'oai/gpt-4.1');
});

// ---------------------------------------------------------------------------------------------
// 5. routing

test('an anthropic-kind provider is now asked for /v1/responses (translated to Messages): unreachable → 502 OpenAI-shaped error naming it, `failed` lists it, nothing sent to the other providers', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  for (const stream of [false, true]) {
    const r = await post(gw.port, '/v1/responses', { model: 'antp/llama-3.3-70b-versatile', input: 'hi', stream });
    // (no longer the 400 "cannot serve the Responses API": the candidate was tried)
    assert.equal(r.status, 502, `stream ${stream}: ${show(r)}`);
    assert.match(r.headers['content-type'] ?? '', /application\/json/, show(r));
    const e = errorBody(r);
    assert.equal(e.type, 'upstream_error', show(r));
    assert.match(e.message, /\bantp\b/, `the message must name the provider: ${e.message}`);
    assert.doesNotMatch(e.message, /cannot serve the Responses API/, e.message);
  }
  await sleep(100);
  assert.equal(oa.requests.length + az.requests.length, 0, 'another provider was asked for an explicit antp model');
  // the SDK sees a 5xx APIError (not a BadRequestError)
  const { client } = sdkClient(gw.port);
  await assert.rejects(client.responses.create({ model: 'antp/llama-3.3-70b-versatile', input: 'hi' }), (err) => {
    assert.ok(err instanceof OpenAI.InternalServerError, `not an InternalServerError: ${err?.constructor?.name} ${err}`);
    assert.ok(!(err instanceof OpenAI.BadRequestError), `a BadRequestError: ${err}`);
    assert.equal(err.status, 502);
    assert.match(err.message, /\bantp\b/);
    return true;
  });
  const lines = () => gw.logLines().slice(n0).filter((x) => x.path === '/v1/responses' && x.provider === 'antp/llama-3.3-70b-versatile');
  for (let i = 0; i < 150 && lines().length < 3; i++) await sleep(20);
  assert.equal(lines().length, 3, JSON.stringify(lines()));
  for (const l of lines()) {
    assert.equal(l.status, 502, JSON.stringify(l));
    assert.equal(l.attempts, 1, JSON.stringify(l));
    assert.deepEqual(failedOf(l), ['antp/llama-3.3-70b-versatile:502'], JSON.stringify(l));
  }
});

test('a bare model served by an anthropic provider (far higher weight, unreachable) and openai: answered by openai, `failed` lists the anthropic candidate with 502', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  for (let i = 0; i < 3; i++) {
    const r = await post(gw.port, '/v1/responses', { model: 'shared-model', input: `bare ${i}` });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.headers['x-bifrost-provider'], 'oai2/shared-model');
    assert.equal(JSON.parse(r.text).output[0].content[0].text, TEXT);
  }
  assert.equal(oa.requests.length, 3);
  for (const q of oa.requests) {
    assert.equal(q.url, '/v1/responses');
    assert.equal(q.headers.authorization, 'Bearer sk-oai2-upstream-0003');
    assert.equal(q.json.model, 'shared-model');
  }
  const bare = () => gw.logLines().slice(n0).filter((x) => x.path === '/v1/responses' && x.provider === 'oai2/shared-model');
  for (let i = 0; i < 150 && bare().length < 3; i++) await sleep(20);
  assert.equal(bare().length, 3, `log lines of the bare requests: ${JSON.stringify(bare())}`);
  for (const l of bare()) {
    assert.equal(l.status, 200, JSON.stringify(l));
    assert.equal(l.attempts, 2, JSON.stringify(l));
    assert.deepEqual(failedOf(l), ['antp/shared-model:502'], JSON.stringify(l));
  }
  // body "fallbacks" from an anthropic-kind primary to an openai model, streamed
  const body = '{"model":"antp/llama-3.3-70b-versatile","input":"fall back","stream":true,"fallbacks":["oai/gpt-4.1"]}';
  const r = await post(gw.port, '/v1/responses', body);
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'oai/gpt-4.1');
  const evs = parseSse(r.text);
  assert.equal(evs.at(-1)?.name, 'response.completed', r.text.slice(-400));
  assert.equal(oa.requests.length, 4);
  const up = oa.requests.at(-1);
  assert.equal(up.json.model, 'gpt-4.1');
  assert.ok(!('fallbacks' in up.json), 'fallbacks forwarded upstream');
  assert.deepEqual(up.json, { model: 'gpt-4.1', input: 'fall back', stream: true });
  const l = await logLine(gw, (x) => x.provider === 'oai/gpt-4.1' && x.stream === true && failedOf(x).length > 0, 'the fallback stream');
  assert.equal(l.status, 200, JSON.stringify(l));
  assert.deepEqual(failedOf(l), ['antp/llama-3.3-70b-versatile:502'], JSON.stringify(l));
});

// ---------------------------------------------------------------------------------------------
// 7. Azure

test('azure: POST /openai/responses?api-version=…, api-key header, body model = the deployment', T, async () => {
  resetMocks();
  const { client, sent } = sdkClient(gw.port);
  const { data: r, response } = await client.responses.create({ model: 'az/gpt-4.1', input: 'hi azure' }).withResponse();
  assert.equal(r.output_text, TEXT);
  assert.equal(response.headers.get('x-bifrost-provider'), 'az/gpt-4.1');
  assert.equal(az.requests.length, 1);
  const up = az.requests[0];
  assert.equal(up.method, 'POST');
  assert.equal(up.url, '/openai/responses?api-version=2025-04-01-preview');
  assert.equal(up.headers['api-key'], 'AZKEY-0004');
  assert.equal(up.headers.authorization, undefined, 'an Authorization header reached Azure');
  assertForwardedNatively(up, sent[0].body, 'az/gpt-4.1', 'my-dep');
  // streamed too
  const stream = await client.responses.create({ model: 'az/gpt-4.1', input: 'hi azure', stream: true });
  let text = '';
  for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta;
  assert.equal(text, TEXT);
  assert.equal(az.requests.length, 2);
  assert.equal(az.requests[1].url, '/openai/responses?api-version=2025-04-01-preview');
  assertForwardedNatively(az.requests[1], sent[1].body, 'az/gpt-4.1', 'my-dep');
  assert.equal(oa.requests.length, 0);
});

// ---------------------------------------------------------------------------------------------
// 8. the provider breaks the stream

test('a stream the provider cuts after two deltas: the client gets both, then `event: response.failed` with the error', T, async () => {
  resetMocks();
  const deltas = ['The quick ', 'brown fox ', 'jumps over ', 'the lazy dog.'];
  oa.once({ deltas, cutAfterDeltas: 2, gapMs: 5 });
  const r = await post(gw.port, '/v1/responses', { model: 'oai/gpt-4.1', input: 'cut', stream: true });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] ?? '', /text\/event-stream/);
  const evs = parseSse(r.text);
  const names = evs.map((e) => e.name);
  assert.deepEqual(names, ['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.failed'], r.text);
  const sentEvents = oa.sent[0].events;
  assert.equal(sentEvents.length, 6);
  for (let i = 0; i < 6; i++) assert.deepEqual(evs[i].data, sentEvents[i].data, `event ${i} changed`);
  assert.equal(evs.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta).join(''), 'The quick brown fox ');
  const f = evs.at(-1);
  assert.ok(f.data, `response.failed data is not JSON: ${f.raw}`);
  assert.equal(f.data.type, 'response.failed', f.raw);
  assert.equal(f.data.response?.status, 'failed', f.raw);
  assert.equal(typeof f.data.response?.error?.code, 'string', f.raw);
  assert.ok(typeof f.data.response.error.message === 'string' && f.data.response.error.message.length > 0, f.raw);
  assert.ok(!r.text.includes('response.completed'), 'a response.completed after the failure');
  // the gateway keeps serving
  const ok = await post(gw.port, '/v1/responses', { model: 'oai/gpt-4.1', input: 'after' });
  assert.equal(ok.status, 200, show(ok));
});

// ---------------------------------------------------------------------------------------------
// governance: 6. billing of plain and streamed answers, the admission estimate, a cut stream

const PRICE = { input: 2, output: 8, cache_read: 0.5 };
const PRICE_CUT = { input: 0, output: 8 }; // output only: a cut stream's bill is its delta characters alone
const BILLED_USAGE = { input_tokens: 1200, cached: 1000, output_tokens: 300, reasoning: 120 };

async function govGateway() {
  const g = await startGateway({
    config: {
      admin: { token: ADMIN },
      log_requests: true,
      providers: [{ name: 'oai', provider: 'openai', apiKey: 'sk-oai-gov', base_url: oa.baseUrl, models: ['gpt-*'], max_retries: 0 }],
      pricing: { 'oai/gpt-4.1': PRICE, 'oai/gpt-4.1-cut': PRICE_CUT },
      governance: {
        enforce: true,
        virtual_keys: [
          { id: 'alice', value: KA, budget: { max_limit: 10, reset_duration: '1d' } },
          { id: 'bob', value: KB, budget: { max_limit: 100, reset_duration: '1d' } },
          { id: 'carol', value: KC, budget: { max_limit: 10, reset_duration: '1d' } },
        ],
      },
    },
  });
  gws.push(g);
  return g;
}

let gov;
async function getGov() { if (!gov) gov = await govGateway(); return gov; }

test('governance: a plain and a streamed Responses request with usage 1200 in (1000 cached) / 300 out are billed exactly 200×$2 + 1000×$0.5 + 300×$8 per M = 3300 µ$ each', T, async () => {
  resetMocks();
  const g = await getGov();
  const C = costMicros({ in: 200, out: 300, cacheRead: 1000 }, PRICE);
  assert.equal(C, 400 + 500 + 2400, 'cost formula self-check');
  assert.equal(C, 3300);
  oa.behave({ usage: BILLED_USAGE });

  // no virtual key: refused before anything goes upstream
  const un = await post(g.port, '/v1/responses', { model: 'oai/gpt-4.1', input: 'x' }, { authorization: 'Bearer not-a-key' });
  assert.equal(un.status, 401, show(un));
  assert.equal(oa.requests.length, 0);

  const { client } = sdkClient(g.port, { apiKey: KA });
  const r = await client.responses.create({ model: 'oai/gpt-4.1', input: 'bill me' });
  assert.equal(r.output_text, TEXT);
  assert.deepEqual(r.usage, usageObj(BILLED_USAGE));
  assert.equal(oa.requests.at(-1).headers.authorization, 'Bearer sk-oai-gov');
  let e = entity(await quiet(g.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'alice').requests === 1 }), 'virtual_keys', 'alice');
  assert.equal(e.requests, 1, JSON.stringify(e));
  assert.equal(e.spend_micros, C, `plain: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, 1500, `plain: 1200 in (cache included) + 300 out: ${JSON.stringify(e)}`);
  let l = await logLine(g, (x) => x.status === 200 && x.stream === false, 'the plain request');
  assert.equal(l.cost_usd, C / 1e6, JSON.stringify(l));
  assert.equal(l.in_tokens, 200, JSON.stringify(l));
  assert.equal(l.cached_tokens, 1000, JSON.stringify(l));
  assert.equal(l.out_tokens, 300, JSON.stringify(l));

  const stream = await client.responses.create({ model: 'oai/gpt-4.1', input: 'bill my stream', stream: true });
  let last;
  for await (const ev of stream) last = ev;
  assert.equal(last?.type, 'response.completed');
  assert.deepEqual(last.response.usage, usageObj(BILLED_USAGE));
  e = entity(await quiet(g.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'alice').requests === 2 }), 'virtual_keys', 'alice');
  assert.equal(e.requests, 2, JSON.stringify(e));
  assert.equal(e.spend_micros, 2 * C, `plain + stream: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, 3000, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, JSON.stringify(e));
  l = await logLine(g, (x) => x.status === 200 && x.stream === true, 'the streamed request');
  assert.equal(l.cost_usd, C / 1e6, JSON.stringify(l));
  assert.equal(l.in_tokens, 200, JSON.stringify(l));
  assert.equal(l.cached_tokens, 1000, JSON.stringify(l));
  assert.equal(l.out_tokens, 300, JSON.stringify(l));
  oa.behave({});
});

test('governance: max_output_tokens feeds the admission estimate (reserved µ$ grow by Δmax_output_tokens × $8/M)', T, async (t) => {
  resetMocks();
  const g = await getGov();
  const reservedFor = async (mot) => {
    let open;
    const gate = new Promise((r) => { open = r; });
    oa.once({ gate });
    const body = `{"model":"oai/gpt-4.1","input":"estimate me","max_output_tokens":${mot}}`;
    const pending = post(g.port, '/v1/responses', body, { authorization: `Bearer ${KB}` });
    try {
      let e;
      for (let i = 0; i < 200; i++) {
        e = entity(await quiet(g.port, ADMIN, { timeoutMs: 0 }), 'virtual_keys', 'bob');
        if (e.in_flight === 1 && oa.requests.length > 0) break;
        await sleep(10);
      }
      assert.equal(e.in_flight, 1, `the request is not in flight: ${JSON.stringify(e)}`);
      return { reserved: e.reserved_micros, len: Buffer.byteLength(body) };
    } finally {
      open();
      const r = await pending;
      assert.equal(r.status, 200, show(r));
    }
  };
  const a = await reservedFor(100000);
  const b = await reservedFor(900000);
  t.diagnostic(`reserved while in flight: ${a.reserved} µ$ (max_output_tokens 100000), ${b.reserved} µ$ (900000); body ${a.len} bytes`);
  assert.equal(a.len, b.len);
  assert.ok(a.reserved >= 100000 * 8, `reserved ${a.reserved} µ$ for max_output_tokens 100000 at $8/M`);
  assert.equal(b.reserved - a.reserved, 800000 * 8, `reserved ${a.reserved} then ${b.reserved} µ$`);
  const e = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'bob');
  assert.equal(e.reserved_micros, 0, JSON.stringify(e));
  assert.equal(e.spend_micros, 2 * costMicros({ in: 36, out: 11 }, PRICE), JSON.stringify(e));
});

test('governance: a stream the client cuts after two deltas is billed from the delta characters / 4', T, async () => {
  resetMocks();
  const g = await getGov();
  // 40 characters of delta (ASCII, no escapes); every other string of the events (the instructions,
  // the item ids, the empty part text) must not count
  const deltas = ['0123456789abcdefghij', 'ABCDEFGHIJKLMNOPQRST', 'never sent 1', 'never sent 2'];
  oa.once({ deltas, hangAfterDeltas: 2 });
  const body = JSON.stringify({ model: 'oai/gpt-4.1-cut', input: 'cut me', stream: true, instructions: 'x'.repeat(400) });
  const c = await RawConn.open(g.port);
  try {
    await c.write(rawRequest('POST', '/v1/responses', { headers: { 'Content-Type': 'application/json', authorization: `Bearer ${KC}` }, body }));
    const ok = await c.waitFor(() => c.all.toString('latin1').includes('ABCDEFGHIJKLMNOPQRST'), 5000);
    assert.ok(ok, `the two deltas never arrived: ${JSON.stringify(c.all.toString('latin1').slice(0, 800))}`);
  } finally {
    c.destroy();
  }
  const u = await quiet(g.port, ADMIN, { timeoutMs: 5000, extra: (x) => entity(x, 'virtual_keys', 'carol').requests === 1 });
  const e = entity(u, 'virtual_keys', 'carol');
  assert.equal(e.in_flight, 0, `the cut stream is still in flight: ${JSON.stringify(e)}`);
  assert.equal(e.requests, 1, JSON.stringify(e));
  assert.equal(e.spend_micros, costMicros({ in: 0, out: 40 / 4 }, PRICE_CUT), `40 delta characters → 10 output tokens × $8/M: ${JSON.stringify(e)}`);
  assert.equal(e.spend_micros, 80);
  assert.equal(e.reserved_micros, 0, JSON.stringify(e));
});
