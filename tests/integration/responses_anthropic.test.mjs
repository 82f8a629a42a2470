// OpenAI's Responses API (POST /v1/responses) routed to a provider of kind "anthropic": the
// gateway translates through Chat Completions both ways — the request Responses → Chat →
// Messages (POST /v1/messages, x-api-key), the answer Messages → Chat → Responses, and a
// stream Anthropic events → Chat chunks → Responses events — and bills the Anthropic usage.
//
// The upstream is tests/lib/mock_anthropic.mjs (the Messages API: JSON answers or the SSE
// sequence message_start … message_stop, text, one tool_use, usage), given whole bodies where
// its generated answers do not do; the client is the official `openai` SDK, raw HTTP where the
// bytes matter, and the real Codex CLI (codex exec, offline) for the last test.
//
//   a. plain: output_text; the exact Messages body (model, system from instructions and
//      developer messages, messages, tools with input_schema, max_tokens from
//      max_output_tokens or the default 4096, tool_choice, thinking); the Responses shape, usage
//   b. streamed text: every event in order, sequence numbers 0…n, deltas = the text
//   c. a function tool round trip, plain and streamed: tool_use → function_call (call_id = the
//      tool_use id, arguments = its input as JSON); function_call_output → tool_result
//   d. a custom tool (Codex's apply_patch): tool_use {"input": PATCH} → custom_tool_call with
//      input = PATCH exactly (plain and streamed); custom_tool_call_output → tool_result
//   e. governance: plain and streamed answers billed to the µ$ from the Anthropic usage
//      (input, cache read, cache write, output)
//   f. errors: 529/429/400 from Anthropic in the OpenAI error shape with their status; a
//      stream the provider cuts, or ends with an `error` event → response.failed
//   g. the real Codex CLI through the gateway to the Anthropic mock: a shell tool round trip
//
// DUMP_CODEX=/tmp/x writes what Codex sent (/tmp/x.N.json) and the Messages bodies (/tmp/x.msg.N.json).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startGateway, request, sleep, show, errorBody } from '../lib/gateway.mjs';
import { startAnthropicMock, anthropicError, lastUserMessage, toolResults, toolResultText } from '../lib/mock_anthropic.mjs';
import { costMicros, anthropicCost, anthropicTokens, entity, quiet } from '../lib/usage.mjs';
import { findCodex, runCodex as runCodexCli, startTrap, startTap as startTapCli, commandOutput, RUN_TIMEOUT_MS } from '../lib/codex_cli.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the "openai" package is not installed: run (cd tests && npm ci) — ${e.message}`);
}

const T = { timeout: 30000 }; // every test is bounded
const MODEL = 'antp/claude-sonnet-4-5';
const UP_MODEL = 'claude-sonnet-4-5';
const UP_KEY = 'sk-ant-resp-upstream-0001';
const CLIENT_KEY = 'vk-anything-not-a-provider-key';
const TEXT = 'The quick brown fox jumps over the lazy dog.';
const ADMIN = 'adm-ranth-token-1';
const VK = 'sk-bf-ranth-vk-0001';
const DEFAULT_MAX_TOKENS = 4096; // xlate_o2a_head: no max_output_tokens → max_tokens 4096

// ---------------------------------------------------------------------------------------------
// helpers

/** An SDK client whose every request body is recorded. */
function sdkClient(port, { apiKey = CLIENT_KEY } = {}) {
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
    headers: { authorization: `Bearer ${CLIENT_KEY}`, ...headers }, timeout: 15000,
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

/** The Messages requests the mock got (only those). */
const msgReqs = (m) => m.requests.filter((q) => q.method === 'POST' && q.path === '/v1/messages');

/** Every Messages request: POST /v1/messages, x-api-key = the provider key, no client credential, the model. */
function assertMessagesRequest(q, { stream = false, key = UP_KEY, clientKey = CLIENT_KEY } = {}) {
  assert.equal(q.method, 'POST');
  assert.equal(q.url, '/v1/messages', 'not translated to the Messages API');
  assert.equal(q.headers['x-api-key'], key);
  assert.equal(q.headers.authorization, undefined, 'an Authorization header reached Anthropic');
  assert.equal(q.headers['anthropic-version'], '2023-06-01');
  assert.ok(!JSON.stringify(q.rawHeaders).includes(clientKey) && !q.body.includes(clientKey), 'the client credential reached the provider');
  assert.ok(q.json, `the Messages body is not JSON: ${q.body.toString('utf8').slice(0, 400)}`);
  assert.equal(q.json.model, UP_MODEL);
  if (stream) assert.equal(q.json.stream, true);
  else assert.ok(!('stream' in q.json), `stream in a plain request: ${q.body}`);
  assert.ok(!('stream_options' in q.json), `Chat's stream_options reached Anthropic: ${q.body}`);
  assert.equal(typeof q.json.max_tokens, 'number', 'Anthropic requires max_tokens');
}

/** The Responses usage the gateway must derive from an Anthropic usage: every input token
 *  (fresh, cache read, cache write) is an input token, the cache reads are the cached ones. */
function respUsage(u) {
  const cr = u.cache_read_input_tokens ?? 0;
  const cw = u.cache_creation_input_tokens ?? 0;
  const input = u.input_tokens + cr + cw;
  return { input_tokens: input, input_tokens_details: { cached_tokens: cr }, output_tokens: u.output_tokens,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: input + u.output_tokens };
}

/** The log line of a /v1/responses request that pred accepts. */
async function logLine(g, pred, what) {
  for (let i = 0; i < 150; i++) {
    const l = g.logLines().filter((x) => x.path === '/v1/responses').find(pred);
    if (l) return l;
    await sleep(20);
  }
  assert.fail(`no log line for ${what}\n${g.output().slice(-3000)}`);
}

/** The order of a stream's event types must be `want`; sequence numbers 0, 1, 2, …. */
function assertEventOrder(events, want, what) {
  assert.deepEqual(events.map((e) => e.type), want, `${what}: event order`);
  assert.deepEqual(events.map((e) => e.sequence_number), events.map((_, i) => i), `${what}: sequence numbers`);
}

/** The mock's argument fragments of a tool_use input (splitN of mock_anthropic.mjs). */
function fragments(s, n) {
  const size = Math.ceil(s.length / n);
  const out = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

const TEXT_EVENTS = (ndeltas) => ['response.output_item.added', 'response.content_part.added',
  ...Array(ndeltas).fill('response.output_text.delta'), 'response.output_text.done', 'response.content_part.done', 'response.output_item.done'];
const CALL_EVENTS = (ndeltas) => ['response.output_item.added', ...Array(ndeltas).fill('response.function_call_arguments.delta'),
  'response.function_call_arguments.done', 'response.output_item.done'];
const CUSTOM_EVENTS = ['response.output_item.added', 'response.custom_tool_call_input.done', 'response.output_item.done'];
const HEAD_EVENTS = ['response.created', 'response.in_progress'];

const WEATHER_PARAMS = { type: 'object', properties: { location: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['location', 'unit'], additionalProperties: false };
const WEATHER_TOOL = { type: 'function', name: 'get_weather', description: 'Current weather for a location', strict: true, parameters: WEATHER_PARAMS };
const WEATHER_ANTH_TOOL = { name: 'get_weather', description: 'Current weather for a location', input_schema: WEATHER_PARAMS };
const PATCH = '*** Begin Patch\n*** Add File: hello.txt\n+Hello "world" \\o/ é 中文\tTAB\n*** End Patch\n';
const PATCH_TOOL = { type: 'custom', name: 'apply_patch', description: 'Edit files with a patch.', format: { type: 'grammar', syntax: 'lark', definition: 'start: /(.|\\n)+/' } };

/** A custom tool at Anthropic: an object schema of one required string "input" (its description is free). */
function assertCustomAnthTool(t, name, description) {
  assert.equal(t.name, name, JSON.stringify(t));
  if (description !== undefined) assert.equal(t.description, description, JSON.stringify(t));
  const s = t.input_schema;
  assert.equal(s?.type, 'object', JSON.stringify(t));
  assert.deepEqual(Object.keys(s.properties ?? {}), ['input'], JSON.stringify(t));
  assert.equal(s.properties.input.type, 'string', JSON.stringify(t));
  assert.deepEqual(s.required, ['input'], JSON.stringify(t));
  assert.deepEqual(Object.keys(t).sort(), description === undefined ? ['input_schema', 'name'] : ['description', 'input_schema', 'name'], JSON.stringify(t));
}

// ---------------------------------------------------------------------------------------------
// the shared gateway: antp (anthropic kind) in front of the Anthropic mock

let an;
let gw;
let gov;

before(async () => {
  an = await startAnthropicMock({ name: 'ant' });
  gw = await startGateway({
    config: {
      log_requests: true,
      circuit_breaker: { failures: 1000000, cooldown_ms: 1000 },
      providers: [{ name: 'antp', provider: 'anthropic', apiKey: UP_KEY, base_url: an.baseUrl, models: ['claude-*'], max_retries: 0 }],
    },
  });
});

after(async () => {
  await gw?.stop('SIGKILL');
  await gov?.stop('SIGKILL');
  await an?.close();
});

function resetMocks() { an.reset(); }

// ---------------------------------------------------------------------------------------------
// a. plain

test('plain SDK responses.create → the exact Messages body upstream; the answer as a Responses object with the Anthropic usage', T, async () => {
  resetMocks();
  const U = { input_tokens: 1200, output_tokens: 300, cache_read_input_tokens: 800, cache_creation_input_tokens: 64 };
  an.once({ text: TEXT, usage: U });
  const { client, sent } = sdkClient(gw.port);
  const img = 'data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';
  const { data: r, response } = await client.responses.create({
    model: MODEL,
    instructions: 'You answer tersely. "Quotes" and é 中文 stay.',
    input: [
      { role: 'developer', content: 'Be terse.' },
      { role: 'user', content: [{ type: 'input_text', text: 'What is in this image?' }, { type: 'input_image', image_url: img }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'A pixel.' }] },
      { role: 'user', content: 'Weather in Paris?' },
    ],
    max_output_tokens: 512,
    temperature: 0.2,
    top_p: 0.9,
    user: 'user-42',
    parallel_tool_calls: false,
    tools: [WEATHER_TOOL, PATCH_TOOL],
    tool_choice: 'required',
  }).withResponse();
  assert.equal(response.status, 200);
  assert.equal(response.headers.get('x-bifrost-provider'), MODEL);
  assert.equal(r.output_text, TEXT);

  // the Messages request, exactly
  assert.equal(an.requests.length, 1, an.summary());
  const q = msgReqs(an)[0];
  assertMessagesRequest(q);
  const got = structuredClone(q.json);
  assert.equal(got.tools?.length, 2, q.body.toString());
  assertCustomAnthTool(got.tools[1], 'apply_patch', 'Edit files with a patch.');
  delete got.tools[1].input_schema.properties.input.description;
  assert.deepEqual(got, {
    model: UP_MODEL,
    max_tokens: 512,
    system: 'You answer tersely. "Quotes" and é 中文 stay.\n\nBe terse.',
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'What is in this image?' },
        { type: 'image', source: { type: 'base64', media_type: 'image/png', data: img.slice('data:image/png;base64,'.length) } }] },
      { role: 'assistant', content: [{ type: 'text', text: 'A pixel.' }] },
      { role: 'user', content: 'Weather in Paris?' },
    ],
    temperature: 0.2,
    top_p: 0.9,
    metadata: { user_id: 'user-42' },
    tools: [WEATHER_ANTH_TOOL, { name: 'apply_patch', description: 'Edit files with a patch.',
      input_schema: { type: 'object', properties: { input: { type: 'string' } }, required: ['input'], additionalProperties: false } }],
    tool_choice: { type: 'any', disable_parallel_tool_use: true },
  }, `the Messages body: ${q.body}\nthe client's: ${sent[0].body}`);

  // the Responses object
  const mid = an.sent[0] && JSON.parse(an.sent[0].body).id;
  assert.equal(mid, 'msg_mock_ant_1');
  assert.equal(r.id, `resp_${mid}`);
  assert.equal(r.object, 'response');
  assert.equal(r.status, 'completed');
  assert.equal(r.incomplete_details, null);
  assert.equal(r.error, null);
  assert.equal(typeof r.created_at, 'number');
  assert.ok(Math.abs(r.created_at - Date.now() / 1000) < 60, `created_at ${r.created_at}`);
  assert.ok(r.model === MODEL || r.model === UP_MODEL, `model ${r.model}`);
  assert.deepEqual(r.output, [{ type: 'message', id: `msg_${mid}`, status: 'completed', role: 'assistant',
    content: [{ type: 'output_text', text: TEXT, annotations: [] }] }]);
  assert.deepEqual(r.usage, respUsage(U));
  assert.deepEqual(r.usage, { input_tokens: 2064, input_tokens_details: { cached_tokens: 800 }, output_tokens: 300,
    output_tokens_details: { reasoning_tokens: 0 }, total_tokens: 2364 });
  const l = await logLine(gw, (x) => x.status === 200 && x.stream === false && x.provider === MODEL, 'the plain request');
  assert.deepEqual([l.in_tokens, l.cached_tokens, l.cache_write_tokens, l.out_tokens, l.attempts], [1200, 800, 64, 300, 1], JSON.stringify(l));
});

test('plain: max_tokens defaults to 4096 without max_output_tokens; tool_choice none/auto/named; reasoning effort not passed on (no thinking); stop_reason max_tokens → incomplete', T, async () => {
  resetMocks();
  const { client } = sdkClient(gw.port);
  // no max_output_tokens, no tools, a string input
  let r = await client.responses.create({ model: MODEL, input: 'hi' });
  assert.equal(r.output_text, 'Hello from ant');
  assert.deepEqual(msgReqs(an)[0].json, { model: UP_MODEL, max_tokens: DEFAULT_MAX_TOKENS, messages: [{ role: 'user', content: 'hi' }] }, msgReqs(an)[0].body.toString());
  // tool_choice: a named function → {type:"tool"}; "none" → {type:"none"}; "auto" → {type:"auto"}
  const choices = [
    [{ type: 'function', name: 'get_weather' }, { type: 'tool', name: 'get_weather' }],
    ['none', { type: 'none' }],
    ['auto', { type: 'auto' }],
  ];
  for (const [choice, want] of choices) {
    r = await client.responses.create({ model: MODEL, input: 'weather?', tools: [WEATHER_TOOL], tool_choice: choice, max_output_tokens: 100 });
    assert.equal(r.status, 'completed');
    const q = msgReqs(an).at(-1);
    assertMessagesRequest(q);
    assert.deepEqual(q.json, { model: UP_MODEL, max_tokens: 100, messages: [{ role: 'user', content: 'weather?' }], tools: [WEATHER_ANTH_TOOL], tool_choice: want },
      `tool_choice ${JSON.stringify(choice)}: ${q.body}`);
  }
  // reasoning effort is not passed to Messages (thinking blocks cannot round-trip through Responses
  // items, and Anthropic refuses a tool turn without them): no thinking, the temperature kept;
  // the answer stopped by max_tokens → status incomplete
  an.once({ body: { id: 'msg_01Cut', type: 'message', role: 'assistant', model: UP_MODEL,
    content: [{ type: 'text', text: 'The quick brown' }], stop_reason: 'max_tokens', stop_sequence: null,
    usage: { input_tokens: 20, output_tokens: 3000 } } });
  r = await client.responses.create({ model: MODEL, input: 'think', reasoning: { effort: 'low' }, max_output_tokens: 3000, temperature: 0.5 });
  const q = msgReqs(an).at(-1);
  assertMessagesRequest(q);
  assert.deepEqual(q.json, { model: UP_MODEL, max_tokens: 3000, messages: [{ role: 'user', content: 'think' }], temperature: 0.5 }, q.body.toString());
  assert.equal(r.id, 'resp_msg_01Cut');
  assert.equal(r.status, 'incomplete');
  assert.deepEqual(r.incomplete_details, { reason: 'max_output_tokens' });
  assert.equal(r.output_text, 'The quick brown');
  assert.deepEqual(r.usage, respUsage({ input_tokens: 20, output_tokens: 3000 }));
  assert.equal(an.requests.length, 5);
});

// ---------------------------------------------------------------------------------------------
// b. streamed text

test('streamed SDK responses.create: created, in_progress, the text item\'s events, completed; sequence numbers 0…n; deltas = the text; usage', T, async () => {
  resetMocks();
  const U = { input_tokens: 36, output_tokens: 11, cache_read_input_tokens: 32, cache_creation_input_tokens: 5 };
  an.once({ text: TEXT, textChunks: 5, eventDelayMs: 3, ping: true, usage: U });
  const { client } = sdkClient(gw.port);
  const stream = await client.responses.create({ model: MODEL, input: [{ role: 'user', content: 'stream it' }], instructions: 'Say the pangram.', stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  assertEventOrder(events, [...HEAD_EVENTS, ...TEXT_EVENTS(5), 'response.completed'], 'text stream');
  const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta);
  const sentDeltas = an.sent[0].events.map((b) => b.toString()).filter((s) => s.includes('"text_delta"')).map((s) => JSON.parse(s.split('\ndata: ')[1]).delta.text);
  assert.equal(sentDeltas.length, 5);
  assert.deepEqual(deltas, sentDeltas, 'one output_text.delta per text_delta, the same text');
  assert.equal(deltas.join(''), TEXT);
  const created = events[0].response;
  assert.equal(created.status, 'in_progress');
  assert.match(created.id, /^resp_/);
  assert.equal(events[1].response.id, created.id);
  const added = events[2];
  assert.equal(added.output_index, 0);
  assert.equal(added.item.type, 'message');
  assert.equal(added.item.role, 'assistant');
  assert.equal(added.item.status, 'in_progress');
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
  assert.deepEqual(done.usage, respUsage(U));
  const up = msgReqs(an);
  assert.equal(up.length, 1);
  assertMessagesRequest(up[0], { stream: true });
  assert.deepEqual(up[0].json, { model: UP_MODEL, max_tokens: DEFAULT_MAX_TOKENS, system: 'Say the pangram.', messages: [{ role: 'user', content: 'stream it' }], stream: true }, up[0].body.toString());

  // raw: every SSE block names its event, the same as its data's type; nothing but events
  an.once({ text: 'abc "quoted" é 中文\nline', textChunks: 3, usage: { input_tokens: 5, output_tokens: 9, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 } });
  const r = await post(gw.port, { model: MODEL, input: 'raw', stream: true });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] ?? '', /^text\/event-stream/);
  const evs = parseSse(r.text);
  for (const e of evs) {
    assert.ok(e.data, `not JSON: ${e.raw}`);
    assert.equal(e.name, e.data.type, e.raw);
  }
  assertEventOrder(evs.map((e) => e.data), [...HEAD_EVENTS, ...TEXT_EVENTS(3), 'response.completed'], 'raw text stream');
  assert.equal(evs.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta).join(''), 'abc "quoted" é 中文\nline');
  assert.equal(evs.at(-1).data.response.output[0].content[0].text, 'abc "quoted" é 中文\nline');
  assert.deepEqual(evs.at(-1).data.response.usage, respUsage({ input_tokens: 5, output_tokens: 9 }));
  assert.ok(!r.text.includes('[DONE]') && !r.text.includes('chat.completion'), `Chat chunks leaked to the client: ${r.text.slice(0, 400)}`);
  const l = await logLine(gw, (x) => x.status === 200 && x.stream === true && x.provider === MODEL && x.in_tokens === 36, 'the first stream');
  assert.deepEqual([l.in_tokens, l.cached_tokens, l.cache_write_tokens, l.out_tokens], [36, 32, 5, 11], JSON.stringify(l));
});

// ---------------------------------------------------------------------------------------------
// c. function tools

test('function-tool round trip (plain): tool_use blocks → function_call items (call_id = tool_use id, arguments = the input as JSON); function_call_output → tool_result blocks', T, async () => {
  resetMocks();
  const IN1 = { location: 'Paris, France', unit: 'celsius' };
  const IN2 = { location: 'Oslo, Norway', unit: 'celsius' };
  const U1 = { input_tokens: 80, output_tokens: 40, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  an.once({ body: { id: 'msg_01Tools', type: 'message', role: 'assistant', model: UP_MODEL, stop_reason: 'tool_use', stop_sequence: null, usage: U1,
    content: [{ type: 'text', text: 'Checking both.' },
      { type: 'tool_use', id: 'toolu_01Paris', name: 'get_weather', input: IN1 },
      { type: 'tool_use', id: 'toolu_02Oslo', name: 'get_weather', input: IN2 }] } });
  const { client } = sdkClient(gw.port);
  const input = [{ role: 'user', content: 'Weather in Paris and Oslo?' }];
  const first = await client.responses.create({ model: MODEL, input, tools: [WEATHER_TOOL] });
  assert.equal(first.status, 'completed');
  assert.equal(first.output_text, 'Checking both.');
  assert.deepEqual(first.output, [
    { type: 'message', id: 'msg_msg_01Tools', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Checking both.', annotations: [] }] },
    { type: 'function_call', id: 'fc_toolu_01Paris', call_id: 'toolu_01Paris', name: 'get_weather', status: 'completed', arguments: JSON.stringify(IN1) },
    { type: 'function_call', id: 'fc_toolu_02Oslo', call_id: 'toolu_02Oslo', name: 'get_weather', status: 'completed', arguments: JSON.stringify(IN2) },
  ]);
  assert.deepEqual(first.usage, respUsage(U1));

  an.behave({ text: 'Paris: 18 °C, Oslo: 7 °C.' });
  const out1 = { type: 'function_call_output', call_id: 'toolu_01Paris', output: '{"temperature":18}' };
  const out2 = { type: 'function_call_output', call_id: 'toolu_02Oslo', output: [{ type: 'input_text', text: '{"temperature":' }, { type: 'input_text', text: '7}' }] };
  const second = await client.responses.create({ model: MODEL, tools: [WEATHER_TOOL], input: [
    ...input, { type: 'reasoning', id: 'rs_0001', summary: [] }, ...first.output, out1, out2,
  ] });
  assert.equal(second.output_text, 'Paris: 18 °C, Oslo: 7 °C.');
  const reqs = msgReqs(an);
  assert.equal(reqs.length, 2);
  reqs.forEach((q) => assertMessagesRequest(q));
  assert.deepEqual(reqs[0].json, { model: UP_MODEL, max_tokens: DEFAULT_MAX_TOKENS, messages: [{ role: 'user', content: 'Weather in Paris and Oslo?' }], tools: [WEATHER_ANTH_TOOL] });
  assert.deepEqual(reqs[1].json, { model: UP_MODEL, max_tokens: DEFAULT_MAX_TOKENS, tools: [WEATHER_ANTH_TOOL], messages: [
    { role: 'user', content: 'Weather in Paris and Oslo?' },
    { role: 'assistant', content: [
      { type: 'text', text: 'Checking both.' },
      { type: 'tool_use', id: 'toolu_01Paris', name: 'get_weather', input: IN1 },
      { type: 'tool_use', id: 'toolu_02Oslo', name: 'get_weather', input: IN2 }] },
    { role: 'user', content: [
      { type: 'tool_result', tool_use_id: 'toolu_01Paris', content: '{"temperature":18}' },
      { type: 'tool_result', tool_use_id: 'toolu_02Oslo', content: '{"temperature":7}' }] },
  ] }, reqs[1].body.toString());
  an.behave({});
});

test('function-tool round trip (streamed): text then a tool_use → message and function_call items, one arguments delta per input_json_delta, done events, completed', T, async () => {
  resetMocks();
  const IN = { location: 'Paris, France', unit: 'celsius' };
  const ARGS = JSON.stringify(IN);
  const id = 'toolu_01StreamParis';
  // a scripted agent loop: no tool_result → text + tool_use; a tool_result → "TOOL RESULT: <content>"
  const U = { input_tokens: 50, output_tokens: 25, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  an.behave((rec) => {
    const trs = toolResults(lastUserMessage(rec.json));
    if (trs.length) return { text: `TOOL RESULT: ${trs.map(toolResultText).join('|')}`, textChunks: 2, usage: U };
    return { text: 'Let me check.', textChunks: 2, toolUse: { id, name: 'get_weather', input: IN, fragments: 3 }, eventDelayMs: 2, usage: U };
  });
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
  assert.deepEqual(added.item, { type: 'function_call', id: `fc_${id}`, call_id: id, name: 'get_weather', status: 'in_progress', arguments: '' });
  const argDeltas = events.filter((e) => e.type === 'response.function_call_arguments.delta');
  assert.deepEqual(argDeltas.map((e) => e.delta), fragments(ARGS, 3), 'the input_json_delta fragments, in order (the empty first one left out)');
  for (const e of [...argDeltas, events[13]]) {
    assert.equal(e.item_id, `fc_${id}`, `${e.type}: item_id`);
    assert.equal(e.output_index, 1, `${e.type}: output_index`);
  }
  assert.equal(events[13].arguments, ARGS, 'function_call_arguments.done');
  const call = events[14].item;
  assert.equal(events[14].output_index, 1);
  assert.deepEqual(call, { type: 'function_call', id: `fc_${id}`, call_id: id, name: 'get_weather', status: 'completed', arguments: ARGS });
  const done = events.at(-1).response;
  assert.equal(done.status, 'completed');
  assert.deepEqual(done.output, [msg, call]);
  assert.deepEqual(done.usage, respUsage(U));
  const q1 = msgReqs(an)[0];
  assertMessagesRequest(q1, { stream: true });
  assert.deepEqual(q1.json, { model: UP_MODEL, max_tokens: DEFAULT_MAX_TOKENS, messages: [{ role: 'user', content: 'Weather in Paris?' }], stream: true,
    tools: [WEATHER_ANTH_TOOL], tool_choice: { type: 'tool', name: 'get_weather' } }, q1.body.toString());

  // the output items back with the call's output, streamed again: the tool_result reaches the mock
  const s2 = await client.responses.create({ model: MODEL, tools: [WEATHER_TOOL], stream: true,
    input: [...input, ...done.output, { type: 'function_call_output', call_id: id, output: '18 °C, sunny' }] });
  let text = '';
  let last;
  for await (const ev of s2) { if (ev.type === 'response.output_text.delta') text += ev.delta; last = ev; }
  assert.equal(text, 'TOOL RESULT: 18 °C, sunny');
  assert.equal(last?.type, 'response.completed');
  const q2 = msgReqs(an)[1];
  assertMessagesRequest(q2, { stream: true });
  assert.deepEqual(q2.json.messages, [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', id, name: 'get_weather', input: IN }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: '18 °C, sunny' }] },
  ], q2.body.toString());
  an.behave({});
});

// ---------------------------------------------------------------------------------------------
// d. a custom (freeform) tool

test('a custom tool (apply_patch): an object schema of one string "input" at Anthropic; tool_use {"input": PATCH} → custom_tool_call with input = PATCH (plain and streamed); custom_tool_call_output → tool_result', T, async () => {
  resetMocks();
  const id1 = 'toolu_01PatchPlain';
  const id2 = 'toolu_02PatchStream';
  an.once({ text: '', toolUse: { id: id1, name: 'apply_patch', input: { input: PATCH } }, usage: { input_tokens: 300, output_tokens: 60 } });
  const { client } = sdkClient(gw.port);
  const input = [{ role: 'user', content: 'Create hello.txt' }];
  const tools = [WEATHER_TOOL, PATCH_TOOL];
  const r = await client.responses.create({ model: MODEL, input, tools });
  const q1 = msgReqs(an)[0];
  assertMessagesRequest(q1);
  assert.equal(q1.json.tools.length, 2, q1.body.toString());
  assert.deepEqual(q1.json.tools[0], WEATHER_ANTH_TOOL);
  assertCustomAnthTool(q1.json.tools[1], 'apply_patch', 'Edit files with a patch.');
  assert.deepEqual(r.output, [{ type: 'custom_tool_call', id: r.output[0]?.id, call_id: id1, name: 'apply_patch', status: 'completed', input: PATCH }], JSON.stringify(r.output));
  assert.equal(typeof r.output[0].id, 'string');
  assert.equal(r.output[0].input, PATCH, 'the custom tool input, exactly');
  assert.equal(r.output_text, '');

  // streamed: the input JSON cut in 7 fragments (inside escapes, inside the key)
  an.once({ text: '', toolUse: { id: id2, name: 'apply_patch', input: { input: PATCH }, fragments: 7 }, eventDelayMs: 2 });
  const stream = await client.responses.create({ model: MODEL, input, tools, stream: true });
  const events = [];
  for await (const ev of stream) events.push(ev);
  assertEventOrder(events, [...HEAD_EVENTS, ...CUSTOM_EVENTS, 'response.completed'], 'custom tool stream');
  assert.equal(events[2].item.type, 'custom_tool_call');
  assert.equal(events[2].item.call_id, id2);
  assert.equal(events[2].item.name, 'apply_patch');
  assert.equal(events[2].item.status, 'in_progress');
  assert.equal(events[3].input, PATCH, 'custom_tool_call_input.done');
  assert.equal(events[3].item_id, events[2].item.id);
  assert.equal(events[3].output_index, 0);
  const item = events[4].item;
  assert.deepEqual(item, { type: 'custom_tool_call', id: events[2].item.id, call_id: id2, name: 'apply_patch', status: 'completed', input: PATCH });
  assert.deepEqual(events.at(-1).response.output, [item]);
  assert.ok(!events.some((e) => e.type === 'response.function_call_arguments.delta'), 'function argument deltas for a custom tool');
  assertMessagesRequest(msgReqs(an)[1], { stream: true });

  // the call and its output back: a tool_use with {"input": PATCH}, a tool_result
  an.once({ text: 'Created hello.txt.' });
  const r3 = await client.responses.create({ model: MODEL, tools, input: [...input, item, { type: 'custom_tool_call_output', call_id: id2, output: 'Done!\nA hello.txt' }] });
  assert.equal(r3.output_text, 'Created hello.txt.');
  const q3 = msgReqs(an)[2];
  assertMessagesRequest(q3);
  assert.deepEqual(q3.json.messages, [
    { role: 'user', content: 'Create hello.txt' },
    { role: 'assistant', content: [{ type: 'tool_use', id: id2, name: 'apply_patch', input: { input: PATCH } }] },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: id2, content: 'Done!\nA hello.txt' }] },
  ], q3.body.toString());
  assert.equal(an.requests.length, 3);
});

// ---------------------------------------------------------------------------------------------
// f. errors

test('Anthropic errors reach the client in the OpenAI error shape with their status (529 overloaded, 429 with retry-after, 400), one attempt each; the SDK sees the matching error class', T, async () => {
  resetMocks();
  const cases = [
    [529, anthropicError('overloaded_error', 'Overloaded'), {}],
    [429, anthropicError('rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit'), { 'retry-after': '7' }],
    [400, anthropicError('invalid_request_error', 'messages.0.content.0.text: text content blocks must be non-empty'), {}],
  ];
  for (const [status, body, headers] of cases) {
    for (const stream of [false, true]) {
      an.reset();
      an.once({ status, body, headers });
      const r = await post(gw.port, { model: MODEL, input: 'hi', stream });
      assert.equal(r.status, status, `stream ${stream}: ${show(r)}`);
      assert.match(r.headers['content-type'] ?? '', /application\/json/, show(r));
      const j = JSON.parse(r.text);
      assert.deepEqual(Object.keys(j), ['error'], `not the OpenAI error shape: ${r.text}`);
      assert.equal(j.error.type, body.error.type, r.text);
      assert.equal(j.error.message, body.error.message, r.text);
      if (headers['retry-after']) assert.equal(r.headers['retry-after'], '7', show(r));
      assert.equal(msgReqs(an).length, 1, `${status}: attempts upstream: ${an.requests.length}`);
      assertMessagesRequest(msgReqs(an)[0], { stream });
    }
  }
  const { client } = sdkClient(gw.port);
  const classes = { 529: OpenAI.InternalServerError, 429: OpenAI.RateLimitError, 400: OpenAI.BadRequestError };
  for (const [status, body] of cases) {
    an.once({ status, body });
    await assert.rejects(client.responses.create({ model: MODEL, input: 'hi' }), (err) => {
      assert.ok(err instanceof classes[status], `${status}: not a ${classes[status].name}: ${err?.constructor?.name} ${err}`);
      assert.equal(err.status, status);
      assert.equal(err.type, body.error.type, JSON.stringify(err.error));
      assert.ok(err.message.includes(body.error.message), err.message);
      return true;
    });
  }
  const l = await logLine(gw, (x) => x.status === 529, 'the 529');
  assert.equal(l.provider, MODEL, JSON.stringify(l));
  assert.equal(l.attempts, 1, JSON.stringify(l));
  const ok = await post(gw.port, { model: MODEL, input: 'after' });
  assert.equal(ok.status, 200, show(ok));
});

test('a stream the provider cuts mid-way, or ends with an Anthropic `error` event: the deltas that came, then `event: response.failed`, no response.completed', T, async () => {
  resetMocks();
  // events: message_start, content_block_start, 'ab', 'cd' — then RST
  an.once({ text: 'abcdefgh', textChunks: 4, eventDelayMs: 10, resetAfterEvents: 4 });
  const r = await post(gw.port, { model: MODEL, input: 'cut', stream: true });
  assert.equal(r.status, 200, show(r));
  let evs = parseSse(r.text);
  assert.deepEqual(evs.map((e) => e.name), [...HEAD_EVENTS, 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.output_text.delta', 'response.failed'], r.text);
  assert.deepEqual(evs.map((e) => e.data?.sequence_number), evs.map((_, i) => i), r.text);
  assert.equal(evs.filter((e) => e.name === 'response.output_text.delta').map((e) => e.data.delta).join(''), 'abcd');
  let f = evs.at(-1);
  assert.ok(f.data, `response.failed is not JSON: ${f.raw}`);
  assert.equal(f.data.type, 'response.failed');
  assert.equal(f.data.response.status, 'failed', f.raw);
  assert.equal(f.data.response.id, evs[0].data.response.id, f.raw);
  assert.equal(typeof f.data.response.error?.code, 'string', f.raw);
  assert.ok(f.data.response.error.message.length > 0, f.raw);
  assert.ok(!r.text.includes('response.completed'));

  // an Anthropic `event: error` mid-stream (overloaded): its message in response.failed
  const ev = (name, d) => `event: ${name}\ndata: ${JSON.stringify(d)}\n\n`;
  const sse = ev('message_start', { type: 'message_start', message: { id: 'msg_01Err', type: 'message', role: 'assistant', model: UP_MODEL, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 5, output_tokens: 1 } } })
    + ev('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } })
    + ev('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } })
    + ev('error', anthropicError('overloaded_error', 'Overloaded'));
  an.once({ body: sse, headers: { 'content-type': 'text/event-stream' } });
  const r2 = await post(gw.port, { model: MODEL, input: 'error event', stream: true });
  assert.equal(r2.status, 200, show(r2));
  evs = parseSse(r2.text);
  assert.deepEqual(evs.map((e) => e.name), [...HEAD_EVENTS, 'response.output_item.added', 'response.content_part.added',
    'response.output_text.delta', 'response.failed'], r2.text);
  assert.equal(evs[4].data.delta, 'Hel');
  f = evs.at(-1);
  assert.equal(f.data.sequence_number, evs.length - 1, f.raw);
  assert.equal(f.data.response.status, 'failed', f.raw);
  assert.equal(f.data.response.error.message, 'Overloaded', f.raw);
  assert.ok(!r2.text.includes('response.completed'));

  const ok = await post(gw.port, { model: MODEL, input: 'after' });
  assert.equal(ok.status, 200, show(ok));
  assert.equal(JSON.parse(ok.text).output_text ?? JSON.parse(ok.text).output[0].content[0].text, 'Hello from ant');
});

// ---------------------------------------------------------------------------------------------
// e. governance

const PRICE = { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 };
const BILLED = { input_tokens: 1200, output_tokens: 300, cache_read_input_tokens: 10000, cache_creation_input_tokens: 2000 };

test('governance: a plain and a streamed request billed from the Anthropic usage: 1200×$3 + 10000×$0.3 + 2000×$3.75 + 300×$15 per M = 18600 µ$ each', T, async () => {
  resetMocks();
  gov = await startGateway({
    config: {
      admin: { token: ADMIN },
      log_requests: true,
      providers: [{ name: 'antp', provider: 'anthropic', apiKey: 'sk-ant-gov-0002', base_url: an.baseUrl, models: ['claude-*'], max_retries: 0 }],
      pricing: { [MODEL]: PRICE }, // (not the built-in Sonnet price)
      governance: { enforce: true, virtual_keys: [{ id: 'ra', value: VK, budget: { max_limit: 10, reset_duration: '1d' } }] },
    },
  });
  const C = costMicros({ in: 1200, out: 300, cacheRead: 10000, cacheWrite: 2000 }, PRICE);
  assert.equal(C, 3600 + 4500 + 3000 + 7500, 'cost formula self-check');
  assert.equal(C, 18600);
  assert.equal(anthropicCost(BILLED, PRICE), C);
  const TOK = anthropicTokens(BILLED);
  assert.equal(TOK, 13500);
  an.behave({ usage: BILLED });

  const un = await post(gov.port, { model: MODEL, input: 'x' }, { authorization: 'Bearer not-a-key' });
  assert.equal(un.status, 401, show(un));
  assert.equal(an.requests.length, 0);

  const { client } = sdkClient(gov.port, { apiKey: VK });
  const r = await client.responses.create({ model: MODEL, input: 'bill me' });
  assert.equal(r.output_text, 'Hello from ant');
  assert.deepEqual(r.usage, respUsage(BILLED));
  assertMessagesRequest(msgReqs(an)[0], { key: 'sk-ant-gov-0002', clientKey: VK });
  let e = entity(await quiet(gov.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'ra').requests === 1 }), 'virtual_keys', 'ra');
  assert.equal(e.requests, 1, JSON.stringify(e));
  assert.equal(e.spend_micros, C, `plain: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, TOK, JSON.stringify(e));
  let l = await logLine(gov, (x) => x.status === 200 && x.stream === false, 'the plain request');
  assert.equal(l.cost_usd, C / 1e6, JSON.stringify(l));
  assert.deepEqual([l.in_tokens, l.cached_tokens, l.cache_write_tokens, l.out_tokens], [1200, 10000, 2000, 300], JSON.stringify(l));

  const stream = await client.responses.create({ model: MODEL, input: 'bill my stream', stream: true });
  let last;
  for await (const ev of stream) last = ev;
  assert.equal(last?.type, 'response.completed');
  assert.deepEqual(last.response.usage, respUsage(BILLED));
  assertMessagesRequest(msgReqs(an)[1], { stream: true, key: 'sk-ant-gov-0002', clientKey: VK });
  e = entity(await quiet(gov.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'ra').requests === 2 }), 'virtual_keys', 'ra');
  assert.equal(e.requests, 2, JSON.stringify(e));
  assert.equal(e.spend_micros, 2 * C, `plain + stream: ${JSON.stringify(e)}`);
  assert.equal(e.tokens, 2 * TOK, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, JSON.stringify(e));
  assert.equal(e.in_flight, 0, JSON.stringify(e));
  l = await logLine(gov, (x) => x.status === 200 && x.stream === true, 'the streamed request');
  assert.equal(l.cost_usd, C / 1e6, JSON.stringify(l));
  assert.deepEqual([l.in_tokens, l.cached_tokens, l.cache_write_tokens, l.out_tokens], [1200, 10000, 2000, 300], JSON.stringify(l));
  an.behave({});
});

// ---------------------------------------------------------------------------------------------
// g. the real Codex CLI, through the gateway, to the Anthropic provider

const CODEX_KEY = 'sk-codex-client-not-a-provider-key';




const tapDump = process.env.DUMP_CODEX;
/** A pass-through in front of the gateway that records exactly what Codex sent. */

/**
 * The Anthropic tools a Responses request's tools must become: function tools with their
 * parameters as input_schema, custom tools as an object of one string "input" (its
 * description free, dropped here), built-in and hosted tools (web_search, namespaces …) left out.
 */
function expectedAnthTools(body) {
  const out = [];
  for (const t of Array.isArray(body.tools) ? body.tools : []) {
    if (t.type !== 'function' && t.type !== 'custom') continue;
    const a = { name: t.name };
    if (typeof t.description === 'string') a.description = t.description;
    a.input_schema = t.type === 'custom'
      ? { type: 'object', properties: { input: { type: 'string' } }, required: ['input'], additionalProperties: false }
      : (t.parameters && typeof t.parameters === 'object' ? t.parameters : { type: 'object', properties: {} });
    out.push(a);
  }
  return out;
}

/**
 * The Messages request the description says a Responses request becomes (Responses → Chat →
 * Messages; a reference translation, written from the specification): used to check what
 * Codex's requests turned into. System and developer messages (after the instructions) make
 * the system prompt; an assistant message takes the tool calls that follow it (as tool_use
 * blocks); a run of tool outputs is one user turn of tool_results; reasoning items go.
 */
function expectedMessages(body, model) {
  const text = (c) => (typeof c === 'string' ? c : c.filter((p) => p.type !== 'refusal').map((p) => p.text).join(''));
  const userParts = (c) => (typeof c === 'string' ? c : c.map((p) => {
    if (p.type !== 'input_image') return { type: 'text', text: p.text };
    const m = /^data:([^;]+);base64,(.*)$/s.exec(p.image_url);
    return { type: 'image', source: m ? { type: 'base64', media_type: m[1], data: m[2] } : { type: 'url', url: p.image_url } };
  }));
  const system = typeof body.instructions === 'string' ? [body.instructions] : [];
  const messages = [];
  let asst = null; // the open assistant turn: tool calls join it
  let results = null; // the open user turn of tool_results
  const input = typeof body.input === 'string' ? [{ type: 'message', role: 'user', content: body.input }] : body.input;
  for (const it of input) {
    const type = it.type ?? 'message';
    if (type === 'reasoning') continue;
    if (type === 'function_call' || type === 'custom_tool_call') {
      results = null;
      if (!asst) { asst = { role: 'assistant', content: [] }; messages.push(asst); }
      asst.content.push({ type: 'tool_use', id: it.call_id, name: it.name, input: type === 'custom_tool_call' ? { input: it.input } : JSON.parse(it.arguments) });
      continue;
    }
    asst = null;
    if (type === 'function_call_output' || type === 'custom_tool_call_output') {
      if (!results) { results = { role: 'user', content: [] }; messages.push(results); }
      results.content.push({ type: 'tool_result', tool_use_id: it.call_id, content: it.output == null ? '' : text(it.output) });
      continue;
    }
    results = null;
    if (type !== 'message') throw new Error(`an input item the gateway refuses: ${type}`);
    if (it.role === 'system' || it.role === 'developer') system.push(text(it.content));
    else if (it.role === 'user') messages.push({ role: 'user', content: userParts(it.content) });
    else if (it.role === 'assistant') {
      const t = text(it.content);
      asst = { role: 'assistant', content: t ? [{ type: 'text', text: t }] : [] };
      messages.push(asst);
    } else throw new Error(`a role the gateway refuses: ${it.role}`);
  }
  const max = typeof body.max_output_tokens === 'number' ? body.max_output_tokens : DEFAULT_MAX_TOKENS;
  const out = { model, max_tokens: max };
  if (system.length) out.system = system.join('\n\n');
  out.messages = messages.filter((m) => m.role !== 'assistant' || m.content.length > 0);
  const think = 0; // reasoning.effort is not passed on to Messages (see the gateway's xlate_req_r2o)
  if (!think && typeof body.temperature === 'number') out.temperature = body.temperature;
  if (!think && typeof body.top_p === 'number') out.top_p = body.top_p;
  if (body.stream === true) out.stream = true;
  if (typeof body.user === 'string') out.metadata = { user_id: body.user };
  if (think) out.thinking = { type: 'enabled', budget_tokens: think };
  const tools = expectedAnthTools(body);
  if (tools.length) {
    out.tools = tools;
    const serial = body.parallel_tool_calls === false;
    const c = body.tool_choice;
    if (c != null || serial) {
      const tc = c == null || c === 'auto' ? { type: 'auto' } : c === 'required' ? { type: 'any' } : c === 'none' ? { type: 'none' } : { type: 'tool', name: c.name };
      if (serial && c !== 'none') tc.disable_parallel_tool_use = true;
      out.tool_choice = tc;
    }
  }
  return out;
}

/** A Messages body with the custom tools' "input" description dropped (its wording is free). */
function normalizeMessages(b, customNames) {
  const c = structuredClone(b);
  for (const t of c.tools ?? []) if (customNames.has(t.name)) delete t.input_schema?.properties?.input?.description;
  return c;
}

/** Codex's shell tool among the Messages tools: exec_command {cmd} in 0.169.0. */
function shellToolAnth(body) {
  const tools = Array.isArray(body?.tools) ? body.tools : [];
  const ex = tools.find((t) => t?.name === 'exec_command');
  if (!ex) throw new Error(`no exec_command among the Messages tools: ${JSON.stringify(tools.map((t) => t?.name))}`);
  const props = ex.input_schema?.properties ?? {};
  if (props.cmd?.type !== 'string') throw new Error(`exec_command has no string "cmd": ${JSON.stringify(ex.input_schema)}`);
  return { name: 'exec_command', schema: ex.input_schema, inputFor: (c) => ({ cmd: c, ...('yield_time_ms' in props ? { yield_time_ms: 5000 } : {}) }) };
}


const runCodex = (bin, o) => runCodexCli(bin, { model: MODEL, ...o });
const startTap = (port) => startTapCli(port, { dump: tapDump });
const codex = findCodex();
const CODEX_U1 = { input_tokens: 900, output_tokens: 120, cache_read_input_tokens: 8000, cache_creation_input_tokens: 100 };
const CODEX_U2 = { input_tokens: 400, output_tokens: 40, cache_read_input_tokens: 9000, cache_creation_input_tokens: 0 };

test(`Codex (${codex.version ?? 'not available'}) exec (default tools) → gateway /v1/responses → an Anthropic provider: an exec_command tool_use round trip, translated both ways`, { timeout: RUN_TIMEOUT_MS + 15_000, skip: codex.bin ? false : codex.reason }, async () => {
  resetMocks();
  const trap = await startTrap();
  const tap = await startTap(gw.port);
  try {
    const token = randomBytes(6).toString('hex');
    const command = `echo codex-anth-$((6*7))-${token}`;
    const expected = `codex-anth-42-${token}`;
    const callId = `toolu_01${randomBytes(11).toString('hex')}`;
    const state = { tool: null, input: null, result: null };
    an.behave((rec) => {
      if (!(rec.method === 'POST' && rec.path === '/v1/messages') || !rec.json) return { status: 404, body: anthropicError('not_found_error', `mock: ${rec.url}`) };
      const tr = toolResults(lastUserMessage(rec.json)).find((t) => t.tool_use_id === callId);
      if (!tr) {
        state.tool = shellToolAnth(rec.json);
        state.input = state.tool.inputFor(command);
        return { text: 'Running the marker command.', textChunks: 2, toolUse: { id: callId, name: state.tool.name, input: state.input, fragments: 3 }, usage: CODEX_U1 };
      }
      state.result = toolResultText(tr);
      return { text: `TOOL OUTPUT: ${commandOutput(state.result)}`, textChunks: 2, usage: CODEX_U2 };
    });
    const log0 = gw.logLines().length;
    const r = await runCodex(codex.bin, { baseUrl: `http://127.0.0.1:${tap.port}/v1`, key: CODEX_KEY, prompt: 'Run the marker command and report its output.', trapUrl: trap.url });
    const get = () => gw.logLines().slice(log0).filter((l) => l.path === '/v1/responses');
    for (let i = 0; i < 150 && get().length < tap.seen.length; i++) await sleep(20);
    const lines = get();
    const reqs = msgReqs(an);
    if (tapDump) reqs.forEach((q, i) => writeFileSync(`${tapDump}.msg.${i + 1}.json`, q.body));
    const diag = () => {
      const log = lines.map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''} ${l.error ?? ''}`);
      const sent = tap.seen.map((q) => `${q.method} ${q.url} tools: ${JSON.stringify((q.json?.tools ?? []).map((t) => `${t.type}:${t.name ?? ''}`))} input: ${JSON.stringify((q.json?.input ?? []).map((x) => x.type ?? `message:${x.role}`))}`);
      const ups = an.requests.map((q) => `${q.method} ${q.url} ${q.body.toString().slice(0, 300)}`);
      return `${r.show()}\n--- gateway log ---\n${log.join('\n')}\n--- Codex → gateway ---\n${sent.join('\n')}\n--- gateway → mock ---\n${ups.join('\n')}\n--- trap ---\n${trap.hits.join('\n')}`;
    };
    const refused = lines.filter((l) => l.status >= 400);
    assert.deepEqual(refused, [], `the gateway refused Codex's request: ${JSON.stringify(refused)}\n${diag()}`);
    assert.equal(r.timedOut, false, diag());
    assert.equal(r.code, 0, diag());
    assert.match(r.stdout, new RegExp(`TOOL OUTPUT: ${expected}`), diag());
    assert.equal(r.last?.trim(), `TOOL OUTPUT: ${expected}`, diag());
    assert.equal(commandOutput(state.result ?? ''), expected, diag());

    // Codex → gateway: two Responses requests; gateway → mock: the two Messages requests they became
    assert.deepEqual(tap.seen.map((q) => `${q.method} ${q.url}`), ['POST /v1/responses', 'POST /v1/responses'], diag());
    const sent = tap.seen.map((q) => q.json);
    assert.equal(an.requests.length, 2, diag());
    assert.equal(reqs.length, 2, diag());
    for (let i = 0; i < 2; i++) {
      const q = reqs[i];
      assertMessagesRequest(q, { stream: true, clientKey: CODEX_KEY });
      assert.equal(sent[i].stream, true);
      // the tools, translated (built-in and hosted ones left out)
      const customs = new Set((sent[i].tools ?? []).filter((t) => t.type === 'custom').map((t) => t.name));
      for (const t of q.json.tools ?? []) if (customs.has(t.name)) assertCustomAnthTool(t, t.name, t.description);
      const want = expectedMessages(sent[i], UP_MODEL);
      assert.deepEqual(normalizeMessages(q.json, customs).tools, want.tools, `request ${i + 1}: the Messages tools are not the translation of Codex's tools`);
      assert.deepEqual(normalizeMessages(q.json, customs), want, `request ${i + 1}: the Messages body is not the translation of Codex's Responses body`);
      assert.ok(q.json.messages.every((m) => m.role === 'user' || m.role === 'assistant'), JSON.stringify(q.json.messages.map((m) => m.role)));
      assert.equal(typeof q.json.system, 'string', `request ${i + 1}: Codex's developer messages did not become the system prompt`);
    }
    // Codex's own tool set: function tools with JSON schemas, and built-in ones (web_search, a
    // namespace) that have no Messages form
    assert.ok(sent[0].tools.some((t) => t.type !== 'function' && t.type !== 'custom'), 'Codex sent no built-in tool: the test no longer covers leaving them out');
    assert.ok(!reqs[0].json.tools.some((t) => t.type === 'web_search' || t.type === 'namespace' || 'type' in t), 'a built-in tool reached Anthropic');
    const tools1 = reqs[0].json.tools;
    assert.ok(Array.isArray(tools1) && tools1.length > 0, 'no tools upstream');
    assert.deepEqual(state.tool.schema, sent[0].tools.find((t) => t.name === 'exec_command').parameters, 'exec_command\'s input_schema is not its parameters');
    // the second: the assistant's text and tool_use, then the user turn with the tool_result, last
    const msgs2 = reqs[1].json.messages;
    const asst = msgs2.filter((m) => m.role === 'assistant' && Array.isArray(m.content) && m.content.some((c) => c.type === 'tool_use'));
    assert.equal(asst.length, 1, JSON.stringify(msgs2.map((m) => m.role)));
    const uses = asst[0].content.filter((c) => c.type === 'tool_use');
    assert.deepEqual(uses, [{ type: 'tool_use', id: callId, name: 'exec_command', input: state.input }]);
    const texts = asst[0].content.filter((c) => c.type === 'text');
    assert.ok(texts.every((c) => c.text === 'Running the marker command.'), JSON.stringify(asst[0].content));
    const ai = msgs2.indexOf(asst[0]);
    assert.equal(ai, msgs2.length - 2, 'the tool_use turn is not the one before last');
    const last = msgs2.at(-1);
    assert.equal(last.role, 'user');
    const trs = toolResults(last);
    assert.equal(trs.length, 1, JSON.stringify(last));
    assert.equal(trs[0].tool_use_id, callId);
    assert.equal(typeof trs[0].content, 'string');
    assert.equal(commandOutput(trs[0].content), expected, `tool_result: ${JSON.stringify(trs[0].content)}`);
    // what Codex sent for it: the function_call and its output
    const fco = sent[1].input.find((x) => x.type === 'function_call_output' && x.call_id === callId);
    assert.ok(fco, `no function_call_output for ${callId} in Codex's second request`);
    assert.equal(trs[0].content, typeof fco.output === 'string' ? fco.output : fco.output.map((p) => p.text).join(''));
    const fc = sent[1].input.find((x) => x.type === 'function_call' && x.call_id === callId);
    assert.ok(fc, `no function_call for ${callId} in Codex's second request`);
    assert.deepEqual(JSON.parse(fc.arguments), state.input);

    // the gateway: two translated streams, 200, antp, the Anthropic usage
    assert.equal(lines.length, 2, diag());
    assert.deepEqual(lines.map((l) => [l.status, l.stream, l.provider, l.in_tokens, l.cached_tokens, l.cache_write_tokens, l.out_tokens]),
      [[200, true, MODEL, 900, 8000, 100, 120], [200, true, MODEL, 400, 9000, 0, 40]], JSON.stringify(lines));
    assert.deepEqual(trap.hits, [], `Codex tried to reach the internet: ${trap.hits.join(', ')}`);
  } finally {
    an.behave({});
    await tap.close();
    await trap.close();
  }
});
