// Cross-dialect translation:
//   Anthropic client (raw, @anthropic-ai/sdk, Claude Code) → `openai` provider (mock.mjs), and
//   OpenAI client (raw, `openai` SDK) → `anthropic` provider (mock_anthropic.mjs).
// Expectations follow /work/shared/PROTOCOLS.md ("Translating Anthropic ⇄ OpenAI").
//
// Each direction is probed once at load: while the gateway answers "translation is not
// available yet", that direction's tests are skipped, so this file turns on by itself when
// translation lands.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, request, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { startAnthropicMock, scripted, toolResults, lastUserMessage } from '../lib/mock_anthropic.mjs';
import { findClaude, runClaude, RUN_TIMEOUT_MS } from '../lib/claude_cli.mjs';

let Anthropic, OpenAI;
try {
  ({ default: Anthropic } = await import('@anthropic-ai/sdk'));
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`SDK packages are not installed: run (cd tests && npm ci) — ${e.message}`);
}

// ---------------------------------------------------------------------------------------------
// an OpenAI-format upstream that can answer with tool calls (through mock.mjs's `body` override,
// so mock.mjs itself stays as it is)

const stripReminders = (s) => s.replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, '').trim();

/** Flatten OpenAI message content (string or parts) to text. */
function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : p?.text ?? '')).join('');
  return '';
}

/** Flatten Anthropic content (string or blocks) to text. */
function anthText(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.filter((b) => b?.type === 'text').map((b) => b.text).join('');
  return '';
}

function split(s, n) {
  if (n <= 1 || s.length === 0) return [s];
  const size = Math.ceil(s.length / n);
  const out = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

const OA_USAGE = { prompt_tokens: 40, completion_tokens: 12, total_tokens: 52, prompt_tokens_details: { cached_tokens: 8 } };

/**
 * A behaviour for mock.mjs answering `answer` = { content, toolCalls: [{ id, name, arguments }] }
 * as a chat.completion, or as a chat.completion.chunk stream when the request says stream: true
 * (content in 3 pieces, each tool call's arguments in 4 fragments, finish chunk, the usage chunk
 * when stream_options.include_usage, [DONE]).
 */
function openaiAnswer(rec, answer) {
  const model = rec.json?.model ?? 'unknown';
  const id = 'chatcmpl-translate';
  const finish = answer.toolCalls?.length ? 'tool_calls' : 'stop';
  if (rec.json?.stream !== true) {
    const message = { role: 'assistant', content: answer.content ?? null };
    if (answer.toolCalls?.length) message.tool_calls = answer.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
    return { body: { id, object: 'chat.completion', created: 1700000000, model, choices: [{ index: 0, message, finish_reason: finish }], usage: OA_USAGE } };
  }
  const chunk = (choices, more = {}) => `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: 1700000000, model, choices, ...more })}\n\n`;
  let sse = chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]);
  if (answer.content) for (const p of split(answer.content, 3)) sse += chunk([{ index: 0, delta: { content: p }, finish_reason: null }]);
  (answer.toolCalls || []).forEach((t, i) => {
    sse += chunk([{ index: 0, delta: { tool_calls: [{ index: i, id: t.id, type: 'function', function: { name: t.name, arguments: '' } }] }, finish_reason: null }]);
    for (const p of split(t.arguments, 4)) sse += chunk([{ index: 0, delta: { tool_calls: [{ index: i, function: { arguments: p } }] }, finish_reason: null }]);
  });
  sse += chunk([{ index: 0, delta: {}, finish_reason: finish }]);
  if (rec.json?.stream_options?.include_usage === true) sse += chunk([], { usage: OA_USAGE });
  sse += 'data: [DONE]\n\n';
  return { body: sse, headers: { 'content-type': 'text/event-stream' } };
}

/** Agent loop on the OpenAI side: a tool message last → quote it; else call `tool` if offered. */
function openaiScripted({ tool = 'Bash', args = { command: 'echo bifrost-tool-ok', description: 'Print a marker' }, id = 'call_bifrost_1', sideText = 'ok' } = {}) {
  return (rec) => {
    if (!rec.url.split('?')[0].endsWith('/chat/completions')) return {};
    const msgs = Array.isArray(rec.json?.messages) ? rec.json.messages : [];
    const last = msgs[msgs.length - 1];
    if (last?.role === 'tool') {
      const results = [];
      for (let i = msgs.length - 1; i >= 0 && msgs[i].role === 'tool'; i--) results.unshift(stripReminders(textOf(msgs[i].content)));
      return openaiAnswer(rec, { content: `TOOL RESULT: ${results.join('\n')}` });
    }
    const offered = (rec.json?.tools || []).map((t) => t?.function?.name);
    if (!offered.includes(tool)) return openaiAnswer(rec, { content: sideText });
    return openaiAnswer(rec, { content: 'Running the tool.', toolCalls: [{ id, name: tool, arguments: JSON.stringify(args) }] });
  };
}

// ---------------------------------------------------------------------------------------------
// one gateway for the file, started at load so the probe can decide what to skip

const o = await startMock({ name: 'oai' });
const a = await startAnthropicMock({ name: 'ant' });
const gw = await startGateway({
  config: {
    providers: [
      { name: 'oai', provider: 'openai', base_url: o.baseUrl, apiKey: 'sk-oai-up', max_retries: 0,
        models: ['gpt-*'], model_map: { 'claude-haiku-*': 'gpt-4o-mini' } },
      { name: 'anthropic', provider: 'anthropic', base_url: a.origin, apiKey: 'sk-ant-up', max_retries: 0, models: ['claude-sonnet-*', 'claude-opus-*'] },
    ],
  },
});

after(async () => {
  await gw.stop();
  await o.close();
  await a.close();
});

const NOT_YET = /translation is not available yet/;

async function probe(path, body, headers) {
  try {
    const r = await request(gw.port, { method: 'POST', path, body: JSON.stringify(body), headers, timeout: 5000 });
    if (r.status === 400 && NOT_YET.test(r.text)) return 'translation not in this build yet';
    return false;
  } catch (e) {
    return false; // let the tests report it
  }
}
const SKIP_A2O = await probe('/anthropic/v1/messages', { model: 'oai/gpt-4o', max_tokens: 8, messages: [{ role: 'user', content: 'probe' }] }, { 'x-api-key': 'vk', 'anthropic-version': '2023-06-01' });
const SKIP_O2A = await probe('/v1/chat/completions', { model: 'anthropic/claude-sonnet-4-5', messages: [{ role: 'user', content: 'probe' }] }, { authorization: 'Bearer vk' });
const cli = findClaude();
const SKIP_CLI = SKIP_A2O || (cli.bin ? false : cli.reason);

function resetAll() { o.reset(); a.reset(); }

/** Parse an Anthropic SSE body into [{ event, data }]. */
function parseAnthropicSSE(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    if (!block.trim()) continue;
    let event = null;
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    out.push({ event, data: data.length ? JSON.parse(data.join('\n')) : null });
  }
  return out;
}

const USER = [{ role: 'user', content: 'Hello' }];

// =============================================================================================
// Anthropic client → OpenAI-format provider

test('A→O raw: system hoisted, Bearer key upstream, Anthropic message back (text, end_turn, usage)', { skip: SKIP_A2O }, async () => {
  resetAll();
  o.behave({ content: 'Bonjour from oai' });
  const r = await request(gw.port, {
    method: 'POST', path: '/anthropic/v1/messages',
    body: JSON.stringify({ model: 'oai/gpt-4o', max_tokens: 100, system: 'Be brief.', stop_sequences: ['\n\nHuman:'], messages: USER }),
    headers: { 'x-api-key': 'vk-client', 'anthropic-version': '2023-06-01' },
  });
  assert.equal(r.status, 200, show(r));
  assert.equal(r.headers['x-bifrost-provider'], 'oai/gpt-4o');
  const up = o.requests[0];
  assert.equal(up.url, '/v1/chat/completions');
  assert.equal(up.headers.authorization, 'Bearer sk-oai-up');
  assert.equal(up.headers['x-api-key'], undefined, 'an x-api-key went to the OpenAI upstream');
  assert.equal(up.json.model, 'gpt-4o');
  assert.equal(up.json.messages[0].role, 'system');
  assert.equal(textOf(up.json.messages[0].content), 'Be brief.');
  assert.equal(up.json.messages[1].role, 'user');
  assert.equal(textOf(up.json.messages[1].content), 'Hello');
  assert.equal(up.json.max_tokens ?? up.json.max_completion_tokens, 100);
  assert.deepEqual([up.json.stop].flat(), ['\n\nHuman:']);
  const j = r.json();
  assert.equal(j.type, 'message');
  assert.equal(j.role, 'assistant');
  assert.deepEqual(j.content, [{ type: 'text', text: 'Bonjour from oai' }]);
  assert.equal(j.stop_reason, 'end_turn');
  assert.equal(j.usage.input_tokens, 11);
  assert.equal(j.usage.output_tokens, 7);
});

test('A→O raw stream: message_start … text deltas … message_delta(end_turn, usage) … message_stop', { skip: SKIP_A2O }, async () => {
  resetAll();
  o.behave({ content: 'one two three four', chunks: 4 });
  const r = await request(gw.port, {
    method: 'POST', path: '/anthropic/v1/messages?beta=true',
    body: JSON.stringify({ model: 'oai/gpt-4o', max_tokens: 100, stream: true, messages: USER }),
    headers: { 'x-api-key': 'vk-client', 'anthropic-version': '2023-06-01' }, timeout: 8000,
  });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] || '', /^text\/event-stream/);
  assert.equal(o.requests[0].json.stream, true);
  assert.equal(o.requests[0].json.stream_options?.include_usage, true, 'usage not asked for: the stream cannot be billed');
  const evs = parseAnthropicSSE(r.text).filter((e) => e.event !== 'ping');
  const names = evs.map((e) => e.event);
  assert.equal(names[0], 'message_start', names.join(' '));
  assert.equal(names.at(-1), 'message_stop', names.join(' '));
  assert.equal(names.at(-2), 'message_delta', names.join(' '));
  for (const e of evs) assert.equal(e.data.type, e.event, JSON.stringify(e));
  const start = evs[0].data.message;
  assert.equal(start.role, 'assistant');
  assert.deepEqual(start.content, []);
  assert.equal(typeof start.usage?.input_tokens, 'number');
  const text = evs.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('');
  assert.equal(text, 'one two three four');
  assert.equal(evs.find((e) => e.event === 'content_block_start').data.content_block.type, 'text');
  assert.equal(names.filter((n) => n === 'content_block_start').length, names.filter((n) => n === 'content_block_stop').length);
  const md = evs.at(-2).data;
  assert.equal(md.delta.stop_reason, 'end_turn');
  assert.equal(md.usage.output_tokens, 7);
  assert.ok(!r.text.includes('[DONE]'), 'OpenAI [DONE] leaked into the Anthropic stream');
});

test('A→O raw stream with tool calls: tool_use block, input_json_delta fragments, stop_reason tool_use', { skip: SKIP_A2O }, async () => {
  resetAll();
  const args = { city: 'Paris', days: [1, 2], unit: 'c' };
  o.behave((rec) => openaiAnswer(rec, { content: 'Let me check.', toolCalls: [{ id: 'call_w1', name: 'get_weather', arguments: JSON.stringify(args) }] }));
  const tools = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const r = await request(gw.port, {
    method: 'POST', path: '/anthropic/v1/messages',
    body: JSON.stringify({ model: 'oai/gpt-4o', max_tokens: 100, stream: true, tools, tool_choice: { type: 'auto' }, messages: USER }),
    headers: { 'x-api-key': 'vk-client', 'anthropic-version': '2023-06-01' }, timeout: 8000,
  });
  assert.equal(r.status, 200, show(r));
  const up = o.requests[0].json;
  assert.deepEqual(up.tools, [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: tools[0].input_schema } }]);
  assert.equal(up.tool_choice, 'auto');
  const evs = parseAnthropicSSE(r.text).filter((e) => e.event !== 'ping');
  const starts = evs.filter((e) => e.event === 'content_block_start');
  assert.deepEqual(starts.map((e) => e.data.content_block.type), ['text', 'tool_use'], r.text);
  assert.deepEqual(starts.map((e) => e.data.index), [0, 1]);
  const tu = starts[1].data.content_block;
  assert.equal(tu.id, 'call_w1');
  assert.equal(tu.name, 'get_weather');
  const json = evs.filter((e) => e.event === 'content_block_delta' && e.data.index === 1).map((e) => {
    assert.equal(e.data.delta.type, 'input_json_delta');
    return e.data.delta.partial_json;
  }).join('');
  assert.deepEqual(JSON.parse(json), args);
  assert.equal(evs.find((e) => e.event === 'message_delta').data.delta.stop_reason, 'tool_use');
});

test('A→O: upstream OpenAI error comes back in the Anthropic error shape', { skip: SKIP_A2O }, async () => {
  resetAll();
  o.once({ status: 400, body: { error: { message: 'Invalid value for max_tokens', type: 'invalid_request_error', param: 'max_tokens', code: null } } });
  const r = await request(gw.port, {
    method: 'POST', path: '/anthropic/v1/messages',
    body: JSON.stringify({ model: 'oai/gpt-4o', max_tokens: 100, messages: USER }),
    headers: { 'x-api-key': 'vk-client', 'anthropic-version': '2023-06-01' },
  });
  assert.equal(r.status, 400, show(r));
  const j = JSON.parse(r.text);
  assert.equal(j.type, 'error', r.text);
  assert.equal(j.error.type, 'invalid_request_error');
  assert.match(j.error.message, /max_tokens/);
});

function anthropicSdk() {
  return new Anthropic({ baseURL: `http://127.0.0.1:${gw.port}/anthropic`, apiKey: 'vk-anything', maxRetries: 0, timeout: 10000 });
}

test('A→O SDK: messages.create and messages.stream', { skip: SKIP_A2O }, async () => {
  resetAll();
  o.behave({ content: 'The quick brown fox.', chunks: 5 });
  const client = anthropicSdk();
  const m = await client.messages.create({ model: 'oai/gpt-4o', max_tokens: 50, messages: USER });
  assert.equal(m.content[0].text, 'The quick brown fox.');
  assert.equal(m.stop_reason, 'end_turn');
  let text = '';
  const s = client.messages.stream({ model: 'oai/gpt-4o', max_tokens: 50, messages: USER });
  s.on('text', (d) => { text += d; });
  const final = await s.finalMessage();
  assert.equal(text, 'The quick brown fox.');
  assert.equal(final.content[0].text, 'The quick brown fox.');
  assert.equal(final.stop_reason, 'end_turn');
  assert.equal(final.usage.output_tokens, 7);
});

test('A→O SDK: tool round trip (tool_use from streamed tool_calls; tool_result → role "tool")', { skip: SKIP_A2O }, async () => {
  resetAll();
  o.behave(openaiScripted({ tool: 'get_weather', args: { city: 'Paris' }, id: 'call_weather_1' }));
  const client = anthropicSdk();
  const tools = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  const first = await client.messages.stream({ model: 'oai/gpt-4o', max_tokens: 100, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] }).finalMessage();
  assert.equal(first.stop_reason, 'tool_use');
  const tu = first.content.find((c) => c.type === 'tool_use');
  assert.ok(tu, JSON.stringify(first.content));
  assert.deepEqual([tu.id, tu.name, tu.input], ['call_weather_1', 'get_weather', { city: 'Paris' }]);
  const second = await client.messages.create({
    model: 'oai/gpt-4o', max_tokens: 100, tools,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: first.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: '18C sunny' }] },
    ],
  });
  assert.equal(second.content[0].text, 'TOOL RESULT: 18C sunny');
  const up = o.requests[1].json.messages;
  const asst = up.find((m) => m.role === 'assistant');
  assert.deepEqual(asst.tool_calls.map((t) => [t.id, t.type, t.function.name, JSON.parse(t.function.arguments)]), [['call_weather_1', 'function', 'get_weather', { city: 'Paris' }]]);
  const toolMsg = up.find((m) => m.role === 'tool');
  assert.equal(toolMsg.tool_call_id, 'call_weather_1');
  assert.equal(textOf(toolMsg.content), '18C sunny');
});

test('A→O SDK: thinking does not break a non-reasoning target (dropped or mapped to reasoning_effort)', { skip: SKIP_A2O }, async () => {
  resetAll();
  o.behave({ content: 'fine' });
  const m = await anthropicSdk().messages.create({ model: 'oai/gpt-4o', max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 }, messages: USER });
  assert.equal(m.content.find((c) => c.type === 'text')?.text, 'fine');
  assert.ok(!('thinking' in o.requests[0].json), 'an Anthropic thinking object was sent to an OpenAI upstream');
});

async function claudeRoundTrip({ baseUrl, model, upstreamModel }) {
  resetAll();
  o.behave(openaiScripted({ tool: 'Bash', args: { command: 'echo bifrost-tool-ok', description: 'Print a marker' }, id: 'call_cc_1' }));
  const r = await runClaude(cli.bin, { baseUrl, prompt: 'Run the marker command and report its output', model });
  const diag = () => `${r.show()}\n--- gateway log ---\n${gw.logLines().filter((l) => 'path' in l).slice(-10).map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''} ${l.error ?? ''}`).join('\n')}\n--- upstream ---\n${o.requests.map((q) => `${q.method} ${q.url} ${q.body.length}B`).join('\n')}`;
  assert.equal(r.code, 0, diag());
  const chats = o.requests.filter((q) => q.url.startsWith('/v1/chat/completions'));
  assert.ok(chats.length >= 2, diag());
  for (const q of chats) {
    assert.equal(q.json.model, upstreamModel);
    assert.equal(q.headers.authorization, 'Bearer sk-oai-up');
    assert.ok((q.json.tools || []).every((t) => t.type === 'function' && typeof t.function?.name === 'string'), 'tools not in the OpenAI form');
  }
  const withTool = chats.find((q) => q.json.messages?.some((m) => m.role === 'tool'));
  assert.ok(withTool, `the upstream never got the tool result\n${diag()}`);
  const toolMsg = withTool.json.messages.find((m) => m.role === 'tool');
  assert.equal(toolMsg.tool_call_id, 'call_cc_1');
  assert.match(stripReminders(textOf(toolMsg.content)), /^bifrost-tool-ok/);
  assert.match(r.stdout, /TOOL RESULT: bifrost-tool-ok/, diag());
}

test('A→O Claude Code -p via …/anthropic, --model oai/gpt-4o: Bash tool round trip through translation', { skip: SKIP_CLI, timeout: RUN_TIMEOUT_MS + 10_000 }, async () => {
  await claudeRoundTrip({ baseUrl: `${gw.url}/anthropic`, model: 'oai/gpt-4o', upstreamModel: 'gpt-4o' });
});

test('A→O Claude Code -p via the bare root, claude-haiku-4-5 mapped to gpt-4o-mini by model_map: tool round trip', { skip: SKIP_CLI, timeout: RUN_TIMEOUT_MS + 10_000 }, async () => {
  await claudeRoundTrip({ baseUrl: gw.url, model: 'claude-haiku-4-5', upstreamModel: 'gpt-4o-mini' });
});

// =============================================================================================
// OpenAI client → anthropic provider

function openaiSdk() {
  return new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'vk-anything', maxRetries: 0, timeout: 10000 });
}

test('O→A SDK: chat completion — system hoisted, max_tokens supplied, x-api-key upstream, chat.completion back', { skip: SKIP_O2A }, async () => {
  resetAll();
  a.behave({ text: 'Hello from ant', usage: { input_tokens: 20, output_tokens: 5, cache_read_input_tokens: 4, cache_creation_input_tokens: 0 } });
  const c = await openaiSdk().chat.completions.create({
    model: 'anthropic/claude-sonnet-4-5',
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
  });
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.choices[0].message.role, 'assistant');
  assert.equal(c.choices[0].message.content, 'Hello from ant');
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.usage.completion_tokens, 5);
  assert.ok(c.usage.prompt_tokens >= 20, JSON.stringify(c.usage));
  const up = a.requests[0];
  assert.equal(up.path, '/v1/messages');
  assert.equal(up.headers['x-api-key'], 'sk-ant-up');
  assert.equal(up.headers.authorization, undefined, 'the client Authorization leaked upstream');
  assert.equal(up.headers['anthropic-version'], '2023-06-01');
  assert.equal(up.json.model, 'claude-sonnet-4-5');
  assert.equal(anthText(up.json.system), 'Be brief.');
  assert.ok(up.json.messages.every((m) => m.role !== 'system'), 'a system message left in messages');
  assert.equal(anthText(up.json.messages[0].content), 'Hello');
  assert.equal(typeof up.json.max_tokens, 'number', 'Anthropic requires max_tokens');
});

test('O→A SDK: streamed — text chunks reassembled, finish_reason stop, usage only when asked', { skip: SKIP_O2A }, async () => {
  resetAll();
  a.behave({ text: 'Streaming the other way works.', textChunks: 4 });
  const client = openaiSdk();
  let text = '';
  let finish = null;
  for await (const chunk of await client.chat.completions.create({ model: 'anthropic/claude-sonnet-4-5', stream: true, messages: USER })) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.ok(chunk.choices.length > 0, `a usage chunk the client did not ask for: ${JSON.stringify(chunk)}`);
    text += chunk.choices[0].delta?.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, 'Streaming the other way works.');
  assert.equal(finish, 'stop');
  assert.equal(a.requests[0].json.stream, true);
  let last;
  for await (const chunk of await client.chat.completions.create({ model: 'anthropic/claude-sonnet-4-5', stream: true, stream_options: { include_usage: true }, messages: USER })) last = chunk;
  assert.deepEqual(last.choices, []);
  assert.equal(last.usage.completion_tokens, 9);
});

test('O→A SDK: tool call round trip (tool_use stream → tool_calls fragments; tool message → tool_result)', { skip: SKIP_O2A }, async () => {
  resetAll();
  a.behave(scripted({ tool: 'get_weather', input: { city: 'Paris', unit: 'c' }, id: 'toolu_01OA' }));
  const client = openaiSdk();
  const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
  const first = await client.chat.completions.stream({ model: 'anthropic/claude-sonnet-4-5', tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] }).finalChatCompletion();
  const msg = first.choices[0].message;
  assert.equal(first.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.tool_calls?.length, 1, JSON.stringify(msg));
  assert.equal(msg.tool_calls[0].id, 'toolu_01OA');
  assert.equal(msg.tool_calls[0].function.name, 'get_weather');
  assert.deepEqual(JSON.parse(msg.tool_calls[0].function.arguments), { city: 'Paris', unit: 'c' });
  const upTools = a.requests[0].json.tools;
  assert.deepEqual(upTools, [{ name: 'get_weather', description: 'Weather', input_schema: tools[0].function.parameters }]);

  const second = await client.chat.completions.create({
    model: 'anthropic/claude-sonnet-4-5', tools,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: msg.content ?? null, tool_calls: msg.tool_calls },
      { role: 'tool', tool_call_id: 'toolu_01OA', content: '18C sunny' },
    ],
  });
  assert.equal(second.choices[0].message.content, 'TOOL RESULT: 18C sunny');
  const up = a.requests[1].json;
  const asst = up.messages.find((m) => m.role === 'assistant');
  const tu = asst.content.find((c) => c.type === 'tool_use');
  assert.deepEqual([tu.id, tu.name, tu.input], ['toolu_01OA', 'get_weather', { city: 'Paris', unit: 'c' }]);
  const tr = toolResults(lastUserMessage(up));
  assert.equal(tr.length, 1, JSON.stringify(up.messages));
  assert.equal(tr[0].tool_use_id, 'toolu_01OA');
  const trText = typeof tr[0].content === 'string' ? tr[0].content : anthText(tr[0].content);
  assert.equal(trText, '18C sunny');
});

test('O→A: upstream Anthropic error comes back in the OpenAI error shape', { skip: SKIP_O2A }, async () => {
  resetAll();
  a.once({ status: 400, body: { type: 'error', error: { type: 'invalid_request_error', message: 'max_tokens: must be positive' } } });
  await assert.rejects(openaiSdk().chat.completions.create({ model: 'anthropic/claude-sonnet-4-5', messages: USER }), (err) => {
    assert.equal(err.status, 400, String(err));
    assert.match(err.message, /max_tokens/);
    assert.equal(typeof err.error?.message, 'string', JSON.stringify(err.error));
    return true;
  });
});
