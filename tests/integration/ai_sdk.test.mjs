// The Vercel AI SDK (`ai` + `@ai-sdk/openai`) through the gateway. Its default OpenAI provider
// model, `openai('model')`, speaks the Responses API (POST /v1/responses), so every call here
// reaches the gateway as /v1/responses (the SDK's fetch is recorded; the gateway's log line
// says the path) and is then
//   1. forwarded natively to an "openai"-kind provider (a mock speaking the Responses API
//      itself): the upstream body is the SDK's byte for byte but "model";
//   2. translated to Chat Completions for a Chat-only provider (kind "groq", tests/lib/mock.mjs)
//      or through Chat to the Messages API for an "anthropic" provider
//      (tests/lib/mock_anthropic.mjs): the upstream body carries the prompt, the answer and its
//      usage come back to the SDK;
//   3. a tool round trip (`tool()` with a zod schema, stopWhen: stepCountIs(…)) over the
//      translated Chat route: the mock asks for the tool, the SDK runs execute() and sends the
//      result back in a second /v1/responses request, which reaches Chat as a tool message;
//      generateText and streamText; and a step with text before the call (store:false, see
//      that test) to Chat and to Messages.
//
// Generated text and usage are checked as the SDK reports them (text, usage.inputTokens,
// usage.outputTokens, their details, totalTokens), with usages that differ per test.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, sleep } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { startAnthropicMock } from '../lib/mock_anthropic.mjs';
import { requestRecorder } from '../lib/record.mjs';

let createOpenAI, generateText, streamText, tool, stepCountIs, z;
try {
  ({ createOpenAI } = await import('@ai-sdk/openai'));
  ({ generateText, streamText, tool, stepCountIs } = await import('ai'));
  ({ z } = await import('zod'));
} catch (e) {
  throw new Error(`the AI SDK packages (ai, @ai-sdk/openai, zod) are not installed: run (cd tests && npm ci) — ${e.message}`);
}

const T = { timeout: 30000 }; // every test is bounded
const CALL_MS = 15000; // and every SDK call within it
const CLIENT_KEY = 'vk-ai-sdk-client-0001';
const OAI_KEY = 'sk-oai-aisdk-upstream-0001';
const GROQ_KEY = 'gsk-aisdk-upstream-0002';
const ANT_KEY = 'sk-ant-aisdk-upstream-0003';
const OAI_MODEL = 'oai/gpt-4.1';
const GROQ_MODEL = 'groqp/llama-3.3-70b-versatile';
const ANT_MODEL = 'antp/claude-sonnet-4-5';
const TEXT = 'The quick brown fox jumps over the lazy dog.';
const SYSTEM = 'Answer with the pangram. "Quotes" é 中文 stay.';

// ---------------------------------------------------------------------------------------------
// a Responses API upstream (the shape of responses.test.mjs's mock)

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

/** m.requests[i]: what arrived; m.sent[i]: { json } or { events }; m.once({ text, deltas, usage }). */
async function startResponsesMock(name) {
  const record = requestRecorder();
  const m = {
    name, requests: [], sent: [], _queue: [],
    once(b) { this._queue.push(b); return this; },
    reset() { this.requests.length = 0; this.sent.length = 0; this._queue.length = 0; },
  };
  const server = http.createServer({ keepAliveTimeout: 60000 }, async (req, res) => {
    const rec = await record(req);
    m.requests.push(rec);
    const b = m._queue.length ? m._queue.shift() : {};
    try {
      if (!(rec.method === 'POST' && rec.path === '/v1/responses' && rec.json)) {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: { message: `mock ${name}: no route ${rec.method} ${rec.url}`, type: 'invalid_request_error', code: null } }));
        return;
      }
      const n = m.requests.length;
      const id = `resp_${name}${String(n).padStart(4, '0')}67ccd2bed1ec8190b14f964abc0542670bb6a6b4`;
      const usage = usageObj(b.usage ?? { input_tokens: 36, output_tokens: 11 });
      const text = b.text ?? TEXT;
      if (rec.json.stream === true) {
        const evs = streamEvents({ id, model: rec.json.model, deltas: b.deltas ?? [text], usage, req: rec.json });
        m.sent.push({ events: evs });
        res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
        res.flushHeaders();
        for (const ev of evs) {
          await sleep(2);
          await new Promise((r) => res.write(`event: ${ev.name}\ndata: ${JSON.stringify(ev.data)}\n\n`, r));
        }
        res.end();
        return;
      }
      const json = responseObj({ id, model: rec.json.model, status: 'completed', output: [messageItem(`msg_${id.slice(5)}`, text)], usage, req: rec.json });
      const body = Buffer.from(JSON.stringify(json));
      m.sent.push({ json });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
      res.end(body);
    } catch { /* the gateway went away */ }
  });
  server.on('clientError', (err, sock) => sock.destroy());
  await new Promise((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', resolve); });
  m.baseUrl = `http://127.0.0.1:${server.address().port}/v1`;
  m.close = () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); });
  return m;
}

// ---------------------------------------------------------------------------------------------
// helpers

/** An AI SDK OpenAI provider pointed at the gateway, every request it sends recorded. */
function sdkProvider(port) {
  const sent = [];
  const provider = createOpenAI({
    baseURL: `http://127.0.0.1:${port}/v1`, apiKey: CLIENT_KEY,
    fetch: async (url, init) => {
      sent.push({ url: String(url), method: init?.method, body: init?.body });
      return fetch(url, init);
    },
  });
  return { provider, sent };
}

/** Common options of every SDK call: no retries (a failure is a failure), bounded. */
const bounded = () => ({ maxRetries: 0, abortSignal: AbortSignal.timeout(CALL_MS) });

/** The SDK sent exactly one request per call, each a POST to the gateway's /v1/responses. */
function assertSdkUsedResponses(sent, port, n) {
  assert.equal(sent.length, n, `the SDK sent ${sent.length} requests: ${sent.map((s) => s.url).join(', ')}`);
  for (const s of sent) {
    assert.equal(s.method, 'POST');
    assert.equal(s.url, `http://127.0.0.1:${port}/v1/responses`, 'the AI SDK did not use the Responses API');
    assert.equal(typeof s.body, 'string', 'the SDK did not send a string body');
  }
}

/** The upstream body is the SDK's, byte for byte, but the one "model" value. */
function assertForwardedNatively(up, sdkBody, from, to) {
  const needle = `"model":${JSON.stringify(from)}`;
  assert.equal(sdkBody.split(needle).length, 2, `expected exactly one ${needle} in ${sdkBody}`);
  const got = up.body.toString('utf8');
  const strip = (s) => { const j = JSON.parse(s); delete j.model; return j; };
  assert.deepEqual(strip(got), strip(sdkBody), 'the upstream body differs from the SDK\'s beyond "model"');
  assert.equal(up.json.model, to, 'upstream model');
  assert.equal(got, sdkBody.replace(needle, `"model":${JSON.stringify(to)}`), 'the upstream body is not byte-identical to the SDK\'s (model aside)');
}

/** The usage the SDK reports, as LanguageModelUsage fields. */
function sdkUsage(u) {
  return {
    inputTokens: u.inputTokens, outputTokens: u.outputTokens, totalTokens: u.totalTokens,
    cacheRead: u.inputTokenDetails?.cacheReadTokens, noCache: u.inputTokenDetails?.noCacheTokens,
    reasoning: u.outputTokenDetails?.reasoningTokens,
  };
}

/** The gateway's log lines for /v1/responses requests from line n0 on that pred accepts (waits for `count`). */
async function logLines(gw, n0, pred, count, what) {
  let got = [];
  for (let i = 0; i < 150; i++) {
    got = gw.logLines().slice(n0).filter((x) => x.path === '/v1/responses' && pred(x));
    if (got.length >= count) break;
    await sleep(20);
  }
  assert.equal(got.length, count, `log lines for ${what}: ${JSON.stringify(got)}\n${gw.output().slice(-3000)}`);
  return got;
}

/** Every log line of the gateway for this test: only /v1/responses (the SDK used nothing else;
 *  /health is the harness's readiness probe, whose line may land after before() returned). */
function assertOnlyResponsesLogged(gw, n0) {
  const paths = gw.logLines().slice(n0).filter((x) => typeof x.path === 'string' && x.path !== '/health').map((x) => x.path);
  assert.ok(paths.length > 0, `no request log lines\n${gw.output().slice(-2000)}`);
  assert.deepEqual([...new Set(paths)], ['/v1/responses'], `paths the gateway logged: ${paths.join(', ')}`);
}

/** Drain a streamText result: text from the deltas, the parts' types, errors collected. */
async function drain(result, errors) {
  const types = [];
  let deltas = 0;
  let text = '';
  for await (const p of result.fullStream) {
    types.push(p.type);
    if (p.type === 'text-delta') { deltas++; text += p.text; }
    if (p.type === 'error') errors.push(p.error);
  }
  return { types, deltas, text };
}

// ---------------------------------------------------------------------------------------------
// the gateway: oai (openai kind → Responses mock), groqp (groq → Chat mock), antp (anthropic mock)

let oa; let gq; let an; let gw;

before(async () => {
  oa = await startResponsesMock('oa');
  gq = await startMock({ name: 'gq' });
  an = await startAnthropicMock({ name: 'ant' });
  gw = await startGateway({
    config: {
      log_requests: true,
      providers: [
        { name: 'oai', provider: 'openai', apiKey: OAI_KEY, base_url: oa.baseUrl, models: ['gpt-*'], max_retries: 0 },
        { name: 'groqp', provider: 'groq', apiKey: GROQ_KEY, base_url: gq.baseUrl, models: ['llama-*'], max_retries: 0 },
        { name: 'antp', provider: 'anthropic', apiKey: ANT_KEY, base_url: an.baseUrl, models: ['claude-*'], max_retries: 0 },
      ],
    },
  });
});

after(async () => {
  await gw?.stop('SIGKILL');
  await oa?.close();
  await gq?.close();
  await an?.close();
});

function resetMocks() { oa.reset(); gq.reset(); an.reset(); }

// ---------------------------------------------------------------------------------------------
// 1. native: openai kind, the Responses API end to end

test('native: generateText(openai(…)) → POST /v1/responses, forwarded byte for byte but "model"; text and usage as the mock sent them', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const U = { input_tokens: 123, cached: 23, output_tokens: 45, reasoning: 6 };
  oa.once({ text: TEXT, usage: U });
  const { provider, sent } = sdkProvider(gw.port);
  const r = await generateText({
    model: provider(OAI_MODEL), system: SYSTEM, prompt: 'Say the pangram, please.',
    temperature: 0.2, maxOutputTokens: 100, ...bounded(),
  });
  assert.equal(r.text, TEXT);
  assert.equal(r.finishReason, 'stop');
  assert.deepEqual(sdkUsage(r.usage), { inputTokens: 123, outputTokens: 45, totalTokens: 168, cacheRead: 23, noCache: 100, reasoning: 6 });
  assert.equal(r.response.id, oa.sent[0].json.id, 'the response id is not the provider\'s');
  assert.equal(r.response.modelId, 'gpt-4.1');

  assertSdkUsedResponses(sent, gw.port, 1);
  const sdkBody = JSON.parse(sent[0].body);
  assert.ok(Array.isArray(sdkBody.input) && !('messages' in sdkBody), `not a Responses body: ${sent[0].body}`);
  assert.equal(oa.requests.length, 1);
  const up = oa.requests[0];
  assert.equal(up.method, 'POST');
  assert.equal(up.url, '/v1/responses');
  assert.equal(up.headers.authorization, `Bearer ${OAI_KEY}`);
  assert.ok(!JSON.stringify(up.rawHeaders).includes(CLIENT_KEY), 'the client credential reached the provider');
  assertForwardedNatively(up, sent[0].body, OAI_MODEL, 'gpt-4.1');
  assert.deepEqual(up.json.input, [{ role: 'system', content: SYSTEM }, { role: 'user', content: [{ type: 'input_text', text: 'Say the pangram, please.' }] }]);
  assert.equal(up.json.max_output_tokens, 100);
  assert.equal(up.json.temperature, 0.2);

  const [l] = await logLines(gw, n0, (x) => x.provider === OAI_MODEL, 1, 'the native generateText');
  assert.equal(l.status, 200, JSON.stringify(l));
  assert.equal(l.stream, false, JSON.stringify(l));
  assertOnlyResponsesLogged(gw, n0);
});

test('native: streamText(openai(…)) → POST /v1/responses with stream:true, forwarded but "model"; every delta, the text, the usage of response.completed', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const deltas = ['The quick ', 'brown fox ', 'jumps over ', 'the lazy ', 'dog.'];
  const U = { input_tokens: 77, cached: 7, output_tokens: 19, reasoning: 0 };
  oa.once({ deltas, usage: U });
  const { provider, sent } = sdkProvider(gw.port);
  const errors = [];
  const result = streamText({ model: provider(OAI_MODEL), prompt: 'Stream the pangram.', ...bounded(), onError: ({ error }) => errors.push(error) });
  const d = await drain(result, errors);
  assert.deepEqual(errors, [], `stream errors: ${errors.map(String).join('; ')}`);
  assert.equal(d.text, TEXT);
  assert.equal(d.deltas, deltas.length, `text-delta parts: ${d.types.join(',')}`);
  assert.equal(await result.text, TEXT);
  assert.equal(await result.finishReason, 'stop');
  assert.deepEqual(sdkUsage(await result.usage), { inputTokens: 77, outputTokens: 19, totalTokens: 96, cacheRead: 7, noCache: 70, reasoning: 0 });
  assert.equal((await result.response).id, oa.sent[0].events[0].data.response.id);

  assertSdkUsedResponses(sent, gw.port, 1);
  assert.equal(JSON.parse(sent[0].body).stream, true, sent[0].body);
  assert.equal(oa.requests.length, 1);
  const up = oa.requests[0];
  assert.equal(up.url, '/v1/responses');
  assert.equal(up.headers.authorization, `Bearer ${OAI_KEY}`);
  assertForwardedNatively(up, sent[0].body, OAI_MODEL, 'gpt-4.1');
  assert.ok(!('stream_options' in up.json), 'stream_options was added to a Responses request');

  const [l] = await logLines(gw, n0, (x) => x.provider === OAI_MODEL, 1, 'the native streamText');
  assert.equal(l.status, 200, JSON.stringify(l));
  assert.equal(l.stream, true, JSON.stringify(l));
  assertOnlyResponsesLogged(gw, n0);
});

// ---------------------------------------------------------------------------------------------
// 2. translated: a Chat-only provider (groq kind) and an Anthropic provider

const chatReqs = () => gq.requests.filter((q) => q.method === 'POST' && q.path === '/v1/chat/completions');
const msgReqs = () => an.requests.filter((q) => q.method === 'POST' && q.path === '/v1/messages');
const PROMPT_G = 'Which animal jumps? Answer "fox" or é 中文.';

test('translated to Chat (groq kind): generateText and streamText: the Chat body carries system + prompt, the text and the Chat usage reach the SDK', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const ANSWER = 'A fox — "quick" and brown. é 中文';
  gq.once({ content: ANSWER, usage: { prompt_tokens: 321, completion_tokens: 54, prompt_tokens_details: { cached_tokens: 21 } } });
  gq.once({ content: ANSWER, chunks: 4, chunkDelayMs: 2, usage: { prompt_tokens: 222, completion_tokens: 33 } });
  const { provider, sent } = sdkProvider(gw.port);

  const r = await generateText({ model: provider(GROQ_MODEL), system: SYSTEM, prompt: PROMPT_G, maxOutputTokens: 100, temperature: 0.3, ...bounded() });
  assert.equal(r.text, ANSWER);
  assert.equal(r.finishReason, 'stop');
  assert.deepEqual(sdkUsage(r.usage), { inputTokens: 321, outputTokens: 54, totalTokens: 375, cacheRead: 21, noCache: 300, reasoning: 0 });

  const errors = [];
  const s = streamText({ model: provider(GROQ_MODEL), system: SYSTEM, prompt: PROMPT_G, maxOutputTokens: 100, ...bounded(), onError: ({ error }) => errors.push(error) });
  const d = await drain(s, errors);
  assert.deepEqual(errors, [], `stream errors: ${errors.map(String).join('; ')}`);
  assert.equal(d.text, ANSWER);
  assert.equal(d.deltas, 4, `text-delta parts: ${d.types.join(',')}`);
  assert.equal(await s.finishReason, 'stop');
  assert.deepEqual(sdkUsage(await s.usage), { inputTokens: 222, outputTokens: 33, totalTokens: 255, cacheRead: 0, noCache: 222, reasoning: 0 });

  assertSdkUsedResponses(sent, gw.port, 2);
  assert.equal(gq.requests.length, 2, gq.requests.map((q) => q.url).join(', '));
  const reqs = chatReqs();
  assert.equal(reqs.length, 2, 'not translated to Chat Completions');
  const messages = [{ role: 'system', content: SYSTEM }, { role: 'user', content: [{ type: 'text', text: PROMPT_G }] }];
  for (const [i, q] of reqs.entries()) {
    assert.equal(q.headers.authorization, `Bearer ${GROQ_KEY}`);
    assert.ok(!JSON.stringify(q.rawHeaders).includes(CLIENT_KEY), 'the client credential reached the provider');
    assert.ok(q.json, `the Chat body is not JSON: ${q.body}`);
    assert.equal(q.json.model, 'llama-3.3-70b-versatile');
    assert.deepEqual(q.json.messages, messages, `Chat request ${i}: ${q.body}\nthe SDK's: ${sent[i].body}`);
    assert.equal(q.json.max_tokens, 100, q.body.toString());
  }
  assert.equal(reqs[0].json.temperature, 0.3);
  assert.ok(!('stream' in reqs[0].json), reqs[0].body.toString());
  assert.equal(reqs[1].json.stream, true);
  assert.deepEqual(reqs[1].json.stream_options, { include_usage: true });

  const ls = await logLines(gw, n0, (x) => x.provider === GROQ_MODEL, 2, 'the groq requests');
  assert.deepEqual(ls.map((l) => [l.status, l.stream]), [[200, false], [200, true]], JSON.stringify(ls));
  assertOnlyResponsesLogged(gw, n0);
});

test('translated to Messages (anthropic kind): generateText and streamText: the Messages body carries system + prompt, the text and the Anthropic usage reach the SDK', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const ANSWER = 'Claude says: the fox. "ok" é 中文';
  const U1 = { input_tokens: 400, output_tokens: 60, cache_read_input_tokens: 30, cache_creation_input_tokens: 0 };
  const U2 = { input_tokens: 250, output_tokens: 40, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  an.once({ text: ANSWER, usage: U1 });
  an.once({ text: ANSWER, textChunks: 3, eventDelayMs: 2, usage: U2 });
  const { provider, sent } = sdkProvider(gw.port);

  const r = await generateText({ model: provider(ANT_MODEL), system: SYSTEM, prompt: PROMPT_G, maxOutputTokens: 200, temperature: 0.4, ...bounded() });
  assert.equal(r.text, ANSWER);
  assert.equal(r.finishReason, 'stop');
  // every input token (fresh + cache read) is an input token, the cache reads are the cached ones
  assert.deepEqual(sdkUsage(r.usage), { inputTokens: 430, outputTokens: 60, totalTokens: 490, cacheRead: 30, noCache: 400, reasoning: 0 });

  const errors = [];
  const s = streamText({ model: provider(ANT_MODEL), system: SYSTEM, prompt: PROMPT_G, maxOutputTokens: 200, ...bounded(), onError: ({ error }) => errors.push(error) });
  const d = await drain(s, errors);
  assert.deepEqual(errors, [], `stream errors: ${errors.map(String).join('; ')}`);
  assert.equal(d.text, ANSWER);
  assert.equal(d.deltas, 3, `text-delta parts: ${d.types.join(',')}`);
  assert.equal(await s.finishReason, 'stop');
  assert.deepEqual(sdkUsage(await s.usage), { inputTokens: 250, outputTokens: 40, totalTokens: 290, cacheRead: 0, noCache: 250, reasoning: 0 });

  assertSdkUsedResponses(sent, gw.port, 2);
  assert.equal(an.requests.length, 2, an.summary());
  const reqs = msgReqs();
  assert.equal(reqs.length, 2, 'not translated to the Messages API');
  for (const [i, q] of reqs.entries()) {
    assert.equal(q.headers['x-api-key'], ANT_KEY);
    assert.equal(q.headers.authorization, undefined, 'an Authorization header reached Anthropic');
    assert.ok(!JSON.stringify(q.rawHeaders).includes(CLIENT_KEY), 'the client credential reached the provider');
    assert.ok(q.json, `the Messages body is not JSON: ${q.body}`);
    assert.equal(q.json.model, 'claude-sonnet-4-5');
    assert.equal(q.json.system, SYSTEM, `Messages request ${i}: ${q.body}`);
    assert.deepEqual(q.json.messages, [{ role: 'user', content: [{ type: 'text', text: PROMPT_G }] }], `Messages request ${i}: ${q.body}\nthe SDK's: ${sent[i].body}`);
    assert.equal(q.json.max_tokens, 200, q.body.toString());
  }
  assert.equal(reqs[0].json.temperature, 0.4);
  assert.ok(!('stream' in reqs[0].json), reqs[0].body.toString());
  assert.equal(reqs[1].json.stream, true);

  const ls = await logLines(gw, n0, (x) => x.provider === ANT_MODEL, 2, 'the anthropic requests');
  assert.deepEqual(ls.map((l) => [l.status, l.stream]), [[200, false], [200, true]], JSON.stringify(ls));
  assertOnlyResponsesLogged(gw, n0);
});

// ---------------------------------------------------------------------------------------------
// 3. a tool round trip over the translated Chat route

const CALL_ID = 'call_AiSdk7Qm2wXyZ0pLk';
const CALL_ARGS = '{"city":"Paris","unit":"celsius"}';
const TOOL_RESULT = { city: 'Paris', temperature: 18, unit: 'celsius', sky: 'sunny "clear" é' };
const FINAL = 'It is 18 °C and sunny in Paris.';

/** The Chat mock: no tool message yet → a get_weather call; a tool message → the final text. */
function weatherBehaviour(rec) {
  const msgs = Array.isArray(rec.json?.messages) ? rec.json.messages : [];
  if (msgs.some((m) => m?.role === 'tool')) {
    return { body: { id: 'chatcmpl-final', object: 'chat.completion', created: 1700000000, model: rec.json.model,
      choices: [{ index: 0, message: { role: 'assistant', content: FINAL }, logprobs: null, finish_reason: 'stop' }],
      usage: { prompt_tokens: 140, completion_tokens: 12, total_tokens: 152 } } };
  }
  return { body: { id: 'chatcmpl-call', object: 'chat.completion', created: 1700000000, model: rec.json?.model,
    choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: CALL_ARGS } }] },
      logprobs: null, finish_reason: 'tool_calls' }],
    usage: { prompt_tokens: 90, completion_tokens: 20, total_tokens: 110 } } };
}

test('tool round trip (translated Chat): tool() with a zod schema; the mock calls it, the SDK executes it and sends the result back; the final text; the 2nd Chat request carries the tool result', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  gq.behave(weatherBehaviour);
  const executed = [];
  const getWeather = tool({
    description: 'Current weather for a city',
    inputSchema: z.object({ city: z.string().describe('The city'), unit: z.enum(['celsius', 'fahrenheit']) }),
    execute: async (input, { toolCallId }) => { executed.push({ input, toolCallId }); return TOOL_RESULT; },
  });
  const { provider, sent } = sdkProvider(gw.port);
  let r;
  try {
    r = await generateText({
      model: provider(GROQ_MODEL), prompt: 'What is the weather in Paris?', tools: { get_weather: getWeather },
      stopWhen: stepCountIs(4), ...bounded(),
    });
  } finally { gq.behave({}); }

  // the SDK ran the tool once, with the mock's arguments, then got the final text
  assert.deepEqual(executed, [{ input: { city: 'Paris', unit: 'celsius' }, toolCallId: CALL_ID }]);
  assert.equal(r.text, FINAL);
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.steps.length, 2, `steps: ${r.steps.map((s) => s.finishReason).join(',')}`);
  assert.equal(r.steps[0].finishReason, 'tool-calls');
  assert.deepEqual(r.steps[0].toolCalls.map((c) => [c.toolCallId, c.toolName, c.input]), [[CALL_ID, 'get_weather', { city: 'Paris', unit: 'celsius' }]]);
  assert.deepEqual(r.steps[0].toolResults.map((t) => [t.toolCallId, t.output]), [[CALL_ID, TOOL_RESULT]]);
  assert.deepEqual(sdkUsage(r.steps[0].usage), { inputTokens: 90, outputTokens: 20, totalTokens: 110, cacheRead: 0, noCache: 90, reasoning: 0 });
  assert.deepEqual(sdkUsage(r.usage), { inputTokens: 140, outputTokens: 12, totalTokens: 152, cacheRead: 0, noCache: 140, reasoning: 0 });
  assert.equal(r.totalUsage.inputTokens, 230);
  assert.equal(r.totalUsage.outputTokens, 32);

  // two /v1/responses requests from the SDK; the second carries the call and its output
  assertSdkUsedResponses(sent, gw.port, 2);
  const sdk1 = JSON.parse(sent[0].body);
  const sdk2 = JSON.parse(sent[1].body);
  assert.equal(sdk1.tools?.[0]?.name, 'get_weather', sent[0].body);
  const out = sdk2.input.find((x) => x?.type === 'function_call_output');
  assert.ok(out, `no function_call_output in the SDK's second request: ${sent[1].body}`);
  assert.equal(out.call_id, CALL_ID);
  assert.deepEqual(JSON.parse(out.output), TOOL_RESULT);

  // upstream: two Chat requests; the first offers the tool (the SDK's JSON schema), the second
  // has the assistant's tool call and the tool message with the result
  const reqs = chatReqs();
  assert.equal(reqs.length, 2, `Chat requests: ${gq.requests.map((q) => q.url).join(', ')}`);
  for (const q of reqs) {
    assert.equal(q.headers.authorization, `Bearer ${GROQ_KEY}`);
    assert.equal(q.json.model, 'llama-3.3-70b-versatile');
    assert.equal(q.json.tools?.length, 1, q.body.toString());
    assert.equal(q.json.tools[0].type, 'function');
    assert.equal(q.json.tools[0].function.name, 'get_weather');
    assert.equal(q.json.tools[0].function.description, 'Current weather for a city');
    assert.deepEqual(q.json.tools[0].function.parameters, sdk1.tools[0].parameters, 'the zod schema did not reach Chat unchanged');
  }
  assert.deepEqual(reqs[0].json.tools[0].function.parameters.properties.unit, { type: 'string', enum: ['celsius', 'fahrenheit'] });
  assert.deepEqual(reqs[0].json.messages, [{ role: 'user', content: [{ type: 'text', text: 'What is the weather in Paris?' }] }], reqs[0].body.toString());
  const m2 = reqs[1].json.messages;
  assert.equal(m2.length, 3, `second Chat request: ${reqs[1].body}`);
  assert.deepEqual(m2[0], reqs[0].json.messages[0]);
  assert.equal(m2[1].role, 'assistant', JSON.stringify(m2[1]));
  assert.deepEqual(m2[1].tool_calls, [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: CALL_ARGS } }], JSON.stringify(m2[1]));
  assert.equal(m2[2].role, 'tool', JSON.stringify(m2[2]));
  assert.equal(m2[2].tool_call_id, CALL_ID, JSON.stringify(m2[2]));
  assert.equal(typeof m2[2].content, 'string', JSON.stringify(m2[2]));
  assert.deepEqual(JSON.parse(m2[2].content), TOOL_RESULT, 'the tool result did not reach the provider');
  assert.equal(m2[2].content, out.output, 'the tool result changed on the way');

  const ls = await logLines(gw, n0, (x) => x.provider === GROQ_MODEL, 2, 'the two tool steps');
  assert.deepEqual(ls.map((l) => l.status), [200, 200], JSON.stringify(ls));
  assertOnlyResponsesLogged(gw, n0);
});

/** A Chat mock behaviour streaming `chunks` (objects, then '[DONE]') as SSE, one event per write. */
function sseChat(chunks) {
  return {
    raw: async (sock) => {
      const w = (s) => new Promise((r) => sock.write(s, r));
      await w('HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n');
      for (const c of chunks) {
        const ev = Buffer.from(`data: ${typeof c === 'string' ? c : JSON.stringify(c)}\n\n`);
        await w(Buffer.concat([Buffer.from(`${ev.length.toString(16)}\r\n`), ev, Buffer.from('\r\n')]));
        await sleep(2);
      }
      await w('0\r\n\r\n');
    },
  };
}

test('streamed tool round trip (translated Chat): streamText with tool(); the call streamed in argument pieces, executed, the result sent back; the final text streamed', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const id = 'chatcmpl-streamcall';
  const ch = (delta, finish = null) => ({ id, object: 'chat.completion.chunk', created: 1700000000, model: 'llama-3.3-70b-versatile', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] });
  const pieces = ['{"city":', '"Paris","un', 'it":"celsius"}'];
  assert.equal(pieces.join(''), CALL_ARGS);
  const callChunks = [
    ch({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
    ...pieces.map((p) => ch({ tool_calls: [{ index: 0, function: { arguments: p } }] })),
    ch({}, 'tool_calls'),
    { id, object: 'chat.completion.chunk', created: 1700000000, model: 'llama-3.3-70b-versatile', choices: [], usage: { prompt_tokens: 90, completion_tokens: 20, total_tokens: 110 } },
    '[DONE]',
  ];
  gq.behave((rec) => ((rec.json?.messages ?? []).some((m) => m?.role === 'tool')
    ? { content: FINAL, chunks: 3, usage: { prompt_tokens: 140, completion_tokens: 12 } }
    : sseChat(callChunks)));
  const executed = [];
  const getWeather = tool({
    description: 'Current weather for a city',
    inputSchema: z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']) }),
    execute: async (input, { toolCallId }) => { executed.push({ input, toolCallId }); return TOOL_RESULT; },
  });
  const { provider, sent } = sdkProvider(gw.port);
  const errors = [];
  let d;
  let s;
  try {
    s = streamText({ model: provider(GROQ_MODEL), prompt: 'What is the weather in Paris?', tools: { get_weather: getWeather },
      stopWhen: stepCountIs(4), ...bounded(), onError: ({ error }) => errors.push(error) });
    d = await drain(s, errors);
  } finally { gq.behave({}); }
  assert.deepEqual(errors, [], `stream errors: ${errors.map(String).join('; ')}`);
  assert.deepEqual(executed, [{ input: { city: 'Paris', unit: 'celsius' }, toolCallId: CALL_ID }]);
  assert.equal(d.text, FINAL);
  assert.equal(d.deltas, 3, `parts: ${d.types.join(',')}`);
  assert.ok(d.types.includes('tool-call') && d.types.includes('tool-result'), `parts: ${d.types.join(',')}`);
  assert.ok(d.types.filter((t) => t === 'tool-input-delta').length >= 1, `the arguments did not stream: ${d.types.join(',')}`);
  const steps = await s.steps;
  assert.equal(steps.length, 2);
  assert.equal(steps[0].finishReason, 'tool-calls');
  assert.deepEqual(steps[0].toolCalls.map((c) => [c.toolCallId, c.toolName, c.input]), [[CALL_ID, 'get_weather', { city: 'Paris', unit: 'celsius' }]]);
  assert.equal(await s.finishReason, 'stop');
  assert.deepEqual(sdkUsage(steps[0].usage), { inputTokens: 90, outputTokens: 20, totalTokens: 110, cacheRead: 0, noCache: 90, reasoning: 0 });
  assert.deepEqual(sdkUsage(await s.usage), { inputTokens: 140, outputTokens: 12, totalTokens: 152, cacheRead: 0, noCache: 140, reasoning: 0 });
  assert.equal((await s.totalUsage).inputTokens, 230);

  assertSdkUsedResponses(sent, gw.port, 2);
  for (const x of sent) assert.equal(JSON.parse(x.body).stream, true, x.body);
  const out = JSON.parse(sent[1].body).input.find((x) => x?.type === 'function_call_output');
  assert.ok(out, `no function_call_output in the SDK's second request: ${sent[1].body}`);
  const reqs = chatReqs();
  assert.equal(reqs.length, 2);
  for (const q of reqs) {
    assert.equal(q.json.stream, true);
    assert.deepEqual(q.json.stream_options, { include_usage: true });
  }
  const m2 = reqs[1].json.messages;
  assert.equal(m2.length, 3, `second Chat request: ${reqs[1].body}`);
  assert.deepEqual(m2[1].tool_calls, [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: CALL_ARGS } }], JSON.stringify(m2[1]));
  assert.equal(m2[2].role, 'tool', JSON.stringify(m2[2]));
  assert.equal(m2[2].tool_call_id, CALL_ID, JSON.stringify(m2[2]));
  assert.equal(m2[2].content, out.output, 'the tool result changed on the way');
  assert.deepEqual(JSON.parse(m2[2].content), TOOL_RESULT);

  const ls = await logLines(gw, n0, (x) => x.provider === GROQ_MODEL, 2, 'the two streamed tool steps');
  assert.deepEqual(ls.map((l) => [l.status, l.stream]), [[200, true], [200, true]], JSON.stringify(ls));
  assertOnlyResponsesLogged(gw, n0);
});

// With the SDK's default store (true), a step whose answer had text before the tool call makes
// the SDK send that text back as {"type":"item_reference","id":"msg_…"}, which a stateless
// translation cannot resolve: the gateway leaves the reference out (next test).
// providerOptions.openai.store = false makes the SDK send the text itself; then the text and
// the call reach the provider together.
test('text + tool call in one step (store:false), translated to Chat and to Messages: the 2nd upstream request has the assistant text, the call and the tool result', T, async () => {
  resetMocks();
  const n0 = gw.logLines().length;
  const PRE = 'Let me check the weather.';
  const ANT_ID = 'toolu_01AiSdkWeather';
  gq.behave((rec) => ((rec.json?.messages ?? []).some((m) => m?.role === 'tool')
    ? { content: FINAL, usage: { prompt_tokens: 50, completion_tokens: 10 } }
    : { body: { id: 'chatcmpl-textcall', object: 'chat.completion', created: 1700000000, model: rec.json?.model,
      choices: [{ index: 0, message: { role: 'assistant', content: PRE, tool_calls: [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: CALL_ARGS } }] }, logprobs: null, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 40, completion_tokens: 15, total_tokens: 55 } } }));
  an.behave((rec) => {
    const last = rec.json?.messages?.at(-1);
    const hasResult = Array.isArray(last?.content) && last.content.some((c) => c?.type === 'tool_result');
    return hasResult ? { text: FINAL } : { text: PRE, toolUse: { id: ANT_ID, name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } } };
  });
  const executed = [];
  const getWeather = tool({
    description: 'Current weather for a city',
    inputSchema: z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']) }),
    execute: async (input, { toolCallId }) => { executed.push({ input, toolCallId }); return TOOL_RESULT; },
  });
  const { provider, sent } = sdkProvider(gw.port);
  try {
    for (const model of [GROQ_MODEL, ANT_MODEL]) {
      const r = await generateText({ model: provider(model), prompt: 'What is the weather in Paris?', tools: { get_weather: getWeather },
        stopWhen: stepCountIs(4), providerOptions: { openai: { store: false } }, ...bounded() });
      assert.equal(r.text, FINAL, model);
      assert.equal(r.steps.length, 2, model);
      assert.equal(r.steps[0].text, PRE, model);
    }
  } finally { gq.behave({}); an.behave({}); }
  assert.deepEqual(executed, [{ input: { city: 'Paris', unit: 'celsius' }, toolCallId: CALL_ID }, { input: { city: 'Paris', unit: 'celsius' }, toolCallId: ANT_ID }]);
  assertSdkUsedResponses(sent, gw.port, 4);
  for (const x of sent) assert.ok(!x.body.includes('item_reference'), x.body);

  // Chat: the assistant message carries the text and the call, then the tool message
  const c = chatReqs();
  assert.equal(c.length, 2);
  assert.deepEqual(c[1].json.messages.slice(1), [
    { role: 'assistant', content: PRE, tool_calls: [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: CALL_ARGS } }] },
    { role: 'tool', tool_call_id: CALL_ID, content: JSON.parse(sent[1].body).input.find((x) => x.type === 'function_call_output').output },
  ], c[1].body.toString());
  assert.deepEqual(JSON.parse(c[1].json.messages[2].content), TOOL_RESULT);

  // Messages: the assistant turn has the text and the tool_use, the user turn the tool_result
  const m = msgReqs();
  assert.equal(m.length, 2, an.summary());
  const [, asst, user] = m[1].json.messages;
  assert.equal(m[1].json.messages.length, 3, m[1].body.toString());
  assert.equal(asst.role, 'assistant');
  assert.deepEqual(asst.content, [{ type: 'text', text: PRE }, { type: 'tool_use', id: ANT_ID, name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } }], m[1].body.toString());
  assert.equal(user.role, 'user');
  const tr = user.content.filter((x) => x.type === 'tool_result');
  assert.equal(tr.length, 1, m[1].body.toString());
  assert.equal(tr[0].tool_use_id, ANT_ID);
  const trText = typeof tr[0].content === 'string' ? tr[0].content : tr[0].content.map((x) => x.text).join('');
  assert.deepEqual(JSON.parse(trText), TOOL_RESULT, 'the tool result did not reach Anthropic');

  const ls = await logLines(gw, n0, (x) => x.provider === GROQ_MODEL || x.provider === ANT_MODEL, 4, 'the four steps');
  assert.deepEqual(ls.map((l) => l.status), [200, 200, 200, 200], JSON.stringify(ls));
  assertOnlyResponsesLogged(gw, n0);
});

test('text + tool call in one step with the SDK default store: the item_reference to the earlier text is left out, the tool loop completes on Chat and on Messages', T, async () => {
  resetMocks();
  const PRE = 'Let me check the weather.';
  const ANT_ID = 'toolu_01AiSdkDefault';
  gq.behave((rec) => ((rec.json?.messages ?? []).some((m) => m?.role === 'tool')
    ? { content: FINAL, usage: { prompt_tokens: 50, completion_tokens: 10 } }
    : { body: { id: 'chatcmpl-textcall2', object: 'chat.completion', created: 1700000000, model: rec.json?.model,
      choices: [{ index: 0, message: { role: 'assistant', content: PRE, tool_calls: [{ id: CALL_ID, type: 'function', function: { name: 'get_weather', arguments: CALL_ARGS } }] }, logprobs: null, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 40, completion_tokens: 15, total_tokens: 55 } } }));
  an.behave((rec) => {
    const last = rec.json?.messages?.at(-1);
    const hasResult = Array.isArray(last?.content) && last.content.some((c) => c?.type === 'tool_result');
    return hasResult ? { text: FINAL } : { text: PRE, toolUse: { id: ANT_ID, name: 'get_weather', input: { city: 'Paris', unit: 'celsius' } } };
  });
  const executed = [];
  const getWeather = tool({
    description: 'Current weather for a city',
    inputSchema: z.object({ city: z.string(), unit: z.enum(['celsius', 'fahrenheit']) }),
    execute: async (input, { toolCallId }) => { executed.push(toolCallId); return TOOL_RESULT; },
  });
  const { provider, sent } = sdkProvider(gw.port);
  try {
    for (const model of [GROQ_MODEL, ANT_MODEL]) {
      const r = await generateText({ model: provider(model), prompt: 'What is the weather in Paris?', tools: { get_weather: getWeather },
        stopWhen: stepCountIs(4), ...bounded() });
      assert.equal(r.text, FINAL, model);
      assert.equal(r.steps.length, 2, model);
    }
  } finally { gq.behave({}); an.behave({}); }
  assert.deepEqual(executed, [CALL_ID, ANT_ID]);
  assert.ok(sent.some((x) => x.body.includes('"item_reference"')), 'the SDK did not send an item_reference: the case is not exercised');
  const c = chatReqs();
  assert.deepEqual(c.at(-1).json.messages.slice(1).map((m) => [m.role, m.tool_calls?.[0]?.id ?? m.tool_call_id ?? null]),
    [['assistant', CALL_ID], ['tool', CALL_ID]], c.at(-1).body.toString());
  const m = msgReqs();
  const asst = m.at(-1).json.messages[1];
  assert.deepEqual(asst.content.map((x) => x.type), ['tool_use'], m.at(-1).body.toString());
  assert.equal(m.at(-1).json.messages[2].content.filter((x) => x.type === 'tool_result')[0]?.tool_use_id, ANT_ID);
});
