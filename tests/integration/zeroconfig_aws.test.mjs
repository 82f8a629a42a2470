// Zero-config AWS: the gateway started with no config file at all (`bifrost -l ADDR`, an empty
// working directory) finds Bedrock in the AWS_* environment the way the AWS SDKs do, and
// cluster.tls.insecure_skip_verify for a rediss:// Redis whose certificate it cannot check.
//
//   1. AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY + AWS_REGION + AWS_ENDPOINT_URL_BEDROCK_RUNTIME:
//      the banner lists the provider "bedrock" at that URL; an Anthropic client's request to
//      bedrock/anthropic.* goes to /model/{id %-encoded}/invoke (and, streamed,
//      /invoke-with-response-stream) SigV4-signed with those credentials for that region (the
//      mock recomputes the signature with @smithy/signature-v4 and answers 403 on a mismatch);
//      an OpenAI client's request to bedrock/amazon.nova-* goes to /converse.
//      AWS_SESSION_TOKEN: x-amz-security-token sent and signed. AWS_ENDPOINT_URL (the generic
//      variable) works alone; AWS_ENDPOINT_URL_BEDROCK_RUNTIME wins over it.
//   2. AWS_BEARER_TOKEN_BEDROCK (a Bedrock API key) + AWS_REGION: `Authorization: Bearer <token>`,
//      no SigV4 header.
//   3. Access keys but no region: no bedrock provider; the gateway starts and says it has no
//      providers; nothing reaches the endpoint.
//   4. cluster.redis rediss:// to a Redis whose certificate's CA the node is not given: Redis
//      "down" (redis_up 0, one "unreachable (TLS: ...)" line); with tls.insecure_skip_verify: up, and an
//      admission writes the node's fields into Redis.
//
// Also (defects this file found, fixed): a stray AWS_ACCESS_KEY_ID does not hide
// AWS_BEARER_TOKEN_BEDROCK, an empty AWS_REGION does not hide AWS_DEFAULT_REGION, and an
// untrusted Redis certificate is named in the log, not a plain "unreachable".
//
// Every gateway here is spawned with an environment built from nothing (PATH, HOME and the
// variables under test): no provider key of the developer's can make a test pass or fail.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import {
  waitHealthy, freePort, tempDir, request, show, sleep, spawnBifrost,
} from '../lib/gateway.mjs';
import { startBedrockMock } from '../lib/mock_bedrock.mjs';
import { startMock } from '../lib/mock.mjs';
import { redisAvailable, startRedis } from '../lib/redis.mjs';
import { makeCA, makeServerCert } from '../lib/tlsca.mjs';
import { metricSum, costMicros, entKey, KIND } from '../lib/usage.mjs';

const AKID = 'AKIDZEROCONFIG01';
const SECRET = 'zc/Secret+Key/wJalrXUtnFEMIK7MDENGbPxRfiCY';
const REGION = 'eu-central-1';
const HAIKU = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const HAIKU_ENC = 'anthropic.claude-3-5-haiku-20241022-v1%3A0';
const NOVA = 'amazon.nova-lite-v1:0';
const NOVA_ENC = 'amazon.nova-lite-v1%3A0';
const TEXT = 'Zero-config Bedrock answer — ünïcödé ✓';
const CLIENT_KEY = 'vk-client-secret-zc';

const HAVE_REDIS = redisAvailable();
const REDIS_SKIP = HAVE_REDIS ? false : 'redis-server is not installed (apt-get install redis-server)';

// ---------------------------------------------------------------------------------------------
// processes: every gateway, mock and Redis started here is stopped in after()

const gateways = [];
const closers = [];

after(async () => {
  for (const g of gateways) {
    if (!g.exited) { try { g.child.kill('SIGKILL'); } catch { /* gone */ } await g.wait(3000); }
  }
  for (const c of closers.reverse()) { try { await c(); } catch { /* already closed */ } }
});

/**
 * `bifrost -l 127.0.0.1:PORT -w 1` in an empty directory (no config.json: the environment is
 * the config), with exactly `env` plus PATH and HOME (the empty directory) — nothing inherited.
 * Returns a proc like spawnBifrost's (stdout/stderr lines, exited, wait, output) plus port,
 * once it answers /health and its banner is read (an early exit throws with its output).
 */
async function zeroConfig(env) {
  const cwd = tempDir('bifrost-zc-');
  const port = await freePort();
  const g = spawnBifrost({ args: ['-l', `127.0.0.1:${port}`, '-w', '1'], env, cwd, bareEnv: true });
  Object.assign(g, { port, cwd, url: `http://127.0.0.1:${port}` });
  /** SIGTERM, wait; the exit status */
  g.stop = async () => { if (!g.exited) g.child.kill('SIGTERM'); return g.wait(10000); };
  gateways.push(g);
  await waitHealthy(g, port, 15000);
  await bannerRead(g);
  return g;
}

/** The banner is written before the listener opens, but its pipe may be read after the first
 * answer: wait (up to 2 s) until its last line is in. */
async function bannerRead(g) {
  const until = Date.now() + 2000;
  while (!/health: http/.test(g.all()) && Date.now() < until) await sleep(20);
}

/** The banner's provider lines: [{ name, kind, url }]. */
function bannerProviders(g) {
  const out = [];
  for (const l of [...g.stdout, ...g.stderr]) {
    const m = /^\s+provider\s+(\S+)\s+(\S+)\s+(\S+)\s*$/.exec(l);
    if (m) out.push({ name: m[1], kind: m[2], url: m[3] });
  }
  return out;
}

function assertBanner(g, url, what) {
  const all = g.all();
  assert.match(all, /listening on http:\/\/127\.0\.0\.1:\d+ \(1 worker, config: environment\)/,
    `${what}: the banner does not say the config came from the environment:\n${g.output()}`);
  assert.deepEqual(bannerProviders(g), [{ name: 'bedrock', kind: 'bedrock', url }],
    `${what}: the banner's providers are not exactly one "bedrock" at ${url}:\n${g.output()}`);
  assert.ok(!/no providers/.test(all), `${what}: the banner says "no providers" although Bedrock is configured:\n${g.output()}`);
}

/** Secrets that must never appear in the gateway's output. */
function assertNotPrinted(g, secrets, what) {
  const all = g.all();
  for (const s of secrets) assert.ok(!all.includes(s), `${what}: ${JSON.stringify(s.slice(0, 6))}… was printed:\n${g.output()}`);
}

/** A port nothing listens on: bound, then closed. */
async function deadPort() {
  const s = net.createServer();
  await new Promise((resolve, reject) => { s.once('error', reject); s.listen(0, '127.0.0.1', resolve); });
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

async function bedrockMock(opts) {
  const m = await startBedrockMock({ region: REGION, ...opts });
  closers.push(() => m.close());
  m.behave({ text: TEXT, usage: { input_tokens: 13, output_tokens: 5 } });
  return m;
}

/** POST /v1/messages as an Anthropic client (its own key, which Bedrock must never see). */
function messages(port, body, { timeout = 10000 } = {}) {
  return request(port, {
    method: 'POST', path: '/v1/messages', timeout, body: JSON.stringify(body),
    headers: { 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01' },
  });
}

/** POST /v1/chat/completions as an OpenAI client. */
function chat(port, body, { timeout = 10000 } = {}) {
  return request(port, {
    method: 'POST', path: '/v1/chat/completions', timeout, body: JSON.stringify(body),
    headers: { authorization: `Bearer ${CLIENT_KEY}` },
  });
}

/** A streamed POST; the SSE events ({ event, data, json }) once the stream ends. */
function streamPost(port, path, body, { timeoutMs = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const payload = JSON.stringify(body);
    const out = { events: [], text: '', ended: false };
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path, agent: false,
      headers: {
        'content-type': 'application/json', 'content-length': Buffer.byteLength(payload),
        'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01', authorization: `Bearer ${CLIENT_KEY}`,
      },
    }, (res) => {
      out.status = res.statusCode;
      out.headers = res.headers;
      res.setEncoding('utf8');
      res.on('data', (d) => { out.text += d; });
      res.on('end', () => {
        out.ended = true;
        for (const raw of out.text.split('\n\n')) {
          const ev = { event: null, data: null };
          for (const line of raw.split('\n')) {
            if (line.startsWith('event:')) ev.event = line.slice(6).trim();
            else if (line.startsWith('data:')) ev.data = (ev.data === null ? '' : `${ev.data}\n`) + line.slice(5).replace(/^ /, '');
          }
          if (ev.event === null && ev.data === null) continue;
          try { ev.json = JSON.parse(ev.data); } catch { ev.json = undefined; }
          out.events.push(ev);
        }
        clearTimeout(timer);
        resolve(out);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`stream ${path} not finished after ${timeoutMs} ms: ${out.text.slice(0, 500)}`)), timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
    req.end(payload);
  });
}
const showStream = (s) => `status ${s.status}, events ${JSON.stringify(s.events.map((e) => e.event ?? e.data?.slice(0, 40)))}, body ${JSON.stringify(s.text.slice(0, 800))}`;

/** What a SigV4 request to the mock must look like: path, a signature the mock verified, no client credential. */
function assertSigV4(m, rec, path, what) {
  assert.ok(rec, `${what}: no request reached the Bedrock mock (it saw: ${m.summary() || 'nothing'})`);
  assert.equal(rec.method, 'POST', `${what}: method ${rec.method}`);
  assert.equal(rec.path, path, `${what}: the mock received ${rec.method} ${rec.path}, expected ${path} (model id percent-encoded, ":" → "%3A")`);
  assert.ok(rec.auth.ok, `${what}: the mock refused the signature: ${rec.auth.type}: ${rec.auth.message}\n  authorization: ${rec.headers.authorization}\n  x-amz-date: ${rec.headers['x-amz-date']}\n  x-amz-security-token: ${rec.headers['x-amz-security-token']}`);
  assert.equal(rec.auth.mode, 'sigv4', `${what}: auth mode ${rec.auth.mode}`);
  assert.equal(rec.auth.accessKeyId, AKID, `${what}: signed with key id ${rec.auth.accessKeyId}`);
  assert.equal(rec.auth.region, REGION, `${what}: credential scope region ${rec.auth.region}, AWS_REGION was ${REGION}`);
  assert.match(rec.headers.authorization, new RegExp(`^AWS4-HMAC-SHA256 Credential=${AKID}/\\d{8}/${REGION}/bedrock/aws4_request, ?SignedHeaders=`),
    `${what}: authorization header ${rec.headers.authorization}`);
  for (const h of ['x-api-key', 'anthropic-version']) assert.equal(rec.headers[h], undefined, `${what}: the client's ${h} header reached Bedrock`);
  assert.ok(!JSON.stringify(rec.headers).includes(CLIENT_KEY), `${what}: the client's key reached Bedrock: ${JSON.stringify(rec.headers)}`);
}

/** An /invoke body: Anthropic Messages without model and stream, with Bedrock's anthropic_version. */
function assertInvokeBody(rec, what) {
  const j = rec.json;
  assert.ok(j && typeof j === 'object', `${what}: the body Bedrock received is not JSON: ${rec.body.slice(0, 300)}`);
  assert.equal(j.anthropic_version, 'bedrock-2023-05-31', `${what}: anthropic_version in ${rec.body}`);
  assert.ok(!('model' in j) && !('stream' in j), `${what}: "model" or "stream" in an /invoke body: ${rec.body}`);
}

const HAIKU_BODY = { model: `bedrock/${HAIKU}`, max_tokens: 64, messages: [{ role: 'user', content: 'Say something' }] };
const INVOKE = `/model/${HAIKU_ENC}/invoke`;
const INVOKE_STREAM = `/model/${HAIKU_ENC}/invoke-with-response-stream`;
const CONVERSE = `/model/${NOVA_ENC}/converse`;

/** One non-streamed Anthropic-dialect request to bedrock/anthropic.claude-3-5-haiku…; returns the mock's record. */
async function checkInvoke(g, m, what) {
  const before = m.requests.length;
  const r = await messages(g.port, HAIKU_BODY);
  assert.equal(r.status, 200, `${what}: POST /v1/messages → ${show(r)}\nmock saw:\n${m.summary()}\n${g.output()}`);
  assert.equal(m.requests.length, before + 1, `${what}: the mock saw ${m.requests.length - before} requests for one client request:\n${m.summary()}`);
  const j = r.json();
  assert.equal(j.type, 'message', `${what}: ${show(r)}`);
  assert.deepEqual(j.content, [{ type: 'text', text: TEXT }], `${what}: the answer's content is not the mock's: ${show(r)}`);
  assert.equal(j.usage?.input_tokens, 13, `${what}: usage ${JSON.stringify(j.usage)}`);
  return m.requests[before];
}

// ---------------------------------------------------------------------------------------------
// 1. access keys

test('zero config, AWS_ACCESS_KEY_ID/SECRET + AWS_REGION + AWS_ENDPOINT_URL_BEDROCK_RUNTIME: banner lists bedrock at that URL; /v1/messages → signed /invoke, streamed → /invoke-with-response-stream; OpenAI dialect to amazon.nova → /converse', async () => {
  const m = await bedrockMock({ name: 'zc-keys', accessKeyId: AKID, secretAccessKey: SECRET });
  const g = await zeroConfig({
    AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin,
  });
  assertBanner(g, m.origin, 'keys');
  assert.equal(m.requests.length, 0, `the gateway sent something to Bedrock at start:\n${m.summary()}`);

  // non-streamed, Anthropic dialect
  const rec = await checkInvoke(g, m, 'keys, /v1/messages');
  assertSigV4(m, rec, INVOKE, 'keys, /v1/messages');
  assertInvokeBody(rec, 'keys, /v1/messages');
  assert.deepEqual(rec.json.messages, HAIKU_BODY.messages, `the messages changed on the way: ${rec.body}`);
  assert.equal(rec.json.max_tokens, 64, `max_tokens: ${rec.body}`);
  assert.equal(rec.headers['x-amz-security-token'], undefined, 'x-amz-security-token sent although AWS_SESSION_TOKEN is not set');
  assert.ok(rec.auth.signedHeaders.includes('host') && rec.auth.signedHeaders.includes('x-amz-date'), `signed headers: ${rec.auth.signedHeaders}`);
  assert.equal(rec.headers.host, `127.0.0.1:${m.port}`, `host header ${rec.headers.host}: not the endpoint override's`);

  // streamed, Anthropic dialect
  const s = await streamPost(g.port, '/v1/messages', { ...HAIKU_BODY, stream: true });
  assert.equal(s.status, 200, `keys, streamed: ${showStream(s)}\n${m.summary()}`);
  assert.match(s.headers['content-type'] || '', /^text\/event-stream/, `streamed: content-type ${s.headers['content-type']}`);
  const srec = m.requests[1];
  assertSigV4(m, srec, INVOKE_STREAM, 'keys, streamed');
  assertInvokeBody(srec, 'keys, streamed');
  const names = s.events.map((e) => e.event);
  assert.equal(names[0], 'message_start', `streamed: ${showStream(s)}`);
  assert.equal(names.at(-1), 'message_stop', `streamed: the stream did not end with message_stop: ${showStream(s)}`);
  const streamed = s.events.filter((e) => e.json?.type === 'content_block_delta').map((e) => e.json.delta.text).join('');
  assert.equal(streamed, TEXT, `streamed: the text deltas add up to ${JSON.stringify(streamed)}: ${showStream(s)}`);

  // OpenAI dialect, a non-Anthropic model → Converse
  const c = await chat(g.port, { model: `bedrock/${NOVA}`, max_tokens: 50, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello Nova' }] });
  assert.equal(c.status, 200, `keys, chat to nova: ${show(c)}\n${m.summary()}`);
  const crec = m.requests[2];
  assertSigV4(m, crec, CONVERSE, 'keys, chat to nova');
  assert.ok(Array.isArray(crec.json?.messages), `converse body: ${crec.body}`);
  assert.deepEqual(crec.json.messages, [{ role: 'user', content: [{ text: 'Hello Nova' }] }], `converse messages: ${crec.body}`);
  assert.equal(JSON.stringify(crec.json.system), JSON.stringify([{ text: 'Be brief.' }]), `converse system: ${crec.body}`);
  assert.ok(!('model' in crec.json), `"model" in a Converse body: ${crec.body}`);
  const cj = c.json();
  assert.equal(cj.object, 'chat.completion', show(c));
  assert.equal(cj.choices?.[0]?.message?.content, TEXT, `chat to nova: ${show(c)}`);
  assert.equal(m.requests.length, 3, `the mock saw:\n${m.summary()}`);

  assertNotPrinted(g, [SECRET], 'keys');
  const { code } = await g.stop();
  assert.equal(code, 0, `exit status on SIGTERM: ${code}\n${g.output()}`);
});

test('zero config with AWS_SESSION_TOKEN as well: x-amz-security-token is sent, signed, and verifies (non-streamed, streamed, Converse)', async () => {
  const TOKEN = 'IQoJb3JpZ2luX2VjEZeroConfig/session+token==';
  const m = await bedrockMock({ name: 'zc-token', accessKeyId: AKID, secretAccessKey: SECRET, sessionToken: TOKEN });
  const g = await zeroConfig({
    AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_SESSION_TOKEN: TOKEN, AWS_REGION: REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin,
  });
  assertBanner(g, m.origin, 'session token');
  const rec = await checkInvoke(g, m, 'session token');
  assertSigV4(m, rec, INVOKE, 'session token');
  assert.equal(rec.headers['x-amz-security-token'], TOKEN, `x-amz-security-token received: ${JSON.stringify(rec.headers['x-amz-security-token'])}`);
  assert.ok(rec.auth.signedHeaders.includes('x-amz-security-token'), `x-amz-security-token not among the signed headers: ${rec.auth.signedHeaders}`);

  const s = await streamPost(g.port, '/v1/messages', { ...HAIKU_BODY, stream: true });
  assert.equal(s.status, 200, `session token, streamed: ${showStream(s)}\n${m.summary()}`);
  assert.equal(s.events.at(-1)?.event, 'message_stop', showStream(s));
  assertSigV4(m, m.requests[1], INVOKE_STREAM, 'session token, streamed');
  assert.equal(m.requests[1].headers['x-amz-security-token'], TOKEN);

  const c = await chat(g.port, { model: `bedrock/${NOVA}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.status, 200, `session token, converse: ${show(c)}\n${m.summary()}`);
  assertSigV4(m, m.requests[2], CONVERSE, 'session token, converse');
  assert.ok(m.requests[2].auth.signedHeaders.includes('x-amz-security-token'), `converse signed headers: ${m.requests[2].auth.signedHeaders}`);
  assertNotPrinted(g, [SECRET, TOKEN], 'session token');
  await g.stop();
});

test('control: the mock refuses what the zero-config gateway signs with a different secret, or for a different region (so the signature checks above can fail)', async () => {
  const m = await bedrockMock({ name: 'zc-control', accessKeyId: AKID, secretAccessKey: SECRET });
  const cases = [
    ['a wrong AWS_SECRET_ACCESS_KEY', { AWS_SECRET_ACCESS_KEY: `${SECRET}x`, AWS_REGION: REGION }, 'InvalidSignatureException', /signature we calculated does not match/],
    ['another AWS_REGION', { AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: 'us-west-2' }, 'InvalidSignatureException', /scoped to a valid region/],
  ];
  for (const [what, env, type, msg] of cases) {
    const g = await zeroConfig({ AWS_ACCESS_KEY_ID: AKID, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin, ...env });
    const before = m.requests.length;
    const r = await messages(g.port, HAIKU_BODY);
    assert.equal(m.requests.length, before + 1, `${what}: the mock saw:\n${m.summary()}`);
    const rec = m.requests[before];
    assert.equal(rec.auth.ok, false, `${what}: the mock accepted the signature: ${JSON.stringify(rec.auth)}`);
    assert.equal(rec.auth.type, type, `${what}: ${JSON.stringify(rec.auth)}`);
    assert.match(rec.auth.message, msg, `${what}: ${JSON.stringify(rec.auth)}`);
    assert.equal(r.status, 403, `${what}: the mock's 403 should reach the client: ${show(r)}`);
    await g.stop();
  }
});

test('zero config: the generic AWS_ENDPOINT_URL works alone (with AWS_DEFAULT_REGION); with both set, AWS_ENDPOINT_URL_BEDROCK_RUNTIME wins over a dead AWS_ENDPOINT_URL', async () => {
  const m = await bedrockMock({ name: 'zc-endpoint', accessKeyId: AKID, secretAccessKey: SECRET });
  const dead = `http://127.0.0.1:${await deadPort()}`;

  // the generic variable alone; the region from AWS_DEFAULT_REGION
  const g1 = await zeroConfig({ AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_DEFAULT_REGION: REGION, AWS_ENDPOINT_URL: m.origin });
  assertBanner(g1, m.origin, 'AWS_ENDPOINT_URL alone');
  const rec1 = await checkInvoke(g1, m, 'AWS_ENDPOINT_URL alone');
  assertSigV4(m, rec1, INVOKE, 'AWS_ENDPOINT_URL alone');
  await g1.stop();

  // both: the service-specific one wins
  const g2 = await zeroConfig({
    AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: REGION, AWS_ENDPOINT_URL: dead, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin,
  });
  assertBanner(g2, m.origin, 'both endpoint variables');
  const rec2 = await checkInvoke(g2, m, 'both endpoint variables');
  assertSigV4(m, rec2, INVOKE, 'both endpoint variables');
  await g2.stop();

  // control: the dead port is dead — the generic variable alone pointing at it fails the request
  const g3 = await zeroConfig({ AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: REGION, AWS_ENDPOINT_URL: dead });
  assertBanner(g3, dead, 'AWS_ENDPOINT_URL at a dead port');
  const before = m.requests.length;
  const r3 = await messages(g3.port, HAIKU_BODY);
  assert.ok(r3.status >= 500, `a request to an endpoint nothing listens on answered ${show(r3)}`);
  assert.equal(m.requests.length, before, `the mock got a request meant for the dead endpoint:\n${m.summary()}`);
  await g3.stop();
});

// ---------------------------------------------------------------------------------------------
// 2. a Bedrock API key

test('zero config, AWS_BEARER_TOKEN_BEDROCK + AWS_REGION (no access keys): Authorization: Bearer <token>, no SigV4 headers; streamed and Converse too', async () => {
  const KEY = 'ABSKQmVkcm9ja0FQSUtleS16ZXJvY29uZmlnOnNlY3JldA==';
  const m = await bedrockMock({ name: 'zc-bearer', apiKey: KEY });
  const g = await zeroConfig({ AWS_BEARER_TOKEN_BEDROCK: KEY, AWS_REGION: REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin });
  assertBanner(g, m.origin, 'bearer');
  const rec = await checkInvoke(g, m, 'bearer');
  const s = await streamPost(g.port, '/v1/messages', { ...HAIKU_BODY, stream: true });
  assert.equal(s.status, 200, `bearer, streamed: ${showStream(s)}\n${m.summary()}`);
  assert.equal(s.events.at(-1)?.event, 'message_stop', showStream(s));
  const c = await chat(g.port, { model: `bedrock/${NOVA}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.equal(c.status, 200, `bearer, converse: ${show(c)}\n${m.summary()}`);
  assert.equal(m.requests.length, 3, m.summary());
  for (const [r, path, what] of [[rec, INVOKE, 'invoke'], [m.requests[1], INVOKE_STREAM, 'stream'], [m.requests[2], CONVERSE, 'converse']]) {
    assert.equal(r.path, path, `bearer ${what}: the mock received ${r.path}`);
    assert.equal(r.headers.authorization, `Bearer ${KEY}`, `bearer ${what}: authorization ${JSON.stringify(r.headers.authorization)}`);
    assert.ok(r.auth.ok && r.auth.mode === 'bearer', `bearer ${what}: ${JSON.stringify(r.auth)}`);
    for (const h of ['x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256', 'x-api-key']) {
      assert.equal(r.headers[h], undefined, `bearer ${what}: ${h} sent with a Bedrock API key: ${JSON.stringify(r.headers[h])}`);
    }
  }
  assertNotPrinted(g, [KEY], 'bearer');
  await g.stop();
});

test('zero config, AWS_BEARER_TOKEN_BEDROCK + AWS_REGION with a stray AWS_ACCESS_KEY_ID (no secret): the bearer token is used', async () => {
  const KEY = 'ABSKQmVkcm9ja0FQSUtleS1zdHJheWFraWQ6c2VjcmV0';
  const m = await bedrockMock({ name: 'zc-stray', apiKey: KEY });
  const g = await zeroConfig({ AWS_ACCESS_KEY_ID: AKID, AWS_BEARER_TOKEN_BEDROCK: KEY, AWS_REGION: REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin });  // (waitHealthy: an early exit fails with its output)
  assertBanner(g, m.origin, 'stray AWS_ACCESS_KEY_ID');
  const rec = await checkInvoke(g, m, 'stray AWS_ACCESS_KEY_ID');
  assert.equal(rec.headers.authorization, `Bearer ${KEY}`);
  await g.stop();
});

// ---------------------------------------------------------------------------------------------
// 3. no region

test('zero config, access keys and an endpoint but no AWS_REGION / AWS_DEFAULT_REGION: no bedrock provider, the gateway starts and says "no providers"; bedrock/… is refused and nothing reaches the endpoint', async (t) => {
  const m = await bedrockMock({ name: 'zc-noregion', accessKeyId: AKID, secretAccessKey: SECRET });
  const g = await zeroConfig({ AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin });
  const all = g.all();
  assert.match(all, /\(1 worker, config: environment\)/, `banner:\n${g.output()}`);
  assert.deepEqual(bannerProviders(g), [], `a provider without a region:\n${g.output()}`);
  assert.match(all, /^\s+no providers: set OPENAI_API_KEY \(or another provider key\) or write config\.json$/m, `the banner does not say there are no providers:\n${g.output()}`);
  assert.match(all, /AWS credentials are set but no region: set AWS_REGION/, `the banner does not say the region is missing:\n${g.output()}`);
  assert.ok(!all.includes(m.origin), `the endpoint is named although no provider uses it:\n${g.output()}`);

  const r = await messages(g.port, HAIKU_BODY);
  t.diagnostic(`no region, /v1/messages bedrock/…: ${show(r)}`);
  assert.ok(r.status >= 400 && r.status < 500, `bedrock/… without a bedrock provider: ${show(r)}`);
  const c = await chat(g.port, { model: `bedrock/${NOVA}`, messages: [{ role: 'user', content: 'hi' }] });
  assert.ok(c.status >= 400 && c.status < 500, `bedrock/… (chat) without a bedrock provider: ${show(c)}`);
  const models = await request(g.port, { path: '/v1/models' });
  assert.ok(!/bedrock/.test(models.text), `/v1/models names bedrock: ${show(models)}`);
  await sleep(200);
  assert.equal(m.requests.length, 0, `requests reached the endpoint without a configured provider:\n${m.summary()}`);
  assert.equal(m.connections, 0, `${m.connections} connections to the endpoint`);
  assert.equal(g.exited, null, `the gateway exited: ${JSON.stringify(g.exited)}`);
  const { code } = await g.stop();
  assert.equal(code, 0, `exit status on SIGTERM: ${code}\n${g.output()}`);
});

test('zero config, an empty AWS_REGION with AWS_DEFAULT_REGION set: the region comes from AWS_DEFAULT_REGION (as an empty AWS_ENDPOINT_URL_BEDROCK_RUNTIME falls back to AWS_ENDPOINT_URL)', async () => {
  const m = await bedrockMock({ name: 'zc-emptyregion', accessKeyId: AKID, secretAccessKey: SECRET });
  const g = await zeroConfig({ AWS_ACCESS_KEY_ID: AKID, AWS_SECRET_ACCESS_KEY: SECRET, AWS_REGION: '', AWS_DEFAULT_REGION: REGION, AWS_ENDPOINT_URL_BEDROCK_RUNTIME: m.origin });  // (waitHealthy: an early exit fails with its output)
  assertBanner(g, m.origin, 'empty AWS_REGION');
  assertSigV4(m, await checkInvoke(g, m, 'empty AWS_REGION'), INVOKE, 'empty AWS_REGION');
  await g.stop();
});

// ---------------------------------------------------------------------------------------------
// 4. cluster.tls.insecure_skip_verify

test('cluster: rediss:// to a Redis whose certificate\'s CA the node is not given → redis_up 0 and an "unreachable" line; the same with tls.insecure_skip_verify → redis_up 1 and an admission writes the node\'s fields into Redis', { skip: REDIS_SKIP, timeout: 90000 }, async (t) => {
  const ADMIN = 'adm-zc-cluster-7f3a';
  const PRICE = { input: 1, output: 10 };
  const dir = tempDir('bifrost-zc-rediss-');
  const ca = makeCA(dir, 'Untrusted Cluster CA', { keyType: 'ec' });
  const leaf = makeServerCert(dir, ca, { name: 'redis', keyType: 'ec' });
  const tlsPort = await freePort();
  let rt;
  try {
    rt = await startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', leaf.certFile, '--tls-key-file', leaf.keyFile, '--tls-auth-clients', 'no'] });
  } catch (e) {
    // a redis-server built without TLS refuses the tls-* directives at start
    if (/tls|bad directive/i.test(e.message)) { t.skip(`redis-server has no TLS support: ${e.message.slice(0, 200)}`); return; }
    throw e;
  }
  closers.push(() => rt.kill());
  const up = await startMock({ name: 'zc-up' });
  closers.push(() => up.close());
  const BODY = JSON.stringify({ model: 'mock/gpt-4o', max_tokens: 20, messages: [{ role: 'user', content: 'rediss' }] });
  const IN = Math.floor(Buffer.byteLength(BODY) / 4);
  up.behave({ usage: { prompt_tokens: IN, completion_tokens: 20 } });
  const C = costMicros({ in: IN, out: 20 }, PRICE);
  const prefix = `bfzc${process.pid}x${Date.now() % 100000}:`;

  async function node(id, tls) {
    const ndir = tempDir('bifrost-zc-node-');
    const port = await freePort();
    const cfg = {
      listen: `127.0.0.1:${port}`, workers: 1, data_dir: join(ndir, 'data'), admin: { token: ADMIN }, log_requests: true,
      providers: [{ name: 'mock', provider: 'openai', base_url: up.baseUrl, apiKey: 'sk-up-zc', max_retries: 0 }],
      pricing: { 'mock/gpt-4o': PRICE },
      governance: { enforce: true, virtual_keys: [{ id: 'kz', value: 'sk-bf-zc-kz', budget: { max_limit: Number(((10 * C) / 1e6).toFixed(6)), reset_duration: '1d' } }] },
      // (BearSSL matches DNS names only: the URL names "localhost", which the certificate lists)
      cluster: { node_id: id, redis: `rediss://localhost:${tlsPort}`, key_prefix: prefix, on_redis_down: 'deny', timeout_ms: 2000, ...(tls ? { tls } : {}) },
    };
    const cfgPath = join(ndir, 'config.json');
    writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
    const proc = spawnBifrost({ args: ['-c', cfgPath], cwd: ndir });
    const n = { id, port, proc, stderr: proc.stderr, exited: () => proc.exited };
    gateways.push(proc);
    await waitHealthy(proc, port, 20000);
    return n;
  }
  const redisUp = async (n) => (await metricSum(n.port, /^bifrost_cluster_redis_up$/)).sum;
  async function poll(n, want, ms) {
    const until = Date.now() + ms;
    let v;
    for (;;) {
      try { v = await redisUp(n); } catch (e) { v = `error: ${e.message}`; }
      if (v === want || Date.now() > until) return v;
      await sleep(100);
    }
  }
  const send = (n) => request(n.port, { method: 'POST', path: '/v1/chat/completions', body: BODY, headers: { 'x-bf-vk': 'sk-bf-zc-kz' }, timeout: 15000 });

  // --- no ca_file, no insecure_skip_verify: the system trust store does not know the CA
  const bad = await node('untrusted', null);
  const badUp = await poll(bad, 1, 2500); // it must NOT come up: a wait for 1 that times out
  assert.equal(badUp, 0, `an untrusted certificate: bifrost_cluster_redis_up is ${badUp}\n${bad.stderr.slice(-5).join('\n')}`);
  const line = await (async () => {
    const until = Date.now() + 3000;
    for (;;) {
      const l = bad.stderr.find((x) => /cluster: Redis at localhost:\d+ unreachable/.test(x));
      if (l || Date.now() > until) return l;
      await sleep(50);
    }
  })();
  assert.ok(line, `no "unreachable" line on stderr: ${JSON.stringify(bad.stderr.slice(-8))}`);
  t.diagnostic(`untrusted certificate: ${line}`);
  assert.match(line, new RegExp(`Redis at localhost:${tlsPort} unreachable \\(TLS: certificate not trusted \\(unknown CA\\)\\); admission by on_redis_down \\(deny\\)`), `the line: ${line}`);
  const rb = await send(bad);
  assert.equal(rb.status, 503, `untrusted certificate, on_redis_down deny: ${show(rb)}`);
  assert.equal(up.requests.length, 0, `the upstream got ${up.requests.length} requests from a node that could not reach Redis`);
  const keysBefore = await rt.keys(`${prefix}*`);
  assert.ok(!keysBefore.some((k) => k.startsWith(`${prefix}b:`)), `a budget hash in Redis from the node that could not connect: ${JSON.stringify(keysBefore)}`);

  // --- insecure_skip_verify: connects, and an admission goes through Redis
  const ok = await node('skipverify', { insecure_skip_verify: true });
  const okUp = await poll(ok, 1, 8000);
  assert.equal(okUp, 1, `insecure_skip_verify: bifrost_cluster_redis_up is ${okUp}\n${ok.stderr.slice(-5).join('\n')}`);
  assert.ok(!ok.stderr.some((x) => /unreachable/.test(x)), `insecure_skip_verify: an "unreachable" line: ${JSON.stringify(ok.stderr.slice(-5))}`);
  const r = await send(ok);
  assert.equal(r.status, 200, `insecure_skip_verify: governed request: ${show(r)}`);
  assert.equal(up.requests.length, 1, `the upstream saw ${up.requests.length} requests`);
  // the virtual key's budget hash {prefix}b:{entity key hex}:{window start} holds this node's
  // own fields (NODE:s spend, NODE:q requests, ...)
  const vkKeys = `${prefix}b:${entKey(KIND.virtual_key, 'kz').toString(16).padStart(16, '0')}:*`;
  let h = {};
  let key;
  const until = Date.now() + 4000;
  do {
    key = (await rt.keys(vkKeys))[0];
    h = key ? await rt.hgetall(key) : {};
    if (Number(h['skipverify:s']) === C) break;
    await sleep(100);
  } while (Date.now() < until);
  t.diagnostic(`Redis ${key}: ${JSON.stringify(h)}`);
  assert.ok(key, `no budget hash ${vkKeys} in Redis: ${JSON.stringify(await rt.keys(`${prefix}*`))}`);
  assert.equal(Number(h['skipverify:s']), C, `the node's spend field in ${key}: ${JSON.stringify(h)} (one request = ${C} µ$)`);
  assert.equal(Number(h['skipverify:q']), 1, `the node's request count field in ${key}: ${JSON.stringify(h)}`);
  assert.ok(!Object.keys(h).some((f) => f.startsWith('untrusted:')), `fields of the node that could not connect: ${JSON.stringify(h)}`);

  for (const n of [bad, ok]) {
    assert.equal(n.proc.exited, null, `node ${n.id} died: ${JSON.stringify(n.proc.exited)}`);
    n.proc.child.kill('SIGTERM');
    const x = await n.proc.wait(15000);
    assert.equal(x.code, 0, `node ${n.id} exit on SIGTERM: ${JSON.stringify(x)}\n${n.stderr.slice(-10).join('\n')}`);
  }
});
