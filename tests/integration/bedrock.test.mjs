// AWS Bedrock as an upstream (clients → gateway → Bedrock), against tests/lib/mock_bedrock.mjs:
// a bedrock-runtime that verifies SigV4 exactly like AWS (recomputed over the bytes received),
// answers InvokeModel / InvokeModelWithResponseStream (Anthropic bodies, eventstream frames
// carrying base64 Anthropic events) and Converse / ConverseStream.
//
//   1. the mock itself, checked with the official AWS SDK and @smithy/signature-v4
//   2. Anthropic clients (raw and @anthropic-ai/sdk) and OpenAI clients (raw and the openai SDK)
//      to us.anthropic.* models: /invoke and /invoke-with-response-stream
//   3. credentials: session token, a wrong secret, a Bedrock API key, the AWS_* environment,
//      "env.NAME" fields
//   4. eventstream robustness: frames split across writes, a bad CRC, exceptions before and
//      after the first event, HTTP 429 → failover
//   5. time to first byte (and the gateway's added TTFB, printed for the README)
//   6. usage and cost under governance
//   7. Converse (meta.* models) for Anthropic and OpenAI clients, tool calls included
//
// Every assertion about what the gateway did looks at the bytes that reached the mock.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, request, show, sleep, errorBody } from '../lib/gateway.mjs';
import { startAnthropicMock } from '../lib/mock_anthropic.mjs';
import {
  startBedrockMock, signRequest, decodeFrames, SIGNATURE_MISMATCH, BAD_TOKEN,
} from '../lib/mock_bedrock.mjs';
import { costMicros, usage as readUsage, entity, quiet } from '../lib/usage.mjs';

let Anthropic, OpenAI, BR, NodeHttpHandler;
try {
  ({ default: Anthropic } = await import('@anthropic-ai/sdk'));
  ({ default: OpenAI } = await import('openai'));
  BR = await import('@aws-sdk/client-bedrock-runtime');
  ({ NodeHttpHandler } = await import('@smithy/node-http-handler'));
} catch (e) {
  throw new Error(`a test dependency is missing: run (cd tests && npm ci) — ${e.message}`);
}

const AKID = 'AKIDEXAMPLE';
const SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY';
const MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const ENC = 'us.anthropic.claude-sonnet-4-5-20250929-v1%3A0';
const INVOKE = `/model/${ENC}/invoke`;
const INVOKE_STREAM = `/model/${ENC}/invoke-with-response-stream`;
const LLAMA = 'meta.llama3-70b-instruct-v1:0';
const LLAMA_ENC = 'meta.llama3-70b-instruct-v1%3A0';
const NO_CIRCUIT = { failures: 1000000, cooldown_ms: 1000 };
const TEXT = 'The quick brown fox jumps over the lazy dog — ünïcödé ✓ 🦊.';
const WEATHER_TOOL = {
  name: 'get_weather',
  description: 'Current weather for a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const TOOL_CALL = { id: 'toolu_bdrk_01WeatherParis', name: 'get_weather', input: { city: 'Paris', units: 'celsius' } };

let br; // SigV4, no session token, us-east-1
let ant; // an Anthropic-native fallback
let gw; // br + ant
let gwf; // br + ant, with the top-level "fallbacks": ["ant/claude-sonnet-4-5"]
const started = [];

/** A Bedrock provider entry for mock m. */
function brProvider(m, extra = {}) {
  return {
    name: 'br', provider: 'bedrock', region: m.region, access_key_id: AKID, secret_access_key: SECRET,
    base_url: m.origin, models: ['anthropic.*', 'us.anthropic.*', 'meta.*'], max_retries: 0, ...extra,
  };
}

async function gateway(config, opts = {}) {
  const g = await startGateway({ config: { circuit_breaker: NO_CIRCUIT, log_requests: true, ...config }, ...opts });
  started.push(g);
  return g;
}

before(async () => {
  br = await startBedrockMock({ name: 'br', accessKeyId: AKID, secretAccessKey: SECRET });
  ant = await startAnthropicMock({ name: 'ant' });
  started.push(br, ant);
  gw = await gateway({
    providers: [
      brProvider(br),
      { name: 'ant', provider: 'anthropic', base_url: ant.origin, apiKey: 'sk-ant-fallback', models: ['claude-*'], max_retries: 0 },
    ],
  });
  gwf = await gateway({
    providers: [
      brProvider(br),
      { name: 'ant', provider: 'anthropic', base_url: ant.origin, apiKey: 'sk-ant-fallback', models: ['claude-*'], max_retries: 0 },
    ],
    fallbacks: ['ant/claude-sonnet-4-5'],
  });
});

after(async () => {
  for (const x of started.reverse()) await (x.stop ? x.stop('SIGKILL') : x.close());
});

function resetAll() { br.reset(); ant.reset(); }

// ---------------------------------------------------------------------------------------------
// helpers

/** POST /v1/messages (object or exact string) with a client key Bedrock must never see. */
function messages(port, body, { headers = {}, path = '/v1/messages', timeout = 8000 } = {}) {
  return request(port, {
    method: 'POST', path, timeout, body: typeof body === 'string' ? body : JSON.stringify(body),
    headers: { 'x-api-key': 'vk-client-secret', 'anthropic-version': '2023-06-01', ...headers },
  });
}

/** POST /v1/chat/completions with a client bearer Bedrock must never see. */
function chat(port, body, { headers = {}, timeout = 8000 } = {}) {
  return request(port, {
    method: 'POST', path: '/v1/chat/completions', timeout, body: JSON.stringify(body),
    headers: { authorization: 'Bearer vk-client-secret', ...headers },
  });
}

/** A streamed POST on a fresh connection; every SSE event with its arrival time (ms since the send). */
function streamPost(port, path, body, { headers = {}, timeoutMs = 10000, agent = false } = {}) {
  return new Promise((resolve, reject) => {
    const payload = typeof body === 'string' ? body : JSON.stringify(body);
    const out = { events: [], ended: false, chunks: [] };
    let t0;
    let buf = '';
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path, agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload), 'x-api-key': 'vk-client-secret', 'anthropic-version': '2023-06-01', authorization: 'Bearer vk-client-secret', ...headers },
    }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      out.tHead = Date.now() - t0;
      res.setEncoding('utf8');
      res.on('data', (d) => {
        const t = Date.now() - t0;
        out.chunks.push({ t, d });
        buf += d;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const raw = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const ev = { raw, t, event: null, data: null };
          for (const line of raw.split('\n')) {
            if (line.startsWith('event:')) ev.event = line.slice(6).trim();
            else if (line.startsWith('data:')) ev.data = (ev.data === null ? '' : `${ev.data}\n`) + line.slice(5).replace(/^ /, '');
          }
          if (ev.event === null && ev.data === null) continue; // a comment (ping)
          try { ev.json = JSON.parse(ev.data); } catch { ev.json = undefined; }
          out.events.push(ev);
        }
      });
      res.on('end', () => { out.ended = true; finish(); });
      res.on('close', finish);
      res.on('error', finish);
    });
    let done = false;
    const timer = setTimeout(() => { out.timedOut = true; req.destroy(); finish(); }, timeoutMs);
    function finish() {
      if (done) return;
      done = true;
      clearTimeout(timer);
      out.text = out.chunks.map((c) => c.d).join('');
      out.rest = buf;
      resolve(out);
    }
    req.on('error', (e) => { if (out.status === undefined) { clearTimeout(timer); reject(e); } else finish(); });
    t0 = Date.now();
    req.end(payload);
  });
}

const showStream = (s) => `status ${s.status}, events ${JSON.stringify(s.events.map((e) => e.event ?? e.data?.slice(0, 60)))}, text ${JSON.stringify(s.text.slice(0, 1500))}`;

/** The Anthropic content reassembled from SSE events: [{type:'text',text}|{type:'tool_use',id,name,input}] */
function anthropicBlocks(events) {
  const blocks = [];
  const partial = [];
  for (const e of events) {
    const j = e.json;
    if (!j) continue;
    if (j.type === 'content_block_start') {
      blocks[j.index] = { ...j.content_block };
      partial[j.index] = '';
    } else if (j.type === 'content_block_delta') {
      if (j.delta.type === 'text_delta') blocks[j.index].text += j.delta.text;
      else if (j.delta.type === 'input_json_delta') partial[j.index] += j.delta.partial_json;
    } else if (j.type === 'content_block_stop') {
      if (blocks[j.index].type === 'tool_use') blocks[j.index].input = partial[j.index] === '' ? {} : JSON.parse(partial[j.index]);
    }
  }
  return blocks;
}

/** OpenAI chunks reassembled: { content, toolCalls: [{id,name,arguments}], finish, usage, chunks, done } */
function openaiStream(events) {
  const out = { content: '', toolCalls: [], finish: null, usage: null, chunks: [], done: false, errors: [] };
  for (const e of events) {
    if (e.data === '[DONE]') { out.done = true; continue; }
    const j = e.json;
    if (!j) continue;
    if (j.error) { out.errors.push(j.error); continue; }
    out.chunks.push(j);
    if (j.usage) out.usage = j.usage;
    for (const c of j.choices || []) {
      if (c.delta?.content) out.content += c.delta.content;
      for (const tc of c.delta?.tool_calls || []) {
        const t = out.toolCalls[tc.index] ?? (out.toolCalls[tc.index] = { id: null, name: '', arguments: '' });
        if (tc.id) t.id = tc.id;
        if (tc.function?.name) t.name += tc.function.name;
        if (tc.function?.arguments) t.arguments += tc.function.arguments;
      }
      if (c.finish_reason) out.finish = c.finish_reason;
    }
  }
  return out;
}

/** What every Bedrock request must look like: the path, a signature that verifies, no client credential. */
function assertSigned(rec, path, what = '') {
  assert.ok(rec, `${what}: no request reached the Bedrock mock`);
  assert.equal(rec.method, 'POST', what);
  assert.equal(rec.path, path, `${what}: the model id must be percent-encoded in the path (":" → "%3A")`);
  assert.ok(rec.auth.ok, `${what}: the mock refused the signature: ${rec.auth.type}: ${rec.auth.message}\n  authorization: ${rec.headers.authorization}\n  x-amz-date: ${rec.headers['x-amz-date']}`);
  assert.equal(rec.auth.mode, 'sigv4', what);
  for (const h of ['x-api-key', 'anthropic-version', 'anthropic-beta']) assert.equal(rec.headers[h], undefined, `${what}: the client's ${h} header reached Bedrock`);
  assert.ok(!JSON.stringify(rec.headers).includes('vk-client-secret'), `${what}: the client's key reached Bedrock: ${JSON.stringify(rec.headers)}`);
}

/** An /invoke body: Anthropic Messages without model and stream, with anthropic_version. */
function assertInvokeBody(rec, what = '') {
  const j = rec.json;
  assert.ok(j && typeof j === 'object', `${what}: body is not JSON: ${rec.body.slice(0, 300)}`);
  assert.equal(j.anthropic_version, 'bedrock-2023-05-31', `${what}: anthropic_version: ${rec.body}`);
  assert.ok(!('model' in j), `${what}: "model" in an /invoke body: ${rec.body}`);
  assert.ok(!('stream' in j), `${what}: "stream" in an /invoke body: ${rec.body}`);
  assert.ok(!('fallbacks' in j), `${what}: "fallbacks" reached Bedrock: ${rec.body}`);
  assert.ok(Number.isInteger(j.max_tokens), `${what}: max_tokens: ${rec.body}`);
}

/** Wait for the gateway's request log line for `path` written after line index `from`. */
async function logLine(g, from, pred = () => true, timeoutMs = 3000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const lines = g.logLines().slice(from).filter((l) => 'attempts' in l && pred(l));
    if (lines.length) return lines[lines.length - 1];
    if (Date.now() > until) assert.fail(`no request log line after #${from}; stdout tail:\n${g.stdout.slice(-6).join('\n')}\nstderr tail:\n${g.stderr.slice(-6).join('\n')}`);
    await sleep(20);
  }
}
/**
 * The index after which the next request's log line will come. Log lines are written in
 * batches, so a line of an earlier request may still be on its way: a GET /<tag> (a 404,
 * logged) goes first, and once its line is out every earlier one is (one worker, in order).
 */
let markSeq = 0;
async function logMark(g) {
  const tag = `bedrock-test-mark-${++markSeq}`;
  await request(g.port, { path: `/${tag}` });
  const until = Date.now() + 3000;
  for (;;) {
    const lines = g.logLines();
    const i = lines.findIndex((l) => l.path === `/${tag}`);
    if (i >= 0) return i + 1;
    if (Date.now() > until) return lines.length;
    await sleep(10);
  }
}

function sdkClient(m, creds = {}) {
  return new BR.BedrockRuntimeClient({
    endpoint: m.origin, region: m.region, maxAttempts: 1,
    credentials: { accessKeyId: AKID, secretAccessKey: SECRET, ...creds },
    requestHandler: new NodeHttpHandler(), // the mock speaks HTTP/1.1 (the client's default is HTTP/2)
  });
}

/** Send exact bytes (headers given, raw path) to a mock. */
function sendRaw(port, { method = 'POST', path, headers, body }) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const c = [];
      res.on('data', (d) => c.push(d));
      res.on('end', () => { const b = Buffer.concat(c); resolve({ status: res.statusCode, headers: res.headers, body: b, text: b.toString('utf8') }); });
    });
    r.on('error', reject);
    r.end(body);
  });
}

const invokeBody = (extra = {}) => JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], ...extra });

// ---------------------------------------------------------------------------------------------
// 1. the mock itself

test('mock: the official SDK talks to it (InvokeModel, InvokeModelWithResponseStream, Converse, ConverseStream, session token)', async () => {
  const m = await startBedrockMock({ name: 'sdk', region: 'eu-central-1', accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN//+=' });
  started.push(m);
  const c = sdkClient(m, { sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN//+=' });
  const body = invokeBody();

  m.behave({ text: TEXT, usage: { input_tokens: 11, output_tokens: 7 } });
  const r1 = await c.send(new BR.InvokeModelCommand({ modelId: MODEL, body, contentType: 'application/json', accept: 'application/json' }));
  const msg = JSON.parse(Buffer.from(r1.body).toString('utf8'));
  assert.equal(msg.type, 'message');
  assert.deepEqual(msg.content, [{ type: 'text', text: TEXT }]);
  assert.equal(msg.usage.input_tokens, 11);
  assert.equal(msg.model, 'claude-sonnet-4-5-20250929');
  assert.equal(m.requests[0].path, INVOKE, 'the SDK percent-encodes ":"');
  assert.ok(m.requests[0].auth.ok, m.summary());
  assert.ok(m.requests[0].auth.signedHeaders.includes('x-amz-security-token'));

  m.behave({ text: TEXT, toolUse: TOOL_CALL, split: true });
  const r2 = await c.send(new BR.InvokeModelWithResponseStreamCommand({ modelId: MODEL, body, contentType: 'application/json' }));
  const evs = [];
  for await (const ev of r2.body) {
    assert.ok(ev.chunk, `not a chunk: ${JSON.stringify(ev)}`);
    evs.push({ json: JSON.parse(Buffer.from(ev.chunk.bytes).toString('utf8')) });
  }
  assert.deepEqual(evs.map((e) => e.json.type), m.sent.at(-1).frames.map((f) => f.event));
  assert.equal(evs[0].json.type, 'message_start');
  assert.equal(evs.at(-1).json.type, 'message_stop');
  assert.equal(evs.at(-1).json['amazon-bedrock-invocationMetrics'].outputTokenCount, 8);
  assert.deepEqual(anthropicBlocks(evs), [{ type: 'text', text: TEXT }, { type: 'tool_use', id: TOOL_CALL.id, name: TOOL_CALL.name, input: TOOL_CALL.input }]);

  m.behave({ text: 'Sunny.', toolUse: TOOL_CALL, usage: { input_tokens: 30, output_tokens: 5 } });
  const r3 = await c.send(new BR.ConverseCommand({
    modelId: LLAMA,
    system: [{ text: 'Be brief.' }],
    messages: [{ role: 'user', content: [{ text: 'Weather in Paris?' }] }],
    inferenceConfig: { maxTokens: 100, temperature: 0.3, topP: 0.9, stopSequences: ['END'] },
    toolConfig: { tools: [{ toolSpec: { name: 'get_weather', description: 'weather', inputSchema: { json: WEATHER_TOOL.input_schema } } }] },
  }));
  assert.deepEqual(r3.output.message, { role: 'assistant', content: [{ text: 'Sunny.' }, { toolUse: { toolUseId: TOOL_CALL.id, name: TOOL_CALL.name, input: TOOL_CALL.input } }] });
  assert.equal(r3.stopReason, 'tool_use');
  assert.deepEqual(r3.usage, { inputTokens: 30, outputTokens: 5, totalTokens: 35 });
  assert.equal(typeof r3.metrics.latencyMs, 'number');
  assert.equal(m.requests.at(-1).path, `/model/${LLAMA_ENC}/converse`);
  assert.deepEqual(m.requests.at(-1).json.inferenceConfig, { maxTokens: 100, temperature: 0.3, topP: 0.9, stopSequences: ['END'] });

  const r4 = await c.send(new BR.ConverseStreamCommand({ modelId: LLAMA, messages: [{ role: 'user', content: [{ text: 'Weather?' }] }], toolConfig: { tools: [{ toolSpec: { name: 'get_weather', inputSchema: { json: { type: 'object' } } } }] } }));
  const kinds = [];
  let text = '';
  let toolInput = '';
  let meta;
  for await (const ev of r4.stream) {
    const k = Object.keys(ev)[0];
    kinds.push(k);
    if (k === 'contentBlockDelta' && ev.contentBlockDelta.delta.text) text += ev.contentBlockDelta.delta.text;
    if (k === 'contentBlockDelta' && ev.contentBlockDelta.delta.toolUse) toolInput += ev.contentBlockDelta.delta.toolUse.input;
    if (k === 'contentBlockStart') assert.deepEqual(ev.contentBlockStart.start.toolUse, { toolUseId: TOOL_CALL.id, name: TOOL_CALL.name });
    if (k === 'metadata') meta = ev.metadata;
  }
  assert.equal(kinds[0], 'messageStart');
  assert.deepEqual(kinds.slice(-2), ['messageStop', 'metadata']);
  assert.ok(kinds.includes('contentBlockStart') && kinds.includes('contentBlockStop'));
  assert.equal(text, 'Sunny.');
  assert.deepEqual(JSON.parse(toolInput), TOOL_CALL.input);
  assert.deepEqual(meta.usage, { inputTokens: 30, outputTokens: 5, totalTokens: 35 });

  // errors as the SDK sees them
  m.behave({ status: 429 });
  await assert.rejects(c.send(new BR.InvokeModelCommand({ modelId: MODEL, body })), (e) => e.name === 'ThrottlingException' && e.$metadata.httpStatusCode === 429 && /Too many requests/.test(e.message));
  m.behave({ exception: { type: 'throttlingException', afterEvents: 2 } });
  const r5 = await c.send(new BR.InvokeModelWithResponseStreamCommand({ modelId: MODEL, body }));
  let n = 0;
  await assert.rejects((async () => { for await (const ev of r5.body) { assert.ok(ev.chunk); n++; } })(), (e) => e.name === 'ThrottlingException');
  assert.equal(n, 2, 'two events before the exception');
  m.behave({ badCrc: true });
  const r6 = await c.send(new BR.InvokeModelWithResponseStreamCommand({ modelId: MODEL, body }));
  await assert.rejects((async () => { for await (const ev of r6.body) assert.ok(ev); })(), /checksum/);
  m.behave({});
  await assert.rejects(sdkClient(m, { secretAccessKey: 'wrong', sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN//+=' }).send(new BR.InvokeModelCommand({ modelId: MODEL, body })),
    (e) => e.name === 'InvalidSignatureException' && e.$metadata.httpStatusCode === 403 && e.message === SIGNATURE_MISMATCH);
  await assert.rejects(sdkClient(m, {}).send(new BR.InvokeModelCommand({ modelId: MODEL, body })),
    (e) => e.name === 'UnrecognizedClientException' && e.message === BAD_TOKEN, 'a missing session token');
  await assert.rejects(new BR.BedrockRuntimeClient({ endpoint: m.origin, region: 'us-west-2', maxAttempts: 1, requestHandler: new NodeHttpHandler(), credentials: { accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: 'FwoGZXIvYXdzEXAMPLETOKEN//+=' } })
    .send(new BR.InvokeModelCommand({ modelId: MODEL, body })), (e) => e.name === 'InvalidSignatureException' && /region/.test(e.message), 'the wrong region');
  await m.close();
});

test('mock: the SigV4 verifier passes a request signed by @smithy/signature-v4 and refuses a tampered body, path, date, header, an old date', async () => {
  br.reset();
  const body = invokeBody();
  const ok = await br.sign({ path: INVOKE, body, headers: { 'content-type': 'application/json', accept: 'application/json' } });
  const r = await sendRaw(br.port, { path: INVOKE, headers: ok, body });
  assert.equal(r.status, 200, r.text);

  const cases = {
    'a tampered body': { path: INVOKE, headers: ok, body: body.replace('"hi"', '"ho"') },
    'a tampered path': { path: INVOKE_STREAM, headers: ok, body },
    'the path not double-encoded by the signer (":" sent raw)': { path: `/model/${MODEL}/invoke`, headers: ok, body },
    'a tampered x-amz-date': { path: INVOKE, headers: { ...ok, 'x-amz-date': ok['x-amz-date'].replace(/(\d)Z$/, (x, d) => `${(+d + 1) % 10}Z`) }, body },
    'a tampered signed header': { path: INVOKE, headers: { ...ok, accept: '*/*' }, body },
    'a wrong secret': { path: INVOKE, headers: await signRequest({ origin: br.origin, path: INVOKE, body, accessKeyId: AKID, secretAccessKey: `${SECRET}x` }), body },
    'the wrong service': { path: INVOKE, headers: await signRequest({ origin: br.origin, path: INVOKE, body, accessKeyId: AKID, secretAccessKey: SECRET, service: 'bedrock-runtime' }), body },
  };
  for (const [what, req] of Object.entries(cases)) {
    const x = await sendRaw(br.port, req);
    assert.equal(x.status, 403, `${what}: ${x.text}`);
    assert.equal(x.headers['x-amzn-errortype'], 'InvalidSignatureException', what);
    assert.equal(typeof JSON.parse(x.text).message, 'string', what);
    if (/tampered|wrong secret|raw/.test(what)) assert.equal(JSON.parse(x.text).message, SIGNATURE_MISMATCH, what);
  }
  const old = await br.sign({ path: INVOKE, body, date: new Date(Date.now() - 6 * 60 * 1000) });
  const x = await sendRaw(br.port, { path: INVOKE, headers: old, body });
  assert.equal(x.status, 403);
  assert.match(JSON.parse(x.text).message, /^Signature expired: \d{8}T\d{6}Z is now earlier than/);
  const wrongKey = await signRequest({ origin: br.origin, path: INVOKE, body, accessKeyId: 'AKIDOTHER', secretAccessKey: SECRET });
  const y = await sendRaw(br.port, { path: INVOKE, headers: wrongKey, body });
  assert.equal(y.status, 403);
  assert.equal(y.headers['x-amzn-errortype'], 'UnrecognizedClientException');
  const withSha = await br.sign({ path: INVOKE, body, contentSha256: true });
  assert.equal((await sendRaw(br.port, { path: INVOKE, headers: withSha, body })).status, 200, 'x-amz-content-sha256 signed');
  const z = await sendRaw(br.port, { path: INVOKE, headers: { 'content-type': 'application/json' }, body });
  assert.equal(z.status, 403, 'no Authorization');

  // the signer itself against AWS's published SigV4 test vectors (get-vanilla, post-vanilla)
  for (const [method, sig] of [['GET', '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'], ['POST', '5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b']]) {
    const h = await signRequest({ host: 'example.amazonaws.com', method, path: '/', body: '', accessKeyId: AKID, secretAccessKey: SECRET, service: 'service', date: new Date('2015-08-30T12:36:00Z') });
    assert.equal(h.authorization, `AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=${sig}`, `${method}-vanilla`);
  }
});

test('mock: bodies are validated like Bedrock (model/stream refused, anthropic_version required; Converse shapes)', async () => {
  br.reset();
  const send = async (path, obj) => {
    const body = JSON.stringify(obj);
    return sendRaw(br.port, { path, headers: await br.sign({ path, body }), body });
  };
  const base = { anthropic_version: 'bedrock-2023-05-31', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] };
  for (const [what, obj, re] of [
    ['model', { ...base, model: MODEL }, /extraneous key \[model\]/],
    ['stream', { ...base, stream: true }, /extraneous key \[stream\]/],
    ['no anthropic_version', { max_tokens: 5, messages: base.messages }, /required key \[anthropic_version\]/],
    ['no max_tokens', { anthropic_version: 'bedrock-2023-05-31', messages: base.messages }, /required key \[max_tokens\]/],
  ]) {
    const r = await send(INVOKE, obj);
    assert.equal(r.status, 400, what);
    assert.equal(r.headers['x-amzn-errortype'], 'ValidationException', what);
    assert.match(JSON.parse(r.text).message, re, what);
  }
  const conv = `/model/${LLAMA_ENC}/converse`;
  for (const [what, obj] of [
    ['a Messages body', { max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }],
    ['string content', { messages: [{ role: 'user', content: 'x' }] }],
    ['two user turns', { messages: [{ role: 'user', content: [{ text: 'a' }] }, { role: 'user', content: [{ text: 'b' }] }] }],
    ['blank text', { messages: [{ role: 'user', content: [{ text: '' }] }] }],
    ['toolUse without toolConfig', { messages: [{ role: 'user', content: [{ text: 'a' }] }, { role: 'assistant', content: [{ toolUse: { toolUseId: 't', name: 'n', input: {} } }] }, { role: 'user', content: [{ toolResult: { toolUseId: 't', content: [{ text: 'r' }] } }] }] }],
    ['OpenAI-style inferenceConfig', { messages: [{ role: 'user', content: [{ text: 'a' }] }], inferenceConfig: { max_tokens: 5 } }],
  ]) {
    const r = await send(conv, obj);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.headers['x-amzn-errortype'], 'ValidationException', what);
  }
  assert.equal((await send(conv, { messages: [{ role: 'user', content: [{ text: 'a' }] }], system: [{ text: 's' }], inferenceConfig: { maxTokens: 5 } })).status, 200);
});

// ---------------------------------------------------------------------------------------------
// 2. Anthropic and OpenAI clients → /invoke, /invoke-with-response-stream

test('Anthropic client, non-streamed → POST /model/us.anthropic…%3A0/invoke: signed, Bedrock body, anthropic-beta as anthropic_beta; native answer', async () => {
  resetAll();
  br.behave({ text: TEXT, usage: { input_tokens: 31, output_tokens: 17 } });
  const body = {
    model: `br/${MODEL}`, max_tokens: 256, system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
    temperature: 0.25, stop_sequences: ['STOP'], messages: [{ role: 'user', content: [{ type: 'text', text: 'Say the pangram' }] }],
    thinking: { type: 'enabled', budget_tokens: 1024 },
  };
  const r = await messages(gw.port, body, { headers: { 'anthropic-beta': 'interleaved-thinking-2025-05-14,context-1m-2025-08-07' } });
  assert.equal(r.status, 200, show(r));
  assert.equal(br.requests.length, 1, br.summary());
  const rec = br.requests[0];
  assertSigned(rec, INVOKE, 'non-streamed');
  assertInvokeBody(rec, 'non-streamed');
  assert.deepEqual(rec.json.anthropic_beta, ['interleaved-thinking-2025-05-14', 'context-1m-2025-08-07'], `anthropic_beta: ${rec.body}`);
  for (const k of ['max_tokens', 'system', 'temperature', 'stop_sequences', 'messages', 'thinking']) assert.deepEqual(rec.json[k], body[k], `${k} changed on the way: ${rec.body}`);
  assert.match(rec.headers['content-type'] || '', /^application\/json/, 'content-type');
  const j = r.json();
  const sent = JSON.parse(br.sent[0].body);
  assert.equal(j.type, 'message');
  assert.equal(j.role, 'assistant');
  assert.equal(j.id, sent.id);
  assert.deepEqual(j.content, [{ type: 'text', text: TEXT }]);
  assert.equal(j.stop_reason, 'end_turn');
  assert.equal(j.usage.input_tokens, 31);
  assert.equal(j.usage.output_tokens, 17);
  assert.equal(r.headers['x-bifrost-provider'], `br/${MODEL}`);

  // the bare model id, routed by the provider's "models" globs; no anthropic-beta → no anthropic_beta
  const r2 = await messages(gw.port, { model: MODEL, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r2.status, 200, show(r2));
  assertSigned(br.requests[1], INVOKE, 'bare model id');
  assertInvokeBody(br.requests[1], 'bare model id');
  assert.ok(!('anthropic_beta' in br.requests[1].json) || br.requests[1].json.anthropic_beta.length === 0, br.requests[1].body);
  assert.equal(r2.headers['x-bifrost-provider'], `br/${MODEL}`);
});

test('Anthropic client, streamed → /invoke-with-response-stream: the SSE events in order, text intact, stream and model not sent', async () => {
  resetAll();
  br.behave({ text: TEXT, textChunks: 5, usage: { input_tokens: 40, output_tokens: 12 } });
  const s = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'stream it' }] },
    { headers: { 'anthropic-beta': 'fine-grained-tool-streaming-2025-05-14' } });
  assert.equal(s.status, 200, showStream(s));
  assert.match(s.headers['content-type'] || '', /^text\/event-stream/, 'content-type');
  const rec = br.requests[0];
  assertSigned(rec, INVOKE_STREAM, 'streamed');
  assertInvokeBody(rec, 'streamed');
  assert.deepEqual(rec.json.anthropic_beta, ['fine-grained-tool-streaming-2025-05-14']);
  const names = s.events.map((e) => e.event);
  assert.deepEqual(names, br.sent[0].frames.map((f) => f.event), `the client's events are not Bedrock's, in order: ${showStream(s)}`);
  assert.deepEqual(names, ['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
  for (const e of s.events) {
    assert.ok(e.json, `event data is not JSON: ${e.raw}`);
    assert.equal(e.json.type, e.event, `event: ${e.event} carries type ${e.json.type}`);
  }
  assert.deepEqual(anthropicBlocks(s.events), [{ type: 'text', text: TEXT }]);
  assert.equal(s.events[0].json.message.usage.input_tokens, 40);
  assert.equal(s.events.at(-2).json.usage.output_tokens, 12);
  assert.equal(s.events.at(-2).json.delta.stop_reason, 'end_turn');
  assert.ok(s.ended, 'the stream did not end');
});

test('Anthropic SDK: messages.create, beta.messages.create and messages.stream with a tool_use round trip', async () => {
  resetAll();
  const client = new Anthropic({ baseURL: gw.url, apiKey: 'vk-client-secret', maxRetries: 0, timeout: 10000 });
  br.behave({ text: 'Let me check.', toolUse: TOOL_CALL, usage: { input_tokens: 50, output_tokens: 20 } });
  const tools = [WEATHER_TOOL];
  const user = { role: 'user', content: 'What is the weather in Paris?' };
  const m1 = await client.messages.create({ model: `br/${MODEL}`, max_tokens: 200, tools, tool_choice: { type: 'auto' }, messages: [user] });
  assert.equal(m1.stop_reason, 'tool_use');
  assert.deepEqual(m1.content, [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', ...TOOL_CALL }]);
  assertSigned(br.requests[0], INVOKE, 'SDK create');
  assertInvokeBody(br.requests[0], 'SDK create');
  assert.deepEqual(br.requests[0].json.tools, tools);
  assert.deepEqual(br.requests[0].json.tool_choice, { type: 'auto' });

  // the tool result goes back as the client wrote it
  br.behave({ text: 'It is 18 °C and sunny in Paris.' });
  const turn2 = [user, { role: 'assistant', content: m1.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: TOOL_CALL.id, content: '18 °C, sunny' }] }];
  const m2 = await client.messages.create({ model: `br/${MODEL}`, max_tokens: 200, tools, messages: turn2 });
  assert.deepEqual(m2.content, [{ type: 'text', text: 'It is 18 °C and sunny in Paris.' }]);
  assertSigned(br.requests[1], INVOKE, 'SDK tool_result');
  assert.deepEqual(br.requests[1].json.messages, turn2);

  // beta.messages.create: the betas travel as anthropic-beta (and /v1/messages?beta=true)
  const m3 = await client.beta.messages.create({ model: `br/${MODEL}`, max_tokens: 20, betas: ['context-1m-2025-08-07'], messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(m3.type, 'message');
  assertSigned(br.requests[2], INVOKE, 'SDK beta');
  assert.deepEqual(br.requests[2].json.anthropic_beta, ['context-1m-2025-08-07']);

  // streamed, with the tool call
  br.behave({ text: 'Checking.', toolUse: { ...TOOL_CALL, fragments: 5 }, usage: { input_tokens: 50, output_tokens: 20 } });
  const stream = client.messages.stream({ model: `br/${MODEL}`, max_tokens: 200, tools, messages: [user] });
  const seen = [];
  stream.on('streamEvent', (e) => seen.push(e.type));
  const fin = await stream.finalMessage();
  assertSigned(br.requests[3], INVOKE_STREAM, 'SDK stream');
  assertInvokeBody(br.requests[3], 'SDK stream');
  assert.deepEqual(fin.content, [{ type: 'text', text: 'Checking.' }, { type: 'tool_use', ...TOOL_CALL }]);
  assert.equal(fin.stop_reason, 'tool_use');
  assert.equal(fin.usage.output_tokens, 20);
  assert.deepEqual(seen, br.sent[3].frames.map((f) => f.event));
});

test('OpenAI client, non-streamed → /invoke: chat.completion; the request translated to a Bedrock Messages body', async () => {
  resetAll();
  br.behave({ text: TEXT, usage: { input_tokens: 23, output_tokens: 9 } });
  const r = await chat(gw.port, {
    model: `br/${MODEL}`, max_tokens: 77, temperature: 0.5, stop: ['END'],
    messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: 'Say the pangram' }],
  });
  assert.equal(r.status, 200, show(r));
  const rec = br.requests[0];
  assertSigned(rec, INVOKE, 'chat');
  assertInvokeBody(rec, 'chat');
  assert.equal(rec.json.max_tokens, 77);
  assert.equal(rec.json.temperature, 0.5);
  assert.deepEqual(rec.json.stop_sequences, ['END']);
  const sys = typeof rec.json.system === 'string' ? rec.json.system : rec.json.system?.map((b) => b.text).join('');
  assert.equal(sys, 'You are terse.', `system: ${rec.body}`);
  assert.equal(rec.json.messages.length, 1, rec.body);
  assert.equal(rec.json.messages[0].role, 'user');
  const ut = rec.json.messages[0].content;
  assert.equal(typeof ut === 'string' ? ut : ut.map((b) => b.text).join(''), 'Say the pangram');
  const j = r.json();
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.choices.length, 1);
  assert.equal(j.choices[0].message.role, 'assistant');
  assert.equal(j.choices[0].message.content, TEXT);
  assert.equal(j.choices[0].finish_reason, 'stop');
  assert.deepEqual({ p: j.usage.prompt_tokens, c: j.usage.completion_tokens, t: j.usage.total_tokens }, { p: 23, c: 9, t: 32 });
  assert.equal(r.headers['x-bifrost-provider'], `br/${MODEL}`);
});

test('OpenAI client, streamed → /invoke-with-response-stream: chunks, [DONE]; a usage chunk only with stream_options.include_usage', async () => {
  resetAll();
  br.behave({ text: TEXT, textChunks: 4, usage: { input_tokens: 23, output_tokens: 9 } });
  const s = await streamPost(gw.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, messages: [{ role: 'user', content: 'stream' }] });
  assert.equal(s.status, 200, showStream(s));
  assertSigned(br.requests[0], INVOKE_STREAM, 'chat stream');
  assertInvokeBody(br.requests[0], 'chat stream');
  const o = openaiStream(s.events);
  assert.equal(o.content, TEXT, showStream(s));
  assert.equal(o.finish, 'stop');
  assert.ok(o.done, `no [DONE]: ${showStream(s)}`);
  assert.equal(s.events.at(-1).data, '[DONE]');
  assert.equal(o.usage, null, 'a usage chunk the client did not ask for');
  for (const c of o.chunks) assert.equal(c.object, 'chat.completion.chunk');
  assert.equal(new Set(o.chunks.map((c) => c.id)).size, 1, 'one id for every chunk');

  const s2 = await streamPost(gw.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream' }] });
  assert.equal(s2.status, 200, showStream(s2));
  assertInvokeBody(br.requests[1], 'chat stream with usage');
  const o2 = openaiStream(s2.events);
  assert.equal(o2.content, TEXT);
  assert.ok(o2.done);
  assert.ok(o2.usage, `no usage chunk: ${showStream(s2)}`);
  assert.deepEqual({ p: o2.usage.prompt_tokens, c: o2.usage.completion_tokens, t: o2.usage.total_tokens }, { p: 23, c: 9, t: 32 });
});

test('openai SDK: create, stream and a tool call through Bedrock', async () => {
  resetAll();
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'vk-client-secret', maxRetries: 0, timeout: 10000 });
  br.behave({ text: TEXT, usage: { input_tokens: 5, output_tokens: 6 } });
  const c = await client.chat.completions.create({ model: `br/${MODEL}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.choices[0].message.content, TEXT);
  assert.equal(c.usage.total_tokens, 11);
  assertSigned(br.requests[0], INVOKE, 'SDK create');

  const st = await client.chat.completions.create({ model: `br/${MODEL}`, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] });
  let text = '';
  let u = null;
  for await (const ch of st) { text += ch.choices[0]?.delta?.content ?? ''; if (ch.usage) u = ch.usage; }
  assert.equal(text, TEXT);
  assert.equal(u?.completion_tokens, 6);
  assertSigned(br.requests[1], INVOKE_STREAM, 'SDK stream');

  br.behave({ text: '', toolUse: TOOL_CALL });
  const tools = [{ type: 'function', function: { name: 'get_weather', description: WEATHER_TOOL.description, parameters: WEATHER_TOOL.input_schema } }];
  const t = await client.chat.completions.create({ model: `br/${MODEL}`, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  const rec = br.requests[2];
  assertInvokeBody(rec, 'SDK tools');
  assert.deepEqual(rec.json.tools?.map((x) => ({ name: x.name, input_schema: x.input_schema })), [{ name: 'get_weather', input_schema: WEATHER_TOOL.input_schema }], rec.body);
  assert.equal(t.choices[0].finish_reason, 'tool_calls');
  const call = t.choices[0].message.tool_calls?.[0];
  assert.equal(call?.id, TOOL_CALL.id, JSON.stringify(t));
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), TOOL_CALL.input);

  br.behave({ text: 'Sunny.' });
  const t2 = await client.chat.completions.create({
    model: `br/${MODEL}`, tools,
    messages: [{ role: 'user', content: 'Weather in Paris?' }, t.choices[0].message, { role: 'tool', tool_call_id: TOOL_CALL.id, content: '18 °C' }],
  });
  assert.equal(t2.choices[0].message.content, 'Sunny.');
  const msgs = br.requests[3].json.messages;
  assert.equal(msgs.length, 3, br.requests[3].body);
  assert.deepEqual(msgs[1].content.find((b) => b.type === 'tool_use'), { type: 'tool_use', ...TOOL_CALL });
  const tr = msgs[2].content.find((b) => b.type === 'tool_result');
  assert.equal(tr?.tool_use_id, TOOL_CALL.id, br.requests[3].body);
});

// ---------------------------------------------------------------------------------------------
// 3. credentials

test('session_token: x-amz-security-token is sent and signed', async () => {
  const TOKEN = 'IQoJb3JpZ2luX2VjEXAMPLE/session+token==';
  const m = await startBedrockMock({ name: 'tok', accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN });
  started.push(m);
  const g = await gateway({ providers: [brProvider(m, { session_token: TOKEN })] });
  const r = await messages(g.port, { model: `br/${MODEL}`, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200, `${show(r)}\n${m.summary()}`);
  const rec = m.requests[0];
  assertSigned(rec, INVOKE, 'session token');
  assert.equal(rec.headers['x-amz-security-token'], TOKEN);
  assert.ok(rec.auth.signedHeaders.includes('x-amz-security-token'), `signed: ${rec.auth.signedHeaders}`);
  const s = await streamPost(g.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(s.status, 200, showStream(s));
  assertSigned(m.requests[1], INVOKE_STREAM, 'session token, stream');
  assert.equal(s.events.at(-1)?.event, 'message_stop', showStream(s));
  await g.stop();
});

test('a wrong secret: the mock\'s 403 reaches the Anthropic client as {"type":"error"} and the OpenAI client as {"error"}, not retried', async () => {
  const m = await startBedrockMock({ name: 'wrong', accessKeyId: AKID, secretAccessKey: SECRET });
  started.push(m);
  const g = await gateway({ providers: [brProvider(m, { secret_access_key: 'not-the-secret' })] });
  const from = await logMark(g);
  const r = await messages(g.port, { model: `br/${MODEL}`, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(m.requests.length, 1, m.summary());
  assert.equal(m.requests[0].auth.type, 'InvalidSignatureException');
  assert.equal(r.status, 403, show(r));
  let j;
  try { j = r.json(); } catch { assert.fail(`not JSON: ${show(r)}`); }
  assert.equal(j.type, 'error', show(r));
  assert.equal(typeof j.error?.type, 'string', show(r));
  assert.match(j.error.message, /signature/i, `the AWS message should reach the client: ${show(r)}`);
  const line = await logLine(g, from, (l) => l.path === '/v1/messages');
  assert.equal(line.status, 403, JSON.stringify(line));

  const c = await chat(g.port, { model: `br/${MODEL}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.status, 403, show(c));
  const e = errorBody(c);
  assert.match(e.message, /signature/i, show(c));
  const s = await streamPost(g.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(s.status, 403, `a stream refused before its first event gets the status: ${showStream(s)}`);
  assert.equal(m.requests.length, 3, `one request each, no retries: ${m.summary()}`);
  await g.stop();
});

test('apiKey: a Bedrock API key goes as Authorization: Bearer, without any SigV4 header', async () => {
  const KEY = 'ABSKQmVkcm9ja0FQSUtleS1leGFtcGxlOnNlY3JldA==';
  const m = await startBedrockMock({ name: 'key', apiKey: KEY });
  started.push(m);
  const g = await gateway({ providers: [{ name: 'br', provider: 'bedrock', region: 'us-east-1', apiKey: KEY, base_url: m.origin, models: ['us.anthropic.*'], max_retries: 0 }] });
  const r = await messages(g.port, { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200, `${show(r)}\n${m.summary()}`);
  const s = await streamPost(g.port, '/v1/messages', { model: MODEL, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(s.status, 200, showStream(s));
  assert.equal(m.requests.length, 2);
  for (const [i, path] of [[0, INVOKE], [1, INVOKE_STREAM]]) {
    const rec = m.requests[i];
    assert.equal(rec.path, path);
    assert.equal(rec.headers.authorization, `Bearer ${KEY}`);
    assert.ok(rec.auth.ok);
    assertInvokeBody(rec, 'apiKey');
    for (const h of ['x-amz-security-token', 'x-amz-content-sha256', 'x-api-key']) assert.equal(rec.headers[h], undefined, `${h} sent with an API key`);
  }
  // last, as the least harmful: an API-key request carries no SigV4 header at all (Bedrock
  // ignores an unsigned X-Amz-Date, but it belongs to SigV4 and says nothing here)
  for (const rec of m.requests) assert.equal(rec.headers['x-amz-date'], undefined, 'x-amz-date sent with an API key (a SigV4 header)');
  await g.stop();
});

test('credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION) and from "env.NAME" fields', async () => {
  const m = await startBedrockMock({ name: 'env', region: 'eu-west-3', accessKeyId: 'AKIDFROMENV', secretAccessKey: 'env/secret+key', sessionToken: 'env-session-token' });
  started.push(m);
  const g = await gateway({ providers: [{ name: 'br', provider: 'bedrock', base_url: m.origin, models: ['us.anthropic.*'], max_retries: 0 }] },
    { env: { AWS_ACCESS_KEY_ID: 'AKIDFROMENV', AWS_SECRET_ACCESS_KEY: 'env/secret+key', AWS_SESSION_TOKEN: 'env-session-token', AWS_REGION: 'eu-west-3' } });
  const r = await messages(g.port, { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200, `${show(r)}\n${m.summary()}\n${g.output()}`);
  assertSigned(m.requests[0], INVOKE, 'AWS_* env');
  assert.equal(m.requests[0].auth.region, 'eu-west-3');
  assert.equal(m.requests[0].headers['x-amz-security-token'], 'env-session-token');
  await g.stop();

  const g2 = await gateway({
    providers: [{
      name: 'br', provider: 'bedrock', region: 'env.BR_REGION', access_key_id: 'env.BR_AKID', secret_access_key: 'env.BR_SECRET',
      session_token: 'env.BR_TOKEN', base_url: m.origin, models: ['us.anthropic.*'], max_retries: 0,
    }],
  }, { env: { BR_REGION: 'eu-west-3', BR_AKID: 'AKIDFROMENV', BR_SECRET: 'env/secret+key', BR_TOKEN: 'env-session-token' } });
  const r2 = await messages(g2.port, { model: MODEL, max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r2.status, 200, `${show(r2)}\n${m.summary()}`);
  assertSigned(m.requests[1], INVOKE, 'env.NAME fields');
  await g2.stop();
});

// ---------------------------------------------------------------------------------------------
// 4. eventstream robustness, exceptions, failover

test('frames split across writes (inside the prelude, across frame boundaries) still give a correct stream', async () => {
  resetAll();
  for (let seed = 1; seed <= 4; seed++) {
    br.behave({ text: TEXT, textChunks: 6, toolUse: { ...TOOL_CALL, fragments: 4 }, split: { seed } });
    const s = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 100, stream: true, tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'split' }] });
    assert.equal(s.status, 200, showStream(s));
    assert.deepEqual(s.events.map((e) => e.event), br.sent.at(-1).frames.map((f) => f.event), `seed ${seed}: ${showStream(s)}`);
    assert.deepEqual(anthropicBlocks(s.events), [{ type: 'text', text: TEXT }, { type: 'tool_use', ...TOOL_CALL }], `seed ${seed}`);
    const o = openaiStream((await streamPost(gw.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, messages: [{ role: 'user', content: 'split' }] })).events);
    assert.equal(o.content, TEXT, `seed ${seed} (OpenAI client)`);
    assert.equal(o.toolCalls[0]?.name, 'get_weather');
    assert.deepEqual(JSON.parse(o.toolCalls[0].arguments), TOOL_CALL.input);
    assert.ok(o.done);
    // converse-stream frames (a meta.* model), split the same way
    const cs = await streamPost(gw.port, '/v1/messages', { model: `br/${LLAMA}`, max_tokens: 100, stream: true, tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'split' }] });
    assert.equal(cs.status, 200, showStream(cs));
    assert.equal(br.requests.at(-1).path, `/model/${LLAMA_ENC}/converse-stream`);
    assert.deepEqual(anthropicBlocks(cs.events), [{ type: 'text', text: TEXT }, { type: 'tool_use', ...TOOL_CALL }], `seed ${seed} (Converse): ${showStream(cs)}`);
    assert.equal(cs.events.at(-1).event, 'message_stop', `seed ${seed} (Converse)`);
  }
});

test('a frame with a bad CRC ends the stream with an error after the good events (no crash); the next request works', async () => {
  // frames 0-2 fine (message_start, block start, a delta), frame 3 corrupt. All of them in one
  // read: the client has seen nothing yet, so the attempt fails as a whole (502 in the
  // client's dialect; with a fallback, the fallback would answer) — no half answer.
  resetAll();
  br.behave({ text: TEXT, badCrc: 3, firstDelayMs: 30, coalesce: true });
  const whole = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'crc' }] });
  assert.equal(whole.status, 502, `all frames in one read: ${showStream(whole)}`);
  assert.equal(whole.events.length, 0, `all frames in one read: nothing may be streamed: ${showStream(whole)}`);
  assert.match(whole.text, /"type":"error".*malformed eventstream frame/, showStream(whole));
  // frames 30 ms apart: the good events went out, the stream ends with an error event
  for (const [what, timing] of [['frames 30 ms apart', { delayMs: 30 }]]) {
    resetAll();
    br.behave({ text: TEXT, badCrc: 3, ...timing });
    const from = await logMark(gw);
    const s = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'crc' }] });
    assert.equal(s.status, 200, `${what}: ${showStream(s)}`);
    const names = s.events.map((e) => e.event);
    assert.ok(!names.includes('message_stop'), `${what}: message_stop after a corrupt frame`);
    assert.ok(!s.text.includes(br.sent[0].frames[3].json.delta.text), `${what}: the corrupt frame's text was relayed`);
    assert.equal(names.at(-1), 'error', `${what}: the stream must end with event: error: ${showStream(s)}`);
    assert.equal(s.events.at(-1).json?.type, 'error', showStream(s));
    assert.equal(typeof s.events.at(-1).json?.error?.message, 'string');
    assert.deepEqual(names, ['message_start', 'content_block_start', 'content_block_delta', 'error'], `${what}: the 3 good events must be relayed before the error: ${showStream(s)}`);
    await logLine(gw, from, (l) => l.path === '/v1/messages');

    const s2 = await streamPost(gw.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, messages: [{ role: 'user', content: 'crc' }] });
    assert.equal(s2.status, 200, `${what} (OpenAI client): ${showStream(s2)}`);
    const o = openaiStream(s2.events);
    assert.ok(!o.done, `${what} (OpenAI client): [DONE] after a corrupt frame: ${showStream(s2)}`);
    assert.ok(o.errors.length > 0, `${what} (OpenAI client): no error event: ${showStream(s2)}`);
    assert.equal(o.content, br.sent[1].frames[2].json.delta.text, `${what} (OpenAI client): the text of the good frames: ${showStream(s2)}`);
  }

  br.behave({ text: TEXT });
  assert.equal(gw.exited, null, `the gateway died: ${JSON.stringify(gw.exited)}\n${gw.stderr.slice(-10).join('\n')}`);
  const ok = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'again' }] });
  assert.equal(ok.status, 200);
  assert.equal(ok.events.at(-1)?.event, 'message_stop', showStream(ok));
  assert.deepEqual(anthropicBlocks(ok.events), [{ type: 'text', text: TEXT }]);
});

test('throttlingException before the first event → failover to the fallback provider (2 attempts)', async () => {
  resetAll();
  // Bedrock's head comes first, the first frame when the model has something (here 50 ms later)
  br.behave({ firstDelayMs: 50, exception: { type: 'throttlingException', afterEvents: 0 } });
  ant.behave({ text: 'Hello from the fallback' });
  const from = await logMark(gwf);
  const s = await streamPost(gwf.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(br.requests.length, 1, br.summary());
  assertSigned(br.requests[0], INVOKE_STREAM, 'throttled');
  assert.equal(br.sent[0].frames[0].event, 'exception:throttlingException');
  assert.equal(s.status, 200, showStream(s));
  assert.equal(ant.requests.length, 1, `the fallback was not asked: ${showStream(s)}`);
  assert.equal(ant.requests[0].json.model, 'claude-sonnet-4-5');
  assert.deepEqual(anthropicBlocks(s.events), [{ type: 'text', text: 'Hello from the fallback' }], showStream(s));
  assert.equal(s.events.at(-1).event, 'message_stop');
  assert.equal(s.headers['x-bifrost-attempts'], '2', `x-bifrost-attempts: ${JSON.stringify(s.headers)}`);
  assert.equal(s.headers['x-bifrost-provider'], 'ant/claude-sonnet-4-5');
  const line = await logLine(gwf, from, (l) => l.path === '/v1/messages');
  assert.equal(line.attempts, 2, JSON.stringify(line));
  assert.match(line.failed || '', new RegExp(`br/${MODEL.replace(/\./g, '\\.')}`), JSON.stringify(line));

  // an OpenAI client's stream fails over the same way (translated from the Anthropic fallback)
  const c = await streamPost(gwf.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.status, 200, showStream(c));
  const o = openaiStream(c.events);
  assert.equal(o.content, 'Hello from the fallback', showStream(c));
  assert.ok(o.done);
  assert.equal(c.headers['x-bifrost-attempts'], '2');
  assert.equal(br.requests.length, 2);
  assert.equal(ant.requests.length, 2);
});

test('an exception after some events ends the stream with event: error, the events before it relayed (no failover once bytes went out)', async () => {
  for (const sameWrite of [false, true]) {
    const what = sameWrite ? 'the exception in the same write as the event before it' : 'the exception 100 ms after the last event';
    resetAll();
    br.behave({ text: TEXT, textChunks: 3, delayMs: 100, exception: { type: 'modelStreamErrorException', message: 'Model stream failed mid-way', afterEvents: 3, sameWrite } });
    const s = await streamPost(gwf.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    const first = br.sent[0].frames[2].json.delta.text; // the text of the one delta before the exception
    assert.equal(s.status, 200, `${what}: ${showStream(s)}`);
    const names = s.events.map((e) => e.event);
    assert.deepEqual(names, ['message_start', 'content_block_start', 'content_block_delta', 'error'], `${what}: ${showStream(s)}`);
    assert.equal(s.events[2].json.delta.text, first, what);
    assert.equal(s.events.at(-1).json?.type, 'error');
    assert.equal(typeof s.events.at(-1).json?.error?.message, 'string', showStream(s));
    assert.equal(ant.requests.length, 0, `${what}: a stream was switched to another provider after its first byte`);

    const c = await streamPost(gwf.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(c.status, 200, `${what} (OpenAI client): ${showStream(c)}`);
    const o = openaiStream(c.events);
    assert.equal(ant.requests.length, 0, `${what} (OpenAI client): switched to the fallback: ${showStream(c)}`);
    assert.equal(o.content, first, `${what} (OpenAI client): the text before the exception was not relayed: ${showStream(c)}`);
    assert.ok(!o.done, `${what} (OpenAI client): [DONE] after an exception: ${showStream(c)}`);
    assert.ok(o.errors.length > 0, `${what} (OpenAI client): no error chunk: ${showStream(c)}`);
  }
  br.behave({});
});

test('HTTP 429 ThrottlingException → failover, non-streamed and streamed, Anthropic and OpenAI clients', async () => {
  resetAll();
  br.behave({ status: 429 });
  ant.behave({ text: 'Fallback answer' });
  const from = await logMark(gwf);
  const r = await messages(gwf.port, { model: `br/${MODEL}`, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 200, show(r));
  assert.equal(br.requests.length, 1);
  assertSigned(br.requests[0], INVOKE, '429');
  assert.equal(br.sent[0].status, 429);
  assert.deepEqual(r.json().content, [{ type: 'text', text: 'Fallback answer' }]);
  assert.equal(r.headers['x-bifrost-attempts'], '2');
  const line = await logLine(gwf, from, (l) => l.path === '/v1/messages');
  assert.equal(line.attempts, 2, JSON.stringify(line));
  assert.match(line.failed || '', /:429/, JSON.stringify(line));

  const s = await streamPost(gwf.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(s.status, 200, showStream(s));
  assert.deepEqual(anthropicBlocks(s.events), [{ type: 'text', text: 'Fallback answer' }]);
  assert.equal(s.headers['x-bifrost-attempts'], '2');

  const c = await chat(gwf.port, { model: `br/${MODEL}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.status, 200, show(c));
  assert.equal(c.json().choices[0].message.content, 'Fallback answer');
  assert.equal(c.headers['x-bifrost-attempts'], '2');
  assert.equal(br.requests.length, 3);
  assert.equal(ant.requests.length, 3);

  // without a fallback the 429 reaches the client in its dialect
  const n = await messages(gw.port, { model: `br/${MODEL}`, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(n.status, 429, show(n));
  assert.equal(n.json().type, 'error', show(n));
  assert.match(n.json().error.message, /Too many requests/, show(n));
  const nc = await chat(gw.port, { model: `br/${MODEL}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(nc.status, 429, show(nc));
  assert.match(errorBody(nc).message, /Too many requests/);
  br.behave({});
});

test('HTTP 400 ValidationException is not failed over: the client gets 400 with Bedrock\'s message, in its dialect', async () => {
  resetAll();
  const MSG = 'messages.0.content.0.text: text content blocks must be non-empty';
  br.behave({ status: 400, message: MSG });
  const r = await messages(gwf.port, { model: `br/${MODEL}`, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(r.status, 400, show(r));
  assert.equal(r.json().type, 'error', show(r));
  assert.equal(r.json().error.type, 'invalid_request_error', show(r));
  assert.ok(r.json().error.message.includes(MSG), show(r));
  const s = await streamPost(gwf.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(s.status, 400, showStream(s));
  const c = await chat(gwf.port, { model: `br/${MODEL}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.status, 400, show(c));
  assert.ok(errorBody(c).message.includes(MSG), show(c));
  assert.equal(br.requests.length, 3, br.summary());
  assert.equal(ant.requests.length, 0, 'a 400 was failed over');
  br.behave({});
});

test('a body "fallbacks" list is used by the gateway and removed before the body goes to Bedrock', async () => {
  resetAll();
  br.behave({ text: TEXT });
  const r = await messages(gw.port, { model: `br/${MODEL}`, max_tokens: 50, fallbacks: ['ant/claude-sonnet-4-5'], messages: [{ role: 'user', content: 'hi' }] });
  const s = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 50, stream: true, fallbacks: ['ant/claude-sonnet-4-5'], messages: [{ role: 'user', content: 'hi' }] });
  const c = await chat(gw.port, { model: `br/${MODEL}`, fallbacks: ['ant/claude-sonnet-4-5'], messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(br.requests.length, 3, br.summary());
  const leaked = br.requests.filter((x) => x.json && 'fallbacks' in x.json).map((x) => `${x.path}: ${x.body}`);
  assert.deepEqual(leaked, [], `"fallbacks" reached Bedrock (which refuses it: 400 extraneous key) — client got ${r.status} / ${s.status} / ${c.status}:\n${leaked.join('\n')}`);
  for (const x of br.requests) assertInvokeBody(x, 'body fallbacks');
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(r.json().content, [{ type: 'text', text: TEXT }]);
  assert.equal(s.status, 200, showStream(s));
  assert.equal(c.status, 200, show(c));
  // and they serve: a 429 from Bedrock moves to the listed fallback
  br.behave({ status: 429 });
  ant.behave({ text: 'Fallback answer' });
  const f = await messages(gw.port, { model: `br/${MODEL}`, max_tokens: 50, fallbacks: ['ant/claude-sonnet-4-5'], messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(f.status, 200, show(f));
  assert.deepEqual(f.json().content, [{ type: 'text', text: 'Fallback answer' }]);
  assert.ok(!('fallbacks' in ant.requests[0].json), 'fallbacks reached the Anthropic fallback');
  br.behave({});
});

// ---------------------------------------------------------------------------------------------
// 5. time to first byte

test('time to first byte: the first event arrives when Bedrock sends it, every event as it is sent (no buffering)', async () => {
  resetAll();
  br.behave({ text: TEXT, textChunks: 3, firstDelayMs: 300, delayMs: 200 });
  const s = await streamPost(gw.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'slow' }] });
  assert.equal(s.status, 200, showStream(s));
  const sent = br.sent[0];
  assert.equal(s.events.length, sent.frames.length, showStream(s));
  const first = s.events[0];
  const last = s.events.at(-1);
  assert.equal(first.event, 'message_start');
  assert.ok(first.t >= 290, `the first event came before Bedrock sent it (${first.t} ms)`);
  assert.ok(first.t < 300 + 250, `the first event took ${first.t} ms; Bedrock sent it at ~300 ms`);
  assert.ok(last.t - first.t >= 6 * 200 - 50, `events bunched: first at ${first.t} ms, last at ${last.t} ms`);
  // every event reaches the client within 150 ms of Bedrock writing its frame
  const tSend0 = sent.times[0];
  for (let i = 0; i < s.events.length; i++) {
    const lag = (s.events[i].t - first.t) - (sent.times[i] - tSend0);
    assert.ok(lag < 150, `event ${i} (${s.events[i].event}) was held ${lag} ms after Bedrock sent it; arrivals ${JSON.stringify(s.events.map((e) => e.t))}, sends ${JSON.stringify(sent.times.map((t) => t - tSend0))}`);
  }
  console.log(`bedrock TTFB (firstDelayMs 300): first event at ${first.t} ms, last at ${last.t} ms`);
});

test('the gateway\'s added time to first event, median over 50 streamed requests (gateway vs Bedrock directly)', async () => {
  resetAll();
  br.behave({ text: 'x', textChunks: 1 });
  const agentGw = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const agentBr = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const gwBody = JSON.stringify({ model: `br/${MODEL}`, max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'ttfb' }] });
  const brBody = invokeBody({ max_tokens: 10, messages: [{ role: 'user', content: 'ttfb' }] });
  const timeToFirstEvent = (port, path, headers, payload, agent, isFirst) => new Promise((resolve, reject) => {
    let t0;
    let got = null;
    let buf = Buffer.alloc(0);
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path, agent, headers: { ...headers, 'content-length': Buffer.byteLength(payload) } }, (res) => {
      res.on('data', (d) => {
        if (got === null) {
          buf = Buffer.concat([buf, d]);
          if (isFirst(buf, res)) got = Number(process.hrtime.bigint() - t0) / 1000;
        }
      });
      res.on('end', () => (got === null ? reject(new Error(`no first event from ${path}: ${res.statusCode} ${buf.toString('latin1').slice(0, 300)}`)) : resolve(got)));
      res.on('error', reject);
    });
    req.on('error', reject);
    t0 = process.hrtime.bigint();
    req.end(payload);
  });
  const sseFirst = (buf) => buf.includes('\n\n');
  const frameFirst = (buf) => buf.length >= 4 && buf.length >= buf.readUInt32BE(0);
  const gwHeaders = { 'content-type': 'application/json', 'x-api-key': 'vk', 'anthropic-version': '2023-06-01' };
  const viaGw = [];
  const direct = [];
  const N = 50;
  for (let i = 0; i < N + 5; i++) {
    const h = await br.sign({ path: INVOKE_STREAM, body: brBody, headers: { 'content-type': 'application/json', accept: 'application/vnd.amazon.eventstream' } });
    const d = await timeToFirstEvent(br.port, INVOKE_STREAM, h, brBody, agentBr, frameFirst);
    const g = await timeToFirstEvent(gw.port, '/v1/messages', gwHeaders, gwBody, agentGw, sseFirst);
    if (i >= 5) { direct.push(d); viaGw.push(g); } // 5 warm-up rounds
  }
  agentGw.destroy();
  agentBr.destroy();
  const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
  const pairs = viaGw.map((g, i) => g - direct[i]);
  const added = med(viaGw) - med(direct);
  console.log(`bedrock TTFB added p50 = ${added.toFixed(0)} µs (gateway p50 ${med(viaGw).toFixed(0)} µs, direct p50 ${med(direct).toFixed(0)} µs, paired-difference p50 ${med(pairs).toFixed(0)} µs, n=${N})`);
  assert.ok(br.requests.every((r) => r.auth.ok), 'a request was refused');
  assert.ok(added < 5000, `the gateway adds ${added.toFixed(0)} µs to the first event (sanity bound 5 ms)`);
});

// ---------------------------------------------------------------------------------------------
// 6. usage and cost

test('governance: streamed and non-streamed Bedrock requests are charged Bedrock\'s usage at the configured price', async () => {
  const ADMIN = 'adm-bedrock-token';
  const KEY = 'sk-bf-bedrock-alice';
  const PRICE = { input: 1, output: 4, cache_read: 0.5, cache_write: 2 };
  const m = await startBedrockMock({ name: 'bill', accessKeyId: AKID, secretAccessKey: SECRET });
  started.push(m);
  const g = await gateway({
    admin: { token: ADMIN },
    providers: [brProvider(m)],
    pricing: { [`br/${MODEL}`]: PRICE },
    governance: { enforce: true, virtual_keys: [{ id: 'alice', value: KEY, budget: { max_limit: 10, reset_duration: '1d' } }] },
  });
  const auth = { 'x-api-key': KEY, authorization: `Bearer ${KEY}` };
  let spend = 0;
  let tokens = 0;
  const check = async (what, u, send) => {
    const from = await logMark(g);
    const r = await send();
    assert.equal(r.status, 200, `${what}: ${r.events ? showStream(r) : show(r)}`);
    const cost = costMicros({ in: u.input_tokens, out: u.output_tokens, cacheRead: u.cache_read_input_tokens ?? 0, cacheWrite: u.cache_creation_input_tokens ?? 0 }, PRICE);
    const line = await logLine(g, from, (l) => l.status === 200 && /^\/v1\/(messages|chat)/.test(l.path));
    assert.equal(line.in_tokens, u.input_tokens, `${what}: in_tokens in ${JSON.stringify(line)}`);
    assert.equal(line.out_tokens, u.output_tokens, `${what}: out_tokens in ${JSON.stringify(line)}`);
    assert.equal(line.cached_tokens ?? 0, u.cache_read_input_tokens ?? 0, `${what}: cached_tokens in ${JSON.stringify(line)}`);
    assert.equal(line.cache_write_tokens ?? 0, u.cache_creation_input_tokens ?? 0, `${what}: cache_write_tokens in ${JSON.stringify(line)}`);
    const raw = g.stdout.find((l) => l.includes(`"ts":"${line.ts}"`) && l.includes('cost_usd'));
    const usd = `${Math.floor(cost / 1e6)}.${String(cost % 1e6).padStart(6, '0')}`;
    assert.ok(raw && raw.includes(`"cost_usd":${usd}`), `${what}: cost_usd should be ${usd}: ${raw ?? JSON.stringify(line)}`);
    spend += cost;
    tokens += u.input_tokens + u.output_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0);
    const e = entity(await quiet(g.port, ADMIN), 'virtual_keys', 'alice');
    assert.equal(e.spend_micros, spend, `${what}: spend ${JSON.stringify(e)}`);
    assert.equal(e.tokens, tokens, `${what}: tokens ${JSON.stringify(e)}`);
  };
  const U1 = { input_tokens: 1234, output_tokens: 567 };
  m.behave({ usage: U1 });
  await check('non-streamed (Anthropic client)', U1, () => messages(g.port, { model: `br/${MODEL}`, max_tokens: 1000, messages: [{ role: 'user', content: 'bill' }] }, { headers: auth }));
  assert.equal(costMicros({ in: 1234, out: 567 }, PRICE), 3502);
  const U2 = { input_tokens: 2000, output_tokens: 300 };
  m.behave({ usage: U2, textChunks: 4 });
  await check('streamed (Anthropic client)', U2, () => streamPost(g.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'bill' }] }, { headers: auth }));
  const U3 = { input_tokens: 777, output_tokens: 111 };
  m.behave({ usage: U3 });
  await check('streamed (OpenAI client, no include_usage)', U3, () => streamPost(g.port, '/v1/chat/completions', { model: `br/${MODEL}`, stream: true, messages: [{ role: 'user', content: 'bill' }] }, { headers: { authorization: `Bearer ${KEY}` } }));
  const U4 = { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 4000, cache_creation_input_tokens: 1000 };
  m.behave({ usage: U4 });
  await check('non-streamed with cache reads and writes', U4, () => messages(g.port, { model: `br/${MODEL}`, max_tokens: 1000, messages: [{ role: 'user', content: 'bill' }] }, { headers: auth }));
  m.behave({ usage: U4 });
  await check('streamed with cache reads and writes', U4, () => streamPost(g.port, '/v1/messages', { model: `br/${MODEL}`, max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'bill' }] }, { headers: auth }));
  const u = await readUsage(g.port, ADMIN);
  assert.equal(entity(u, 'providers', 'br').spend_micros, spend, JSON.stringify(entity(u, 'providers', 'br')));
  assert.equal(m.requests.length, 5);
  for (const rec of m.requests) assert.ok(rec.auth.ok && !JSON.stringify(rec.headers).includes(KEY), 'the virtual key reached Bedrock');
  await g.stop();
});

// ---------------------------------------------------------------------------------------------
// 7. Converse (non-Anthropic models)

const CONVERSE = `/model/${LLAMA_ENC}/converse`;
const CONVERSE_STREAM = `/model/${LLAMA_ENC}/converse-stream`;

function assertConverseRequest(rec, path, what) {
  assertSigned(rec, path, what);
  const j = rec.json;
  assert.ok(j, `${what}: not JSON`);
  for (const k of ['model', 'stream', 'anthropic_version', 'max_tokens', 'tools', 'fallbacks']) assert.ok(!(k in j), `${what}: "${k}" in a Converse body: ${rec.body}`);
}

test('Converse: Anthropic client, non-streamed, with a tool: system, messages, inferenceConfig, toolConfig; the answer as a Messages reply', async () => {
  resetAll();
  br.behave({ text: 'Let me check.', toolUse: TOOL_CALL, usage: { input_tokens: 40, output_tokens: 12 } });
  const r = await messages(gw.port, {
    model: `br/${LLAMA}`, max_tokens: 300, temperature: 0.5, top_p: 0.9, stop_sequences: ['END'], system: 'You are terse.',
    tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'Weather in Paris?' }],
  });
  assert.equal(r.status, 200, `${show(r)}\n${br.summary()}`);
  const rec = br.requests[0];
  assertConverseRequest(rec, CONVERSE, 'converse');
  assert.deepEqual(rec.json.system, [{ text: 'You are terse.' }], rec.body);
  assert.deepEqual(rec.json.messages, [{ role: 'user', content: [{ text: 'Weather in Paris?' }] }], rec.body);
  assert.equal(rec.json.inferenceConfig?.maxTokens, 300, rec.body);
  assert.equal(rec.json.inferenceConfig.temperature, 0.5);
  assert.equal(rec.json.inferenceConfig.topP, 0.9);
  assert.deepEqual(rec.json.inferenceConfig.stopSequences, ['END']);
  assert.deepEqual(rec.json.toolConfig?.tools, [{ toolSpec: { name: 'get_weather', description: WEATHER_TOOL.description, inputSchema: { json: WEATHER_TOOL.input_schema } } }], rec.body);
  const j = r.json();
  assert.equal(j.type, 'message');
  assert.equal(j.role, 'assistant');
  assert.deepEqual(j.content, [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', ...TOOL_CALL }]);
  assert.equal(j.stop_reason, 'tool_use');
  assert.equal(j.usage.input_tokens, 40);
  assert.equal(j.usage.output_tokens, 12);

  // turn 2: tool_use / tool_result become toolUse / toolResult
  br.behave({ text: 'It is 18 °C.' });
  const r2 = await messages(gw.port, {
    model: `br/${LLAMA}`, max_tokens: 300, tools: [WEATHER_TOOL],
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: j.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: TOOL_CALL.id, content: '18 °C, sunny' }] },
    ],
  });
  assert.equal(r2.status, 200, `${show(r2)}\n${br.summary()}`);
  const m2 = br.requests[1].json.messages;
  assert.equal(m2.length, 3, br.requests[1].body);
  assert.deepEqual(m2[1], { role: 'assistant', content: [{ text: 'Let me check.' }, { toolUse: { toolUseId: TOOL_CALL.id, name: TOOL_CALL.name, input: TOOL_CALL.input } }] });
  assert.equal(m2[2].role, 'user');
  const tr = m2[2].content[0].toolResult;
  assert.equal(tr?.toolUseId, TOOL_CALL.id, br.requests[1].body);
  assert.deepEqual(tr.content, [{ text: '18 °C, sunny' }]);
  assert.deepEqual(r2.json().content, [{ type: 'text', text: 'It is 18 °C.' }]);
});

test('Converse: Anthropic client, streamed, with a tool: converse-stream events become Messages SSE events', async () => {
  resetAll();
  br.behave({ text: 'Let me check.', textChunks: 3, toolUse: { ...TOOL_CALL, fragments: 3 }, usage: { input_tokens: 40, output_tokens: 12 } });
  const s = await streamPost(gw.port, '/v1/messages', { model: `br/${LLAMA}`, max_tokens: 300, stream: true, tools: [WEATHER_TOOL], messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  assert.equal(s.status, 200, `${showStream(s)}\n${br.summary()}`);
  assertConverseRequest(br.requests[0], CONVERSE_STREAM, 'converse-stream');
  assert.equal(br.requests[0].json.inferenceConfig?.maxTokens, 300);
  const names = s.events.map((e) => e.event);
  assert.equal(names[0], 'message_start', showStream(s));
  assert.equal(names.at(-1), 'message_stop', showStream(s));
  assert.equal(names.at(-2), 'message_delta', showStream(s));
  assert.deepEqual(anthropicBlocks(s.events), [{ type: 'text', text: 'Let me check.' }, { type: 'tool_use', ...TOOL_CALL }], showStream(s));
  const md = s.events.at(-2).json;
  assert.equal(md.delta.stop_reason, 'tool_use');
  assert.equal(md.usage.output_tokens, 12, showStream(s));
  // block indices open and close in order
  const open = [];
  for (const e of s.events) {
    if (e.event === 'content_block_start') { assert.equal(e.json.index, open.length, showStream(s)); open.push(true); }
    if (e.event === 'content_block_delta') assert.equal(e.json.index, open.length - 1, showStream(s));
  }
  const input = s.events[0].json.message.usage.input_tokens;
  assert.ok(input === 40 || input === 0, `message_start input_tokens ${input}`);
});

test('Converse: OpenAI client, non-streamed and streamed, with a tool call and its result', async () => {
  resetAll();
  const tools = [{ type: 'function', function: { name: 'get_weather', description: WEATHER_TOOL.description, parameters: WEATHER_TOOL.input_schema } }];
  br.behave({ text: 'Let me check.', toolUse: TOOL_CALL, usage: { input_tokens: 40, output_tokens: 12 } });
  const r = await chat(gw.port, {
    model: `br/${LLAMA}`, max_tokens: 200, temperature: 0.2, tools,
    messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Weather in Paris?' }],
  });
  assert.equal(r.status, 200, `${show(r)}\n${br.summary()}`);
  const rec = br.requests[0];
  assertConverseRequest(rec, CONVERSE, 'chat → converse');
  assert.deepEqual(rec.json.system, [{ text: 'Be brief.' }], rec.body);
  assert.deepEqual(rec.json.messages, [{ role: 'user', content: [{ text: 'Weather in Paris?' }] }], rec.body);
  assert.equal(rec.json.inferenceConfig?.maxTokens, 200, rec.body);
  assert.equal(rec.json.inferenceConfig.temperature, 0.2);
  assert.deepEqual(rec.json.toolConfig?.tools, [{ toolSpec: { name: 'get_weather', description: WEATHER_TOOL.description, inputSchema: { json: WEATHER_TOOL.input_schema } } }], rec.body);
  const j = r.json();
  assert.equal(j.object, 'chat.completion');
  assert.equal(j.choices[0].message.content, 'Let me check.');
  assert.equal(j.choices[0].finish_reason, 'tool_calls');
  const call = j.choices[0].message.tool_calls?.[0];
  assert.equal(call?.id, TOOL_CALL.id, show(r));
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'get_weather');
  assert.deepEqual(JSON.parse(call.function.arguments), TOOL_CALL.input);
  assert.deepEqual({ p: j.usage.prompt_tokens, c: j.usage.completion_tokens, t: j.usage.total_tokens }, { p: 40, c: 12, t: 52 });

  // streamed, with usage
  const s = await streamPost(gw.port, '/v1/chat/completions', { model: `br/${LLAMA}`, stream: true, stream_options: { include_usage: true }, max_tokens: 200, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
  assert.equal(s.status, 200, showStream(s));
  assertConverseRequest(br.requests[1], CONVERSE_STREAM, 'chat stream → converse-stream');
  const o = openaiStream(s.events);
  assert.equal(o.content, 'Let me check.', showStream(s));
  assert.equal(o.toolCalls.length, 1, showStream(s));
  assert.equal(o.toolCalls[0].id, TOOL_CALL.id);
  assert.equal(o.toolCalls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(o.toolCalls[0].arguments), TOOL_CALL.input);
  assert.equal(o.finish, 'tool_calls');
  assert.ok(o.done, showStream(s));
  assert.equal(o.usage?.prompt_tokens, 40, showStream(s));
  assert.equal(o.usage?.completion_tokens, 12);

  // the tool result turn: assistant tool_calls → toolUse, role "tool" → a user toolResult
  br.behave({ text: 'Sunny, 18 °C.' });
  const r3 = await chat(gw.port, {
    model: `br/${LLAMA}`, max_tokens: 200, tools,
    messages: [
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: null, tool_calls: [{ id: TOOL_CALL.id, type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(TOOL_CALL.input) } }] },
      { role: 'tool', tool_call_id: TOOL_CALL.id, content: '18 °C, sunny' },
    ],
  });
  assert.equal(r3.status, 200, `${show(r3)}\n${br.summary()}`);
  const m3 = br.requests[2].json.messages;
  assert.equal(m3.length, 3, br.requests[2].body);
  assert.deepEqual(m3[1], { role: 'assistant', content: [{ toolUse: { toolUseId: TOOL_CALL.id, name: 'get_weather', input: TOOL_CALL.input } }] }, br.requests[2].body);
  assert.equal(m3[2].role, 'user');
  assert.equal(m3[2].content[0].toolResult?.toolUseId, TOOL_CALL.id, br.requests[2].body);
  assert.deepEqual(m3[2].content[0].toolResult.content, [{ text: '18 °C, sunny' }]);
  assert.equal(r3.json().choices[0].message.content, 'Sunny, 18 °C.');
});

test('Converse: usage is billed from the metadata event and the Converse usage', async () => {
  resetAll();
  const from = await logMark(gw);
  br.behave({ text: 'ok', usage: { input_tokens: 321, output_tokens: 45 } });
  const s = await streamPost(gw.port, '/v1/messages', { model: `br/${LLAMA}`, max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'count' }] });
  assert.equal(s.status, 200, showStream(s));
  const line = await logLine(gw, from, (l) => l.path === '/v1/messages');
  assert.equal(line.in_tokens, 321, JSON.stringify(line));
  assert.equal(line.out_tokens, 45, JSON.stringify(line));
  const from2 = await logMark(gw);
  const r = await chat(gw.port, { model: `br/${LLAMA}`, messages: [{ role: 'user', content: 'count' }] });
  assert.equal(r.status, 200, show(r));
  const line2 = await logLine(gw, from2, (l) => l.path === '/v1/chat/completions');
  assert.equal(line2.in_tokens, 321, JSON.stringify(line2));
  assert.equal(line2.out_tokens, 45, JSON.stringify(line2));
  assert.ok(decodeFrames(Buffer.concat(br.sent[0].frames.map((f) => f.bytes))).some((f) => f.headers[':event-type'] === 'metadata'));
});

