// OpenAI's Responses API (POST /v1/responses) routed to an OpenAI-format provider that does not
// serve it itself (here kind "groq"): the gateway TRANSLATES the request to Chat Completions and
// the answer back to a Responses object (or, streamed, to the Responses SSE events).
//
// The upstream is tests/lib/mock.mjs, a mock speaking ONLY Chat Completions (anything else is a
// 404), given whole bodies or scripted SSE chunk sequences (tool calls) where its generated
// answers do not do; the client is the official `openai` SDK, raw HTTP where the bytes matter,
// and the real Codex CLI (codex exec, offline) for the last test.
//
//   1. plain: output_text, the exact Chat body (messages, model, max_tokens, response_format,
//      reasoning_effort, tools nested, …), the Responses shape and usage; finish "length";
//      every translating kind (groq … fireworks) and an openai provider (native)
//   2. streamed text: every event in order, sequence numbers 0…n, response.completed
//   3. function tool round trip, plain and streamed (call items, then tool messages upstream)
//   4. a custom (freeform) tool: a one-string-parameter function upstream, custom_tool_call back
//   5. errors: previous_response_id, unsupported tools and items, an unreachable Anthropic
//      provider failed over (Anthropic itself: responses_anthropic.test.mjs),
//      upstream 429/400/500 passed through, a stream the provider cuts → response.failed
//   6. governance: translated plain and streamed requests billed from the Chat usage
//   7. the real Codex CLI through the gateway to the Chat-only provider: as installed, refused
//      (its namespace and web_search tools); with those off, a shell tool round trip
//
// DUMP_CODEX=/tmp/x writes what Codex sent (/tmp/x.N.json) and the Chat bodies (/tmp/x.chat.N.json).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startGateway, request, sleep, show, errorBody, freePort } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { costMicros, entity, quiet } from '../lib/usage.mjs';
import { findCodex, runCodex as runCodexCli, startTrap, startTap as startTapCli, commandOutput, RUN_TIMEOUT_MS } from '../lib/codex_cli.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the "openai" package is not installed: run (cd tests && npm ci) — ${e.message}`);
}

const T = { timeout: 30000 }; // every test is bounded
const MODEL = 'groqp/llama-3.3-70b-versatile';
const UP_MODEL = 'llama-3.3-70b-versatile';
const UP_KEY = 'gsk-groq-translate-0001';
const TEXT = 'The quick brown fox jumps over the lazy dog.';
const ADMIN = 'adm-rtrans-token-1';
const VK = 'sk-bf-rtrans-vk-0001';

// ---------------------------------------------------------------------------------------------
// Chat Completions answers and streams for the mock

/** A whole chat.completion body. */
function completion({ id, model = UP_MODEL, message, finish = 'stop', usage }) {
  return { id, object: 'chat.completion', created: 1700000000, model, choices: [{ index: 0, message, logprobs: null, finish_reason: finish }], usage, system_fingerprint: 'fp_mock' };
}

/** A Chat usage object: prompt (cache included), completion, cached. */
function chatUsage(prompt, compl, cached) {
  const u = { prompt_tokens: prompt, completion_tokens: compl, total_tokens: prompt + compl };
  if (cached !== undefined) u.prompt_tokens_details = { cached_tokens: cached };
  return u;
}

/** The Responses usage the gateway must derive from a Chat usage. */
function respUsage(prompt, compl, cached = 0) {
  return { input_tokens: prompt, input_tokens_details: { cached_tokens: cached }, output_tokens: compl,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: prompt + compl };
}

/**
 * The chunks of a streamed Chat answer: optional text pieces, then tool calls (each
 * { id, name, pieces: [argument text pieces] }), the finish, the usage chunk and [DONE].
 */
function chatChunks({ id = 'chatcmpl-stream', model = UP_MODEL, text = [], calls = [], finish, usage }) {
  const out = [];
  const ch = (delta, fr = null) => out.push({ id, object: 'chat.completion.chunk', created: 1700000000, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: fr }] });
  let first = true;
  const role = () => { const r = first ? { role: 'assistant' } : {}; first = false; return r; };
  for (const p of text) ch({ ...role(), content: p });
  calls.forEach((c, i) => {
    ch({ ...role(), ...(text.length ? {} : { content: null }), tool_calls: [{ index: i, id: c.id, type: 'function', function: { name: c.name, arguments: '' } }] });
    for (const p of c.pieces) ch({ tool_calls: [{ index: i, function: { arguments: p } }] });
  });
  ch({}, finish ?? (calls.length ? 'tool_calls' : 'stop'));
  if (usage) out.push({ id, object: 'chat.completion.chunk', created: 1700000000, model, choices: [], usage });
  out.push('[DONE]');
  return out;
}

/**
 * A mock behaviour that streams `chunks` (objects or '[DONE]') as SSE on the raw socket:
 * HTTP/1.1 chunked, one event per write `gapMs` apart; `cutAfter` events then RST.
 */
function sseBehaviour(chunks, { gapMs = 3, cutAfter } = {}) {
  return {
    raw: async (sock) => {
      const w = (s) => new Promise((r) => sock.write(s, r));
      await w('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (let i = 0; i < chunks.length; i++) {
        if (cutAfter !== undefined && i === cutAfter) { await sleep(50); sock.resetAndDestroy(); return; }
        const c = chunks[i];
        const ev = Buffer.from(`data: ${typeof c === 'string' ? c : JSON.stringify(c)}\n\n`);
        await w(Buffer.concat([Buffer.from(`${ev.length.toString(16)}\r\n`), ev, Buffer.from('\r\n')]));
        if (gapMs) await sleep(gapMs);
      }
      await w('0\r\n\r\n');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// helpers

/** An SDK client whose every request body is recorded. */
function sdkClient(port, { apiKey = 'vk-anything' } = {}) {
  const sent = [];
  const client = new OpenAI({
    baseURL: `http://127.0.0.1:${port}/v1`, apiKey, maxRetries: 0, timeout: 15000,
    fetch: async (url, init) => { sent.push({ url: String(url), body: init?.body }); return fetch(url, init); },
  });
  return { client, sent };
}

function post(port, body, headers = {}) {
  return request(port, {
    method: 'POST', path: '/v1/responses', body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { authorization: 'Bearer vk-anything', ...headers }, timeout: 15000,
  });
}

/** Parse an SSE text into [{ name, raw, data }]. */
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
    if (name === null && data.length === 0) continue; // a comment
    const raw = data.join('\n');
    let json;
    try { json = JSON.parse(raw); } catch { json = undefined; }
    out.push({ name, raw, data: json });
  }
  return out;
}

/** The Chat requests the mock got (only those). */
const chatReqs = (m) => m.requests.filter((q) => q.path === '/v1/chat/completions');

/** Every Chat request: POST /v1/chat/completions, the provider key, the upstream model. */
function assertChatRequest(q, { stream = false, key = UP_KEY } = {}) {
  assert.equal(q.method, 'POST');
  assert.equal(q.url, '/v1/chat/completions', 'not translated to Chat Completions');
  assert.equal(q.headers.authorization, `Bearer ${key}`);
  assert.ok(q.json, `the Chat body is not JSON: ${q.body.toString('utf8').slice(0, 400)}`);
  assert.equal(q.json.model, UP_MODEL);
  if (stream) {
    assert.equal(q.json.stream, true);
    assert.deepEqual(q.json.stream_options, { include_usage: true });
  } else {
    assert.ok(!('stream' in q.json) && !('stream_options' in q.json), `stream in a plain request: ${q.body}`);
  }
}

/** The log line of a /v1/responses request that pred accepts. */
async function logLine(gw, pred, what) {
  for (let i = 0; i < 150; i++) {
    const l = gw.logLines().filter((x) => x.path === '/v1/responses').find(pred);
    if (l) return l;
    await sleep(20);
  }
  assert.fail(`no log line for ${what}\n${gw.output().slice(-3000)}`);
}
const failedOf = (l) => (l.failed === undefined ? [] : String(l.failed).split(' ').filter(Boolean));

/** The order of a stream's event types must be `want`; sequence numbers 0, 1, 2, …. */
function assertEventOrder(events, want, what) {
  assert.deepEqual(events.map((e) => e.type), want, `${what}: event order`);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i), `${what}: sequence numbers`);
}

const TEXT_EVENTS = (ndeltas) => ['response.output_item.added', 'response.content_part.added',
  ...Array(ndeltas).fill('response.output_text.delta'), 'response.output_text.done', 'response.content_part.done', 'response.output_item.done'];
const CALL_EVENTS = (ndeltas) => ['response.output_item.added', ...Array(ndeltas).fill('response.function_call_arguments.delta'),
  'response.function_call_arguments.done', 'response.output_item.done'];
const CUSTOM_EVENTS = ['response.output_item.added', 'response.custom_tool_call_input.done', 'response.output_item.done'];
const HEAD_EVENTS = ['response.created', 'response.in_progress'];

// ---------------------------------------------------------------------------------------------
// the shared gateway: groqp (groq kind, Chat-only mock), ant (anthropic kind), on "shared-*" both

let gq; // Chat Completions mock behind groqp (and the governed gateway's groqp)
let deadPort; // the anthropic-kind provider's port: nothing listens there (its attempts fail, 502)
let gw;
let gov;

before(async () => {
  gq = await startMock({ name: 'gq' });
  deadPort = await freePort(); // nothing listens here
  gw = await startGateway({
    config: {
      log_requests: true,
      circuit_breaker: { failures: 1000000, cooldown_ms: 1000 },
      providers: [
        { name: 'groqp', provider: 'groq', apiKey: UP_KEY, base_url: gq.baseUrl, models: ['llama-*', 'shared-*', 'openai/*'], weight: 0.001, max_retries: 0 },
        // (weights in thousandths: ant is drawn first for shared-* but once in 10^9; it is
        // unreachable, so a bare shared-* model fails over from it to groqp)
        { name: 'ant', provider: 'anthropic', apiKey: 'sk-ant-never', base_url: `http://127.0.0.1:${deadPort}`, models: ['claude-*', 'shared-*'], weight: 1000000, max_retries: 0 },
      ],
    },
  });
});

after(async () => {
  await gw?.stop('SIGKILL');
  await gov?.stop('SIGKILL');
  await gq?.close();
});

function resetMocks() { gq.reset(); }

// ---------------------------------------------------------------------------------------------
// 1. plain

const SCHEMA = { type: 'object', properties: { city: { type: 'string' }, temp_c: { type: 'number' } }, required: ['city', 'temp_c'], additionalProperties: false };
const WEATHER_TOOL = {
  type: 'function', name: 'get_weather', description: 'Current weather for a location', strict: true,
  parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
    required: ['location', 'unit'], additionalProperties: false },
};
const WEATHER_CHAT_TOOL = { type: 'function', function: { name: 'get_weather', description: WEATHER_TOOL.description, parameters: WEATHER_TOOL.parameters, strict: true } };

test('plain SDK responses.create → the exact Chat body upstream; the answer as a Responses object with the Chat usage', T, async () => {
  resetMocks();
  const answer = '{"city":"Paris","temp_c":18}';
  gq.once({ body: completion({ id: 'chatcmpl-A1b2C3', message: { role: 'assistant', content: answer }, usage: chatUsage(1200, 300, 1000) }) });
  const { client, sent } = sdkClient(gw.port);
  const img = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
  const { data: r, response } = await client.responses.create({
    model: MODEL,
    instructions: 'You answer in JSON. "Quotes" and é 中文 stay.',
    input: [
      { role: 'developer', content: 'Be terse.' },
      { role: 'user', content: [{ type: 'input_text', text: 'What is in this image?' }, { type: 'input_image', image_url: img }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A pixel.' }] },
      { role: 'system', content: 'Reply with the schema.' },
      { role: 'user', content: 'Weather in Paris?' },
    ],
    max_output_tokens: 64,
    temperature: 0.2,
    top_p: 0.9,
    user: 'user-42',
    reasoning: { effort: 'low' },
    parallel_tool_calls: false,
    tools: [WEATHER_TOOL],
    tool_choice: 'auto',
    text: { format: { type: 'json_schema', name: 'weather', schema: SCHEMA, strict: true } },
  }).withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-bifrost-provider'), MODEL);
  assert.equal(r.output_text, answer);

  // the Chat request, exactly
  const reqs = chatReqs(gq);
  assert.equal(gq.requests.length, 1, `mock requests: ${gq.requests.map((q) => q.url)}`);
  assert.equal(reqs.length, 1);
  assertChatRequest(reqs[0]);
  assert.ok(!JSON.stringify(reqs[0].rawHeaders).includes('vk-anything'), 'the client credential reached the provider');
  assert.deepEqual(reqs[0].json, {
    model: UP_MODEL,
    messages: [
      { role: 'system', content: 'You answer in JSON. "Quotes" and é 中文 stay.' },
      { role: 'system', content: 'Be terse.' },
      { role: 'user', content: [{ type: 'text', text: 'What is in this image?' }, { type: 'image_url', image_url: { url: img } }] },
      { role: 'assistant', content: 'A pixel.' },
      { role: 'system', content: 'Reply with the schema.' },
      { role: 'user', content: 'Weather in Paris?' },
    ],
    tools: [WEATHER_CHAT_TOOL],
    tool_choice: 'auto',
    reasoning_effort: 'low',
    parallel_tool_calls: false,
    user: 'user-42',
    max_tokens: 64,
    temperature: 0.2,
    top_p: 0.9,
    response_format: { type: 'json_schema', json_schema: { name: 'weather', schema: SCHEMA, strict: true } },
  }, `the Chat body: ${reqs[0].body}\nthe client's: ${sent[0].body}`);

  // the Responses object
  assert.equal(r.id, 'resp_chatcmpl-A1b2C3');
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.incomplete_details, null);
  assert.equal(r.error, null);
  assert.equal(r.created_at, 1700000000);
  assert.ok(r.model === MODEL || r.model === UP_MODEL, `model ${r.model}`);
  assert.deepEqual(r.output, [{ type: 'message', id: 'msg_chatcmpl-A1b2C3', status: 'completed', role: 'assistant',
    content: [{ type: 'output_text', text: answer, annotations: [] }] }]);
  assert.deepEqual(r.usage, respUsage(1200, 300, 1000));

  // json_object, a named tool choice, and finish_reason "length" → status incomplete
  gq.once({ body: completion({ id: 'chatcmpl-cut', message: { role: 'assistant', content: '{"city":"Pa' }, finish: 'length', usage: chatUsage(20, 4) }) });
  const r2 = await client.responses.create({ model: MODEL, input: 'json please', max_output_tokens: 4, text: { format: { type: 'json_object' } },
    tools: [WEATHER_TOOL], tool_choice: { type: 'function', name: 'get_weather' } });
  assert.equal(r2.status, 'incomplete');
  assert.deepEqual(r2.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r2.output_text, '{"city":"Pa');
  assert.deepEqual(r2.usage, respUsage(20, 4, 0));
  assert.equal(gq.requests.length, 2);
  assert.deepEqual(gq.requests[1].json, {
    model: UP_MODEL, messages: [{ role: 'user', content: 'json please' }], tools: [WEATHER_CHAT_TOOL],
    tool_choice: { type: 'function', function: { name: 'get_weather' } }, max_tokens: 4, response_format: { type: 'json_object' },
  }, gq.requests[1].body.toString());

  const l = await logLine(gw, (x) => x.status === 200 && x.stream === false && x.provider === MODEL, 'the plain request');
  assert.equal(l.in_tokens, 200, JSON.stringify(l));
  assert.equal(l.cached_tokens, 1000, JSON.stringify(l));
  assert.equal(l.out_tokens, 300, JSON.stringify(l));
});

test('every OpenAI-format kind but openai/azure translates (POST …/chat/completions); an openai provider forwards /v1/responses natively', T, async () => {
  resetMocks();
  const kinds = ['groq', 'vllm', 'ollama', 'openrouter', 'gemini', 'mistral', 'together', 'deepseek', 'xai', 'fireworks'];
  const g = await startGateway({
    config: {
      log_requests: true,
      providers: [...kinds, 'openai'].map((k) => ({ name: `p-${k}`, provider: k, apiKey: `key-${k}`, base_url: `${gq.origin}/${k}/v1`, models: ['m-*'], max_retries: 0 })),
    },
  });
  try {
    for (const k of kinds) {
      const r = await post(g.port, { model: `p-${k}/m-${k}`, input: `hi ${k}`, max_output_tokens: 9 });
      assert.equal(r.status, 200, `${k}: ${show(r)}`);
      assert.equal(JSON.parse(r.text).output[0].content[0].text, 'Hello from gq', k);
      const q = gq.requests.at(-1);
      assert.equal(q.url, `/${k}/v1/chat/completions`, k);
      assert.deepEqual(q.json, { model: `m-${k}`, messages: [{ role: 'user', content: `hi ${k}` }], max_tokens: 9 }, k);
    }
    assert.equal(gq.requests.length, kinds.length);
    // openai: the Responses request as it came, to …/responses (which this Chat-only mock does not serve)
    const r = await post(g.port, { model: 'p-openai/m-openai', input: 'hi openai' });
    assert.equal(gq.requests.length, kinds.length + 1);
    assert.equal(gq.requests.at(-1).url, '/openai/v1/responses');
    assert.deepEqual(gq.requests.at(-1).json, { model: 'm-openai', input: 'hi openai' });
    assert.equal(r.status, 404, show(r));
  } finally {
    await g.stop('SIGKILL');
  }
});

// ---------------------------------------------------------------------------------------------
// 2. streamed text

test('streamed SDK responses.create: created, in_progress, the text item\'s events, completed; sequence numbers 0…n; usage', T, async () => {
  resetMocks();
  gq.once({ content: TEXT, chunks: 5, chunkDelayMs: 5, usage: { prompt_tokens: 36, completion_tokens: 11, prompt_tokens_details: { cached_tokens: 32 } } });
  const { client } = sdkClient(gw.port);
  const stream = await client.responses.create({ model: MODEL, input: [{ role: 'user', content: 'stream it' }], instructions: 'Say the pangram.', stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  assertEventOrder(events, [...HEAD_EVENTS, ...TEXT_EVENTS(5), 'response.completed'], 'text stream');
  const deltas = events.filter((e) => e.type === 'response.output_text.delta');
  assert.equal(deltas.map((e) => e.delta).join(''), TEXT);
  const created = events[0].response;
  assert.equal(created.status, 'in_progress');
  assert.match(created.id, /^resp_/);
  const added = events[2];
  assert.equal(added.output_index, 0);
  assert.equal(added.item.type, 'message');
  assert.equal(added.item.role, 'assistant');
  const itemId = added.item.id;
  for (const e of events.slice(3, -2)) {
    assert.equal(e.item_id, itemId, `${e.type}: item_id`);
    assert.equal(e.output_index, 0, `${e.type}: output_index`);
    assert.equal(e.content_index, 0, `${e.type}: content_index`);
  }
  assert.equal(events.at(-4).text, TEXT, 'output_text.done');
  assert.deepEqual(events.at(-3).part, { type: 'output_text', text: TEXT, annotations: [] }, 'content_part.done');
  const item = events.at(-2).item;
  assert.deepEqual(item, { type: 'message', id: itemId, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: TEXT, annotations: [] }] });
  const done = events.at(-1).response;
  assert.equal(done.id, created.id);
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.output, [item]);
  assert.deepEqual(done.usage, respUsage(36, 11, 32));
  const up = chatReqs(gq);
  assert.equal(up.length, 1);
  assertChatRequest(up[0], { stream: true });
  assert.deepEqual(up[0].json.messages, [{ role: 'system', content: 'Say the pangram.' }, { role: 'user', content: 'stream it' }]);

  // raw: every SSE block names its event, the same as its data's type
  gq.once({ content: TEXT, chunks: 3, usage: { prompt_tokens: 5, completion_tokens: 9 } });
  const r = await post(gw.port, { model: MODEL, input: 'raw', stream: true });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] ?? '', /^text\/event-stream/);
  const evs = parseSse(r.text);
  for (const e of evs) {
    assert.ok(e.data, `not JSON: ${e.raw}`);
    assert.equal(e.name, e.data.type, e.raw);
  }
  assertEventOrder(evs.map((e) => e.data), [...HEAD_EVENTS, ...TEXT_EVENTS(3), 'response.completed'], 'raw text stream');
  assert.deepEqual(evs.at(-1).data.response.usage, respUsage(5, 9, 0));
  const l = await logLine(gw, (x) => x.status === 200 && x.stream === true && x.provider === MODEL, 'the stream');
  assert.equal(l.in_tokens, 4, JSON.stringify(l));
  assert.equal(l.cached_tokens, 32, JSON.stringify(l));
  assert.equal(l.out_tokens, 11, JSON.stringify(l));
});

// ---------------------------------------------------------------------------------------------
// 3. function tools

test('function-tool round trip (plain): tool_calls → function_call items; function_call_output → assistant tool_calls + tool messages upstream', T, async () => {
  resetMocks();
  const A1 = '{"location":"Paris, France","unit":"celsius"}';
  const A2 = '{"location":"Oslo, Norway","unit":"celsius"}';
  gq.once({ body: completion({ id: 'chatcmpl-tools1', finish: 'tool_calls', usage: chatUsage(80, 40),
    message: { role: 'assistant', content: null, tool_calls: [
      { id: 'call_Paris01', type: 'function', function: { name: 'get_weather', arguments: A1 } },
      { id: 'call_Oslo02', type: 'function', function: { name: 'get_weather', arguments: A2 } }] } }) });
  const { client } = sdkClient(gw.port);
  const input = [{ role: 'user', content: 'Weather in Paris and Oslo?' }];
  const first = await client.responses.create({ model: MODEL, input, tools: [WEATHER_TOOL] });
  assert.equal(first.status, 'completed');
  assert.equal(first.output_text, '');
  assert.deepEqual(first.output, [
    { type: 'function_call', id: 'fc_call_Paris01', call_id: 'call_Paris01', name: 'get_weather', status: 'completed', arguments: A1 },
    { type: 'function_call', id: 'fc_call_Oslo02', call_id: 'call_Oslo02', name: 'get_weather', status: 'completed', arguments: A2 },
  ]);
  assert.deepEqual(first.usage, respUsage(80, 40, 0));

  const ANSWER = 'Paris: 18 °C, Oslo: 7 °C.';
  gq.once({ body: completion({ id: 'chatcmpl-tools2', message: { role: 'assistant', content: ANSWER }, usage: chatUsage(120, 12) }) });
  const out1 = { type: 'function_call_output', call_id: 'call_Paris01', output: '{"temperature":18}' };
  const out2 = { type: 'function_call_output', call_id: 'call_Oslo02', output: [{ type: 'input_text', text: '{"temperature":' }, { type: 'input_text', text: '7}' }] };
  const second = await client.responses.create({ model: MODEL, tools: [WEATHER_TOOL], input: [
    ...input,
    { type: 'reasoning', id: 'rs_0001', summary: [] },
    { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Checking both.' }] },
    ...first.output, out1, out2,
  ] });
  assert.equal(second.output_text, ANSWER);
  const reqs = chatReqs(gq);
  assert.equal(reqs.length, 2);
  reqs.forEach((q) => assertChatRequest(q));
  assert.deepEqual(reqs[0].json, { model: UP_MODEL, messages: [{ role: 'user', content: 'Weather in Paris and Oslo?' }], tools: [WEATHER_CHAT_TOOL] });
  assert.deepEqual(reqs[1].json.messages, [
    { role: 'user', content: 'Weather in Paris and Oslo?' },
    { role: 'assistant', content: 'Checking both.', tool_calls: [
      { id: 'call_Paris01', type: 'function', function: { name: 'get_weather', arguments: A1 } },
      { id: 'call_Oslo02', type: 'function', function: { name: 'get_weather', arguments: A2 } }] },
    { role: 'tool', tool_call_id: 'call_Paris01', content: '{"temperature":18}' },
    { role: 'tool', tool_call_id: 'call_Oslo02', content: '{"temperature":7}' },
  ], reqs[1].body.toString());
  assert.deepEqual(reqs[1].json.tools, [WEATHER_CHAT_TOOL]);
});

test('function-tool round trip (streamed): text then a call → message and function_call items, arguments deltas, done events, completed', T, async () => {
  resetMocks();
  const ARGS = '{"location":"Paris, France","unit":"celsius"}';
  const pieces = ['{"location":"Par', 'is, France","un', 'it":"celsius"}'];
  gq.once(sseBehaviour(chatChunks({ id: 'chatcmpl-st1', text: ['Let me ', 'check.'], calls: [{ id: 'call_St01', name: 'get_weather', pieces }], usage: chatUsage(50, 25) })));
  const { client } = sdkClient(gw.port);
  const input = [{ role: 'user', content: 'Weather in Paris?' }];
  const stream = await client.responses.create({ model: MODEL, input, tools: [WEATHER_TOOL], tool_choice: { type: 'function', name: 'get_weather' }, stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  assertEventOrder(events, [...HEAD_EVENTS, ...TEXT_EVENTS(2), ...CALL_EVENTS(3), 'response.completed'], 'text + call stream');
  const msg = events[8].item;
  assert.equal(events[8].output_index, 0);
  assert.deepEqual(msg, { type: 'message', id: events[2].item.id, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Let me check.', annotations: [] }] });
  const added = events[9];
  assert.equal(added.output_index, 1);
  assert.equal(added.item.type, 'function_call');
  assert.equal(added.item.call_id, 'call_St01');
  assert.equal(added.item.name, 'get_weather');
  assert.equal(added.item.id, 'fc_call_St01');
  assert.equal(added.item.arguments, '');
  assert.equal(added.item.status, 'in_progress');
  const argDeltas = events.filter((e) => e.type === 'response.function_call_arguments.delta');
  assert.deepEqual(argDeltas.map((e) => e.delta), pieces);
  for (const e of [...argDeltas, events[13]]) {
    assert.equal(e.item_id, 'fc_call_St01', `${e.type}: item_id`);
    assert.equal(e.output_index, 1, `${e.type}: output_index`);
  }
  assert.equal(events[13].arguments, ARGS, 'function_call_arguments.done');
  const call = events[14].item;
  assert.equal(events[14].output_index, 1);
  assert.deepEqual(call, { type: 'function_call', id: 'fc_call_St01', call_id: 'call_St01', name: 'get_weather', status: 'completed', arguments: ARGS });
  const done = events.at(-1).response;
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.output, [msg, call]);
  assert.deepEqual(done.usage, respUsage(50, 25, 0));
  const q1 = chatReqs(gq)[0];
  assertChatRequest(q1, { stream: true });
  assert.deepEqual(q1.json.tool_choice, { type: 'function', function: { name: 'get_weather' } });
  assert.deepEqual(q1.json.tools, [WEATHER_CHAT_TOOL]);

  // the output items back with the call's output, streamed again: a text answer
  gq.once({ content: 'It is 18 °C in Paris.', chunks: 2, usage: { prompt_tokens: 70, completion_tokens: 9 } });
  const s2 = await client.responses.create({ model: MODEL, tools: [WEATHER_TOOL], stream: true,
    input: [...input, ...done.output, { type: 'function_call_output', call_id: 'call_St01', output: '18 °C, sunny' }] });
  let text = '';
  let last;
  for await (const ev of s2) { if (ev.type === 'response.output_text.delta') text += ev.delta; last = ev; }
  assert.equal(text, 'It is 18 °C in Paris.');
  assert.equal(last?.type, 'response.completed');
  const q2 = chatReqs(gq)[1];
  assertChatRequest(q2, { stream: true });
  assert.deepEqual(q2.json.messages, [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'call_St01', type: 'function', function: { name: 'get_weather', arguments: ARGS } }] },
    { role: 'tool', tool_call_id: 'call_St01', content: '18 °C, sunny' },
  ], q2.body.toString());
});

// ---------------------------------------------------------------------------------------------
// 4. a custom (freeform) tool

const PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+Hello "world" \\o/ é 中文\tTAB\n*** End Patch\n';
const PATCH_TOOL = { type: 'custom', name: 'apply_patch', description: 'Edit files with a patch.', format: { type: 'grammar', syntax: 'lark', definition: 'start: /(.|\\n)+/' } };

/** A custom tool upstream: a function of one required string "input" (its description free). */
function assertCustomChatTool(t, name, description) {
  assert.equal(t.type, 'function', JSON.stringify(t));
  assert.equal(t.function.name, name);
  if (description !== undefined) assert.equal(t.function.description, description);
  const p = t.function.parameters;
  assert.equal(p?.type, 'object', JSON.stringify(t));
  assert.deepEqual(Object.keys(p.properties), ['input'], JSON.stringify(t));
  assert.equal(p.properties.input.type, 'string', JSON.stringify(t));
  assert.deepEqual(p.required, ['input'], JSON.stringify(t));
}

test('a custom tool: a one-string-parameter function upstream; its call comes back as custom_tool_call (plain and streamed); its output as a tool message', T, async () => {
  resetMocks();
  const args = JSON.stringify({ input: PATCH });
  gq.once({ body: completion({ id: 'chatcmpl-cu1', finish: 'tool_calls', usage: chatUsage(300, 60),
    message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_Patch01', type: 'function', function: { name: 'apply_patch', arguments: args } }] } }) });
  const { client } = sdkClient(gw.port);
  const input = [{ role: 'user', content: 'Create hello.txt' }];
  const tools = [WEATHER_TOOL, PATCH_TOOL];
  const r = await client.responses.create({ model: MODEL, input, tools });
  const q1 = chatReqs(gq)[0];
  assertChatRequest(q1);
  assert.equal(q1.json.tools.length, 2, q1.body.toString());
  assert.deepEqual(q1.json.tools[0], WEATHER_CHAT_TOOL);
  assertCustomChatTool(q1.json.tools[1], 'apply_patch', 'Edit files with a patch.');
  assert.deepEqual(r.output, [{ type: 'custom_tool_call', id: r.output[0]?.id, call_id: 'call_Patch01', name: 'apply_patch', status: 'completed', input: PATCH }], JSON.stringify(r.output));
  assert.equal(typeof r.output[0].id, 'string');
  assert.equal(r.output[0].input, PATCH, 'the custom tool input, exactly');

  // streamed: the arguments cut at awkward places (inside escapes, inside the key)
  const pieces = [];
  for (let i = 0; i < args.length; i += 7) pieces.push(args.slice(i, i + 7));
  gq.once(sseBehaviour(chatChunks({ id: 'chatcmpl-cu2', calls: [{ id: 'call_Patch02', name: 'apply_patch', pieces }], usage: chatUsage(300, 60) })));
  const stream = await client.responses.create({ model: MODEL, input, tools, stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  assertEventOrder(events, [...HEAD_EVENTS, ...CUSTOM_EVENTS, 'response.completed'], 'custom tool stream');
  assert.equal(events[2].item.type, 'custom_tool_call');
  assert.equal(events[2].item.call_id, 'call_Patch02');
  assert.equal(events[2].item.name, 'apply_patch');
  assert.equal(events[3].input, PATCH, 'custom_tool_call_input.done');
  assert.equal(events[3].item_id, events[2].item.id);
  const item = events[4].item;
  assert.deepEqual(item, { type: 'custom_tool_call', id: events[2].item.id, call_id: 'call_Patch02', name: 'apply_patch', status: 'completed', input: PATCH });
  assert.deepEqual(events.at(-1).response.output, [item]);
  assert.ok(!events.some((e) => e.type === 'response.function_call_arguments.delta'), 'function argument deltas for a custom tool');

  // the call and its output back: an assistant tool call with {"input": …}, a tool message
  gq.once({ body: completion({ id: 'chatcmpl-cu3', message: { role: 'assistant', content: 'Created hello.txt.' }, usage: chatUsage(400, 5) }) });
  const r3 = await client.responses.create({ model: MODEL, tools, input: [...input, item, { type: 'custom_tool_call_output', call_id: 'call_Patch02', output: 'Done!\nA hello.txt' }] });
  assert.equal(r3.output_text, 'Created hello.txt.');
  const q3 = chatReqs(gq)[2];
  assertChatRequest(q3);
  assert.deepEqual(q3.json.messages, [
    { role: 'user', content: 'Create hello.txt' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_Patch02', type: 'function', function: { name: 'apply_patch', arguments: args } }] },
    { role: 'tool', tool_call_id: 'call_Patch02', content: 'Done!\nA hello.txt' },
  ], q3.body.toString());
  assert.deepEqual(JSON.parse(q3.json.messages[1].tool_calls[0].function.arguments), { input: PATCH });
});

// ---------------------------------------------------------------------------------------------
// 5. errors

test('refused before anything goes upstream: previous_response_id, a file_search_call input, a bad content part; built-in tools and item references left out', T, async () => {
  resetMocks();
  const cases = [
    [{ model: MODEL, input: 'continue', previous_response_id: 'resp_68af0000aaaa' }, /previous_response_id/],
    [{ model: MODEL, input: [{ type: 'file_search_call', id: 'fs_123', queries: ['q'], status: 'completed' }] }, /input items of type "file_search_call" cannot be translated/],
    [{ model: MODEL, input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }] }] }, /content part/],
  ];
  for (const [body, re] of cases) {
    const r = await post(gw.port, body);
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${show(r)}`);
    const e = errorBody(r);
    assert.equal(e.type, 'invalid_request_error', show(r));
    assert.match(e.message, re, show(r));
  }
  await sleep(100);
  assert.equal(gq.requests.length, 0, `reached the provider: ${gq.requests.map((q) => q.body.toString()).join('\n')}`);
  // the SDK sees a BadRequestError naming previous_response_id
  const { client } = sdkClient(gw.port);
  await assert.rejects(client.responses.create({ model: MODEL, input: 'continue', previous_response_id: 'resp_68af0000aaaa' }), (err) => {
    assert.ok(err instanceof OpenAI.BadRequestError, `not a BadRequestError: ${err?.constructor?.name} ${err}`);
    assert.match(err.message, /previous_response_id/);
    return true;
  });
  assert.equal(gq.requests.length, 0);
  // at most 16 custom tools
  const customs = (n) => Array.from({ length: n }, (_, i) => ({ type: 'custom', name: `free_${i}` }));
  const r17 = await post(gw.port, { model: MODEL, input: 'x', tools: customs(17) });
  assert.equal(r17.status, 400, show(r17));
  assert.match(errorBody(r17).message, /16/, show(r17));
  assert.equal(gq.requests.length, 0);
  // built-in tools a Chat provider cannot run are left out; the function tools go on
  const rw = await post(gw.port, { model: MODEL, input: 'search', tools: [{ type: 'web_search' }, WEATHER_TOOL, { type: 'file_search', vector_store_ids: ['vs_1'] }] });
  assert.equal(rw.status, 200, show(rw));
  assert.deepEqual(gq.requests.at(-1).json.tools.map((t) => `${t.type}:${t.function.name}`), ['function:get_weather']);
  // an item_reference (a client that assumes the server stored its earlier answer) is left out
  const rr = await post(gw.port, { model: MODEL, input: [{ role: 'user', content: 'hi' }, { type: 'item_reference', id: 'msg_1' },
    { type: 'function_call', call_id: 'c1', name: 'get_weather', arguments: '{}' }, { type: 'function_call_output', call_id: 'c1', output: 'sunny' }] });
  assert.equal(rr.status, 200, show(rr));
  assert.deepEqual(gq.requests.at(-1).json.messages.map((m) => m.role), ['user', 'assistant', 'tool'], gq.requests.at(-1).body.toString());
  const ro = await post(gw.port, { model: MODEL, input: 'search', tools: [{ type: 'web_search' }] });
  assert.equal(ro.status, 200, show(ro));
  assert.ok(!('tools' in gq.requests.at(-1).json), `an empty tools array went upstream: ${gq.requests.at(-1).body}`);
  const r16 = await post(gw.port, { model: MODEL, input: 'x', tools: customs(16) });
  assert.equal(r16.status, 200, show(r16));
  assert.equal(gq.requests.length, 4);
  assert.deepEqual(gq.requests[3].json.tools.map((t) => t.function.name), customs(16).map((t) => t.name));
  gq.reset();
  // previous_response_id: null is no reference at all
  const ok = await post(gw.port, { model: MODEL, input: 'hi', previous_response_id: null });
  assert.equal(ok.status, 200, show(ok));
  assert.equal(gq.requests.length, 1);
});

test('an anthropic-kind provider is tried for /v1/responses (no longer refused): unreachable → 502 naming it; a bare model fails over from it to the groq provider, `failed` listing it', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const r = await post(gw.port, { model: 'ant/claude-sonnet-4-5', input: 'hi' });
  assert.equal(r.status, 502, show(r));
  const e = errorBody(r);
  assert.equal(e.type, 'upstream_error', show(r));
  assert.match(e.message, /\bant\b/, e.message);
  assert.doesNotMatch(e.message, /cannot serve the Responses API/, e.message);
  const l0 = await logLine(gw, (x) => x.provider === 'ant/claude-sonnet-4-5', 'the explicit ant request');
  assert.equal(l0.status, 502, JSON.stringify(l0));
  assert.deepEqual(failedOf(l0), ['ant/claude-sonnet-4-5:502'], JSON.stringify(l0));
  assert.equal(gq.requests.length, 0, 'the groq provider was asked for an explicit ant model');
  for (let i = 0; i < 2; i++) {
    const b = await post(gw.port, { model: 'shared-model', input: `bare ${i}`, stream: i === 1 });
    assert.equal(b.status, 200, show(b));
    assert.equal(b.headers['x-bifrost-provider'], 'groqp/shared-model');
    if (i === 1) assert.equal(parseSse(b.text).at(-1)?.name, 'response.completed', b.text.slice(-300));
    else assert.equal(JSON.parse(b.text).output[0].content[0].text, 'Hello from gq');
  }
  assert.equal(gq.requests.length, 2);
  assert.deepEqual(gq.requests.map((q) => [q.url, q.json.model]), [['/v1/chat/completions', 'shared-model'], ['/v1/chat/completions', 'shared-model']]);
  const bare = () => gw.logLines().slice(n0).filter((x) => x.path === '/v1/responses' && x.provider === 'groqp/shared-model');
  for (let i = 0; i < 150 && bare().length < 2; i++) await sleep(20);
  assert.equal(bare().length, 2);
  for (const l of bare()) {
    assert.equal(l.status, 200, JSON.stringify(l));
    assert.equal(l.attempts, 2, JSON.stringify(l));
    assert.deepEqual(failedOf(l), ['ant/shared-model:502'], JSON.stringify(l));
  }
});

test('upstream errors reach the client unchanged: 429 (max_retries 0, one attempt), 400 and 500 with the provider\'s OpenAI error body', T, async () => {
  resetMocks();
  const cases = [
    [429, { error: { message: 'Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` on tokens per minute (TPM): Limit 6000, Used 5990, Requested 120.', type: 'tokens', code: 'rate_limit_exceeded' } }, { 'retry-after': '7' }],
    [400, { error: { message: "'messages.1' : for 'role:tool' the following must be satisfied", type: 'invalid_request_error', param: 'messages', code: null } }, {}],
    [500, { error: { message: 'Internal server error', type: 'internal_server_error', code: null } }, {}],
  ];
  for (const [status, body, headers] of cases) {
    gq.reset();
    const bytes = JSON.stringify(body);
    gq.behave({ status, body: bytes, headers });
    for (const stream of [false, true]) {
      const r = await post(gw.port, { model: MODEL, input: 'hi', stream });
      assert.equal(r.status, status, `stream ${stream}: ${show(r)}`);
      assert.equal(r.text, bytes, `stream ${stream}: the provider's error body changed`);
      assert.match(r.headers['content-type'] ?? '', /application\/json/);
    }
    assert.equal(chatReqs(gq).length, 2, `${status}: attempts upstream: ${gq.requests.length}`);
  }
  gq.behave({ status: 429, body: JSON.stringify(cases[0][1]) });
  const { client } = sdkClient(gw.port);
  await assert.rejects(client.responses.create({ model: MODEL, input: 'hi' }), (err) => {
    assert.ok(err instanceof OpenAI.RateLimitError, `not a RateLimitError: ${err?.constructor?.name} ${err}`);
    assert.equal(err.code, 'rate_limit_exceeded');
    assert.match(err.message, /Rate limit reached/);
    return true;
  });
  gq.behave({});
});

test('a stream the provider cuts mid-way: the deltas that came, then `event: response.failed`, no response.completed', T, async () => {
  resetMocks();
  gq.once({ content: 'abcdefgh', chunks: 4, chunkDelayMs: 10, resetAfterChunks: 2 });
  const r = await post(gw.port, { model: MODEL, input: 'cut', stream: true });
  assert.equal(r.status, 200, show(r));
  const evs = parseSse(r.text);
  assert.deepEqual(evs.map((e) => e.name), [...HEAD_EVENTS, 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.failed'], r.text);
  assert.equal(evs.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta).join(''), 'abcd');
  const f = evs.at(-1);
  assert.ok(f.data, `response.failed is not JSON: ${f.raw}`);
  assert.equal(f.data.type, 'response.failed');
  assert.equal(f.data.sequence_number, evs.length - 1);
  assert.equal(f.data.response.status, 'failed', f.raw);
  assert.equal(f.data.response.id, evs[0].data.response.id, f.raw);
  assert.equal(typeof f.data.response.error?.code, 'string', f.raw);
  assert.ok(f.data.response.error.message.length > 0, f.raw);
  assert.ok(!r.text.includes('response.completed'));

  // cut before the first chunk: still a well-formed failed stream (or an error status)
  gq.once({ content: 'abcdefgh', chunks: 4, resetAfterChunks: 0 });
  const r0 = await post(gw.port, { model: MODEL, input: 'cut early', stream: true });
  if (r0.status === 200) {
    const e0 = parseSse(r0.text);
    assert.equal(e0.at(-1)?.name, 'response.failed', r0.text);
    assert.ok(!r0.text.includes('response.completed'));
  } else {
    assert.ok(r0.status >= 500, show(r0));
    errorBody(r0);
  }
  const ok = await post(gw.port, { model: MODEL, input: 'after' });
  assert.equal(ok.status, 200, show(ok));
});

// ---------------------------------------------------------------------------------------------
// 6. governance

const PRICE = { input: 2, output: 8, cache_read: 0.5 };

test('governance: a translated plain and streamed request with Chat usage 1200 in (1000 cached) / 300 out are billed 200×$2 + 1000×$0.5 + 300×$8 per M = 3300 µ$ each', T, async () => {
  resetMocks();
  gov = await startGateway({
    config: {
      admin: { token: ADMIN },
      log_requests: true,
      providers: [{ name: 'groqp', provider: 'groq', apiKey: 'gsk-gov-0002', base_url: gq.baseUrl, models: ['llama-*'], max_retries: 0 }],
      pricing: { [MODEL]: PRICE }, // (not the built-in Groq price of llama-3.3-70b-versatile)
      governance: { enforce: true, virtual_keys: [{ id: 'tr', value: VK, budget: { max_limit: 10, reset_duration: '1d' } }] },
    },
  });
  const C = costMicros({ in: 200, out: 300, cacheRead: 1000 }, PRICE);
  assert.equal(C, 3300);
  const usage = { prompt_tokens: 1200, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 1000 } };
  gq.behave({ usage });

  const un = await post(gov.port, { model: MODEL, input: 'x' }, { authorization: 'Bearer not-a-key' });
  assert.equal(un.status, 401, show(un));
  assert.equal(gq.requests.length, 0);

  const { client } = sdkClient(gov.port, { apiKey: VK });
  const r = await client.responses.create({ model: MODEL, input: 'bill me' });
  assert.equal(r.output_text, 'Hello from gq');
  assert.deepEqual(r.usage, respUsage(1200, 300, 1000));
  assertChatRequest(chatReqs(gq)[0], { key: 'gsk-gov-0002' });
  let e = entity(await quiet(gov.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'tr').requests === 1 }), 'virtual_keys', 'tr');
  assert.equal(e.requests, 1, JSON.stringify(e));
  assert.equal(e.spend_micros, C, `plain: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, 1500, JSON.stringify(e));
  let l = await logLine(gov, (x) => x.status === 200 && x.stream === false, 'the plain request');
  assert.equal(l.cost_usd, C / 1e6, JSON.stringify(l));
  assert.deepEqual([l.in_tokens, l.cached_tokens, l.out_tokens], [200, 1000, 300], JSON.stringify(l));

  const stream = await client.responses.create({ model: MODEL, input: 'bill my stream', stream: true });
  let last;
  for await (const ev of stream) last = ev;
  assert.equal(last?.type, 'response.completed');
  assert.deepEqual(last.response.usage, respUsage(1200, 300, 1000));
  assertChatRequest(chatReqs(gq)[1], { stream: true, key: 'gsk-gov-0002' });
  e = entity(await quiet(gov.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'tr').requests === 2 }), 'virtual_keys', 'tr');
  assert.equal(e.requests, 2, JSON.stringify(e));
  assert.equal(e.spend_micros, 2 * C, `plain + stream: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, 3000, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, JSON.stringify(e));
  assert.equal(e.in_flight, 0, JSON.stringify(e));
  l = await logLine(gov, (x) => x.status === 200 && x.stream === true, 'the streamed request');
  assert.equal(l.cost_usd, C / 1e6, JSON.stringify(l));
  assert.deepEqual([l.in_tokens, l.cached_tokens, l.out_tokens], [200, 1000, 300], JSON.stringify(l));
  gq.behave({});
});

// ---------------------------------------------------------------------------------------------
// 7. the real Codex CLI, through the gateway, to the Chat-only provider

const CODEX_MODEL = 'groqp/openai/gpt-oss-120b';
const CODEX_UP_MODEL = 'openai/gpt-oss-120b';
const CODEX_KEY = 'sk-codex-client-not-a-provider-key';




const tapDump = process.env.DUMP_CODEX;
/** A pass-through in front of the gateway that records exactly what Codex sent. */

/**
 * The Chat request the description says a Responses request becomes (a reference translation,
 * written from the specification): used to check what Codex's requests turned into.
 */
function expectedChat(body, model) {
  const text = (c) => (typeof c === 'string' ? c : c.filter((p) => p.type !== 'refusal').map((p) => p.text).join(''));
  const userParts = (c) => (typeof c === 'string' ? c : c.map((p) => (p.type === 'input_image' ? { type: 'image_url', image_url: { url: p.image_url } } : { type: 'text', text: p.text })));
  const messages = [];
  if (typeof body.instructions === 'string') messages.push({ role: 'system', content: body.instructions });
  let open = null; // the assistant message tool calls may join
  if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input });
  else {
    for (const it of body.input) {
      const type = it.type ?? 'message';
      if (type === 'reasoning') continue;
      if (type === 'function_call' || type === 'custom_tool_call') {
        if (!open) { open = { role: 'assistant', content: null }; messages.push(open); }
        open.tool_calls ??= [];
        open.tool_calls.push({ id: it.call_id, type: 'function', function: { name: it.name, arguments: type === 'custom_tool_call' ? JSON.stringify({ input: it.input }) : it.arguments } });
        continue;
      }
      open = null;
      if (type === 'function_call_output' || type === 'custom_tool_call_output') {
        messages.push({ role: 'tool', tool_call_id: it.call_id, content: it.output == null ? '' : text(it.output) });
      } else if (type === 'message') {
        const role = it.role === 'developer' ? 'system' : it.role;
        const m = { role, content: role === 'user' ? userParts(it.content) : text(it.content) };
        messages.push(m);
        if (role === 'assistant') open = m;
      } else {
        throw new Error(`an input item the gateway refuses: ${type}`);
      }
    }
  }
  const out = { model, messages };
  // built-in and hosted tools (web_search, namespaces ...) have no Chat form: left out
  const fnTools = Array.isArray(body.tools) ? body.tools.filter((t) => t.type === 'function' || t.type === 'custom') : [];
  if (fnTools.length) {
    out.tools = fnTools.map((t) => {
      const f = { name: t.name };
      if (typeof t.description === 'string') f.description = t.description;
      if (t.type === 'custom') f.parameters = { type: 'object', properties: { input: { type: 'string' } }, required: ['input'], additionalProperties: false };
      else {
        if (t.parameters && typeof t.parameters === 'object') f.parameters = t.parameters;
        if (t.strict !== undefined && t.strict !== null) f.strict = t.strict;
      }
      return { type: 'function', function: f };
    });
  }
  if (typeof body.tool_choice === 'string') out.tool_choice = body.tool_choice;
  else if (body.tool_choice?.name) out.tool_choice = { type: 'function', function: { name: body.tool_choice.name } };
  if (typeof body.reasoning?.effort === 'string') out.reasoning_effort = body.reasoning.effort;
  if (typeof body.parallel_tool_calls === 'boolean') out.parallel_tool_calls = body.parallel_tool_calls;
  if (typeof body.user === 'string') out.user = body.user;
  if (typeof body.max_output_tokens === 'number') out.max_tokens = body.max_output_tokens;
  if (typeof body.temperature === 'number') out.temperature = body.temperature;
  if (typeof body.top_p === 'number') out.top_p = body.top_p;
  const f = body.text?.format;
  if (f?.type === 'json_object') out.response_format = { type: 'json_object' };
  if (f?.type === 'json_schema') out.response_format = { type: 'json_schema', json_schema: { name: f.name, schema: f.schema, ...(f.strict != null ? { strict: f.strict } : {}) } };
  if (body.stream === true) { out.stream = true; out.stream_options = { include_usage: true }; }
  return out;
}

/** A Chat body with the custom tools' "input" description dropped (its wording is free). */
function normalizeChat(b, customNames) {
  const c = structuredClone(b);
  for (const t of c.tools ?? []) if (customNames.has(t.function?.name)) delete t.function.parameters?.properties?.input?.description;
  return c;
}

/** The shell tool among the Chat tools the provider got: { name, argsFor(command) }. */
function shellToolChat(body) {
  const tools = Array.isArray(body?.tools) ? body.tools : [];
  const fn = (n) => tools.find((t) => t?.type === 'function' && t.function?.name === n)?.function;
  const ex = fn('exec_command');
  if (ex && ex.parameters?.properties?.cmd) return { name: 'exec_command', argsFor: (c) => ({ cmd: c, login: false, yield_time_ms: 5000 }) };
  const sh = fn('shell') || fn('container.exec');
  if (sh && sh.parameters?.properties?.command?.type === 'array') return { name: sh.name ?? 'shell', argsFor: (c) => ({ command: ['bash', '-c', c], timeout_ms: 10000 }) };
  if (fn('shell_command')) return { name: 'shell_command', argsFor: (c) => ({ command: c }) };
  throw new Error(`no shell tool among ${JSON.stringify(tools.map((t) => `${t.type}:${t.function?.name}`))}`);
}


const runCodex = (bin, o) => runCodexCli(bin, { model: CODEX_MODEL, ...o });
const startTap = (port) => startTapCli(port, { dump: tapDump });
const codex = findCodex();

/** The Codex → gateway and gateway → mock traffic, the gateway's log, Codex's output. */
function codexDiag(r, { tap, trap, log0 }) {
  const lines = gw.logLines().slice(log0).filter((l) => 'path' in l).map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''} ${l.error ?? ''}`);
  const sent = tap.seen.map((q) => `${q.method} ${q.url} tools: ${JSON.stringify((q.json?.tools ?? []).map((t) => `${t.type}:${t.name ?? ''}`))} input: ${JSON.stringify((q.json?.input ?? []).map((x) => x.type ?? `message:${x.role}`))}`);
  const ups = gq.requests.map((q) => `${q.method} ${q.url} ${q.body.toString().slice(0, 300)}`);
  return `${r.show()}\n--- gateway log ---\n${lines.slice(-20).join('\n')}\n--- Codex → gateway ---\n${sent.join('\n')}\n--- gateway → mock ---\n${ups.join('\n')}\n--- trap ---\n${trap.hits.join('\n')}`;
}

/** The gateway's log lines of /v1/responses after log0, waited for until there are n. */
async function responsesLines(log0, n) {
  const get = () => gw.logLines().slice(log0).filter((l) => l.path === '/v1/responses');
  for (let i = 0; i < 150 && get().length < n; i++) await sleep(20);
  return get();
}

// Codex as installed sends, besides its function tools, {"type":"namespace","name":
// "multi_agent_v1",...} and {"type":"web_search",...}: left out on a Chat provider. With web
// search off and the multi-agent tools off (--disable multi_agent) it sends function tools only.
for (const [what, config, args] of [['default tools', [], []],
  ['web search and multi-agent off', ['web_search = "disabled"'], ['--disable', 'multi_agent']]]) {
test(`Codex (${codex.version ?? 'not available'}) exec (${what}) → gateway /v1/responses → a Chat-only groq provider: a shell tool round trip, translated both ways`, { timeout: RUN_TIMEOUT_MS + 15_000, skip: codex.bin ? false : codex.reason }, async () => {
  resetMocks();
  const trap = await startTrap();
  const tap = await startTap(gw.port);
  try {
    const token = randomBytes(6).toString('hex');
    const command = `echo codex-chat-$((6*7))-${token}`;
    const expected = `codex-chat-42-${token}`;
    const callId = `call_${randomBytes(12).toString('hex')}`;
    const state = { tool: null, args: null };
    gq.behave((rec) => {
      const msgs = Array.isArray(rec.json?.messages) ? rec.json.messages : null;
      if (!msgs) return { status: 404, body: { error: { message: `mock: not a Chat request: ${rec.url}`, type: 'invalid_request_error', code: null } } };
      const tool = msgs.find((m) => m.role === 'tool' && m.tool_call_id === callId);
      if (!tool) {
        state.tool = shellToolChat(rec.json);
        state.args = JSON.stringify(state.tool.argsFor(command));
        const pieces = [state.args.slice(0, 9), state.args.slice(9, 30), state.args.slice(30)];
        return sseBehaviour(chatChunks({ id: 'chatcmpl-codex1', model: CODEX_UP_MODEL, calls: [{ id: callId, name: state.tool.name, pieces }], usage: chatUsage(9000, 120, 8000) }));
      }
      const out = typeof tool.content === 'string' ? tool.content : JSON.stringify(tool.content);
      return { content: `TOOL OUTPUT: ${commandOutput(out)}`, chunks: 2, usage: { prompt_tokens: 9400, completion_tokens: 40 } };
    });
    const log0 = gw.logLines().length;
    const r = await runCodex(codex.bin, { baseUrl: `http://127.0.0.1:${tap.port}/v1`, key: CODEX_KEY, prompt: 'Run the marker command and report its output.',
      trapUrl: trap.url, config, args });
    const lines = await responsesLines(log0, tap.seen.length);
    const diag = () => codexDiag(r, { tap, trap, log0 });
    // a refusal by the gateway's translation shows here, with what Codex sent
    const refused = lines.filter((l) => l.status >= 400);
    assert.deepEqual(refused, [], `the gateway refused Codex's request: ${JSON.stringify(refused)}\n${diag()}`);
    assert.equal(r.timedOut, false, diag());
    assert.equal(r.code, 0, diag());
    assert.match(r.stdout, new RegExp(`TOOL OUTPUT: ${expected}`), diag());
    assert.equal(r.last?.trim(), `TOOL OUTPUT: ${expected}`, diag());

    // Codex → gateway: two Responses requests; gateway → mock: the two Chat requests they become
    const sent = tap.seen.filter((q) => q.path === '/v1/responses');
    assert.deepEqual(tap.seen.map((q) => `${q.method} ${q.url}`), ['POST /v1/responses', 'POST /v1/responses'], diag());
    const reqs = chatReqs(gq);
    assert.equal(gq.requests.length, 2, diag());
    assert.equal(reqs.length, 2, diag());
    if (tapDump) reqs.forEach((q, i) => writeFileSync(`${tapDump}.chat.${i + 1}.json`, q.body));
    for (let i = 0; i < 2; i++) {
      const q = reqs[i];
      assert.equal(q.url, '/v1/chat/completions');
      assert.equal(q.headers.authorization, `Bearer ${UP_KEY}`);
      assert.ok(!q.body.includes(CODEX_KEY) && !JSON.stringify(q.rawHeaders).includes(CODEX_KEY), 'the client key reached the provider');
      assert.equal(q.json.model, CODEX_UP_MODEL);
      assert.equal(q.json.stream, true);
      assert.deepEqual(q.json.stream_options, { include_usage: true });
      const c = sent[i].json;
      assert.equal(c.stream, true);
      const customs = new Set((c.tools ?? []).filter((t) => t.type === 'custom').map((t) => t.name));
      for (const t of q.json.tools ?? []) if (customs.has(t.function.name)) assertCustomChatTool(t, t.function.name);
      assert.deepEqual(normalizeChat(q.json, customs), expectedChat(c, CODEX_UP_MODEL), `request ${i + 1}: the Chat body is not the translation of Codex's Responses body`);
    }
    // the first carried Codex's tools, nested; the mock called its shell tool
    const tools1 = reqs[0].json.tools;
    assert.ok(Array.isArray(tools1) && tools1.length > 0, 'no tools upstream');
    assert.equal(tools1.length, sent[0].json.tools.filter((t) => t.type === 'function' || t.type === 'custom').length);
    assert.ok(tools1.some((t) => t.function.name === state.tool.name), `${state.tool.name} not among the Chat tools`);
    // the second: the assistant's tool call and the tool message with the command's output
    const msgs2 = reqs[1].json.messages;
    const asst = msgs2.filter((m) => m.role === 'assistant' && m.tool_calls);
    assert.equal(asst.length, 1, JSON.stringify(msgs2.map((m) => m.role)));
    assert.deepEqual(asst[0].tool_calls, [{ id: callId, type: 'function', function: { name: state.tool.name, arguments: state.args } }]);
    const toolMsgs = msgs2.filter((m) => m.role === 'tool');
    assert.equal(toolMsgs.length, 1, JSON.stringify(toolMsgs));
    assert.equal(toolMsgs[0].tool_call_id, callId);
    assert.equal(typeof toolMsgs[0].content, 'string');
    assert.equal(commandOutput(toolMsgs[0].content), expected, `tool message: ${JSON.stringify(toolMsgs[0].content)}`);
    assert.equal(msgs2.indexOf(toolMsgs[0]), msgs2.indexOf(asst[0]) + 1, 'the tool message does not follow the tool call');

    // the gateway: two translated streams, 200, groqp, the Chat usage
    assert.equal(lines.length, 2, diag());
    assert.deepEqual(lines.map((l) => [l.status, l.stream, l.in_tokens, l.cached_tokens, l.out_tokens]),
      [[200, true, 1000, 8000, 120], [200, true, 9400, 0, 40]], JSON.stringify(lines));
    assert.deepEqual(trap.hits, [], `Codex tried to reach the internet: ${trap.hits.join(', ')}`);
  } finally {
    gq.behave({});
    await tap.close();
    await trap.close();
  }
});
}
