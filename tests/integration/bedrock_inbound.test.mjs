// Inbound Bedrock: clients that speak AWS Bedrock Runtime's own API talk to the gateway at
// `${gw.url}/bedrock` — the official @aws-sdk/client-bedrock-runtime (InvokeModel,
// InvokeModelWithResponseStream, Converse, ConverseStream) and raw HTTP for the wire details
// (eventstream frames, x-amzn-ErrorType, hostile paths).
//
//   POST /bedrock/model/{modelId}/invoke                       → the Anthropic message JSON
//   POST /bedrock/model/{modelId}/invoke-with-response-stream  → application/vnd.amazon.eventstream,
//        one `chunk` frame per Anthropic event ({"bytes": base64(event JSON)}), an exception
//        frame when the upstream fails mid-stream
//   errors before an answer: the HTTP status, x-amzn-ErrorType: <Name>Exception, {"message"}
//
// {modelId} is routed like a model name of the config: `anthropic/...` to the Anthropic mock
// (body forwarded as Messages: model from the path, anthropic_version dropped, anthropic_beta
// → the anthropic-beta header), `openai/...` to the OpenAI mock (translated), a bare Bedrock
// id by the providers' globs / model_map. Auth: a virtual key as Bearer (a Bedrock API key)
// or as the access key id of a SigV4 signature (not verified), or none when keys are not
// required. Every test also checks what reached the mock upstream.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, request, rawExchange, rawRequest, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { startAnthropicMock, anthropicError, scripted, toolResults, lastUserMessage, DEFAULT_ANTHROPIC_USAGE } from '../lib/mock_anthropic.mjs';
import { quiet, entity } from '../lib/usage.mjs';
import { startBedrockMock } from '../lib/mock_bedrock.mjs';
import {
  bedrockClient, bedrockBody, invoke, invokeStream, sendError, showErr, decodeFrames, chunkEvent,
  streamText, streamToolInput, BEDROCK_EXCEPTIONS, BedrockRuntimeServiceException,
  InvokeModelCommand, InvokeModelWithResponseStreamCommand, ConverseCommand, ConverseStreamCommand,
} from '../lib/bedrock_client.mjs';

const ADMIN = 'adm-bedrock-inbound-1';
const KA = 'sk-bf-alice-bedrock-0001';   // active key
const KC = 'sk-bf-carol-bedrock-0003';   // inactive key
const KD = 'sk-bf-dave-bedrock-0004';    // allowed_providers: openai only
const KE = 'sk-bf-erin-bedrock-0005';    // one request an hour
const KF = 'sk-bf-frank-bedrock-0006';   // a budget of one micro-dollar
const ANT_KEY = 'sk-ant-upstream-bedrock';
const BR_AKID = 'AKIDBEDROCKINBOUND01';
const BR_SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYINBOUNDKEY';
const OAI_KEY = 'sk-oai-upstream-bedrock';

const SONNET = 'anthropic/claude-sonnet-4-5';
const SONNET_V1 = 'anthropic/claude-sonnet-4-5-20250929-v1:0';
const BARE_BEDROCK_ID = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0';
const GPT = 'openai/gpt-4o';

// The status each exception type may come with. AccessDeniedException: Bedrock itself says
// 403; the gateway answers a missing or unknown virtual key with 401 (its status for that on
// every route) and the SDK raises AccessDeniedException from x-amzn-ErrorType either way.
const EXPECTED_STATUS = {
  ValidationException: [400], AccessDeniedException: [401, 403], ResourceNotFoundException: [404],
  ThrottlingException: [429], InternalServerException: [500], ServiceUnavailableException: [503],
  ModelTimeoutException: [408, 504],
};

let a; // Anthropic mock
let m; // OpenAI mock
let errUp; // an Anthropic-format upstream whose streams end with an `event: error` (overloaded)
let br; // a Bedrock runtime mock (verifies the gateway's SigV4 signature)
let G; // gateway requiring virtual keys
let O; // gateway without virtual keys

function providers() {
  return [
    {
      name: 'anthropic', provider: 'anthropic', base_url: a.origin, apiKey: ANT_KEY, max_retries: 0,
      models: ['claude-*'],
      // Bedrock's own ids (with a region prefix and a ':0' version) served as claude-sonnet-4-5
      model_map: { '*anthropic.claude-sonnet-4-5*': 'claude-sonnet-4-5' },
    },
    { name: 'openai', provider: 'openai', base_url: m.baseUrl, apiKey: OAI_KEY, max_retries: 0, models: ['gpt-*'] },
    // the Anthropic mock again, with short deadlines (reached only as slow/...)
    {
      name: 'slow', provider: 'anthropic', base_url: a.origin, apiKey: ANT_KEY, max_retries: 0, models: ['slow-only-*'],
      timeout_ms: 600, stream_idle_timeout_ms: 600,
    },
    // streams that fail with an Anthropic error event after two events (reached only as errsse/...)
    { name: 'errsse', provider: 'anthropic', base_url: errUp.origin, apiKey: ANT_KEY, max_retries: 0, models: ['errsse-only-*'] },
    // a real Bedrock provider (the mock checks the signature), reached only as br/...
    {
      name: 'br', provider: 'bedrock', region: 'us-east-1', access_key_id: BR_AKID, secret_access_key: BR_SECRET,
      base_url: br.origin, models: ['br-only-*'], max_retries: 0,
    },
    // nothing listens there (reached only as dead/...)
    { name: 'dead', provider: 'anthropic', base_url: 'http://127.0.0.1:1', apiKey: ANT_KEY, max_retries: 0, models: ['dead-only-*'], connect_timeout_ms: 1000 },
  ];
}

/** An Anthropic SSE upstream: message_start, content_block_start, then `event: error` (overloaded). */
async function startErrorEventUpstream() {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message_start\ndata: {"type":"message_start","message":{"id":"msg_err","type":"message","role":"assistant","model":"claude-x","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}\n\n');
      res.write('event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n');
      res.end(`event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"${OVERLOADED}"}}\n\n`);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { requests, origin: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}
const OVERLOADED = 'Overloaded-upstream-7d2b, try later';

before(async () => {
  a = await startAnthropicMock({ name: 'ant' });
  m = await startMock({ name: 'oai' });
  errUp = await startErrorEventUpstream();
  br = await startBedrockMock({ name: 'br', region: 'us-east-1', accessKeyId: BR_AKID, secretAccessKey: BR_SECRET });
  G = await startGateway({
    config: {
      admin: { token: ADMIN },
      providers: providers(),
      circuit_breaker: { failures: 1000, cooldown_ms: 1000 }, // the error tests must not open it
      governance: {
        enforce: true,
        virtual_keys: [
          { id: 'alice', value: KA },
          { id: 'carol', value: KC, active: false },
          { id: 'dave', value: KD, allowed_providers: ['openai'] },
          { id: 'erin', value: KE, rate_limit: { request_max_limit: 1, request_reset_duration: '1h' } },
          { id: 'frank', value: KF, budget: { max_limit: 0.000001, reset_duration: '1d' } },
        ],
      },
    },
  });
  O = await startGateway({ config: { admin: { token: ADMIN }, providers: providers(), circuit_breaker: { failures: 1000, cooldown_ms: 1000 } } });
});

after(async () => {
  await G?.stop();
  await O?.stop();
  await a?.close();
  await m?.close();
  await errUp?.close();
  await br?.close();
});

function resetMocks() { a.reset(); m.reset(); }

/** What the gateways logged for /bedrock paths, and what the mocks saw. */
function diag(gw = G) {
  const lines = gw.logLines().filter((l) => typeof l.path === 'string' && l.path.includes('bedrock'))
    .map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''} ${l.error ?? ''} ${l.failed ?? ''}`);
  return `--- gateway log (bedrock) ---\n${lines.slice(-15).join('\n')}\n--- gateway stderr ---\n${gw.stderr.slice(-8).join('\n')}`
    + `\n--- anthropic mock ---\n${a.summary()}\n--- openai mock ---\n${m.requests.map((r) => `${r.method} ${r.url}`).join('\n')}`;
}

const path = (id, op = 'invoke') => `/bedrock/model/${encodeURIComponent(id)}/${op}`;

/** A raw POST to the gateway (node http), body object → JSON. */
function post(gw, p, body, headers = {}, timeout = 10_000) {
  return request(gw.port, { method: 'POST', path: p, body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers }, timeout });
}
const bearer = (k = KA) => ({ authorization: `Bearer ${k}` });

function omit(obj, ...keys) {
  const o = { ...obj };
  for (const k of keys) delete o[k];
  return o;
}

/** The anthropic-beta header as a list. */
function betas(h) { return (h || '').split(',').map((s) => s.trim()).filter(Boolean); }

/** Assert an Anthropic-bound upstream request carries the provider key and no trace of the client's key. */
function assertUpstreamAuth(up, clientKey = KA) {
  assert.equal(up.headers['x-api-key'], ANT_KEY, 'the upstream did not get the provider key');
  assert.equal(up.headers.authorization, undefined, `the client's Authorization reached the upstream: ${up.headers.authorization}`);
  assert.ok(!JSON.stringify(up.rawHeaders).includes(clientKey), `the virtual key leaked upstream: ${JSON.stringify(up.rawHeaders)}`);
  assert.ok(!up.body.toString('latin1').includes(clientKey), 'the virtual key leaked into the upstream body');
}

/** The Anthropic events the mock sent for its stream record `rec` (parsed from the SSE). */
function mockEvents(rec) {
  return rec.events.map((b) => JSON.parse(/\ndata: (.*)\n/.exec(b.toString('utf8'))[1]));
}

/** Bedrock adds invocation metrics to the last event; compare the events without them. */
function stripMetrics(e) { return omit(e, 'amazon-bedrock-invocationMetrics'); }

/** Check a raw eventstream answer: frames well formed, all chunks but an optional final exception. */
function framesOf(r) {
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] || '', /^application\/vnd\.amazon\.eventstream/, `content-type ${r.headers['content-type']}`);
  const { frames, rest } = decodeFrames(r.body);
  assert.equal(rest.length, 0, `${rest.length} trailing bytes that are no whole frame`);
  return frames;
}

function assertChunkFrame(f) {
  assert.equal(f.headers[':message-type'], 'event', JSON.stringify(f.headers));
  assert.equal(f.headers[':event-type'], 'chunk', JSON.stringify(f.headers));
  assert.equal(f.headers[':content-type'], 'application/json', JSON.stringify(f.headers));
  assert.equal(typeof f.json?.bytes, 'string', `chunk payload ${f.payload.toString('utf8').slice(0, 200)}`);
  assert.deepEqual(Object.keys(f.json), ['bytes'], `chunk payload keys ${Object.keys(f.json)}`);
}

/** Assert an SDK error is a typed Bedrock exception (x-amzn-ErrorType understood) of one of `names`. */
function assertBedrockError(e, names, what) {
  assert.ok(!e.noError, `${what}: expected an error, got ${showErr(e)}`);
  assert.ok(e instanceof BedrockRuntimeServiceException, `${what}: not a Bedrock service exception: ${showErr(e)}\n${e.stack}`);
  assert.ok(names.includes(e.name), `${what}: expected ${names.join(' or ')}, got ${showErr(e)}`);
  const want = EXPECTED_STATUS[e.name];
  if (want) assert.ok(want.includes(e.$metadata?.httpStatusCode), `${what}: ${e.name} with HTTP ${e.$metadata?.httpStatusCode}, expected ${want}`);
  assert.ok(typeof e.message === 'string' && e.message.length > 0 && e.message !== 'UnknownError', `${what}: no message: ${showErr(e)}`);
}

/** A raw error answer in Bedrock's shape; returns { type, message }. */
function bedrockErr(r, what) {
  assert.ok(r.status >= 400, `${what}: ${show(r)}`);
  const type = r.headers['x-amzn-errortype'];
  assert.ok(typeof type === 'string' && /^[A-Za-z]+Exception(:|$)/.test(type), `${what}: x-amzn-ErrorType ${JSON.stringify(type)} (${show(r)})`);
  const name = type.split(':')[0];
  if (EXPECTED_STATUS[name]) assert.ok(EXPECTED_STATUS[name].includes(r.status), `${what}: ${name} with status ${r.status}`);
  assert.match(r.headers['content-type'] || '', /json/, `${what}: content-type ${r.headers['content-type']}`);
  let j;
  try { j = JSON.parse(r.text); } catch { assert.fail(`${what}: error body is not JSON: ${show(r)}`); }
  assert.ok(typeof (j.message ?? j.Message) === 'string' && (j.message ?? j.Message).length > 0, `${what}: no message in ${r.text}`);
  return { type: name, message: j.message ?? j.Message };
}

async function aliceRequests(gw = G) {
  return entity(await quiet(gw.port, ADMIN), 'virtual_keys', 'alice').requests;
}

// ---------------------------------------------------------------------------------------------
// InvokeModel / InvokeModelWithResponseStream → the Anthropic upstream

test('AWS SDK InvokeModel, Bedrock API key (bearer vk) → Anthropic: model from the path, anthropic_version dropped, anthropic_beta → header, provider key upstream', async () => {
  resetMocks();
  const before = await aliceRequests();
  const body = bedrockBody({
    system: 'Be brief.',
    temperature: 0.25,
    metadata: { user_id: 'user-bedrock-1' },
    anthropic_beta: ['interleaved-thinking-2025-05-14', 'token-efficient-tools-2025-02-19'],
    messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello through Bedrock', cache_control: { type: 'ephemeral' } }] }],
  });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const r = await invoke(c, SONNET, body);
    assert.equal(r.status, 200, diag());
    assert.match(r.contentType || '', /^application\/json/);
    assert.equal(r.json?.type, 'message', r.text);
    assert.equal(r.json.role, 'assistant');
    assert.deepEqual(r.json.content, [{ type: 'text', text: 'Hello from ant' }]);
    assert.equal(r.json.stop_reason, 'end_turn');
    assert.deepEqual(r.json.usage, DEFAULT_ANTHROPIC_USAGE);
  } finally { c.destroy(); }

  const msgs = a.messages();
  assert.equal(msgs.length, 1, diag());
  const up = msgs[0];
  assert.equal(up.method, 'POST');
  assert.equal(up.path, '/v1/messages');
  assert.equal(up.json.model, 'claude-sonnet-4-5', 'the model must come from the path');
  assert.ok(!('anthropic_version' in up.json), 'anthropic_version reached the Anthropic API');
  assert.ok(!('anthropic_beta' in up.json), 'anthropic_beta reached the Anthropic API in the body');
  assert.notEqual(up.json.stream, true, 'InvokeModel must not stream upstream');
  assert.equal(up.headers['anthropic-version'], '2023-06-01');
  assert.deepEqual(betas(up.headers['anthropic-beta']), ['interleaved-thinking-2025-05-14', 'token-efficient-tools-2025-02-19'],
    `anthropic-beta header ${up.headers['anthropic-beta']}`);
  // everything else arrives as the client sent it
  assert.deepEqual(omit(up.json, 'model', 'stream'), omit(body, 'anthropic_version', 'anthropic_beta'));
  assertUpstreamAuth(up);

  // logged and governed as alice
  // (log lines are written by the worker's ring a moment after the answer)
  await G.waitForLine((x) => x.includes('"path":"/bedrock/model/'), 3000, 'stdout');
  const l = G.logLines().filter((x) => typeof x.path === 'string' && x.path.startsWith('/bedrock/')).at(-1);
  assert.ok(l, `no log line for the Bedrock request\n${diag()}`);
  assert.equal(l.status, 200, JSON.stringify(l));
  assert.equal(l.provider, 'anthropic/claude-sonnet-4-5', JSON.stringify(l));
  assert.equal(await aliceRequests(), before + 1, 'the request was not counted against the virtual key');
});

test('AWS SDK InvokeModelWithResponseStream (bearer vk) → Anthropic: one chunk per upstream event, upstream stream:true', async () => {
  resetMocks();
  a.behave({ text: 'streamed through bedrock frames', textChunks: 4 });
  const body = bedrockBody({ anthropic_beta: ['fine-grained-tool-streaming-2025-05-14'] });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  let s;
  try {
    s = await invokeStream(c, SONNET, body);
  } finally { c.destroy(); }
  assert.equal(s.error, null, `the stream failed: ${showErr(s.error)}\n${diag()}`);
  assert.equal(s.status, 200);
  assert.equal(streamText(s.events), 'streamed through bedrock frames');
  assert.equal(s.events[0].type, 'message_start');
  assert.equal(s.events.at(-1).type, 'message_stop');

  const up = a.messages();
  assert.equal(up.length, 1, diag());
  assert.equal(up[0].json.stream, true, 'the streaming route must ask the upstream for a stream');
  assert.equal(up[0].json.model, 'claude-sonnet-4-5');
  assert.ok(!('anthropic_version' in up[0].json) && !('anthropic_beta' in up[0].json), Object.keys(up[0].json).join(','));
  assert.deepEqual(betas(up[0].headers['anthropic-beta']), ['fine-grained-tool-streaming-2025-05-14']);
  assertUpstreamAuth(up[0]);
  // the events inside the frames are the upstream's, in order, none lost or invented
  const sent = mockEvents(a.sent[0]);
  assert.deepEqual(s.events.map(stripMetrics), sent, 'the chunk events differ from what the upstream sent');
  a.behave({});
  // billed from the stream's usage events, like any Anthropic stream
  await G.waitForLine((x) => x.includes('"path":"/bedrock/model/') && x.includes('"stream":true'), 3000, 'stdout');
  const l = G.logLines().filter((x) => typeof x.path === 'string' && x.path.endsWith('/invoke-with-response-stream')).at(-1);
  assert.ok(l, diag());
  assert.deepEqual([l.status, l.stream, l.in_tokens, l.out_tokens, l.cached_tokens, l.cache_write_tokens], [200, true, 25, 9, 100, 50], JSON.stringify(l));
});

test('raw invoke-with-response-stream: eventstream frames with :event-type chunk, :content-type application/json, :message-type event, valid CRCs', async () => {
  resetMocks();
  a.behave({ text: 'raw frames', textChunks: 2, ping: true, thinking: { thinking: 'hmm', signature: 'c2ln' } });
  const r = await post(G, path(SONNET, 'invoke-with-response-stream'), bedrockBody(), bearer());
  const frames = framesOf(r);
  assert.ok(frames.length >= 8, `${frames.length} frames`);
  for (const f of frames) assertChunkFrame(f);
  const events = frames.map(chunkEvent);
  const sent = mockEvents(a.sent[0]).filter((e) => e.type !== 'ping');
  // a ping may be passed on or dropped (Bedrock sends none); nothing else may differ
  assert.deepEqual(events.filter((e) => e.type !== 'ping').map(stripMetrics), sent);
  const thinking = events.find((e) => e.type === 'content_block_delta' && e.delta.type === 'signature_delta');
  assert.equal(thinking?.delta.signature, 'c2ln', 'the thinking signature was not relayed');
  a.behave({});
});

test('SigV4-signed request whose access key id is the virtual key (the signature is NOT verified: any secret passes)', async () => {
  resetMocks();
  const before = await aliceRequests();
  for (const secret of ['the-right-secret', 'a-completely-different-secret']) {
    const c = bedrockClient(G, { auth: 'sigv4', key: KA, secret });
    try {
      const r = await invoke(c, SONNET, bedrockBody());
      assert.equal(r.json?.type, 'message', `secret ${secret}: ${r.text}`);
      const s = await invokeStream(c, SONNET, bedrockBody());
      assert.equal(s.error, null, showErr(s.error));
      assert.equal(streamText(s.events), 'Hello from ant');
    } finally { c.destroy(); }
  }
  // temporary credentials: the session token is signed along and must not travel on either
  const ct = bedrockClient(G, { auth: 'sigv4', key: KA, sessionToken: 'FwoGZXIvYXdzEXAMPLE//session+token=' });
  let tokenSent;
  ct.middlewareStack.add((next) => async (args) => { tokenSent = args.request.headers['x-amz-security-token']; return next(args); }, { step: 'finalizeRequest', priority: 'low' });
  try {
    const r = await invoke(ct, SONNET, bedrockBody());
    assert.equal(tokenSent, 'FwoGZXIvYXdzEXAMPLE//session+token=', 'the SDK did not send the session token (test set-up)');
    assert.equal(r.json?.type, 'message', r.text);
  } finally { ct.destroy(); }
  const msgs = a.messages();
  assert.equal(msgs.length, 5, diag());
  for (const up of msgs) {
    assertUpstreamAuth(up);
    assert.ok(!Object.keys(up.headers).some((h) => h === 'x-amz-date' || h === 'x-amz-content-sha256' || h === 'x-amz-security-token'),
      `SigV4 headers were forwarded to Anthropic: ${Object.keys(up.headers)}`);
  }
  assert.ok(!JSON.stringify(msgs[4].rawHeaders).includes('FwoGZXIvYXdzEXAMPLE'), 'the session token reached the upstream');
  assert.equal(await aliceRequests(), before + 5, 'SigV4 requests were not governed as the access key id');
});

test('AWS_BEARER_TOKEN_BEDROCK in the environment: the SDK sends it as Bearer by itself, the gateway takes it as the vk', async () => {
  resetMocks();
  const saved = process.env.AWS_BEARER_TOKEN_BEDROCK;
  process.env.AWS_BEARER_TOKEN_BEDROCK = KA;
  const c = bedrockClient(G, { auth: 'env-bearer' });
  try {
    const r = await invoke(c, SONNET, bedrockBody());
    assert.equal(r.json?.type, 'message', r.text);
  } finally {
    c.destroy();
    if (saved === undefined) delete process.env.AWS_BEARER_TOKEN_BEDROCK; else process.env.AWS_BEARER_TOKEN_BEDROCK = saved;
  }
  assert.equal(a.messages().length, 1, diag());
  assertUpstreamAuth(a.messages()[0]);
});

test('no credentials: a gateway without virtual keys serves both routes; one that requires them refuses in Bedrock shape (nothing upstream)', async () => {
  resetMocks();
  const r = await post(O, path(SONNET), bedrockBody());
  assert.equal(r.status, 200, `${show(r)}\n${diag(O)}`);
  assert.equal(r.json().type, 'message');
  const rs = await post(O, path(SONNET, 'invoke-with-response-stream'), bedrockBody());
  const frames = framesOf(rs);
  for (const f of frames) assertChunkFrame(f);
  assert.equal(streamText(frames.map(chunkEvent)), 'Hello from ant');
  assert.equal(a.messages().length, 2);
  for (const up of a.messages()) assert.equal(up.headers['x-api-key'], ANT_KEY);

  resetMocks();
  for (const op of ['invoke', 'invoke-with-response-stream']) {
    const g = await post(G, path(SONNET, op), bedrockBody());
    const e = bedrockErr(g, `${op} without a key`);
    assert.ok([401, 403].includes(g.status), `${op} without a key: ${show(g)}`);
    assert.ok(['AccessDeniedException', 'UnrecognizedClientException'].includes(e.type), `${op}: ${e.type}`);
  }
  assert.equal(a.messages().length, 0, 'a request without a key reached the upstream');
});

test('unknown / inactive virtual key (bearer or SigV4) → AccessDeniedException from the SDK, nothing sent upstream', async () => {
  resetMocks();
  const cases = [
    ['bearer, unknown key', bedrockClient(G, { auth: 'bearer', key: 'sk-bf-nobody' })],
    ['sigv4, unknown access key id', bedrockClient(G, { auth: 'sigv4', key: 'AKIAIOSFODNN7EXAMPLE' })],
    ['bearer, inactive key', bedrockClient(G, { auth: 'bearer', key: KC })],
    ['sigv4, inactive key', bedrockClient(G, { auth: 'sigv4', key: KC })],
  ];
  // every case is tried before any is judged, so a failure lists them all
  const got = [];
  for (const [what, c] of cases) {
    try {
      got.push([`${what} (InvokeModel)`, await sendError(c, new InvokeModelCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }))]);
      got.push([`${what} (stream)`, await sendError(c, new InvokeModelWithResponseStreamCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }))]);
    } finally { c.destroy(); }
  }
  assert.equal(a.messages().length, 0, `a refused request reached the upstream\n${diag()}`);
  const summary = got.map(([what, e]) => `${what}: ${e.noError ? 'no error' : `${e.name} HTTP ${e.$metadata?.httpStatusCode} ${JSON.stringify(e.message)}`}`).join('\n');
  for (const [what, e] of got) {
    try { assertBedrockError(e, ['AccessDeniedException'], what); } catch (err) { err.message += `\nall cases:\n${summary}`; throw err; }
  }
});

test('governance on the Bedrock routes: allowed_providers → AccessDeniedException, request rate limit → ThrottlingException, budget spent → a typed Bedrock exception', async (t) => {
  resetMocks();
  const got = [];
  const dave = bedrockClient(G, { auth: 'bearer', key: KD });
  const erin = bedrockClient(G, { auth: 'sigv4', key: KE });
  const frank = bedrockClient(G, { auth: 'bearer', key: KF });
  try {
    // dave may use openai only
    const ok = await invoke(dave, GPT, bedrockBody());
    assert.equal(ok.json?.type, 'message', ok.text);
    const e1 = await sendError(dave, new InvokeModelCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }));
    assertBedrockError(e1, ['AccessDeniedException'], 'dave on anthropic (allowed_providers)');
    got.push(`dave → anthropic: ${showErr(e1)}`);
    assert.equal(a.messages().length, 0, 'a request outside allowed_providers reached the upstream');

    // erin: one request an hour
    const first = await invoke(erin, SONNET, bedrockBody());
    assert.equal(first.json?.type, 'message', first.text);
    const e2 = await sendError(erin, new InvokeModelWithResponseStreamCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }));
    assertBedrockError(e2, ['ThrottlingException'], 'erin over her request rate');
    got.push(`erin 2nd: ${showErr(e2)}`);
    assert.ok(Number(e2.$response?.headers?.['retry-after']) >= 1, `no Retry-After on the rate-limit answer: ${JSON.stringify(e2.$response?.headers)}`);
    assert.equal(a.messages().length, 1, 'a rate-limited request reached the upstream');

    // frank: the first request spends the budget, the next is refused
    const f1 = await invoke(frank, SONNET, bedrockBody());
    assert.equal(f1.json?.type, 'message', f1.text);
    await quiet(G.port, ADMIN);
    const e3 = await sendError(frank, new InvokeModelCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }));
    got.push(`frank over budget: ${showErr(e3)}`);
    assert.ok(!e3.noError, 'a request over the budget was served');
    assert.ok(e3 instanceof BedrockRuntimeServiceException && BEDROCK_EXCEPTIONS.includes(e3.name), `budget refusal is not a typed Bedrock exception: ${showErr(e3)}`);
    assert.ok(e3.$metadata.httpStatusCode >= 400 && e3.$metadata.httpStatusCode < 500, showErr(e3));
    assert.match(e3.message, /budget/i, showErr(e3));
    assert.equal(a.messages().length, 2, 'a request over budget reached the upstream');
    t.diagnostic(got.join('\n'));
  } finally {
    dave.destroy(); erin.destroy(); frank.destroy();
  }
});

// ---------------------------------------------------------------------------------------------
// the OpenAI upstream, translated

test('InvokeModel → OpenAI provider: translated to chat completions and the answer back to an Anthropic message', async () => {
  resetMocks();
  const body = bedrockBody({ system: 'Be brief.', max_tokens: 50, temperature: 0.2, stop_sequences: ['END'], anthropic_beta: ['interleaved-thinking-2025-05-14'] });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  let r;
  try { r = await invoke(c, GPT, body); } finally { c.destroy(); }
  assert.equal(r.json?.type, 'message', r.text);
  assert.equal(r.json.role, 'assistant');
  assert.deepEqual(r.json.content, [{ type: 'text', text: 'Hello from oai' }]);
  assert.equal(r.json.stop_reason, 'end_turn');
  assert.equal(r.json.usage?.input_tokens, 11);
  assert.equal(r.json.usage?.output_tokens, 7);

  assert.equal(m.requests.length, 1, diag());
  const up = m.requests[0];
  assert.equal(up.path, '/v1/chat/completions');
  assert.equal(up.headers.authorization, `Bearer ${OAI_KEY}`);
  assert.ok(!JSON.stringify(up.rawHeaders).includes(KA), 'the virtual key leaked upstream');
  assert.equal(up.json.model, 'gpt-4o');
  assert.ok(!('anthropic_version' in up.json) && !('anthropic_beta' in up.json), `Bedrock fields reached OpenAI: ${Object.keys(up.json)}`);
  assert.notEqual(up.json.stream, true);
  assert.deepEqual(up.json.messages[0], { role: 'system', content: 'Be brief.' });
  const user = up.json.messages[1];
  assert.equal(user.role, 'user');
  const text = typeof user.content === 'string' ? user.content : user.content.map((p) => p.text).join('');
  assert.equal(text, 'Hello through Bedrock');
  assert.equal(up.json.max_tokens ?? up.json.max_completion_tokens, 50);
  assert.equal(up.json.temperature, 0.2);
  assert.deepEqual(up.json.stop, ['END']);
});

test('InvokeModelWithResponseStream → OpenAI provider: chat chunks become Anthropic events inside the frames', async () => {
  resetMocks();
  m.behave({ content: 'translated stream text', chunks: 4 });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  let s;
  try { s = await invokeStream(c, GPT, bedrockBody()); } finally { c.destroy(); }
  assert.equal(s.error, null, `${showErr(s.error)}\n${diag()}`);
  const types = s.events.map((e) => e.type);
  assert.equal(types[0], 'message_start', types.join(','));
  assert.equal(types.at(-1), 'message_stop', types.join(','));
  assert.ok(types.includes('content_block_start') && types.includes('content_block_stop') && types.includes('message_delta'), types.join(','));
  assert.equal(streamText(s.events), 'translated stream text');
  const md = s.events.find((e) => e.type === 'message_delta');
  assert.equal(md.delta.stop_reason, 'end_turn');
  assert.equal(md.usage?.output_tokens, 7, JSON.stringify(md));

  assert.equal(m.requests.length, 1, diag());
  const up = m.requests[0].json;
  assert.equal(up.model, 'gpt-4o');
  assert.equal(up.stream, true);
  assert.ok(!('anthropic_version' in up), Object.keys(up).join(','));

  // the same on the wire: every frame a well-formed chunk
  m.behave({ content: 'raw translated', chunks: 2 });
  const r = await post(G, path(GPT, 'invoke-with-response-stream'), bedrockBody(), bearer());
  const frames = framesOf(r);
  for (const f of frames) assertChunkFrame(f);
  assert.equal(streamText(frames.map(chunkEvent)), 'raw translated');
  m.behave({});
});

test('Bedrock in, Bedrock out: SDK → gateway → a Bedrock provider (signed with the provider\'s credentials, id re-encoded, anthropic_beta kept), answers and frames relayed, exceptions typed', async (t) => {
  br.reset();
  const id = 'br/us.anthropic.claude-sonnet-4-5-20250929-v1:0';
  const body = bedrockBody({ system: 'Be brief.', anthropic_beta: ['interleaved-thinking-2025-05-14'] });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  const notes = [];
  try {
    const r = await invoke(c, id, body);
    assert.equal(r.json?.type, 'message', `${r.text}\n${br.summary()}`);
    assert.deepEqual(r.json.content, [{ type: 'text', text: 'Hello from br' }]);
    const up = br.requests.at(-1);
    assert.ok(up.auth.ok, `the Bedrock mock refused the gateway's signature: ${JSON.stringify(up.auth)}`);
    assert.equal(up.path, '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke');
    assert.equal(up.json.anthropic_version, 'bedrock-2023-05-31');
    assert.deepEqual(up.json.anthropic_beta, ['interleaved-thinking-2025-05-14']);
    assert.ok(!('model' in up.json) && !('stream' in up.json), Object.keys(up.json).join(','));
    assert.deepEqual(omit(up.json, 'anthropic_version', 'anthropic_beta'), omit(body, 'anthropic_version', 'anthropic_beta'));
    assert.ok(!JSON.stringify(up.rawHeaders).includes(KA) && !up.body.includes(KA), 'the virtual key reached Bedrock');
    assert.match(up.headers.authorization || '', new RegExp(`^AWS4-HMAC-SHA256 Credential=${BR_AKID}/`));

    br.once({ text: 'bedrock to bedrock', textChunks: 3 });
    const s = await invokeStream(c, id, body);
    assert.equal(s.error, null, `${showErr(s.error)}\n${br.summary()}`);
    assert.equal(streamText(s.events), 'bedrock to bedrock');
    const up2 = br.requests.at(-1);
    assert.ok(up2.auth.ok, JSON.stringify(up2.auth));
    assert.equal(up2.path, '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream');
    const sent = br.sent.at(-1).frames.map((f) => f.json);
    assert.deepEqual(s.events.map(stripMetrics), sent.map(stripMetrics), 'the events differ from what Bedrock sent');
    notes.push(`invocationMetrics relayed: ${JSON.stringify(s.events.at(-1)['amazon-bedrock-invocationMetrics'] ?? null)}`);

    // Bedrock's own errors keep their type and message
    br.once({ status: 429 });
    const e1 = await sendError(c, new InvokeModelCommand({ modelId: id, body: JSON.stringify(body) }));
    assertBedrockError(e1, ['ThrottlingException'], 'Bedrock 429');
    assert.match(e1.message, /Too many requests/, showErr(e1));
    // an exception frame before any event: the attempt fails before the client saw a byte, so
    // the SDK's call itself throws the same kind, with Bedrock's message (said once)
    br.once({ exception: { type: 'throttlingException', afterEvents: 0 } });
    const e0 = await sendError(c, new InvokeModelWithResponseStreamCommand({ modelId: id, body: JSON.stringify(body) }));
    notes.push(`Bedrock throttlingException as the first frame → ${showErr(e0)}`);
    assertBedrockError(e0, ['ThrottlingException'], 'exception frame first');
    assert.match(e0.message, /Too many requests/, showErr(e0));
    assert.doesNotMatch(e0.message, /(provider br: ){2}/, `the provider is named twice: ${JSON.stringify(e0.message)}`);
    // an exception frame mid-stream (after two events the client already has: delayMs spaces
    // the frames) ends the client's stream with an exception frame of the same kind
    br.once({ delayMs: 150, exception: { type: 'throttlingException', afterEvents: 2 } });
    const s2 = await invokeStream(c, id, body);
    notes.push(`Bedrock throttlingException after 2 events → ${showErr(s2.error)} after ${s2.events.length} events`);
    assert.equal(s2.events.length, 2, JSON.stringify(s2.events));
    assert.ok(s2.error instanceof BedrockRuntimeServiceException, showErr(s2.error));
    assert.equal(s2.error.name, 'ThrottlingException', showErr(s2.error));
  } finally {
    c.destroy();
    t.diagnostic(notes.join('\n'));
  }
});

// ---------------------------------------------------------------------------------------------
// model ids

test('model ids with ":" and "/" (percent-encoded by the SDK, ":" raw as Claude Code sends it) and a bare Bedrock id mapped by model_map', async () => {
  resetMocks();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const r1 = await invoke(c, SONNET_V1, bedrockBody());
    assert.equal(r1.json?.type, 'message', `${r1.text}\n${diag()}`);
    assert.equal(a.messages().at(-1).json.model, 'claude-sonnet-4-5-20250929-v1:0');

    const s1 = await invokeStream(c, SONNET_V1, bedrockBody());
    assert.equal(s1.error, null, showErr(s1.error));
    assert.equal(a.messages().at(-1).json.model, 'claude-sonnet-4-5-20250929-v1:0');

    const r2 = await invoke(c, BARE_BEDROCK_ID, bedrockBody());
    assert.equal(r2.json?.type, 'message', `${r2.text}\n${diag()}`);
    assert.equal(a.messages().at(-1).json.model, 'claude-sonnet-4-5', 'model_map did not apply to the Bedrock id');
  } finally { c.destroy(); }

  // ':' unencoded and '/' encoded, as the Anthropic Bedrock SDK inside Claude Code writes them
  const r3 = await post(G, '/bedrock/model/anthropic%2Fclaude-sonnet-4-5-20250929-v1:0/invoke', bedrockBody(), bearer());
  assert.equal(r3.status, 200, show(r3));
  assert.equal(a.messages().at(-1).json.model, 'claude-sonnet-4-5-20250929-v1:0');
  const r4 = await post(G, `/bedrock/model/${BARE_BEDROCK_ID}/invoke-with-response-stream`, bedrockBody(), bearer());
  framesOf(r4);
  assert.equal(a.messages().at(-1).json.model, 'claude-sonnet-4-5');
  assert.equal(a.messages().length, 5, diag());
});

test('unknown model → a typed Bedrock exception carrying the gateway\'s message (SDK and raw), nothing sent upstream', async () => {
  resetMocks();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    for (const id of ['mystery-model-9', 'nosuchprovider/some-model']) {
      const raw = await post(G, path(id), bedrockBody(), bearer());
      const eRaw = bedrockErr(raw, `raw ${id}`);
      assert.ok(['ResourceNotFoundException', 'ValidationException'].includes(eRaw.type), `${id}: ${eRaw.type}`);
      const e = await sendError(c, new InvokeModelCommand({ modelId: id, body: JSON.stringify(bedrockBody()) }));
      assertBedrockError(e, ['ResourceNotFoundException', 'ValidationException'], id);
      assert.equal(e.message, eRaw.message, 'the SDK should surface the gateway\'s message');
      assert.equal(e.name, eRaw.type);
      const es = await sendError(c, new InvokeModelWithResponseStreamCommand({ modelId: id, body: JSON.stringify(bedrockBody()) }));
      assertBedrockError(es, ['ResourceNotFoundException', 'ValidationException'], `${id} (stream)`);
    }
  } finally { c.destroy(); }
  assert.equal(a.requests.length + m.requests.length, 0, diag());
});

test('a body that is not JSON, or not an object → ValidationException, nothing upstream', async () => {
  resetMocks();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    for (const body of ['this is not json', '[1,2,3]', '{"anthropic_version":"bedrock-2023-05-31","max_tokens":5,"messages":[}']) {
      const e = await sendError(c, new InvokeModelCommand({ modelId: SONNET, body }));
      assertBedrockError(e, ['ValidationException'], `body ${JSON.stringify(body)}`);
    }
  } finally { c.destroy(); }
  assert.equal(a.requests.length, 0, diag());
});

// ---------------------------------------------------------------------------------------------
// upstream errors

test('upstream errors become the matching Bedrock exceptions with the provider\'s message: 429 → Throttling, 400 → Validation, 500 → InternalServer, 503 → ServiceUnavailable', async () => {
  resetMocks();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  const cases = [
    [429, anthropicError('rate_limit_error', 'mock says slow down please'), 'ThrottlingException'],
    [400, anthropicError('invalid_request_error', 'mock says messages: field required'), 'ValidationException'],
    [500, anthropicError('api_error', 'mock internal failure'), 'InternalServerException'],
    [503, anthropicError('overloaded_error', 'mock is unavailable'), 'ServiceUnavailableException'],
  ];
  try {
    for (const [status, body, want] of cases) {
      a.once({ status, body, headers: status === 429 ? { 'retry-after': '1' } : {} });
      const e = await sendError(c, new InvokeModelCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }));
      assertBedrockError(e, [want], `upstream ${status} (InvokeModel)`);
      assert.match(e.message, new RegExp(body.error.message), `upstream ${status}: the provider's message is lost: ${showErr(e)}`);
      a.once({ status, body });
      const es = await sendError(c, new InvokeModelWithResponseStreamCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }));
      assertBedrockError(es, [want], `upstream ${status} (stream)`);
    }
    // the OpenAI provider's 429 too
    m.once({ status: 429, body: { error: { message: 'openai mock rate limit', type: 'rate_limit', code: 'rate_limit_exceeded' } } });
    const eo = await sendError(c, new InvokeModelCommand({ modelId: GPT, body: JSON.stringify(bedrockBody()) }));
    assertBedrockError(eo, ['ThrottlingException'], 'OpenAI upstream 429');
  } finally { c.destroy(); }
  assert.equal(a.messages().length, 8, diag());
});

test('upstream connection cut mid-stream → an exception frame ends the stream; the SDK\'s iteration throws after the first events', async (t) => {
  resetMocks();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    a.once({ resetAfterEvents: 3, text: 'cut short here', textChunks: 4 });
    const s = await invokeStream(c, SONNET, bedrockBody());
    assert.ok(s.events.length >= 1 && s.events[0].type === 'message_start', `events before the cut: ${JSON.stringify(s.events.map((e) => e.type))}`);
    assert.ok(s.error, `the iteration ended without an error after a cut upstream: ${JSON.stringify(s.events.map((e) => e.type))}\n${diag()}`);
    assert.ok(s.error instanceof BedrockRuntimeServiceException && BEDROCK_EXCEPTIONS.includes(s.error.name), `not a Bedrock exception: ${showErr(s.error)}`);
    assert.ok(!s.events.some((e) => e.type === 'message_stop'), 'a cut stream must not end with message_stop');

    m.once({ resetAfterChunks: 2, chunks: 5 });
    const so = await invokeStream(c, GPT, bedrockBody());
    assert.ok(so.error instanceof BedrockRuntimeServiceException && BEDROCK_EXCEPTIONS.includes(so.error.name), `OpenAI cut: ${showErr(so.error)} events ${JSON.stringify(so.events.map((e) => e.type))}`);
  } finally { c.destroy(); }

  // on the wire: chunk frames, then one exception frame, then the end of the answer
  a.once({ resetAfterEvents: 3 });
  const r = await post(G, path(SONNET, 'invoke-with-response-stream'), bedrockBody(), bearer());
  const frames = framesOf(r);
  const last = frames.at(-1);
  for (const f of frames.slice(0, -1)) assertChunkFrame(f);
  assert.equal(last.headers[':message-type'], 'exception', `last frame ${JSON.stringify(last.headers)}`);
  assert.match(last.headers[':exception-type'] || '', /^[a-z][A-Za-z]*Exception$/, JSON.stringify(last.headers));
  assert.ok(typeof last.json?.message === 'string' && last.json.message.length > 0, last.payload.toString('utf8'));
  t.diagnostic(`exception frame: ${JSON.stringify(last.headers)} ${last.payload.toString('utf8')}`);
  const health = await request(G.port, { path: '/health' });
  assert.equal(health.status, 200);
});

test('an Anthropic `event: error` (overloaded) mid-stream → an exception frame of a Bedrock type carrying the provider\'s message; the SDK throws it', async () => {
  const r = await post(G, path('errsse/claude-sonnet-4-5', 'invoke-with-response-stream'), bedrockBody(), bearer());
  const frames = framesOf(r);
  assert.equal(errUp.requests.length, 1);
  const last = frames.at(-1);
  const all = frames.map((f) => `${JSON.stringify(f.headers)} ${f.payload.toString('utf8').slice(0, 200)}`).join('\n');
  for (const f of frames.slice(0, -1)) assertChunkFrame(f);
  assert.deepEqual(frames.slice(0, -1).map((f) => chunkEvent(f).type), ['message_start', 'content_block_start'], all);
  assert.equal(last.headers[':message-type'], 'exception', all);
  assert.ok(['serviceUnavailableException', 'throttlingException', 'modelStreamErrorException', 'internalServerException'].includes(last.headers[':exception-type']), all);
  assert.ok(last.json?.message?.includes(OVERLOADED), `the provider's message is not in the exception frame:\n${all}`);

  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const s = await invokeStream(c, 'errsse/claude-sonnet-4-5', bedrockBody());
    assert.ok(s.error instanceof BedrockRuntimeServiceException && BEDROCK_EXCEPTIONS.includes(s.error.name), showErr(s.error));
    assert.equal(s.events.length, 2);
  } finally { c.destroy(); }
});

test('provider timeouts and an unreachable provider → typed Bedrock exceptions (ModelTimeoutException for a timeout), stream idle timeout → exception frame', async (t) => {
  resetMocks();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  const seen = [];
  try {
    a.once({ hang: true });
    const e1 = await sendError(c, new InvokeModelCommand({ modelId: 'slow/claude-sonnet-4-5', body: JSON.stringify(bedrockBody()) }));
    seen.push(`hang (InvokeModel): ${showErr(e1)}`);
    assertBedrockError(e1, ['ModelTimeoutException'], 'upstream never answers (InvokeModel)');
    a.once({ hang: true });
    const e2 = await sendError(c, new InvokeModelWithResponseStreamCommand({ modelId: 'slow/claude-sonnet-4-5', body: JSON.stringify(bedrockBody()) }));
    seen.push(`hang (stream): ${showErr(e2)}`);
    assertBedrockError(e2, ['ModelTimeoutException'], 'upstream never answers (stream)');

    // the stream starts, then the upstream goes silent longer than stream_idle_timeout_ms
    a.once({ eventDelayMs: 1500 });
    const s = await invokeStream(c, 'slow/claude-sonnet-4-5', bedrockBody());
    seen.push(`idle mid-stream: events ${s.events.map((e) => e.type)} then ${showErr(s.error)}`);
    assert.equal(s.events[0]?.type, 'message_start');
    assert.ok(s.error instanceof BedrockRuntimeServiceException && BEDROCK_EXCEPTIONS.includes(s.error.name), `idle stream: ${showErr(s.error)}`);

    const e3 = await sendError(c, new InvokeModelCommand({ modelId: 'dead/claude-sonnet-4-5', body: JSON.stringify(bedrockBody()) }));
    seen.push(`unreachable: ${showErr(e3)}`);
    assert.ok(e3 instanceof BedrockRuntimeServiceException && BEDROCK_EXCEPTIONS.includes(e3.name), `unreachable provider: ${showErr(e3)}`);
    assert.ok(e3.$metadata.httpStatusCode >= 500, showErr(e3));
    assert.match(e3.message, /connect|refused|reach/i, showErr(e3));
    t.diagnostic(seen.join('\n'));
  } catch (err) {
    err.message += `\n${seen.join('\n')}\n${diag()}`;
    throw err;
  } finally { c.destroy(); }
});

test('frames are relayed as the upstream sends them (the first chunk reaches the SDK long before the upstream finishes)', async () => {
  resetMocks();
  a.once({ eventDelayMs: 250, textChunks: 4 });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  const times = [];
  try {
    const r = await c.send(new InvokeModelWithResponseStreamCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) }));
    for await (const item of r.body) if (item.chunk) times.push(Date.now());
  } finally { c.destroy(); }
  const sent = a.sent[0].times;
  assert.equal(times.length, sent.length, `${times.length} chunks for ${sent.length} upstream events`);
  assert.ok(times[0] < sent.at(-1) - 1000, `the first chunk arrived ${times[0] - sent[0]} ms after the upstream sent it, the last upstream event ${sent.at(-1) - sent[0]} ms after the first: buffered?`);
  for (let i = 0; i < sent.length; i++) assert.ok(times[i] - sent[i] < 400, `chunk ${i} arrived ${times[i] - sent[i]} ms after the upstream sent it`);
});

test('with the gateway\'s stream keep-alive pings due (stream_ping_ms 150, upstream silent 600 ms between events) the eventstream stays well formed', async () => {
  resetMocks();
  const P = await startGateway({ config: { limits: { stream_ping_ms: 150 }, providers: providers() } });
  try {
    a.once({ eventDelayMs: 600, textChunks: 2 });
    const r = await post(P, path(SONNET, 'invoke-with-response-stream'), bedrockBody(), {}, 20_000);
    const frames = framesOf(r);
    for (const f of frames) assertChunkFrame(f);
    const events = frames.map(chunkEvent);
    // a ping, if the gateway sends one, is a chunk holding {"type":"ping"}; nothing else is added
    assert.deepEqual(events.filter((e) => e.type !== 'ping').map(stripMetrics), mockEvents(a.sent[0]));
    for (const e of events.filter((x) => x.type === 'ping')) assert.deepEqual(e, { type: 'ping' });
    // the SDK reads it too
    a.once({ eventDelayMs: 600, textChunks: 2 });
    const c = bedrockClient(P, { auth: 'bearer', key: 'unused' });
    try {
      const s = await invokeStream(c, SONNET, bedrockBody());
      assert.equal(s.error, null, showErr(s.error));
      assert.equal(streamText(s.events), 'Hello from ant');
    } finally { c.destroy(); }
  } finally { await P.stop(); }
});

test('eight parallel streams on one SDK client each get their own events; a 300 KB single delta and multi-byte text survive the framing', async () => {
  resetMocks();
  a.behave((rec) => ({ text: `parallel answer to ${JSON.stringify(rec.json?.messages?.[0]?.content)}`, textChunks: 3, eventDelayMs: 20 }));
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const runs = await Promise.all(Array.from({ length: 8 }, (_, i) => invokeStream(c, SONNET, bedrockBody({ messages: [{ role: 'user', content: `q${i}` }] }))));
    runs.forEach((s, i) => {
      assert.equal(s.error, null, `stream ${i}: ${showErr(s.error)}`);
      assert.equal(streamText(s.events), `parallel answer to "q${i}"`, `stream ${i}`);
    });
    a.behave({});
    const big = `${'y'.repeat(300_000)} héllo 🌍 — 日本語 \u2028 "quoted" \\ end`;
    a.once({ text: big, textChunks: 1 });
    const s = await invokeStream(c, SONNET, bedrockBody());
    assert.equal(s.error, null, showErr(s.error));
    assert.equal(streamText(s.events), big, 'the big delta was altered');
    a.once({ text: 'héllo 🌍 — 日本語', textChunks: 7 });
    const s2 = await invokeStream(c, SONNET, bedrockBody());
    assert.equal(streamText(s2.events), 'héllo 🌍 — 日本語');
    a.once({ text: big, textChunks: 1 });
    const r = await invoke(c, SONNET, bedrockBody());
    assert.equal(r.json?.content?.[0]?.text, big);
  } finally { c.destroy(); a.behave({}); }
});

test('a 2 MB InvokeModel body through the SDK arrives whole; stray "stream" and "model" in a Bedrock body do not override the route', async () => {
  resetMocks();
  const big = 'x'.repeat(2 * 1024 * 1024);
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const r = await invoke(c, SONNET, bedrockBody({ messages: [{ role: 'user', content: big }] }));
    assert.equal(r.json?.type, 'message', r.text.slice(0, 300));
    assert.equal(a.messages().at(-1).json.messages[0].content, big, 'the big body was altered');

    // the path decides: a body naming another model, or asking for a stream on /invoke
    const r2 = await invoke(c, SONNET, bedrockBody({ model: 'openai/gpt-4o', stream: true }));
    assert.equal(r2.json?.type, 'message', `${r2.contentType} ${r2.text.slice(0, 300)}`);
    assert.match(r2.contentType || '', /^application\/json/);
  } catch (err) {
    // a refusal is acceptable for the stray fields only, and then as ValidationException
    if (!(err instanceof BedrockRuntimeServiceException) || a.messages().length === 0) throw err;
    assertBedrockError(err, ['ValidationException'], 'stray fields');
  } finally { c.destroy(); }
  assert.equal(m.requests.length, 0, 'a "model" in the body re-routed the request to OpenAI');
  const last = a.messages().at(-1).json;
  assert.equal(last.model, 'claude-sonnet-4-5');
  assert.notEqual(last.stream, true, '/invoke asked the upstream for a stream');
});

// ---------------------------------------------------------------------------------------------
// tools

test('tool use round trip through InvokeModel → Anthropic (tool_use out, tool_result back, both byte-faithful)', async () => {
  resetMocks();
  a.behave(scripted({ tool: 'get_weather', input: { city: 'Oslo', unit: 'celsius' }, id: 'toolu_01BedrockInbound' }));
  const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string' } }, required: ['city'] } }];
  const first = [{ role: 'user', content: 'What is the weather in Oslo?' }];
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const r1 = await invoke(c, SONNET, bedrockBody({ tools, tool_choice: { type: 'auto' }, messages: first }));
    assert.equal(r1.json?.stop_reason, 'tool_use', r1.text);
    const tu = r1.json.content.find((b) => b.type === 'tool_use');
    assert.deepEqual(tu, { type: 'tool_use', id: 'toolu_01BedrockInbound', name: 'get_weather', input: { city: 'Oslo', unit: 'celsius' } });

    const second = [...first, { role: 'assistant', content: r1.json.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: tu.id, content: '12 degrees and rain' }] }];
    const r2 = await invoke(c, SONNET, bedrockBody({ tools, messages: second }));
    assert.deepEqual(r2.json?.content, [{ type: 'text', text: 'TOOL RESULT: 12 degrees and rain' }], r2.text);
    const up = a.messages();
    assert.equal(up.length, 2, diag());
    assert.deepEqual(up[0].json.tools, tools);
    assert.deepEqual(up[0].json.tool_choice, { type: 'auto' });
    assert.deepEqual(up[1].json.messages, second);
    assert.deepEqual(toolResults(lastUserMessage(up[1].json)).map((t) => t.tool_use_id), ['toolu_01BedrockInbound']);

    // streamed: the tool input arrives as input_json_delta inside the frames
    const s = await invokeStream(c, SONNET, bedrockBody({ tools, messages: first }));
    assert.equal(s.error, null, showErr(s.error));
    const start = s.events.find((e) => e.type === 'content_block_start' && e.content_block.type === 'tool_use');
    assert.equal(start?.content_block.id, 'toolu_01BedrockInbound');
    assert.deepEqual(JSON.parse(streamToolInput(s.events, start.index)), { city: 'Oslo', unit: 'celsius' });
  } finally { c.destroy(); a.behave({}); }
});

test('tool use round trip through InvokeModel → OpenAI provider (tool_calls ↔ tool_use translated)', async () => {
  resetMocks();
  const tools = [{ name: 'get_weather', description: 'Weather of a city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];
  m.once({
    body: {
      id: 'chatcmpl-tool', object: 'chat.completion', created: 1700000000, model: 'gpt-4o',
      choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_bedrock_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] }, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 },
    },
  });
  const first = [{ role: 'user', content: 'Weather in Oslo?' }];
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const r1 = await invoke(c, GPT, bedrockBody({ tools, messages: first }));
    assert.equal(r1.json?.stop_reason, 'tool_use', r1.text);
    const tu = r1.json.content.find((b) => b.type === 'tool_use');
    assert.deepEqual(omit(tu, 'type'), { id: 'call_bedrock_1', name: 'get_weather', input: { city: 'Oslo' } }, r1.text);
    const t0 = m.requests[0].json.tools?.[0];
    assert.equal(t0?.type, 'function', JSON.stringify(m.requests[0].json.tools));
    assert.equal(t0.function.name, 'get_weather');
    assert.deepEqual(t0.function.parameters, tools[0].input_schema);

    const second = [...first, { role: 'assistant', content: r1.json.content },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'call_bedrock_1', content: '12 degrees' }] }];
    const r2 = await invoke(c, GPT, bedrockBody({ tools, messages: second }));
    assert.deepEqual(r2.json?.content, [{ type: 'text', text: 'Hello from oai' }], r2.text);
    const msgs = m.requests[1].json.messages;
    const asst = msgs.find((x) => x.role === 'assistant');
    assert.equal(asst?.tool_calls?.[0]?.id, 'call_bedrock_1', JSON.stringify(msgs));
    assert.deepEqual(JSON.parse(asst.tool_calls[0].function.arguments), { city: 'Oslo' });
    const toolMsg = msgs.find((x) => x.role === 'tool');
    assert.equal(toolMsg?.tool_call_id, 'call_bedrock_1', JSON.stringify(msgs));
    const tText = typeof toolMsg.content === 'string' ? toolMsg.content : toolMsg.content.map((p) => p.text).join('');
    assert.equal(tText, '12 degrees');
  } finally { c.destroy(); }
});

// ---------------------------------------------------------------------------------------------
// hostile input

test('hostile model ids in the path (CR/LF, NUL, invalid percent escapes, empty, very long, traversal) → clean 4xx, no header injection, gateway stays up', async (t) => {
  resetMocks();
  const strict = [
    '/bedrock/model/evil%0d%0aX-Injected:%20yes/invoke',
    '/bedrock/model/evil%0D%0AX-Injected:%20yes/invoke-with-response-stream',
    '/bedrock/model/abc%00def/invoke',
    '/bedrock/model/%zz/invoke',
    '/bedrock/model/%/invoke',
    '/bedrock/model/abc%4/invoke',
    '/bedrock/model/anthropic%2/invoke',
    '/bedrock/model/%E0%80%80/invoke',            // overlong UTF-8
    '/bedrock/model/%ff%fe/invoke',               // not UTF-8
    '/bedrock/model//invoke',
    '/bedrock/model/anthropic%2F/invoke',         // a provider and no model
    '/bedrock/model/..%2F..%2Fapi%2Fconfig/invoke',
    `/bedrock/model/${'m'.repeat(8000)}/invoke`,
    `/bedrock/model/${'%41'.repeat(5000)}/invoke`,
    '/bedrock/model/anthropic%2Fclaude-sonnet-4-5/explode',
    '/bedrock/model/anthropic%2Fclaude-sonnet-4-5',
    '/bedrock/model/',
    '/bedrock/model',
    '/bedrock/',
  ];
  // provider-prefixed: routable in principle; either refused, or forwarded with the exact
  // decoded name inside the JSON (never as raw bytes in a header)
  const lenient = [
    ['/bedrock/model/anthropic%2Fevil%0d%0aX-Injected:%20yes/invoke', 'evil\r\nX-Injected: yes'],
    ['/bedrock/model/anthropic%2Fclaude%00evil/invoke', 'claude\u0000evil'],
    [`/bedrock/model/anthropic%2F${'c'.repeat(6000)}/invoke`, 'c'.repeat(6000)],
  ];
  const body = JSON.stringify(bedrockBody());
  const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${KA}` };
  const seen = [];
  for (const p of strict) {
    const { responses: [r], conn } = await rawExchange(G.port, rawRequest('POST', p, { headers, body }), { timeoutMs: 5000 });
    conn.destroy();
    seen.push(`${r.status} ${r.headers['x-amzn-errortype']} ${p.slice(0, 70)}`);
    assert.ok(r.status >= 400 && r.status < 500, `${p.slice(0, 100)}: status ${r.status} ${r.body.toString('utf8').slice(0, 300)}`);
    assert.ok(!/\r\nX-Injected/i.test(r.rawHead), `header injection through ${p}: ${r.rawHead}`);
    if (p.includes('/invoke')) {
      // a Bedrock route's error, in Bedrock's shape
      assert.match(r.headers['x-amzn-errortype'] || '', /Exception/, `${p.slice(0, 100)}: no x-amzn-ErrorType (${r.rawHead})`);
    }
  }
  assert.equal(a.requests.length + m.requests.length, 0, `a hostile id reached an upstream:\n${seen.join('\n')}\n${diag()}`);
  t.diagnostic(seen.join('\n'));

  for (const [p, model] of lenient) {
    const before = a.messages().length;
    const { responses: [r], conn } = await rawExchange(G.port, rawRequest('POST', p, { headers, body }), { timeoutMs: 5000 });
    conn.destroy();
    assert.ok(!/\r\nX-Injected/i.test(r.rawHead), `header injection through ${p}: ${r.rawHead}`);
    assert.ok(r.status < 500, `${p.slice(0, 80)}: ${r.status}`);
    if (r.status === 200) {
      const up = a.messages().at(-1);
      assert.equal(a.messages().length, before + 1);
      assert.equal(up.json.model, model, 'forwarded with a different model name');
      assert.ok(!up.rawHeaders.some((h) => /X-Injected/i.test(h)), 'injected header upstream');
    } else {
      assert.ok(r.status >= 400, `${p.slice(0, 80)}: ${r.status}`);
      assert.equal(a.messages().length, before, 'refused but sent upstream');
    }
  }

  // a head far over the limit, a GET on an invoke route
  const huge = await rawExchange(G.port, rawRequest('POST', `/bedrock/model/${'x'.repeat(70_000)}/invoke`, { headers, body }), { timeoutMs: 5000 }).catch((e) => e);
  if (!(huge instanceof Error)) { huge.conn.destroy(); assert.ok(huge.responses[0].status >= 400 && huge.responses[0].status < 500, `70 KB path: ${huge.responses[0].status}`); }
  const get = await request(G.port, { path: path(SONNET), headers: bearer() });
  assert.ok(get.status >= 400 && get.status < 500, `GET on invoke: ${show(get)}`);

  const health = await request(G.port, { path: '/health' });
  assert.equal(health.status, 200, 'the gateway is not healthy after hostile ids');
  assert.equal(G.exited, null, G.output());
  // and still serves
  const ok = await post(G, path(SONNET), bedrockBody(), bearer());
  assert.equal(ok.status, 200, show(ok));
});

test('GET on Bedrock paths (Claude Code\'s start-up GET /bedrock/inference-profiles, a GET on invoke) → 4xx whose x-amzn-ErrorType is a client error, not InternalServerException', async () => {
  const out = [];
  for (const p of ['/bedrock/inference-profiles?type=SYSTEM_DEFINED', path(SONNET), path(SONNET, 'invoke-with-response-stream')]) {
    const r = await request(G.port, { path: p, headers: bearer() });
    out.push(`GET ${p} → ${r.status} ${r.headers['x-amzn-errortype']} ${r.text}`);
  }
  const text = out.join('\n');
  for (const line of out) {
    const [, status, type] = / → (\d+) (\S+)/.exec(line) || [];
    assert.ok(Number(status) >= 400 && Number(status) < 500, text);
    assert.ok(!['InternalServerException', 'ServiceUnavailableException', 'ModelTimeoutException', 'undefined'].includes(type), `a client error answered with a server-fault (retryable) type:\n${text}`);
    if (EXPECTED_STATUS[type]) assert.ok(EXPECTED_STATUS[type].includes(Number(status)), `${type} with status ${status}:\n${text}`);
  }
});

test('the SDK\'s default request handler (HTTP/2 prior knowledge on http://) fails fast against the HTTP/1.1 gateway, which stays up', async () => {
  const c = bedrockClient(G, { auth: 'bearer', key: KA, requestHandler: null });
  const t0 = Date.now();
  const e = await Promise.race([
    sendError(c, new InvokeModelCommand({ modelId: SONNET, body: JSON.stringify(bedrockBody()) })),
    new Promise((r) => setTimeout(() => r({ hung: true }), 15_000)),
  ]);
  c.destroy();
  assert.ok(!e.hung, 'an HTTP/2 client hung on the gateway for 15 s');
  // an h2 preface is not HTTP/1.1; whatever the client reports, the gateway must live on
  process.stderr.write(`# default (HTTP/2) SDK client after ${Date.now() - t0} ms: ${e.noError ? 'succeeded' : `${e.name}: ${e.message}`}\n`);
  const health = await request(G.port, { path: '/health' });
  assert.equal(health.status, 200);
  assert.equal(G.exited, null);
});

// ---------------------------------------------------------------------------------------------
// Converse / ConverseStream (Bedrock's model-neutral API)

/** The upstream mocks forget what earlier tests sent. */
function resetUpstreams() {
  m.reset();
  a.reset();
}

test('Converse → OpenAI provider: messages/system/inferenceConfig translated, output/stopReason/usage back', async (t) => {
  resetUpstreams();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  let r;
  try {
    r = await c.send(new ConverseCommand({
      modelId: GPT,
      system: [{ text: 'Be brief.' }],
      messages: [{ role: 'user', content: [{ text: 'Hello via Converse' }] }],
      inferenceConfig: { maxTokens: 40, temperature: 0.3, stopSequences: ['END'] },
    }));
  } finally { c.destroy(); }
  assert.deepEqual(r.output?.message?.content, [{ text: 'Hello from oai' }]);
  assert.equal(r.output.message.role, 'assistant');
  assert.equal(r.stopReason, 'end_turn');
  assert.equal(r.usage?.inputTokens, 11);
  assert.equal(r.usage?.outputTokens, 7);
  assert.equal(r.usage?.totalTokens, 18);
  assert.equal(m.requests.length, 1, diag());
  const up = m.requests[0].json;
  assert.equal(up.model, 'gpt-4o');
  assert.deepEqual(up.messages[0], { role: 'system', content: 'Be brief.' });
  assert.equal(up.messages[1].role, 'user');
  assert.equal(up.max_tokens ?? up.max_completion_tokens, 40);
  assert.equal(up.temperature, 0.3);
  assert.deepEqual(up.stop, ['END']);
});

test('Converse → Anthropic provider: a Messages request upstream (max_tokens, system), the answer in Converse shape', async (t) => {
  resetUpstreams();
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  let r;
  try {
    r = await c.send(new ConverseCommand({
      modelId: SONNET,
      system: [{ text: 'Be brief.' }],
      messages: [{ role: 'user', content: [{ text: 'Hello via Converse' }] }],
      inferenceConfig: { maxTokens: 33 },
    }));
  } finally { c.destroy(); }
  assert.deepEqual(r.output?.message?.content, [{ text: 'Hello from ant' }]);
  assert.equal(r.stopReason, 'end_turn');
  assert.equal(a.messages().length, 1, diag());
  const up = a.messages()[0];
  assert.equal(up.json.model, 'claude-sonnet-4-5');
  assert.equal(up.json.max_tokens, 33);
  assertUpstreamAuth(up);
});

test('ConverseStream → OpenAI provider: messageStart, contentBlockDelta text, messageStop, metadata usage', async (t) => {
  resetUpstreams();
  m.behave({ content: 'converse streamed', chunks: 3 });
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  const events = [];
  try {
    const r = await c.send(new ConverseStreamCommand({ modelId: GPT, messages: [{ role: 'user', content: [{ text: 'stream please' }] }], inferenceConfig: { maxTokens: 20 } }));
    for await (const ev of r.stream) events.push(ev);
  } finally { c.destroy(); m.behave({}); }
  const kinds = events.map((e) => Object.keys(e)[0]);
  assert.equal(kinds[0], 'messageStart', kinds.join(','));
  assert.ok(kinds.includes('messageStop'), kinds.join(','));
  const text = events.filter((e) => e.contentBlockDelta).map((e) => e.contentBlockDelta.delta.text).join('');
  assert.equal(text, 'converse streamed');
  assert.equal(events.find((e) => e.messageStop).messageStop.stopReason, 'end_turn');
  const meta = events.find((e) => e.metadata)?.metadata;
  assert.equal(meta?.usage?.inputTokens, 11, JSON.stringify(events));
  assert.equal(meta.usage.outputTokens, 7);
  assert.equal(m.requests[0].json.stream, true);
});

test('Converse tool round trip → OpenAI provider: toolConfig → tools, tool_calls → toolUse, toolResult → a tool message', async (t) => {
  resetUpstreams();
  const schema = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
  const toolConfig = { tools: [{ toolSpec: { name: 'get_weather', description: 'Weather of a city', inputSchema: { json: schema } } }] };
  m.once({
    body: {
      id: 'chatcmpl-conv-tool', object: 'chat.completion', created: 1700000000, model: 'gpt-4o',
      choices: [{ index: 0, message: { role: 'assistant', content: null, tool_calls: [{ id: 'call_conv_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] }, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 20, completion_tokens: 5, total_tokens: 25 },
    },
  });
  const first = [{ role: 'user', content: [{ text: 'Weather in Oslo?' }] }];
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  try {
    const r1 = await c.send(new ConverseCommand({ modelId: GPT, messages: first, toolConfig }));
    assert.equal(r1.stopReason, 'tool_use', JSON.stringify(r1.output));
    const tu = r1.output.message.content.find((b) => b.toolUse)?.toolUse;
    assert.deepEqual(tu, { toolUseId: 'call_conv_1', name: 'get_weather', input: { city: 'Oslo' } }, JSON.stringify(r1.output));
    const t0 = m.requests[0].json.tools?.[0];
    assert.equal(t0?.function?.name, 'get_weather', JSON.stringify(m.requests[0].json));
    assert.deepEqual(t0.function.parameters, schema);

    const second = [...first, r1.output.message, { role: 'user', content: [{ toolResult: { toolUseId: 'call_conv_1', content: [{ text: '12 degrees' }] } }] }];
    const r2 = await c.send(new ConverseCommand({ modelId: GPT, messages: second, toolConfig }));
    assert.deepEqual(r2.output?.message?.content, [{ text: 'Hello from oai' }]);
    const msgs = m.requests[1].json.messages;
    assert.equal(msgs.find((x) => x.role === 'assistant')?.tool_calls?.[0]?.id, 'call_conv_1', JSON.stringify(msgs));
    const toolMsg = msgs.find((x) => x.role === 'tool');
    assert.equal(toolMsg?.tool_call_id, 'call_conv_1', JSON.stringify(msgs));
    const text = typeof toolMsg.content === 'string' ? toolMsg.content : toolMsg.content.map((p) => p.text).join('');
    assert.equal(text, '12 degrees');
  } finally { c.destroy(); }
});

test('ConverseStream → Anthropic provider with a tool call: contentBlockStart toolUse, input deltas, stopReason tool_use, usage', async (t) => {
  resetUpstreams();
  a.once({ text: 'Checking.', toolUse: { id: 'toolu_conv_stream', name: 'get_weather', input: { city: 'Oslo', days: 3 }, fragments: 3 } });
  const schema = { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } };
  const c = bedrockClient(G, { auth: 'bearer', key: KA });
  const events = [];
  try {
    const r = await c.send(new ConverseStreamCommand({
      modelId: SONNET,
      messages: [{ role: 'user', content: [{ text: 'Weather in Oslo for 3 days?' }] }],
      toolConfig: { tools: [{ toolSpec: { name: 'get_weather', description: 'Weather', inputSchema: { json: schema } } }] },
      inferenceConfig: { maxTokens: 100 },
    }));
    for await (const ev of r.stream) events.push(ev);
  } finally { c.destroy(); }
  const show = JSON.stringify(events);
  assert.equal(Object.keys(events[0])[0], 'messageStart', show);
  const text = events.filter((e) => e.contentBlockDelta?.delta?.text !== undefined).map((e) => e.contentBlockDelta.delta.text).join('');
  assert.equal(text, 'Checking.', show);
  const start = events.find((e) => e.contentBlockStart?.start?.toolUse)?.contentBlockStart;
  assert.deepEqual(start?.start.toolUse, { toolUseId: 'toolu_conv_stream', name: 'get_weather' }, show);
  const input = events.filter((e) => e.contentBlockDelta?.contentBlockIndex === start.contentBlockIndex && e.contentBlockDelta.delta.toolUse)
    .map((e) => e.contentBlockDelta.delta.toolUse.input).join('');
  assert.deepEqual(JSON.parse(input), { city: 'Oslo', days: 3 }, show);
  assert.equal(events.find((e) => e.messageStop)?.messageStop.stopReason, 'tool_use', show);
  assert.equal(events.find((e) => e.metadata)?.metadata.usage?.outputTokens, 9, show);
  const up = a.messages().at(-1);
  assert.equal(up.json.stream, true);
  assert.equal(up.json.max_tokens, 100);
  assert.deepEqual(up.json.tools, [{ name: 'get_weather', description: 'Weather', input_schema: schema }]);
  assertUpstreamAuth(up);
});
