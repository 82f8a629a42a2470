// The admin API and the management plane, black-box (bifrost.c sections 15 ldb_, 16 mgmt_,
// 20 admin_): who may use /api (admin token, password login + session cookie, loopback when no
// credentials are configured, the failed-login limit), the config collections (providers,
// virtual keys, teams, customers, pricing, the whole file) checked through their real effects
// on traffic, the file written back (atomic, .bak, accepted by `bifrost check`, redacted on the
// way out as markers that name their secret, secrets kept on the way in wherever the marker
// stands, virtual keys written through their API stored as value_sha256), ETag/If-Match,
// and the request log store (data_dir/logs.db): /api/logs rows against what the mock reported,
// every filter, paging, /api/logs/stats, hostile query strings, restarts, logs disabled.
//
// Numbers: the OpenAI mock reports 11 prompt + 7 completion tokens; at gpt-4o's $2.50/$10 per
// MTok a governed request costs ceil(27.5 + 70) = 98 µ$ (tests/lib/usage.mjs).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  BIN, tempDir as tempDirHere, startGateway, request, sleep, show, errorBody, runBifrost, spawnBifrost, waitHealthy, freePort,
  RawConn, rawRequest,
} from '../lib/gateway.mjs';
import { startMock, DEFAULT_USAGE } from '../lib/mock.mjs';
import { openaiCost, usage, entity, quiet } from '../lib/usage.mjs';

const ADMIN = 'adm-api-token-7f3a';
const UP_KEY = 'sk-up-original-1111';
const FRESH_KEY = 'sk-fresh-2222';
// A secret reads as this prefix, '-' and 8 hex digits (an HMAC of the secret under a key drawn
// per process): the same secret gives the same marker until a restart. Tests read markers from GETs.
const MARKER_PREFIX = 'sk-\u2026redacted';
const MARKER = /^sk-\u2026redacted-[0-9a-f]{8}$/;
const P_4O = { input: 2.5, output: 10 };
const C = openaiCost(DEFAULT_USAGE, P_4O); // 98 µ$
const MSG = [{ role: 'user', content: 'admin api' }];

let m; // the OpenAI mock every provider points at unless said otherwise
const mocks = [];
const gws = [];
const procs = [];

before(async () => {
  m = await startMock({ name: 'up' });
  mocks.push(m);
  assert.equal(C, 98, 'cost formula self-check');
});

after(async () => {
  for (const g of gws) await g.stop('SIGKILL');
  for (const p of procs) { try { p.child.kill('SIGKILL'); } catch { /* gone */ } }
  for (const x of mocks) await x.close();
});

async function mock(name) { const x = await startMock({ name }); mocks.push(x); return x; }

async function gateway(config, opts = {}) {
  m.reset();
  const g = await startGateway({ config, readyTimeoutMs: 30000, ...opts }); // generous: ASan builds on a busy machine
  gws.push(g);
  return g;
}

/** A config with one provider "mock" on the shared mock, gpt-4o priced, the admin token set. */
function baseConfig(extra = {}) {
  return {
    admin: { token: ADMIN },
    // a models list: a model string naming no provider matches none (400), not this one
    providers: [{ name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0, models: ['gpt-*'] }],
    pricing: { 'mock/gpt-4o': P_4O },
    log_requests: false,
    ...extra,
  };
}

/** One admin API call; body objects are JSON-encoded; token null sends no Authorization. */
function api(port, method, path, body, { token = ADMIN, headers = {}, timeout = 20000 } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  const b = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  return request(port, { method, path, body: b, headers: h, timeout });
}

/** api() and the parsed body, asserting the status. */
async function apiJson(port, method, path, body, want, opts) {
  const r = await api(port, method, path, body, opts);
  assert.equal(r.status, want, `${method} ${path}: ${show(r)}`);
  let j;
  try { j = r.json(); } catch { assert.fail(`${method} ${path}: the answer is not JSON: ${show(r)}`); }
  return { r, j };
}

/** Every ETag header line of a response (node keeps only the first in r.headers). */
function etags(r) {
  const out = [];
  for (let i = 0; i < r.rawHeaders.length; i += 2) if (r.rawHeaders[i].toLowerCase() === 'etag') out.push(r.rawHeaders[i + 1]);
  return out;
}

/** The single ETag of an answer (fails when there is none or more than one). */
function etagOf(r) {
  const e = etags(r);
  assert.equal(e.length, 1, `exactly one ETag header expected, got ${JSON.stringify(e)} (${show(r)})`);
  assert.match(e[0], /^"[^"]+"$/, `ETag must be a quoted string: ${e[0]}`);
  return e[0];
}

function chatReq(port, { model = 'mock/gpt-4o', headers = {}, body = {}, timeout = 8000 } = {}) {
  return request(port, {
    method: 'POST', path: '/v1/chat/completions', timeout,
    body: JSON.stringify({ model, messages: MSG, ...body }), headers,
  });
}

const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const readCfg = (g) => readFileSync(g.cfgPath, 'utf8');

/** The file parses as JSON and `bifrost check` accepts it. */
async function assertFileValid(g) {
  const text = readCfg(g);
  let doc;
  try { doc = JSON.parse(text); } catch (e) { assert.fail(`config file is not JSON after a write (${e.message}):\n${text}`); }
  const r = await runBifrost(['check', '-c', g.cfgPath]);
  assert.equal(r.code, 0, `bifrost check rejects the written file:\n${r.stdout}\n${r.stderr}\n${text}`);
  return doc;
}

/** Stop (SIGTERM drain) and start again on the same config file and data_dir; a new port. */
async function restart(g, { workers = 1 } = {}) {
  const st = await g.stop('SIGTERM', 15000);
  assert.equal(st.code, 0, `gateway did not drain cleanly: ${JSON.stringify(st)}\n${g.output()}`);
  const port = await freePort();
  const proc = spawnBifrost({ args: ['-c', g.cfgPath, '-l', `127.0.0.1:${port}`, '-w', String(workers), '-d', join(g.dir, 'data')], cwd: g.dir });
  procs.push(proc);
  await waitHealthy(proc, port, 30000);
  return {
    port, proc, dir: g.dir, cfgPath: g.cfgPath, output: proc.output,
    stop: async (sig = 'SIGTERM') => { if (!proc.exited) proc.child.kill(sig); return proc.wait(15000); },
  };
}

/** GET /api/logs?query until `pred(j)` holds (rows land within ~100 ms) or 8 s pass (a loaded machine). */
async function logsWhen(port, query, pred, { token = ADMIN, timeoutMs = 8000 } = {}) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await api(port, 'GET', `/api/logs${query ? `?${query}` : ''}`, undefined, { token });
    assert.equal(r.status, 200, `GET /api/logs?${query}: ${show(r)}`);
    const j = r.json();
    if (pred(j) || Date.now() > until) return j;
    await sleep(25);
  }
}

const logsTotal = (port, n, query = '', opts) => logsWhen(port, query ? `${query}&limit=1000` : 'limit=1000', (j) => j.total >= n, opts);

async function getLogs(port, query, opts) {
  const r = await api(port, 'GET', `/api/logs?${query}`, undefined, opts);
  assert.equal(r.status, 200, `GET /api/logs?${query}: ${show(r)}`);
  const j = r.json();
  assert.ok(Array.isArray(j.logs) && Number.isInteger(j.total), `GET /api/logs?${query}: shape ${r.text.slice(0, 300)}`);
  return j;
}

const micros = (dollars) => Math.round(Number(dollars) * 1e6);

/** GET /api/config with "Authorization: Bearer <a marker>" (UTF-8 bytes; node refuses them in headers). */
async function markerAuth(port, marker) {
  const head = Buffer.from(`GET /api/config HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${marker}\r\nConnection: close\r\n\r\n`, 'utf8');
  const c = await RawConn.open(port);
  try {
    await c.write(head);
    return await c.readResponse({ timeoutMs: 5000 });
  } finally { c.destroy(); }
}

// =============================================================================================
// 1. who may use /api

test('no admin credentials: loopback clients may use the admin API, /api/session says no login is needed', async () => {
  const g = await gateway({ providers: [{ name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY }], log_requests: false });
  const { j } = await apiJson(g.port, 'GET', '/api/providers', undefined, 200, { token: null });
  assert.deepEqual(j.providers.map((p) => p.name), ['mock']);
  assert.match(j.providers[0].apiKey, MARKER, 'secret redacted even for loopback');
  const s = (await apiJson(g.port, 'GET', '/api/session', undefined, 200, { token: null })).j;
  assert.equal(s.authenticated, true, JSON.stringify(s));
  assert.equal(s.login_required, false, JSON.stringify(s));
  assert.equal(s.password_login, false, JSON.stringify(s));
  assert.equal(s.user, null, JSON.stringify(s));
  const login = await api(g.port, 'POST', '/api/session/login', { username: 'x', password: 'y' }, { token: null });
  assert.equal(login.status, 400, `login with no password configured: ${show(login)}`);
});

test('with an admin token configured: no, a wrong or a non-Bearer credential gets 401 on every /api route; the token gets 200', async () => {
  const g = await gateway(baseConfig({ governance: { virtual_keys: [{ id: 'k', value: 'sk-bf-k-0001' }] } }));
  const routes = ['/api/providers', '/api/providers/mock', '/api/config', '/api/pricing', '/api/usage', '/api/logs',
    '/api/logs/stats', '/api/logs/1', '/api/governance/virtual-keys', '/api/governance/teams', '/api/governance/customers'];
  for (const path of routes) {
    for (const [what, headers] of [
      ['none', {}],
      ['wrong token', { authorization: 'Bearer adm-api-token-7f3b' }],
      ['token prefix', { authorization: `Bearer ${ADMIN.slice(0, -1)}` }],
      ['token + suffix', { authorization: `Bearer ${ADMIN}x` }],
      ['Basic scheme', { authorization: `Basic ${Buffer.from(`admin:${ADMIN}`).toString('base64')}` }],
      ['virtual key', { authorization: 'Bearer sk-bf-k-0001' }],
      ['forged cookie', { cookie: `bifrost_session=${'a'.repeat(64)}` }],
    ]) {
      const r = await api(g.port, 'GET', path, undefined, { token: null, headers });
      assert.equal(r.status, 401, `GET ${path} with ${what}: ${show(r)}`);
      assert.equal(r.json().error.type, 'authentication_error', show(r));
      assert.ok(!r.text.includes(UP_KEY) && !r.text.includes('sk-bf-k-0001'), `401 leaks a secret: ${r.text}`);
    }
  }
  for (const [method, path, body] of [['POST', '/api/providers', { name: 'x', provider: 'openai', apiKey: 'k' }],
    ['PUT', '/api/config', { providers: [] }], ['DELETE', '/api/providers/mock'], ['PUT', '/api/pricing', { pricing: {} }]]) {
    const r = await api(g.port, method, path, body, { token: null });
    assert.equal(r.status, 401, `${method} ${path} unauthenticated: ${show(r)}`);
  }
  const before = readCfg(g);
  assert.equal(before, JSON.stringify(baseConfig({ governance: { virtual_keys: [{ id: 'k', value: 'sk-bf-k-0001' }] } }), null, 2),
    'an unauthenticated write changed the config file');
  for (const path of routes.filter((p) => p !== '/api/logs/1')) {
    const r = await api(g.port, 'GET', path);
    assert.equal(r.status, 200, `GET ${path} with the token: ${show(r)}`);
  }
  const lower = await api(g.port, 'GET', '/api/providers', undefined, { token: null, headers: { authorization: `bearer ${ADMIN}` } });
  assert.equal(lower.status, 200, `the auth scheme is case-insensitive: ${show(lower)}`);
  const s = (await apiJson(g.port, 'GET', '/api/session', undefined, 200, { token: null })).j;
  assert.deepEqual(s, { authenticated: false, login_required: true, password_login: false, user: null });
});

function hashPassword(pw) {
  return execFileSync(BIN, ['hash-password'], { input: `${pw}\n`, encoding: 'utf8' }).trim();
}

test('password login: hash-password line, wrong password 401, login sets an HttpOnly SameSite=Strict cookie that authorizes, logout ends it', async () => {
  const line = hashPassword('correct horse');
  assert.match(line, /^pbkdf2-sha256\$[1-9][0-9]*\$[0-9a-f]{32}\$[0-9a-f]{64}$/, `hash-password output: ${line}`);
  assert.notEqual(hashPassword('correct horse'), line, 'two hashes of one password must differ (random salt)');
  const g = await gateway(baseConfig({ admin: { username: 'ops', password_hash: line } }));

  const s0 = (await apiJson(g.port, 'GET', '/api/session', undefined, 200, { token: null })).j;
  assert.deepEqual(s0, { authenticated: false, login_required: true, password_login: true, user: null });
  assert.equal((await api(g.port, 'GET', '/api/providers', undefined, { token: null })).status, 401);

  for (const body of [{ username: 'ops', password: 'wrong horse' }, { username: 'root', password: 'correct horse' }]) {
    const r = await api(g.port, 'POST', '/api/session/login', body, { token: null });
    assert.equal(r.status, 401, `login ${JSON.stringify(body)}: ${show(r)}`);
    assert.equal(r.headers['set-cookie'], undefined, 'a failed login must not set a cookie');
  }
  const bad = await api(g.port, 'POST', '/api/session/login', '{"username":"ops"}', { token: null });
  assert.equal(bad.status, 400, `login without a password: ${show(bad)}`);

  const ok = await api(g.port, 'POST', '/api/session/login', { username: 'ops', password: 'correct horse' }, { token: null });
  assert.equal(ok.status, 200, show(ok));
  assert.deepEqual(ok.json(), { authenticated: true, user: 'ops' });
  const sc = [].concat(ok.headers['set-cookie'] || []);
  assert.equal(sc.length, 1, `one Set-Cookie: ${JSON.stringify(sc)}`);
  const mm = /^bifrost_session=([0-9a-f]{64});/.exec(sc[0]);
  assert.ok(mm, `session cookie: ${sc[0]}`);
  assert.match(sc[0], /;\s*HttpOnly/i, sc[0]);
  assert.match(sc[0], /;\s*SameSite=Strict/i, sc[0]);
  const cookie = `bifrost_session=${mm[1]}`;

  const p = await api(g.port, 'GET', '/api/providers', undefined, { token: null, headers: { cookie: `theme=dark; ${cookie}` } });
  assert.equal(p.status, 200, `the session cookie (after another cookie) authorizes: ${show(p)}`);
  const s1 = (await apiJson(g.port, 'GET', '/api/session', undefined, 200, { token: null, headers: { cookie } })).j;
  assert.deepEqual(s1, { authenticated: true, login_required: true, password_login: true, user: 'ops' });
  // the password hash is a secret too
  const cfg = await api(g.port, 'GET', '/api/config', undefined, { token: null, headers: { cookie } });
  assert.match(cfg.json().admin.password_hash, MARKER, cfg.text);
  assert.ok(!cfg.text.includes(line.split('$')[3]), 'GET /api/config leaks the password hash');

  const out = await api(g.port, 'POST', '/api/session/logout', '', { token: null, headers: { cookie } });
  assert.equal(out.status, 200, show(out));
  assert.match([].concat(out.headers['set-cookie'] || []).join('\n'), /bifrost_session=;.*Max-Age=0/i, 'logout clears the cookie');
  assert.equal(out.json().authenticated, false);
  const after = await api(g.port, 'GET', '/api/providers', undefined, { token: null, headers: { cookie } });
  assert.equal(after.status, 401, `the cookie after logout: ${show(after)}`);
});

test('5 failed logins from one address in a minute: the 6th attempt is refused with 429 even with the right password', async () => {
  const line = hashPassword('pw-limit');
  const g = await gateway(baseConfig({ admin: { username: 'ops', password_hash: line } }));
  // each attempt on a fresh connection (a new source port), as a brute-forcer's client would
  for (let i = 1; i <= 5; i++) {
    const r = await api(g.port, 'POST', '/api/session/login', { username: 'ops', password: `guess-${i}` }, { token: null });
    assert.equal(r.status, 401, `failed login ${i}: ${show(r)}`);
  }
  const r6 = await api(g.port, 'POST', '/api/session/login', { username: 'ops', password: 'pw-limit' }, { token: null });
  assert.equal(r6.status, 429, `6th login from 127.0.0.1 within the minute (each on its own connection): ${show(r6)}`);
  assert.ok(r6.headers['retry-after'], 'a 429 says when to retry');
  assert.equal(r6.headers['set-cookie'], undefined);
});

test('5 failed logins on one keep-alive connection: the 6th is 429', async () => {
  const line = hashPassword('pw-limit-2');
  const g = await gateway(baseConfig({ admin: { username: 'ops', password_hash: line } }));
  const c = await RawConn.open(g.port);
  try {
    const login = (pw) => rawRequest('POST', '/api/session/login', { headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username: 'ops', password: pw }) });
    for (let i = 1; i <= 5; i++) {
      await c.write(login(`guess-${i}`));
      const r = await c.readResponse({ timeoutMs: 5000 });
      assert.equal(r.status, 401, `failed login ${i}: ${r.rawHead}`);
    }
    await c.write(login('pw-limit-2'));
    const r6 = await c.readResponse({ timeoutMs: 5000 });
    assert.equal(r6.status, 429, `6th login: ${r6.rawHead}`);
  } finally { c.destroy(); }
});

test('a password_hash line with text after the hash is refused by bifrost check (and so at start and reload)', async () => {
  const line = hashPassword('pw-trailing');
  const g = await gateway(baseConfig({ admin: { token: ADMIN, username: 'ops', password_hash: line } }));
  const cfg = JSON.parse(readCfg(g));
  cfg.admin.password_hash = `${line} x`;
  writeFileSync(g.cfgPath, JSON.stringify(cfg));
  const r = await runBifrost(['check', '-c', g.cfgPath]);
  assert.notEqual(r.code, 0, 'check refuses it');
  assert.match(r.stderr + r.stdout, /admin\.password_hash: not a hash/);
  const ok = await api(g.port, 'POST', '/api/session/login', { username: 'ops', password: 'pw-trailing' }, { token: null });
  assert.equal(ok.status, 200, `the running config (a good line) still logs in: ${show(ok)}`);
});

// =============================================================================================
// 2. HEAD / and GET /

test('HEAD / and GET / answer 200 (with and without admin credentials)', async () => {
  for (const cfg of [baseConfig(), { providers: [] }]) {
    const g = await gateway(cfg);
    for (const method of ['HEAD', 'GET']) {
      const r = await request(g.port, { method, path: '/' });
      assert.equal(r.status, 200, `${method} / with ${cfg.admin ? 'a token' : 'no credentials'}: ${show(r)}`);
    }
    await g.stop();
  }
});

// =============================================================================================
// 3. providers

test('providers: a provider POSTed on a new upstream host:port routes at once (the new upstream sees its key)', async () => {
  const fresh = await mock('fresh');
  const g = await gateway(baseConfig());
  const before = await chatReq(g.port, { model: 'fresh/gpt-4o' });
  assert.equal(before.status, 400, `unknown provider before the POST: ${show(before)}`);
  const entry = { name: 'fresh', provider: 'openai', base_url: fresh.baseUrl, apiKey: FRESH_KEY, max_retries: 0 };
  await apiJson(g.port, 'POST', '/api/providers', entry, 201);
  // the write answered: the config is published, so the very next request must route
  const c = await chatReq(g.port, { model: 'fresh/gpt-4o' });
  assert.equal(c.status, 200, `the first request to the POSTed provider: ${show(c)}`);
  assert.equal(fresh.requests.length, 1, 'the new provider\'s upstream was not reached');
  assert.equal(fresh.requests[0].headers.authorization, `Bearer ${FRESH_KEY}`);
});

test('providers: POST creates one that routes, the file is valid and .bak is the previous one; GET list/one redacted; 409 duplicate; 400 problems for a bad kind', async () => {
  const fresh = await mock('fresh-b');
  const g = await gateway(baseConfig({ circuit_breaker: { failures: 1000000, cooldown_ms: 1000 } }));
  const original = readCfg(g);

  const entry = { name: 'fresh', provider: 'openai', base_url: fresh.baseUrl, apiKey: FRESH_KEY, max_retries: 0 };
  const { r, j } = await apiJson(g.port, 'POST', '/api/providers', entry, 201);
  assert.match(j.provider?.apiKey ?? '', MARKER, JSON.stringify(j));
  const freshMarker = j.provider.apiKey;
  assert.deepEqual(j, { provider: { ...entry, apiKey: freshMarker } }, 'the answer is the entry, its key redacted');
  assert.ok(etags(r).length >= 1, 'a write answer carries an ETag');

  // (a new upstream host:port may take the DNS refresh to resolve: see the test above)
  let c;
  for (const until = Date.now() + 3000; ;) {
    c = await chatReq(g.port, { model: 'fresh/gpt-4o' });
    if (c.status !== 502 || Date.now() > until) break;
    fresh.reset();
    await sleep(100);
  }
  assert.equal(c.status, 200, `a request to the new provider: ${show(c)}`);
  assert.equal(fresh.requests.length, 1, 'the new provider\'s upstream was not reached');
  assert.equal(fresh.requests[0].headers.authorization, `Bearer ${FRESH_KEY}`);
  assert.equal(m.requests.length, 0, 'the request went to the old provider');
  const old = await chatReq(g.port);
  assert.equal(old.status, 200, `the existing provider still routes: ${show(old)}`);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);

  const doc = await assertFileValid(g);
  assert.deepEqual(doc.providers.map((p) => p.name), ['mock', 'fresh']);
  assert.equal(doc.providers[1].apiKey, FRESH_KEY, 'the provider key is stored (providers keep their key in the file)');
  assert.equal(doc.admin.token, ADMIN, 'the admin token survives the write');
  assert.equal(readFileSync(`${g.cfgPath}.bak`, 'utf8'), original, '.bak is the previous file, byte for byte');

  const list = (await apiJson(g.port, 'GET', '/api/providers', undefined, 200)).j;
  assert.deepEqual(list.providers.map((p) => p.name), ['mock', 'fresh']);
  assert.match(list.providers[0].apiKey, MARKER);
  assert.equal(list.providers[1].apiKey, freshMarker, 'one secret, one marker (the POST answer and the list agree)');
  assert.notEqual(list.providers[0].apiKey, freshMarker, 'two secrets, two markers');
  const one = (await apiJson(g.port, 'GET', '/api/providers/fresh', undefined, 200)).j;
  assert.deepEqual(one, { provider: { ...entry, apiKey: freshMarker } });
  assert.equal((await api(g.port, 'GET', '/api/providers/nope')).status, 404);

  const afterFirst = readCfg(g);
  const dup = await api(g.port, 'POST', '/api/providers', { ...entry, apiKey: 'sk-other' });
  assert.equal(dup.status, 409, `a second POST of the same name: ${show(dup)}`);
  assert.equal(readCfg(g), afterFirst, 'a 409 changed the file');

  const bad = await api(g.port, 'POST', '/api/providers', { name: 'weird', provider: 'no-such-kind', apiKey: 'k' });
  assert.equal(bad.status, 400, `unknown provider kind: ${show(bad)}`);
  const probs = bad.json().error?.problems;
  assert.ok(Array.isArray(probs) && probs.length > 0, `400 lists the problems: ${bad.text}`);
  assert.ok(probs.some((p) => /no-such-kind/.test(p)), `the problem names the kind: ${JSON.stringify(probs)}`);
  assert.equal(readCfg(g), afterFirst, 'a rejected POST changed the file');
  assert.equal(readFileSync(`${g.cfgPath}.bak`, 'utf8'), original, 'a rejected POST touched .bak');
  const typo = await api(g.port, 'POST', '/api/providers', { name: 'typo', provider: 'openai', apiKey: 'k', base_urll: 'http://x' });
  assert.equal(typo.status, 400, `an unknown field: ${show(typo)}`);
  assert.ok(typo.json().error.problems.some((p) => /base_urll/.test(p)), typo.text);

  for (const body of ['[1,2]', '{"name":', '', '{"provider":"openai","apiKey":"k","name":7}']) {
    const x = await api(g.port, 'POST', '/api/providers', body);
    assert.equal(x.status, 400, `POST /api/providers ${JSON.stringify(body)}: ${show(x)}`);
  }
  assert.equal(readCfg(g), afterFirst);
});

/** A marker that names nothing: digits changed, cut, upper-cased, or bytes after it. */
function wrongMarkers(marker) {
  const digits = marker.slice(MARKER_PREFIX.length + 1);
  const flip = (c) => (c === '0' ? '1' : '0');
  const out = [MARKER_PREFIX, `${MARKER_PREFIX}-`, `${marker.slice(0, -1)}${flip(marker.at(-1))}`, `${MARKER_PREFIX}-${flip(digits[0])}${digits.slice(1)}`,
    marker.slice(0, -1), `${marker}0`, `${marker}x`, marker === `${MARKER_PREFIX}-00000000` ? `${MARKER_PREFIX}-11111111` : `${MARKER_PREFIX}-00000000`];
  if (/[a-f]/.test(digits)) out.push(`${MARKER_PREFIX}-${digits.toUpperCase()}`);
  return out;
}

test('providers: a copy of an entry POSTed with its marker gets the stored key (never the marker); a marker that names no stored secret is 400', async () => {
  const g = await gateway(baseConfig());
  const got = (await apiJson(g.port, 'GET', '/api/providers/mock', undefined, 200)).j.provider;
  assert.match(got.apiKey, MARKER);
  const copy = await api(g.port, 'POST', '/api/providers', { ...got, name: 'copy' });
  assert.equal(copy.status, 201, `POST of a copy carrying the marker as its key: ${show(copy)}`);
  assert.equal(copy.json().provider.apiKey, got.apiKey, 'the copy has the same key, so the same marker');
  const text = readCfg(g);
  assert.ok(!text.includes('redacted') && !text.includes('\\u2026') && !text.includes('\u2026'), `a marker was written into the file:\n${text}`);
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.providers.map((p) => [p.name, p.apiKey]), [['mock', UP_KEY], ['copy', UP_KEY]]);
  const c = await chatReq(g.port, { model: 'copy/gpt-4o' });
  assert.equal(c.status, 200, show(c));
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`, 'the copy sends the stored key upstream');

  const before = readCfg(g);
  for (const bad of wrongMarkers(got.apiKey)) {
    for (const [method, path, body] of [['POST', '/api/providers', { ...got, name: 'bad' }], ['PUT', '/api/providers/mock', { ...got }],
      ['PUT', '/api/providers/mock', { ...got, apiKey: UP_KEY, keys: [{ value: bad, weight: 1 }] }]]) {
      if (!body.keys) body.apiKey = bad;
      const r = await api(g.port, method, path, body);
      assert.equal(r.status, 400, `${method} ${path} with ${JSON.stringify(bad)}: ${show(r)}`);
      assert.match(r.json().error?.message ?? '', /names no stored secret/, r.text);
    }
  }
  assert.equal(readCfg(g), before, 'a refused marker changed the file');
  assert.equal((await chatReq(g.port)).status, 200);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);
});

test('providers: PUT with the redacted marker keeps the stored key (the upstream still receives it); PUT identity must match the path; DELETE removes the route; 1-of-2 keys', async () => {
  const fresh = await mock('fresh2');
  const g = await gateway(baseConfig({
    providers: [
      { name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0, models: ['gpt-*'] },
      { name: 'fresh', provider: 'openai', base_url: fresh.baseUrl, keys: [{ value: FRESH_KEY, weight: 1 }], max_retries: 0, models: ['gpt-*'] },
    ],
  }));
  const got = (await apiJson(g.port, 'GET', '/api/providers/mock', undefined, 200)).j.provider;
  assert.match(got.apiKey, MARKER);
  const gotFresh = (await apiJson(g.port, 'GET', '/api/providers/fresh', undefined, 200)).j.provider;
  assert.match(gotFresh.keys[0].value, MARKER, `keys[].value redacted: ${JSON.stringify(gotFresh)}`);

  // change something visible (an extra header) and send the marker back
  const put = await api(g.port, 'PUT', '/api/providers/mock', { ...got, headers: { 'X-Edited': 'yes' } });
  assert.equal(put.status, 200, show(put));
  assert.equal(put.json().provider.apiKey, got.apiKey, 'the same key, the same marker');
  const c = await chatReq(g.port);
  assert.equal(c.status, 200, show(c));
  const seen = m.requests.at(-1);
  assert.equal(seen.headers.authorization, `Bearer ${UP_KEY}`, 'after a PUT with the marker the upstream must get the stored key');
  assert.equal(seen.headers['x-edited'], 'yes', 'the PUT took effect');
  assert.equal(JSON.parse(readCfg(g)).providers[0].apiKey, UP_KEY, 'the file keeps the real key');

  const putFresh = await api(g.port, 'PUT', '/api/providers/fresh', { ...gotFresh, headers: { 'X-F': '1' } });
  assert.equal(putFresh.status, 200, show(putFresh));
  assert.equal((await chatReq(g.port, { model: 'fresh/gpt-4o' })).status, 200);
  assert.equal(fresh.requests.at(-1).headers.authorization, `Bearer ${FRESH_KEY}`, 'keys[].value kept through the marker');

  // a new key replaces the old one
  const put2 = await api(g.port, 'PUT', '/api/providers/mock', { ...got, apiKey: 'sk-rotated-3333' });
  assert.equal(put2.status, 200, show(put2));
  assert.equal((await chatReq(g.port)).status, 200);
  assert.equal(m.requests.at(-1).headers.authorization, 'Bearer sk-rotated-3333');

  const mismatch = await api(g.port, 'PUT', '/api/providers/mock', { ...got, name: 'other' });
  assert.equal(mismatch.status, 400, `PUT whose name differs from the path: ${show(mismatch)}`);
  const missing = await api(g.port, 'PUT', '/api/providers/ghost', { ...got, name: 'ghost' });
  assert.equal(missing.status, 404, `PUT of an entry that does not exist: ${show(missing)}`);

  const before = readCfg(g);
  const del = await api(g.port, 'DELETE', '/api/providers/fresh');
  assert.equal(del.status, 200, show(del));
  assert.deepEqual(del.json(), { deleted: 'fresh' });
  const gone = await chatReq(g.port, { model: 'fresh/gpt-4o' });
  assert.equal(gone.status, 400, `the deleted provider's model: ${show(gone)}`);
  assert.equal((await api(g.port, 'GET', '/api/providers/fresh')).status, 404);
  assert.equal((await api(g.port, 'DELETE', '/api/providers/fresh')).status, 404, 'DELETE twice');
  assert.equal(readFileSync(`${g.cfgPath}.bak`, 'utf8'), before, '.bak is the file before the DELETE');
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.providers.map((p) => p.name), ['mock']);
  assert.equal((await chatReq(g.port)).status, 200, 'the other provider still routes');
});

test('providers written as a map ({"name": {...}}): list, get, PUT and POST keep the map form', async () => {
  const g = await gateway(baseConfig({
    providers: { mock: { provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0 } },
  }));
  const list = (await apiJson(g.port, 'GET', '/api/providers', undefined, 200)).j;
  assert.equal(list.providers.length, 1);
  assert.equal(list.providers[0].name, 'mock', `a map entry gets its key as name: ${JSON.stringify(list)}`);
  const one = (await apiJson(g.port, 'GET', '/api/providers/mock', undefined, 200)).j.provider;
  assert.equal(one.name, 'mock');
  const put = await api(g.port, 'PUT', '/api/providers/mock', { ...one, headers: { 'X-Map': '1' } });
  assert.equal(put.status, 200, show(put));
  const post = await api(g.port, 'POST', '/api/providers', { name: 'two', provider: 'openai', base_url: m.baseUrl, apiKey: 'sk-two' });
  assert.equal(post.status, 201, show(post));
  const doc = await assertFileValid(g);
  assert.ok(!Array.isArray(doc.providers) && doc.providers.mock && doc.providers.two, `map form kept: ${JSON.stringify(doc.providers)}`);
  assert.equal(doc.providers.mock.apiKey, UP_KEY);
  assert.equal((await chatReq(g.port)).status, 200);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);
  assert.equal(m.requests.at(-1).headers['x-map'], '1');
  assert.equal((await chatReq(g.port, { model: 'two/gpt-4o' })).status, 200);
  assert.equal(m.requests.at(-1).headers.authorization, 'Bearer sk-two');
});

// =============================================================================================
// 4. ETag / If-Match

test('ETag on every config answer; a write with a stale If-Match is 412 and changes nothing; the ETag a write returns is the new revision', async () => {
  const g = await gateway(baseConfig());
  const g1 = await api(g.port, 'GET', '/api/config');
  const e1 = etagOf(g1);
  for (const path of ['/api/providers', '/api/providers/mock', '/api/pricing', '/api/governance/teams']) {
    const r = await api(g.port, 'GET', path);
    assert.equal(etagOf(r), e1, `GET ${path}: the same revision`);
  }
  const w = await api(g.port, 'POST', '/api/governance/teams', { id: 'alpha' }, { headers: { 'if-match': e1 } });
  assert.equal(w.status, 201, `POST with the current If-Match: ${show(w)}`);
  const g2 = await api(g.port, 'GET', '/api/config');
  const e2 = etagOf(g2);
  assert.notEqual(e2, e1, 'the revision changes with the file');

  const before = readCfg(g);
  for (const [method, path, body] of [
    ['POST', '/api/governance/teams', { id: 'beta' }],
    ['PUT', '/api/governance/teams/alpha', { id: 'alpha', budget: { max_limit: 1, reset_duration: '1d' } }],
    ['DELETE', '/api/governance/teams/alpha'],
    ['PUT', '/api/pricing', { pricing: {} }],
    ['PUT', '/api/config', JSON.parse(before)],
  ]) {
    const r = await api(g.port, method, path, body, { headers: { 'if-match': e1 } });
    assert.equal(r.status, 412, `${method} ${path} with a stale If-Match: ${show(r)}`);
    assert.equal(readCfg(g), before, `${method} ${path}: a 412 changed the file`);
  }
  const star = await api(g.port, 'POST', '/api/governance/teams', { id: 'beta' }, { headers: { 'if-match': '*' } });
  assert.equal(star.status, 201, `If-Match: * : ${show(star)}`);
  // the first write's answer: one ETag, the revision it wrote
  assert.equal(etagOf(w), e2, `the write's ETag must be the new revision (the one a GET then returned), got ${JSON.stringify(etags(w))}`);
});

test('chained writes: each write\'s ETag is accepted as If-Match by the next write', async () => {
  const g = await gateway(baseConfig());
  let tag = etagOf(await api(g.port, 'GET', '/api/governance/customers'));
  for (const id of ['c1', 'c2', 'c3']) {
    const r = await api(g.port, 'POST', '/api/governance/customers', { id }, { headers: { 'if-match': tag } });
    assert.equal(r.status, 201, `POST customer ${id} with If-Match ${tag} (the previous write's ETag): ${show(r)}`);
    tag = r.headers.etag; // what an HTTP client sees (node, fetch and browsers keep one ETag)
  }
  const list = (await apiJson(g.port, 'GET', '/api/governance/customers', undefined, 200)).j;
  assert.deepEqual(list.customers.map((c) => c.id), ['c1', 'c2', 'c3']);
});

// =============================================================================================
// 5. redaction and the whole file

test('GET /api/config redacts every secret (apiKey, keys[].value, virtual key value, admin token) and keeps env.NAME references', async () => {
  const cfg = baseConfig({
    providers: [
      { name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0 },
      { name: 'multi', provider: 'openai', base_url: m.baseUrl, keys: [{ value: 'sk-multi-a-5555', weight: 1 }, { value: 'env.ADMIN_API_TEST_KEY', weight: 1 }] },
      { name: 'envd', provider: 'openai', base_url: m.baseUrl, apiKey: 'env.ADMIN_API_TEST_KEY' },
    ],
    governance: { virtual_keys: [{ id: 'v1', value: 'sk-bf-plain-6666' }] },
  });
  const g = await gateway(cfg, { env: { ADMIN_API_TEST_KEY: 'sk-from-env-7777' } });
  const r = await api(g.port, 'GET', '/api/config');
  assert.equal(r.status, 200, show(r));
  for (const s of [ADMIN, UP_KEY, 'sk-multi-a-5555', 'sk-bf-plain-6666', 'sk-from-env-7777']) {
    assert.ok(!r.text.includes(s), `GET /api/config leaks ${s}: ${r.text}`);
  }
  const j = r.json();
  assert.match(j.admin.token, MARKER);
  assert.match(j.providers[0].apiKey, MARKER);
  assert.match(j.providers[1].keys[0].value, MARKER);
  assert.equal(j.providers[1].keys[1].value, 'env.ADMIN_API_TEST_KEY', 'env.NAME is not a secret');
  assert.equal(j.providers[2].apiKey, 'env.ADMIN_API_TEST_KEY');
  assert.match(j.governance.virtual_keys[0].value, MARKER);
  assert.equal(j.pricing['mock/gpt-4o'].input, 2.5, 'the rest is as written');
  const markers = [j.admin.token, j.providers[0].apiKey, j.providers[1].keys[0].value, j.governance.virtual_keys[0].value];
  assert.equal(new Set(markers).size, 4, `four secrets, four markers: ${markers}`);
  const again = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  assert.deepEqual(again, j, 'a second GET shows the same markers');
  const vks = await api(g.port, 'GET', '/api/governance/virtual-keys');
  assert.ok(!vks.text.includes('sk-bf-plain-6666'), vks.text);
  assert.equal(vks.json().virtual_keys[0].value, j.governance.virtual_keys[0].value, 'the same marker in every answer');
  assert.equal((await apiJson(g.port, 'GET', '/api/providers/mock', undefined, 200)).j.provider.apiKey, j.providers[0].apiKey);
});

test('secrets under JSON-escaped member names ("api\\u004bey", "tok\\u0065n", "valu\\u0065") are redacted, resolved and hashed like the plain names', async () => {
  // the loader unescapes member names, so "api\u004bey" IS apiKey to the gateway
  const text = `{"admin":{"tok\\u0065n":"${ADMIN}"},"log_requests":false,`
    + `"providers":[{"name":"mock","provider":"openai","base_url":"${m.baseUrl}","api\\u004bey":"${UP_KEY}","models":["gpt-*"]}],`
    + '"governance":{"virtual_keys":[{"id":"esc","valu\\u0065":"sk-bf-escaped-value-1"}]}}';
  const g = await gateway(text);
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-escaped-value-1' } })).status, 200, 'the escaped names are read as the real ones');
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);
  const leaks = [];
  for (const path of ['/api/config', '/api/providers', '/api/providers/mock', '/api/governance/virtual-keys', '/api/governance/virtual-keys/esc']) {
    const r = await api(g.port, 'GET', path);
    assert.equal(r.status, 200, `GET ${path}: ${show(r)}`);
    for (const secret of [ADMIN, UP_KEY, 'sk-bf-escaped-value-1']) if (r.text.includes(secret)) leaks.push(`GET ${path} shows ${secret}: ${r.text}`);
  }
  // the redacted values are markers, read under the escaped names
  const cfg = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  assert.match(cfg.admin.token, MARKER, JSON.stringify(cfg));
  assert.match(cfg.providers[0].apiKey, MARKER, JSON.stringify(cfg));
  assert.match(cfg.governance.virtual_keys[0].value, MARKER, JSON.stringify(cfg));
  // a key POSTed with an escaped "value": hashed, not stored or echoed
  const post = await api(g.port, 'POST', '/api/governance/virtual-keys', '{"id":"esc2","valu\\u0065":"sk-bf-escaped-value-2"}');
  assert.equal(post.status, 201, show(post));
  if (post.text.includes('sk-bf-escaped-value-2')) leaks.push(`the 201 answer echoes the value: ${post.text}`);
  if (readCfg(g).includes('sk-bf-escaped-value-2')) leaks.push('the POSTed value is stored in the file in the clear');
  assert.deepEqual(leaks, [], leaks.join('\n'));
  const k2 = JSON.parse(readCfg(g)).governance.virtual_keys.find((k) => k.id === 'esc2');
  assert.deepEqual(k2, { value_sha256: sha256('sk-bf-escaped-value-2'), id: 'esc2' }, 'stored as value_sha256 only');
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-escaped-value-2' } })).status, 200, 'the hashed key works');
  // a PUT of an entry written with escaped names carrying markers keeps the secrets
  const put = await api(g.port, 'PUT', '/api/providers/mock',
    `{"name":"mock","provider":"openai","base_url":"${m.baseUrl}","api\\u004bey":"${cfg.providers[0].apiKey}","models":["gpt-*"],"headers":{"X-Esc":"1"}}`);
  assert.equal(put.status, 200, show(put));
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-escaped-value-1' } })).status, 200);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`, 'the marker under "api\\u004bey" kept the key');
  assert.equal(m.requests.at(-1).headers['x-esc'], '1');
  // and the whole document as GET returned it (node writes the names plainly)
  const whole = await api(g.port, 'PUT', '/api/config', (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j);
  assert.equal(whole.status, 200, show(whole));
  const doc = await assertFileValid(g);
  assert.equal(doc.admin.token, ADMIN);
  assert.equal(doc.providers[0].apiKey, UP_KEY);
  assert.equal(doc.governance.virtual_keys[0].value, 'sk-bf-escaped-value-1');
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-escaped-value-1' } })).status, 200);
  assert.ok(!readCfg(g).includes('redacted'), readCfg(g));
});

test('PUT /api/config with what GET returned keeps every stored secret (upstream key, admin token, virtual key)', async () => {
  const g = await gateway(baseConfig({
    governance: { enforce: true, virtual_keys: [{ id: 'v1', value: 'sk-bf-plain-6666' }] },
  }));
  const cur = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  cur.pricing['mock/gpt-4o'] = { input: 5, output: 20 };
  const put = await api(g.port, 'PUT', '/api/config', cur);
  assert.equal(put.status, 200, show(put));
  const doc = await assertFileValid(g);
  assert.equal(doc.admin.token, ADMIN);
  assert.equal(doc.providers[0].apiKey, UP_KEY);
  assert.deepEqual(doc.governance.virtual_keys[0], { id: 'v1', value: 'sk-bf-plain-6666' },
    'PUT /api/config writes the file as given: the marker became the stored plain value');
  assert.ok(!readCfg(g).includes('redacted'), `the marker reached the file:\n${readCfg(g)}`);
  const c = await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-plain-6666' } });
  assert.equal(c.status, 200, `the virtual key still works: ${show(c)}`);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);
  assert.equal((await api(g.port, 'GET', '/api/config')).status, 200, 'the admin token still works');
  assert.equal((await markerAuth(g.port, cur.admin.token)).status, 401, 'the admin token\'s marker is not the token');
  assert.equal((await markerAuth(g.port, MARKER_PREFIX)).status, 401, 'the bare prefix is not the token');
});

test('PUT /api/config whose JSON writes the marker with a \\u2026 escape (Python json.dumps) keeps the stored secrets', async () => {
  const g = await gateway(baseConfig());
  const cur = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  // the same document as an ASCII-only encoder writes it: "sk-\u2026redacted-..."
  const body = JSON.stringify(cur).replace(/\u2026/g, '\\u2026');
  assert.ok(body.includes('sk-\\u2026redacted-'));
  const put = await api(g.port, 'PUT', '/api/config', body);
  assert.equal(put.status, 200, show(put));
  const problems = [];
  const doc = JSON.parse(readCfg(g));
  if (doc.providers[0].apiKey !== UP_KEY) problems.push(`the file's upstream key is now ${JSON.stringify(doc.providers[0].apiKey)}`);
  if (doc.admin.token !== ADMIN) problems.push(`the file's admin token is now ${JSON.stringify(doc.admin.token)}`);
  const c = await chatReq(g.port);
  if (m.requests.at(-1)?.headers.authorization !== `Bearer ${UP_KEY}`) problems.push(`the upstream now receives ${m.requests.at(-1)?.headers.authorization} (${show(c)})`);
  const asMarker = await markerAuth(g.port, cur.admin.token);
  if (asMarker.status !== 401) problems.push(`"Authorization: Bearer ${cur.admin.token}" (the token's marker) is now accepted as the admin token: ${asMarker.status}`);
  if (readCfg(g).includes('redacted')) problems.push(`a marker reached the file:\n${readCfg(g)}`);
  if ((await api(g.port, 'GET', '/api/config')).status !== 200) problems.push('the real admin token no longer works');
  assert.deepEqual(problems, [], `PUT ${put.status}:\n${problems.join('\n')}`);
});

test('PUT /api/config with the first of two providers removed: the remaining one keeps its own key, not the removed one\'s', async () => {
  const second = await mock('second');
  const g = await gateway(baseConfig({
    providers: [
      { name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0 },
      { name: 'second', provider: 'openai', base_url: second.baseUrl, apiKey: 'sk-second-8888', max_retries: 0 },
    ],
  }));
  const cur = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  cur.providers = cur.providers.filter((p) => p.name !== 'mock');
  const put = await api(g.port, 'PUT', '/api/config', cur);
  assert.equal(put.status, 200, show(put));
  const c = await chatReq(g.port, { model: 'second/gpt-4o' });
  assert.equal(c.status, 200, show(c));
  assert.equal(second.requests.at(-1).headers.authorization, 'Bearer sk-second-8888',
    'provider "second" must keep its own key; it was sent the removed provider\'s key');
  assert.equal(JSON.parse(readCfg(g)).providers[0].apiKey, 'sk-second-8888');
});

test('PUT /api/config writes the file as given: a virtual key added with a plain value stays plain (only the virtual-keys API hashes), works, and reads back as a marker', async () => {
  const g = await gateway(baseConfig({ governance: { enforce: true, virtual_keys: [] } }));
  const cur = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  cur.governance.virtual_keys = [{ id: 'whole', value: 'sk-bf-whole-file-0001' }, { id: 'hashed', value_sha256: sha256('sk-bf-whole-file-0002') }];
  const put = await api(g.port, 'PUT', '/api/config', cur);
  assert.equal(put.status, 200, show(put));
  assert.ok(!put.text.includes('sk-bf-whole-file-0001'), `the answer echoes the value: ${put.text}`);
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-whole-file-0001' } })).status, 200, 'the key works');
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-whole-file-0002' } })).status, 200, 'a value_sha256 given works');
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.governance.virtual_keys, [{ id: 'whole', value: 'sk-bf-whole-file-0001' }, { id: 'hashed', value_sha256: sha256('sk-bf-whole-file-0002') }],
    'the file is what was PUT');
  const got = (await apiJson(g.port, 'GET', '/api/governance/virtual-keys/whole', undefined, 200)).j;
  assert.match(got.virtual_key.value, MARKER, JSON.stringify(got));
  // the virtual-keys API hashes what it is given
  const rot = await api(g.port, 'PUT', '/api/governance/virtual-keys/whole', { id: 'whole', value: 'sk-bf-whole-file-0003' });
  assert.equal(rot.status, 200, show(rot));
  assert.deepEqual(JSON.parse(readCfg(g)).governance.virtual_keys[0], { value_sha256: sha256('sk-bf-whole-file-0003'), id: 'whole' });
});

test('markers resolve wherever their secret stood: PUT /api/config with a provider renamed and its key moved into keys[] keeps the key; a marker naming nothing is 400 and changes nothing', async () => {
  const g = await gateway(baseConfig());
  const cur = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  const mk = cur.providers[0].apiKey;
  assert.match(mk, MARKER);
  const before = readCfg(g);
  for (const bad of wrongMarkers(mk)) {
    const r = await api(g.port, 'PUT', '/api/config', { ...cur, providers: [{ ...cur.providers[0], apiKey: bad }] });
    assert.equal(r.status, 400, `PUT /api/config with apiKey ${JSON.stringify(bad)}: ${show(r)}`);
    assert.match(r.json().error?.message ?? '', /names no stored secret/, r.text);
    const t = await api(g.port, 'PUT', '/api/config', { ...cur, admin: { token: bad } });
    assert.equal(t.status, 400, `PUT /api/config with admin.token ${JSON.stringify(bad)}: ${show(t)}`);
  }
  assert.equal(readCfg(g), before, 'a refused PUT changed the file');
  const { apiKey, ...rest } = cur.providers[0];
  const moved = { ...cur, providers: [{ ...rest, name: 'renamed', keys: [{ value: mk, weight: 1 }] }, { ...cur.providers[0], name: 'second', apiKey: cur.admin.token }],
    pricing: { 'renamed/gpt-4o': P_4O } };
  const put = await api(g.port, 'PUT', '/api/config', moved);
  assert.equal(put.status, 200, show(put));
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.providers[0].keys, [{ value: UP_KEY, weight: 1 }], 'the key moved into keys[]');
  assert.equal(doc.providers[1].apiKey, ADMIN, 'a marker from another block (the admin token)');
  assert.equal(doc.admin.token, ADMIN);
  assert.ok(!readCfg(g).includes('redacted'), readCfg(g));
  const c = await chatReq(g.port, { model: 'renamed/gpt-4o' });
  assert.equal(c.status, 200, show(c));
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);
  assert.equal((await chatReq(g.port, { model: 'mock/gpt-4o' })).status, 400, 'the old name is gone');
});

test('a marker names its secret only in the process that drew it: after a restart the old marker is 400, the new one works', async () => {
  const g = await gateway(baseConfig());
  const old = (await apiJson(g.port, 'GET', '/api/providers/mock', undefined, 200)).j.provider;
  const g2 = await restart(g);
  try {
    const cur = (await apiJson(g2.port, 'GET', '/api/providers/mock', undefined, 200)).j.provider;
    assert.match(cur.apiKey, MARKER);
    assert.notEqual(cur.apiKey, old.apiKey, 'a new process draws a new key: the same secret reads differently');
    const before = readCfg(g2);
    const stale = await api(g2.port, 'PUT', '/api/providers/mock', { ...old, headers: { 'X-Stale': '1' } });
    assert.equal(stale.status, 400, `PUT with the marker of the previous run: ${show(stale)}`);
    assert.match(stale.json().error?.message ?? '', /names no stored secret/, stale.text);
    assert.equal(readCfg(g2), before);
    const fresh = await api(g2.port, 'PUT', '/api/providers/mock', { ...cur, headers: { 'X-Fresh': '1' } });
    assert.equal(fresh.status, 200, show(fresh));
    assert.equal((await chatReq(g2.port)).status, 200);
    assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`);
    assert.equal(m.requests.at(-1).headers['x-fresh'], '1');
  } finally { await g2.stop(); }
});

test('without -c: the first API change writes ./config.json from the environment (env.NAME, not the key), and the next start reads it', async () => {
  const dir = tempDirHere();
  const env = { OPENAI_API_KEY: 'sk-env-secret-9999' };
  const start = async () => {
    const port = await freePort();
    const proc = spawnBifrost({ args: ['-l', `127.0.0.1:${port}`, '-w', '1', '-d', join(dir, 'data')], env, cwd: dir });
    procs.push(proc);
    await waitHealthy(proc, port, 30000);
    return { port, proc };
  };
  const a = await start();
  assert.ok(!existsSync(join(dir, 'config.json')));
  const { j } = await apiJson(a.port, 'GET', '/api/providers', undefined, 200, { token: null });
  assert.equal(j.providers.length, 1, JSON.stringify(j));
  assert.equal(j.providers[0].apiKey, 'env.OPENAI_API_KEY', 'an env reference is shown as it is');
  await apiJson(a.port, 'POST', '/api/governance/teams', { id: 'from-api' }, 201, { token: null });
  const text = readFileSync(join(dir, 'config.json'), 'utf8');
  assert.ok(!text.includes('sk-env-secret-9999'), `the environment's key was written into config.json:\n${text}`);
  const doc = JSON.parse(text);
  assert.equal(doc.providers[0].apiKey, 'env.OPENAI_API_KEY');
  assert.deepEqual(doc.governance.teams, [{ id: 'from-api' }]);
  a.proc.child.kill('SIGTERM');
  await a.proc.wait(10000);
  const b = await start();
  assert.deepEqual((await apiJson(b.port, 'GET', '/api/governance/teams', undefined, 200, { token: null })).j, { teams: [{ id: 'from-api' }] });
  b.proc.child.kill('SIGTERM');
  await b.proc.wait(10000);
});

test('PUT /api/config: a config `bifrost check` rejects is 400 with problems and leaves the file, .bak and the running config alone', async () => {
  const g = await gateway(baseConfig());
  await api(g.port, 'POST', '/api/governance/teams', { id: 't' }); // makes a .bak
  const file = readCfg(g);
  const bak = readFileSync(`${g.cfgPath}.bak`, 'utf8');
  for (const [what, body] of [
    ['unknown top-level field', { ...JSON.parse(file), nonsense: 1 }],
    ['provider without kind', { ...JSON.parse(file), providers: [{ name: 'x', apiKey: 'k' }] }],
    ['virtual key of an unknown team', { ...JSON.parse(file), governance: { virtual_keys: [{ id: 'v', value: 'sk-v', team_id: 'nope' }] } }],
    ['workers as a string', { ...JSON.parse(file), workers: 'many' }],
  ]) {
    const r = await api(g.port, 'PUT', '/api/config', body);
    assert.equal(r.status, 400, `${what}: ${show(r)}`);
    const e = r.json().error;
    assert.ok(Array.isArray(e?.problems) && e.problems.length > 0 && e.problems.every((p) => typeof p === 'string' && p.length > 0),
      `${what}: problems ${r.text}`);
    assert.equal(readCfg(g), file, `${what}: the file changed`);
    assert.equal(readFileSync(`${g.cfgPath}.bak`, 'utf8'), bak, `${what}: .bak changed`);
  }
  for (const body of ['', 'null', '[]', '"x"', '{"a":']) {
    const r = await api(g.port, 'PUT', '/api/config', body);
    assert.equal(r.status, 400, `PUT /api/config ${JSON.stringify(body)}: ${show(r)}`);
  }
  assert.equal(readCfg(g), file);
  assert.equal((await chatReq(g.port)).status, 200, 'the running config still routes');
  const dir = readdirSync(g.dir);
  assert.ok(!dir.some((f) => f.endsWith('.tmp')), `a temp file was left behind: ${dir}`);
});

test('unknown /api routes are 404, wrong methods 405', async () => {
  const g = await gateway(baseConfig());
  assert.equal((await api(g.port, 'GET', '/api/nope')).status, 404);
  assert.equal((await api(g.port, 'DELETE', '/api/providers')).status, 405);
  assert.equal((await api(g.port, 'POST', '/api/providers/mock', { name: 'mock' })).status, 405);
  assert.equal((await api(g.port, 'POST', '/api/config', {})).status, 405);
  assert.equal((await api(g.port, 'DELETE', '/api/pricing')).status, 405);
});

// =============================================================================================
// 6. virtual keys, teams, customers

function govConfig(extra = {}) {
  return baseConfig({ governance: { enforce: true, customers: [], teams: [], virtual_keys: [], ...extra } });
}

test('virtual key POSTed without a value: a generated sk-bf- key returned once, stored as value_sha256 only; it works and its budget is enforced after a PUT lowers it', async () => {
  const g = await gateway(govConfig());
  const { j } = await apiJson(g.port, 'POST', '/api/governance/virtual-keys', { id: 'gen', budget: { max_limit: 1, reset_duration: '1d' } }, 201);
  assert.match(j.value ?? '', /^sk-bf-[A-Za-z0-9]{32}$/, `generated value: ${JSON.stringify(j)}`);
  const val = j.value;
  assert.equal(j.virtual_key?.id, 'gen', JSON.stringify(j));
  assert.ok(!JSON.stringify(j.virtual_key).includes(val), 'the entry itself does not carry the value');

  const text = readCfg(g);
  assert.ok(!text.includes(val), 'the generated value is in the config file');
  const doc = await assertFileValid(g);
  const k = doc.governance.virtual_keys.find((x) => x.id === 'gen');
  assert.equal(k.value_sha256, sha256(val), `stored as value_sha256: ${JSON.stringify(k)}`);
  assert.equal(k.value, undefined);

  const got = (await apiJson(g.port, 'GET', '/api/governance/virtual-keys/gen', undefined, 200)).j;
  assert.ok(!JSON.stringify(got).includes(val), 'GET returns the value again');
  assert.equal(got.value, undefined, 'the value is returned once only');

  const ok = await chatReq(g.port, { headers: { authorization: `Bearer ${val}` } });
  assert.equal(ok.status, 200, `a request with the generated key: ${show(ok)}`);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UP_KEY}`, 'the upstream gets the provider key, not the virtual key');
  const u1 = await quiet(g.port, ADMIN);
  assert.equal(entity(u1, 'virtual_keys', 'gen').spend_micros, C);
  const wrong = await chatReq(g.port, { headers: { authorization: `Bearer ${val.slice(0, -1)}x` } });
  assert.equal(wrong.status, 401, `a near miss of the key: ${show(wrong)}`);

  // a second generated key is different
  const j2 = (await apiJson(g.port, 'POST', '/api/governance/virtual-keys', { id: 'gen2' }, 201)).j;
  assert.match(j2.value, /^sk-bf-[A-Za-z0-9]{32}$/);
  assert.notEqual(j2.value, val);

  // lower the budget below the spend (no value in the body: the stored secret stays)
  const put = await api(g.port, 'PUT', '/api/governance/virtual-keys/gen', { id: 'gen', budget: { max_limit: 0.00005, reset_duration: '1d' } });
  assert.equal(put.status, 200, show(put));
  assert.equal(JSON.parse(readCfg(g)).governance.virtual_keys.find((x) => x.id === 'gen').value_sha256, sha256(val), 'the PUT kept the secret');
  const u2 = await quiet(g.port, ADMIN);
  assert.equal(entity(u2, 'virtual_keys', 'gen').spend_micros, C, 'the write kept the spend');
  assert.equal(entity(u2, 'virtual_keys', 'gen').limit_micros, 50);
  const n = m.requests.length;
  const refused = await chatReq(g.port, { headers: { authorization: `Bearer ${val}` } });
  assert.equal(refused.status, 402, `after lowering the budget below the spend: ${show(refused)}`);
  assert.match(errorBody(refused).message, /virtual[ _]key gen\b/);
  assert.equal(m.requests.length, n, 'a refused request went upstream');
});

test('virtual key POSTed with a plain value: stored as value_sha256, never the value; PUT with a new value rotates it; PUT with what GET returned keeps it', async () => {
  const g = await gateway(govConfig({ teams: [{ id: 'blue' }] }));
  const val = 'sk-bf-chosen-value-0001';
  const { j } = await apiJson(g.port, 'POST', '/api/governance/virtual-keys', { id: 'chosen', value: val, team_id: 'blue' }, 201);
  assert.ok(!JSON.stringify(j).includes(val), `the answer echoes the value: ${JSON.stringify(j)}`);
  assert.equal(j.value, undefined, 'no generated value when one was given');
  assert.ok(!readCfg(g).includes(val), 'the value is in the file');
  assert.equal(JSON.parse(readCfg(g)).governance.virtual_keys[0].value_sha256, sha256(val));
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val } })).status, 200);

  // GET → PUT unchanged: still works
  const got = (await apiJson(g.port, 'GET', '/api/governance/virtual-keys/chosen', undefined, 200)).j.virtual_key;
  const same = await api(g.port, 'PUT', '/api/governance/virtual-keys/chosen', got);
  assert.equal(same.status, 200, `PUT of what GET returned: ${show(same)}`);
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val } })).status, 200, 'the key after a GET/PUT round trip');

  // rotate
  const val2 = 'sk-bf-rotated-value-0002';
  const rot = await api(g.port, 'PUT', '/api/governance/virtual-keys/chosen', { id: 'chosen', value: val2, team_id: 'blue' });
  assert.equal(rot.status, 200, show(rot));
  assert.ok(!readCfg(g).includes(val2));
  assert.equal(JSON.parse(readCfg(g)).governance.virtual_keys[0].value_sha256, sha256(val2));
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val2 } })).status, 200, 'the new value');
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val } })).status, 401, 'the old value after rotation');

  // a hand-written plain key, PUT with the marker: stays as it is
  const hand = await api(g.port, 'POST', '/api/governance/virtual-keys', { id: 'h2', value: 'env.ADMIN_API_NOPE' });
  assert.notEqual(hand.status, 500, show(hand));

  const dup = await api(g.port, 'POST', '/api/governance/virtual-keys', { id: 'other', value: val2 });
  assert.equal(dup.status, 400, `two keys with one value: ${show(dup)}`);
  const dupId = await api(g.port, 'POST', '/api/governance/virtual-keys', { id: 'chosen' });
  assert.equal(dupId.status, 409, show(dupId));
  const noId = await api(g.port, 'POST', '/api/governance/virtual-keys', { value: 'sk-x' });
  assert.equal(noId.status, 400, show(noId));
  const badTeam = await api(g.port, 'POST', '/api/governance/virtual-keys', { id: 'bt', team_id: 'ghost' });
  assert.equal(badTeam.status, 400, `a key of an unknown team: ${show(badTeam)}`);
  assert.ok(badTeam.json().error.problems.some((p) => /ghost/.test(p)), badTeam.text);
});

test('a hand-written virtual key (plain value in the file) PUT with the marker keeps working, now stored hashed', async () => {
  const g = await gateway(govConfig({ virtual_keys: [{ id: 'hand', value: 'sk-bf-hand-0009', budget: { max_limit: 1, reset_duration: '1d' } }] }));
  const got = (await apiJson(g.port, 'GET', '/api/governance/virtual-keys/hand', undefined, 200)).j.virtual_key;
  assert.match(got.value, MARKER);
  const put = await api(g.port, 'PUT', '/api/governance/virtual-keys/hand', { ...got, budget: { max_limit: 2, reset_duration: '1d' } });
  assert.equal(put.status, 200, show(put));
  assert.ok(!readCfg(g).includes('redacted'), readCfg(g));
  const stored = JSON.parse(readCfg(g)).governance.virtual_keys[0];
  assert.equal(stored.value, undefined, 'written through the virtual-keys API: stored hashed, not as the value');
  assert.equal(stored.value_sha256, createHash('sha256').update('sk-bf-hand-0009').digest('hex'), 'the same secret, hashed');
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-hand-0009' } })).status, 200);
  const u = await quiet(g.port, ADMIN);
  assert.equal(entity(u, 'virtual_keys', 'hand').limit_micros, 2000000);
});

test('teams and customers: CRUD, references checked (deleting a referenced team is 400), budgets take effect', async () => {
  const g = await gateway(govConfig());
  await apiJson(g.port, 'POST', '/api/governance/customers', { id: 'acme', budget: { max_limit: 1, reset_duration: '1d' } }, 201);
  await apiJson(g.port, 'POST', '/api/governance/teams', { id: 'eng', customer_id: 'acme' }, 201);
  const bad = await api(g.port, 'POST', '/api/governance/teams', { id: 'ops', customer_id: 'nobody' });
  assert.equal(bad.status, 400, `a team of an unknown customer: ${show(bad)}`);
  const { j } = await apiJson(g.port, 'POST', '/api/governance/virtual-keys', { id: 'dev', team_id: 'eng' }, 201);
  const val = j.value;

  assert.deepEqual((await apiJson(g.port, 'GET', '/api/governance/customers', undefined, 200)).j,
    { customers: [{ id: 'acme', budget: { max_limit: 1, reset_duration: '1d' } }] });
  assert.deepEqual((await apiJson(g.port, 'GET', '/api/governance/teams', undefined, 200)).j, { teams: [{ id: 'eng', customer_id: 'acme' }] });
  assert.deepEqual((await apiJson(g.port, 'GET', '/api/governance/teams/eng', undefined, 200)).j, { team: { id: 'eng', customer_id: 'acme' } });
  assert.equal((await api(g.port, 'GET', '/api/governance/teams/nope')).status, 404);

  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val } })).status, 200);
  let u = await quiet(g.port, ADMIN);
  assert.equal(entity(u, 'customers', 'acme').spend_micros, C, 'the customer is charged through the team');
  assert.equal(entity(u, 'teams', 'eng').spend_micros, C);

  const before = readCfg(g);
  const del = await api(g.port, 'DELETE', '/api/governance/teams/eng');
  assert.equal(del.status, 400, `deleting a team a key still uses: ${show(del)}`);
  assert.equal(readCfg(g), before);

  // customer budget lowered under the spend → 402 at the customer tier
  const put = await api(g.port, 'PUT', '/api/governance/customers/acme', { id: 'acme', budget: { max_limit: 0.00001, reset_duration: '1d' } });
  assert.equal(put.status, 200, show(put));
  const r = await chatReq(g.port, { headers: { 'x-bf-vk': val } });
  assert.equal(r.status, 402, show(r));
  assert.match(errorBody(r).message, /customer acme\b/);
  u = await quiet(g.port, ADMIN);
  assert.equal(entity(u, 'customers', 'acme').spend_micros, C, 'spend kept across the write');

  // detach and delete
  assert.equal((await api(g.port, 'PUT', '/api/governance/virtual-keys/dev', { id: 'dev' })).status, 200);
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val } })).status, 200, 'detached from the exhausted customer');
  assert.deepEqual((await apiJson(g.port, 'DELETE', '/api/governance/teams/eng', undefined, 200)).j, { deleted: 'eng' });
  assert.deepEqual((await apiJson(g.port, 'DELETE', '/api/governance/customers/acme', undefined, 200)).j, { deleted: 'acme' });
  assert.deepEqual((await apiJson(g.port, 'DELETE', '/api/governance/virtual-keys/dev', undefined, 200)).j, { deleted: 'dev' });
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': val } })).status, 401, 'a deleted key');
  const doc = await assertFileValid(g);
  assert.deepEqual([doc.governance.customers, doc.governance.teams, doc.governance.virtual_keys], [[], [], []]);
});

test('collections in a config that has no governance block: the first POST creates it', async () => {
  const g = await gateway(baseConfig());
  await apiJson(g.port, 'POST', '/api/governance/teams', { id: 'first' }, 201);
  await apiJson(g.port, 'POST', '/api/governance/customers', { id: 'cust' }, 201);
  const { j } = await apiJson(g.port, 'POST', '/api/governance/virtual-keys', { id: 'k', team_id: 'first' }, 201);
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.governance.teams, [{ id: 'first' }]);
  assert.deepEqual(doc.governance.customers, [{ id: 'cust' }]);
  assert.equal(doc.governance.virtual_keys[0].value_sha256, sha256(j.value));
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': j.value } })).status, 200);
  const u = await quiet(g.port, ADMIN);
  assert.equal(entity(u, 'teams', 'first').spend_micros, C);
});

test('an entry id with a space is addressable as %20 in the path (GET, PUT, DELETE)', async () => {
  const g = await gateway(govConfig());
  await apiJson(g.port, 'POST', '/api/governance/teams', { id: 'team one' }, 201);
  const r = await api(g.port, 'GET', '/api/governance/teams/team%20one');
  assert.equal(r.status, 200, `GET /api/governance/teams/team%20one: ${show(r)}`);
  const p = await api(g.port, 'PUT', '/api/governance/teams/team%20one', { id: 'team one', budget: { max_limit: 1, reset_duration: '1d' } });
  assert.equal(p.status, 200, `PUT /api/governance/teams/team%20one: ${show(p)}`);
  const d = await api(g.port, 'DELETE', '/api/governance/teams/team%20one');
  assert.equal(d.status, 200, `DELETE /api/governance/teams/team%20one: ${show(d)}`);
});

// =============================================================================================
// 7. pricing

test('/api/pricing: GET the table, PUT a new one; the next governed request is charged at the new price', async () => {
  const g = await gateway(govConfig({ virtual_keys: [{ id: 'p', value: 'sk-bf-price-0001' }] }));
  assert.deepEqual((await apiJson(g.port, 'GET', '/api/pricing', undefined, 200)).j, { pricing: { 'mock/gpt-4o': P_4O } });
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-price-0001' } })).status, 200);
  let u = await quiet(g.port, ADMIN);
  assert.equal(entity(u, 'virtual_keys', 'p').spend_micros, C);
  const NEW = { input: 100, output: 1000 };
  const put = await api(g.port, 'PUT', '/api/pricing', { pricing: { 'mock/gpt-4o': NEW } });
  assert.equal(put.status, 200, show(put));
  assert.deepEqual((await apiJson(g.port, 'GET', '/api/pricing', undefined, 200)).j, { pricing: { 'mock/gpt-4o': NEW } });
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-price-0001' } })).status, 200);
  u = await quiet(g.port, ADMIN);
  assert.equal(entity(u, 'virtual_keys', 'p').spend_micros, C + openaiCost(DEFAULT_USAGE, NEW), 'the second request at the new price');
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.pricing, { 'mock/gpt-4o': NEW });
  assert.equal(doc.providers[0].apiKey, UP_KEY);
  const bad = await api(g.port, 'PUT', '/api/pricing', { 'mock/gpt-4o': NEW });
  assert.equal(bad.status, 400, `PUT without the "pricing" member: ${show(bad)}`);
  const neg = await api(g.port, 'PUT', '/api/pricing', { pricing: { 'mock/gpt-4o': { input: -1, output: 1 } } });
  assert.equal(neg.status, 400, `a negative price: ${show(neg)}`);
});

test('/api/pricing PUT on a config without a pricing block adds one', async () => {
  const cfg = baseConfig();
  delete cfg.pricing;
  const g = await gateway(cfg);
  assert.deepEqual((await apiJson(g.port, 'GET', '/api/pricing', undefined, 200)).j, { pricing: {} });
  await apiJson(g.port, 'PUT', '/api/pricing', { pricing: { 'mock/x': { input: 1, output: 2 } } }, 200);
  const doc = await assertFileValid(g);
  assert.deepEqual(doc.pricing, { 'mock/x': { input: 1, output: 2 } });
});

// =============================================================================================
// 8. publishing: in-flight requests, restarts

test('a write while a request is in flight: the slow request still completes 200, later requests see the new config', async () => {
  const g = await gateway(baseConfig(), { workers: 2 });
  m.once({ delayMs: 4000 });
  let slowDone = false;
  const slow = chatReq(g.port, { timeout: 15000 }).finally(() => { slowDone = true; });
  await m.waitForRequests(1);
  const w1 = await api(g.port, 'POST', '/api/providers', { name: 'late', provider: 'openai', base_url: m.baseUrl, apiKey: 'sk-late' });
  assert.equal(w1.status, 201, show(w1));
  const w2 = await api(g.port, 'PUT', '/api/pricing', { pricing: { 'mock/gpt-4o': { input: 1, output: 1 } } });
  assert.equal(w2.status, 200, show(w2));
  assert.equal(slowDone, false, 'the writes waited for the in-flight request to finish');
  const after = await chatReq(g.port, { model: 'late/gpt-4o' });
  assert.equal(after.status, 200, `the new provider while the old request is in flight: ${show(after)}`);
  assert.equal(m.requests.at(-1).headers.authorization, 'Bearer sk-late');
  const r = await slow;
  assert.equal(r.status, 200, `the request in flight during the writes: ${show(r)}`);
  assert.equal(r.json().choices[0].message.content, 'Hello from up');
});

test('API-created entries survive a restart: the file is what the next start loads (the generated key works, spend carried)', async () => {
  const g = await gateway(govConfig());
  await apiJson(g.port, 'POST', '/api/providers', { name: 'persist', provider: 'openai', base_url: m.baseUrl, apiKey: 'sk-persist' }, 201);
  const { j } = await apiJson(g.port, 'POST', '/api/governance/virtual-keys', { id: 'kept', budget: { max_limit: 1, reset_duration: '1d' } }, 201);
  assert.equal((await chatReq(g.port, { model: 'persist/gpt-4o', headers: { 'x-bf-vk': j.value } })).status, 200);
  const g2 = await restart(g);
  const r = await chatReq(g2.port, { model: 'persist/gpt-4o', headers: { 'x-bf-vk': j.value } });
  assert.equal(r.status, 200, `the API-created key after a restart: ${show(r)}`);
  assert.equal(m.requests.at(-1).headers.authorization, 'Bearer sk-persist');
  const u = await quiet(g2.port, ADMIN);
  assert.equal(entity(u, 'virtual_keys', 'kept').requests, 2, 'the journal carried the first request over the restart');
  await g2.stop();
});

// =============================================================================================
// 9. the request log store

function logsConfig(extra = {}) {
  return baseConfig({
    providers: [
      { name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0, models: ['gpt-*'] },
      { name: 'alt', provider: 'openai', base_url: m.baseUrl, apiKey: 'sk-alt', max_retries: 0, models: ['gpt-*'] },
    ],
    pricing: { 'mock/gpt-4o': P_4O, 'alt/gpt-4o-mini': { input: 1, output: 2 } },
    governance: {
      enforce: false,
      customers: [{ id: 'acme' }],
      teams: [{ id: 'eng', customer_id: 'acme' }, { id: 'ops' }],
      virtual_keys: [{ id: 'k1', value: 'sk-bf-log-k1', team_id: 'eng' }, { id: 'k2', value: 'sk-bf-log-k2', team_id: 'ops' }],
    },
    ...extra,
  });
}

test('one log row per model request, with the fields the mock and /api/usage report; GET /api/logs/{id}; /health and /api are not logged', async () => {
  const g = await gateway(logsConfig());
  assert.ok(existsSync(join(g.dir, 'data', 'logs.db')), `logs.db in data_dir: ${readdirSync(join(g.dir, 'data'))}`);
  const empty = await getLogs(g.port, '');
  assert.deepEqual(empty, { logs: [], total: 0 });
  await request(g.port, { path: '/health' });
  await api(g.port, 'GET', '/api/providers');
  await request(g.port, { path: '/metrics' });

  const u0 = await usage(g.port, ADMIN);
  const spend0 = entity(u0, 'virtual_keys', 'k1').spend_micros;
  const r = await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-log-k1', 'user-agent': 'admin-api-test/1.0', 'x-request-id': 'req-abc-123' } });
  assert.equal(r.status, 200, show(r));
  const u1 = await quiet(g.port, ADMIN);
  const delta = entity(u1, 'virtual_keys', 'k1').spend_micros - spend0;
  assert.equal(delta, C);

  const j = await logsTotal(g.port, 1);
  await sleep(150);
  const all = await getLogs(g.port, 'limit=1000');
  assert.equal(all.total, 1, `exactly one row (no /health, /metrics or /api rows): ${JSON.stringify(all)}`);
  const row = all.logs[0];
  assert.deepEqual(j.logs[0], row);
  assert.equal(row.method, 'POST');
  assert.equal(row.path, '/v1/chat/completions');
  assert.equal(row.status, 200);
  assert.equal(row.provider, 'mock');
  assert.equal(row.model, 'gpt-4o');
  assert.equal(row.virtual_key_id, 'k1');
  assert.equal(row.team_id, 'eng');
  assert.equal(row.customer_id, 'acme');
  assert.equal(row.in_tokens, DEFAULT_USAGE.prompt_tokens);
  assert.equal(row.out_tokens, DEFAULT_USAGE.completion_tokens);
  assert.equal(micros(row.cost), delta, `cost ${row.cost} vs the /api/usage spend delta ${delta} µ$`);
  assert.equal(row.user_agent, 'admin-api-test/1.0');
  assert.equal(row.request_id, 'req-abc-123');
  assert.match(row.client ?? '', /^127\.0\.0\.1:\d+$/, `client: ${row.client}`);
  assert.equal(row.attempts, 1);
  assert.equal(row.failed, null);
  assert.equal(row.error, null);
  assert.equal(row.stream, false);
  assert.equal(row.client_left, false);
  assert.ok(typeof row.latency_ms === 'number' && row.latency_ms >= 0 && row.latency_ms < 5000, `latency_ms ${row.latency_ms}`);
  assert.ok(Number.isInteger(row.id) && row.id > 0);
  assert.ok(Math.abs(row.ts - Date.now()) < 10000, `ts ${row.ts} is a unix ms time near now`);

  const one = (await apiJson(g.port, 'GET', `/api/logs/${row.id}`, undefined, 200)).j;
  const { request_body: rqb, response_body: rsb, ...rest } = one.log;
  assert.deepEqual(rest, row, 'GET /api/logs/{id} is the list row (plus the bodies)');
  assert.equal(rqb ?? null, null, 'no request body kept without logs.content');
  assert.equal(rsb ?? null, null, 'no response body kept without logs.content');
  for (const bad of ['/api/logs/999999', '/api/logs/abc', '/api/logs/-1', `/api/logs/${row.id}x`, '/api/logs/99999999999999999999999']) {
    const x = await api(g.port, 'GET', bad);
    assert.equal(x.status, 404, `GET ${bad}: ${show(x)}`);
  }
});

test('log rows: a stream, a request without a key, a failover (attempts and failed), a 4xx (error), a 402', async () => {
  const bad = await mock('bad');
  const g = await gateway(logsConfig({
    providers: [
      { name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: UP_KEY, max_retries: 0, models: ['gpt-*'] },
      { name: 'bad', provider: 'openai', base_url: bad.baseUrl, apiKey: 'sk-bad', max_retries: 0, models: ['gpt-*'] },
    ],
    governance: {
      enforce: false,
      virtual_keys: [{ id: 'poor', value: 'sk-bf-poor', budget: { max_limit: 0.00001, reset_duration: '1d' } }],
    },
  }));
  bad.behave({ status: 500, body: { error: { message: 'boom' } } });

  const s = await chatReq(g.port, { body: { stream: true, stream_options: { include_usage: true } } });
  assert.equal(s.status, 200, show(s));
  await logsTotal(g.port, 1);
  const ung = await chatReq(g.port, { headers: { 'user-agent': 'plain' } });
  assert.equal(ung.status, 200);
  await logsTotal(g.port, 2);
  const fo = await chatReq(g.port, { model: 'bad/gpt-4o', body: { fallbacks: ['mock/gpt-4o'] } });
  assert.equal(fo.status, 200, `failover: ${show(fo)}`);
  assert.equal(bad.requests.length, 1);
  await logsTotal(g.port, 3);
  const four = await chatReq(g.port, { model: 'nope/gpt-4o' });
  assert.equal(four.status, 400, show(four));
  await logsTotal(g.port, 4);
  assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-poor' } })).status, 200);
  await logsTotal(g.port, 5);
  const poor = await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-poor' } });
  assert.equal(poor.status, 402, show(poor));
  const j = await logsTotal(g.port, 6);
  assert.equal(j.total, 6, JSON.stringify(j));
  const [r402, r200poor, r400, rFo, rUng, rStream] = j.logs; // newest first

  assert.equal(rStream.stream, true);
  assert.equal(rStream.status, 200);
  assert.equal(rStream.in_tokens, 11);
  assert.equal(rStream.out_tokens, 7);
  assert.ok(rStream.ttfb_ms === null || rStream.ttfb_ms <= rStream.latency_ms, JSON.stringify(rStream));

  assert.equal(rUng.virtual_key_id, null);
  assert.equal(rUng.team_id, null);
  assert.equal(micros(rUng.cost), C, 'a request without a key is still priced (the provider tier is charged)');
  assert.equal(rUng.user_agent, 'plain');

  assert.equal(rFo.status, 200);
  assert.equal(rFo.attempts, 2, JSON.stringify(rFo));
  assert.equal(rFo.provider, 'mock', 'the provider that answered');
  assert.match(rFo.failed ?? '', /^bad\/gpt-4o:500$/, `failed: ${rFo.failed}`);
  assert.equal(rFo.error, null, 'a success has no error');

  assert.equal(rUng.attempts, 1);
  assert.equal(r400.status, 400);
  assert.ok(typeof r400.error === 'string' && r400.error.length > 0, `a 4xx row carries its error: ${JSON.stringify(r400)}`);
  assert.equal(r400.in_tokens, 0);

  assert.equal(r200poor.virtual_key_id, 'poor');
  assert.equal(micros(r200poor.cost), C);
  assert.equal(r402.status, 402);
  assert.equal(r402.virtual_key_id, 'poor');
  assert.match(r402.error ?? '', /budget/i, JSON.stringify(r402));
});

test('a request refused with 400 (no provider serves the model) made with a virtual key is logged under that key, team and customer', async () => {
  const g = await gateway(logsConfig());
  const r = await chatReq(g.port, { model: 'ghost/gpt-4o', headers: { 'x-bf-vk': 'sk-bf-log-k1' } });
  assert.equal(r.status, 400, show(r));
  const j = await logsTotal(g.port, 1);
  const row = j.logs[0];
  assert.equal(row.status, 400);
  assert.ok(row.error, `the 400 row has its error: ${JSON.stringify(row)}`);
  assert.equal(row.virtual_key_id, 'k1', `virtual_key_id of a keyed request refused at routing: ${JSON.stringify(row)}`);
  assert.equal(row.team_id, 'eng');
  assert.equal(row.customer_id, 'acme');
  const f = await getLogs(g.port, 'virtual_key_id=k1&status=error');
  assert.equal(f.total, 1, 'the key\'s errors are found by its filter');
});

/** Make a known mix of rows; returns them (newest first) once all are stored. */
async function logMix(g) {
  const plan = [
    { key: 'sk-bf-log-k1', model: 'mock/gpt-4o', n: 3 },
    { key: 'sk-bf-log-k2', model: 'alt/gpt-4o-mini', n: 2 },
    { key: null, model: 'mock/gpt-4o-mini', n: 1 },
    { key: 'sk-bf-log-k1', model: 'ghost/gpt-4o', n: 1, status: 400 },
    { key: 'sk-bf-log-k2', model: 'alt/gpt-4o', n: 1, slow: 400 },
  ];
  let total = 0;
  for (const p of plan) {
    for (let i = 0; i < p.n; i++) {
      if (p.slow) m.once({ delayMs: p.slow });
      const r = await chatReq(g.port, { model: p.model, headers: p.key ? { 'x-bf-vk': p.key } : {} });
      assert.equal(r.status, p.status ?? 200, `${p.model}: ${show(r)}`);
      total++;
    }
  }
  const j = await logsTotal(g.port, total);
  assert.equal(j.total, total, `all ${total} rows stored: ${JSON.stringify(j).slice(0, 500)}`);
  return j.logs;
}

test('/api/logs filters: each narrows to exactly the matching rows', async () => {
  const g = await gateway(logsConfig());
  const rows = await logMix(g);
  assert.equal(rows.length, 8);
  const ids = (xs) => xs.map((r) => r.id);
  const check = async (query, pred, want) => {
    const j = await getLogs(g.port, `${query}&limit=1000`);
    const exp = rows.filter(pred);
    assert.deepEqual(ids(j.logs), ids(exp), `?${query}`);
    assert.equal(j.total, exp.length, `?${query} total`);
    if (want !== undefined) assert.equal(exp.length, want, `?${query}: expected count`);
  };
  await check('virtual_key_id=k1', (r) => r.virtual_key_id === 'k1');
  await check('virtual_key_id=k2', (r) => r.virtual_key_id === 'k2', 3);
  await check('team_id=eng', (r) => r.team_id === 'eng');
  await check('team_id=ops', (r) => r.team_id === 'ops', 3);
  await check('customer_id=acme', (r) => r.customer_id === 'acme');
  await check('provider=alt', (r) => r.provider === 'alt', 3);
  await check('provider=mock', (r) => r.provider === 'mock', 4);
  await check('model=gpt-4o-mini', (r) => r.model === 'gpt-4o-mini', 3);
  await check('provider=mock&model=gpt-4o', (r) => r.provider === 'mock' && r.model === 'gpt-4o', 3);
  await check('status=200', (r) => r.status === 200, 7);
  await check('status=400', (r) => r.status === 400, 1);
  await check('status=error', (r) => r.status >= 400, 1);
  await check('status=404', () => false, 0);
  await check('min_latency_ms=300', (r) => r.latency_ms >= 300, 1);
  await check('virtual_key_id=k2&min_latency_ms=300&status=200', (r) => r.virtual_key_id === 'k2' && r.latency_ms >= 300, 1);
  await check('virtual_key_id=k1&status=error', (r) => r.virtual_key_id === 'k1' && r.status >= 400);
  await check('virtual_key_id=k1&status=200', (r) => r.virtual_key_id === 'k1' && r.status === 200, 3);
  await check('team_id=eng&status=200', (r) => r.team_id === 'eng' && r.status === 200, 3);
  await check('customer_id=acme&provider=mock&status=200', (r) => r.customer_id === 'acme' && r.provider === 'mock' && r.status === 200, 3);
  await check('virtual_key_id=nobody', () => false, 0);
  await check('provider=MOCK', () => false, 0);
  // time: since inclusive, until exclusive
  const sorted = [...rows].sort((a, b) => a.ts - b.ts);
  const mid = sorted[4].ts;
  await check(`since=${mid}`, (r) => r.ts >= mid);
  await check(`until=${mid}`, (r) => r.ts < mid);
  await check(`since=${mid}&until=${mid + 1}`, (r) => r.ts === mid);
  await check(`since=${sorted.at(-1).ts + 1}`, () => false, 0);
  // '+' and %-escapes decode in values
  await check('provider=%61lt', (r) => r.provider === 'alt', 3);
  await check('model=gpt-4o%2Dmini', (r) => r.model === 'gpt-4o-mini', 3);
  // an unknown parameter is ignored; the first of a repeated one wins
  await check('colour=red', () => true, 8);
  await check('provider=alt&provider=mock', (r) => r.provider === 'alt', 3);
});

test('/api/logs paging: newest first, limit/offset/total, limit clamped to 1..1000', async () => {
  const g = await gateway(logsConfig());
  const rows = await logMix(g);
  const allIds = rows.map((r) => r.id);
  assert.deepEqual(allIds, [...allIds].sort((a, b) => b - a), 'newest (largest id) first');
  for (let i = 1; i < rows.length; i++) assert.ok(rows[i - 1].ts >= rows[i].ts, 'ts descends with id');
  const seen = [];
  for (let off = 0; off < 8; off += 3) {
    const j = await getLogs(g.port, `limit=3&offset=${off}`);
    assert.equal(j.total, 8, 'total counts every matching row, not the page');
    assert.deepEqual(j.logs.map((r) => r.id), allIds.slice(off, off + 3), `page at ${off}`);
    seen.push(...j.logs.map((r) => r.id));
  }
  assert.deepEqual(seen, allIds, 'the pages cover every row once');
  assert.equal((await getLogs(g.port, 'offset=8')).logs.length, 0);
  assert.equal((await getLogs(g.port, 'offset=8')).total, 8);
  assert.equal((await getLogs(g.port, 'limit=0')).logs.length, 1, 'limit 0 is clamped to 1');
  assert.equal((await getLogs(g.port, 'limit=-5')).logs.length, 1);
  assert.equal((await getLogs(g.port, '')).logs.length, 8, 'the default limit (50) covers 8');
  const j = await getLogs(g.port, 'limit=2&offset=1&provider=mock');
  assert.deepEqual(j.logs.map((r) => r.id), rows.filter((r) => r.provider === 'mock').slice(1, 3).map((r) => r.id));
  assert.equal(j.total, 4);
});

test('/api/logs default page size is 50 and the cap is 1000', async () => {
  const g = await gateway(logsConfig());
  const N = 60;
  for (let i = 0; i < N; i += 10) await Promise.all(Array.from({ length: 10 }, () => chatReq(g.port)));
  await logsTotal(g.port, N);
  const d = await getLogs(g.port, '');
  assert.equal(d.total, N);
  assert.equal(d.logs.length, 50);
  assert.equal((await getLogs(g.port, 'limit=100000')).logs.length, N);
});

test('/api/logs/stats: totals equal the rows, groups by provider/model/virtual_key, series sums to the totals, p50/p99 plausible', async () => {
  const g = await gateway(logsConfig());
  const rows = await logMix(g);
  const sum = (xs, f) => xs.reduce((a, r) => a + f(r), 0);
  const r = await api(g.port, 'GET', '/api/logs/stats');
  assert.equal(r.status, 200, show(r));
  const s = r.json();
  const t = s.totals;
  assert.equal(t.count, rows.length);
  assert.equal(t.errors, rows.filter((x) => x.status >= 400).length);
  assert.equal(t.in_tokens, sum(rows, (x) => x.in_tokens + x.cache_read_tokens + x.cache_write_tokens));
  assert.equal(t.out_tokens, sum(rows, (x) => x.out_tokens));
  assert.equal(micros(t.cost), sum(rows, (x) => micros(x.cost ?? 0)), `cost ${t.cost}`);
  const lats = rows.map((x) => x.latency_ms).sort((a, b) => a - b);
  assert.ok(t.p50_ms >= lats[0] - 0.001 && t.p50_ms <= lats.at(-1) + 0.001, `p50 ${t.p50_ms} within [${lats[0]}, ${lats.at(-1)}]`);
  assert.ok(t.p99_ms >= t.p50_ms, `p99 ${t.p99_ms} >= p50 ${t.p50_ms}`);
  const rank = (q) => lats[Math.ceil(q * lats.length) - 1]; // nearest rank
  assert.ok(Math.abs(t.p50_ms - rank(0.5)) < 0.01, `p50 ${t.p50_ms} is the nearest-rank median ${rank(0.5)} of ${lats}`);
  assert.ok(Math.abs(t.p99_ms - rank(0.99)) < 0.01, `p99 ${t.p99_ms} is the nearest-rank 99th percentile ${rank(0.99)} of ${lats}`);

  assert.ok(Array.isArray(s.series) && s.series.length > 0, JSON.stringify(s).slice(0, 300));
  assert.equal(sum(s.series, (b) => b.count), t.count, 'the series counts add up to the total');
  assert.equal(sum(s.series, (b) => b.errors), t.errors);
  for (let i = 1; i < s.series.length; i++) assert.ok(s.series[i].t > s.series[i - 1].t, 'series in time order');

  const groups = (gs) => Object.fromEntries(gs.map((x) => [x.key, x.count]));
  assert.deepEqual(groups(s.groups), { mock: 4, alt: 3, '(none)': 1 }, `groups by provider: ${JSON.stringify(s.groups)}`);
  const byModel = (await apiJson(g.port, 'GET', '/api/logs/stats?group=model', undefined, 200)).j;
  assert.deepEqual(groups(byModel.groups), { 'mock/gpt-4o': 3, 'alt/gpt-4o-mini': 2, 'mock/gpt-4o-mini': 1, 'alt/gpt-4o': 1, '(none)': 1 },
    JSON.stringify(byModel.groups));
  const byKey = (await apiJson(g.port, 'GET', '/api/logs/stats?group=virtual_key', undefined, 200)).j;
  const keyCount = {};
  for (const x of rows) keyCount[x.virtual_key_id ?? '(none)'] = (keyCount[x.virtual_key_id ?? '(none)'] ?? 0) + 1;
  assert.deepEqual(groups(byKey.groups), keyCount, JSON.stringify(byKey.groups));
  for (const gr of byKey.groups) {
    const mine = rows.filter((x) => (x.virtual_key_id ?? '(none)') === gr.key);
    assert.equal(micros(gr.cost), sum(mine, (x) => micros(x.cost ?? 0)), `cost of group ${gr.key}`);
    assert.equal(gr.out_tokens, sum(mine, (x) => x.out_tokens), `out_tokens of group ${gr.key}`);
  }

  // filters and a window apply to the stats too
  const k2 = (await apiJson(g.port, 'GET', '/api/logs/stats?virtual_key_id=k2', undefined, 200)).j;
  assert.equal(k2.totals.count, 3);
  assert.equal(k2.totals.errors, 0);
  const errs = (await apiJson(g.port, 'GET', '/api/logs/stats?status=error', undefined, 200)).j;
  assert.equal(errs.totals.count, 1);
  assert.equal(errs.totals.errors, 1);
  const now = Date.now();
  const w = (await apiJson(g.port, 'GET', `/api/logs/stats?since=${now - 3600000}&until=${now + 1000}&bucket_s=60`, undefined, 200)).j;
  assert.equal(w.totals.count, rows.length);
  // the range is the one asked for; the buckets start at multiples of bucket_s (the first one at or before since)
  assert.equal(w.bucket_s, 60);
  assert.equal(w.until, now + 1000);
  assert.equal(w.since, now - 3600000, 'the answer covers the range asked for');
  const t0 = w.series[0].t;
  assert.ok(t0 % 60000 === 0 && t0 <= w.since && t0 > w.since - 60000, `the first bucket ${t0} is since aligned down to 60 s`);
  assert.equal(w.series.length, Math.ceil((w.until - t0) / 60000), `an hour and a second from the aligned start in 60 s buckets: ${w.series.length}`);
  assert.ok(w.series.length === 61 || w.series.length === 62);
  assert.deepEqual(w.series.map((b) => b.t), w.series.map((_, i) => t0 + i * 60000), 'each bucket starts at t0 + i * bucket_s');
  assert.equal(sum(w.series, (b) => b.count), rows.length);
  const none = (await apiJson(g.port, 'GET', `/api/logs/stats?since=${now - 7200000}&until=${now - 3600000}`, undefined, 200)).j;
  assert.equal(none.totals.count, 0);
  assert.deepEqual(none.groups, []);
  assert.equal(none.totals.p50_ms, 0);

  // a 99th percentile has at most 1% of the samples above it: of 8 rows, none
  const above = lats.filter((x) => x > t.p99_ms + 0.0005).length;
  assert.ok(above <= Math.floor(lats.length / 100),
    `p99 ${t.p99_ms} ms has ${above} of ${lats.length} rows above it (latencies ${lats}); the 400 ms request is the 99th percentile of 8`);
});

test('hostile /api/logs query strings: no 500, never more rows than the filter allows', async () => {
  const g = await gateway(logsConfig());
  const rows = await logMix(g);
  const N = rows.length;
  const zero = [
    "provider='+OR+1=1+--",
    "provider=%27%20OR%201%3D1%20--",
    "provider=mock'%20OR%20'1'%3D'1",
    'provider=mock%22%20OR%201%3D1%20--',
    'virtual_key_id=k1%27)%20OR%20(1%3D1',
    'model=%25',
    'model=_',
    'provider=%zz',
    'provider=%',
    'provider=%2',
    `provider=${'x'.repeat(5000)}`,
    `provider=${'%41'.repeat(2000)}`,
    'since=99999999999999999999',
    'until=-99999999999999999999',
    'since=9223372036854775807',
    'min_latency_ms=9223372036854775807',
    'min_latency_ms=99999999999999999999',
    'min_latency_ms=18446744073709552',
    'status=-1',
    'status=99999999999999999999',
  ];
  const some = ['limit=%zz', 'limit=1e3', 'offset=-5', 'since=abc', 'status=abc', 'until=', 'min_latency_ms=-99999999999999999999',
    '&&&', '=', '==&=', 'provider', 'limit=99999999999999999999', 'since=-99999999999999999999', '%zz=1', 'a=%'];
  // a filter value holding a NUL byte (%00) is refused, never cut at the NUL
  const nul = ['team_id=%00', 'customer_id=acme%00extra', 'status=error%00', 'provider=mock%00', 'virtual_key_id=k1%00',
    'model=%00gpt-4o', 'min_latency_ms=0%00', 'since=0%00', 'limit=5%00', 'group=model%00', 'bucket_s=60%00'];
  const bad = []; // every problem, so one run names them all
  for (const q of zero) {
    const r = await api(g.port, 'GET', `/api/logs?${q}`);
    if (r.status !== 200) { bad.push(`/api/logs?${q.slice(0, 80)} → ${show(r)}`); continue; }
    const j = r.json();
    if (j.logs.length !== 0 || j.total !== 0) bad.push(`/api/logs?${q.slice(0, 80)} must match no row, got ${j.logs.length} (total ${j.total})`);
    const st = await api(g.port, 'GET', `/api/logs/stats?${q}`);
    if (st.status >= 500) bad.push(`/api/logs/stats?${q.slice(0, 80)} → ${show(st)}`);
    else if (st.json().totals.count !== 0) bad.push(`/api/logs/stats?${q.slice(0, 80)} must count no row, got ${st.json().totals.count}`);
  }
  for (const q of nul) {
    for (const path of ['/api/logs', '/api/logs/stats']) {
      const r = await api(g.port, 'GET', `${path}?${q}`);
      if (r.status !== 400) bad.push(`${path}?${q} → ${show(r)} (want 400)`);
      else if (!/NUL|%00/.test(r.json().error?.message ?? '')) bad.push(`${path}?${q}: the 400 does not say why: ${r.text}`);
    }
  }
  for (const q of ['offset=9223372036854775807', 'offset=99999999999999999999', 'offset=8']) { // an empty page of all rows
    const r = await api(g.port, 'GET', `/api/logs?${q}`);
    if (r.status !== 200) bad.push(`/api/logs?${q} → ${show(r)}`);
    else if (r.json().logs.length !== 0 || r.json().total !== N) bad.push(`/api/logs?${q}: ${r.json().logs.length} rows, total ${r.json().total}`);
  }
  for (const q of some) {
    const r = await api(g.port, 'GET', `/api/logs?${q}`);
    if (r.status !== 200 && r.status !== 400) bad.push(`/api/logs?${q} → ${show(r)}`);
    else if (r.status === 200 && (r.json().total > N || r.json().logs.length > N)) bad.push(`/api/logs?${q}: ${r.json().total} rows of ${N}`);
    const st = await api(g.port, 'GET', `/api/logs/stats?${q}`);
    if (st.status >= 500) bad.push(`/api/logs/stats?${q} → ${show(st)}`);
  }
  for (const q of ['bucket_s=0', 'bucket_s=-5', 'bucket_s=99999999999999999999', 'bucket_s=9223372036854775807', 'bucket_s=%zz',
    'group=%27%3B%20DROP%20TABLE%20logs%3B%20--', 'group=model&group=provider', 'since=-9223372036854775808',
    'since=-9223372036854775807&until=9223372036854775807', 'since=0&until=9223372036854775807&bucket_s=1',
    'since=9223372036854775807&until=-9223372036854775808', `since=${Date.now() - 86400000 * 365}&bucket_s=1`]) {
    const st = await api(g.port, 'GET', `/api/logs/stats?${q}`);
    if (st.status >= 500) { bad.push(`/api/logs/stats?${q} → ${show(st)}`); continue; }
    if (st.status === 200) {
      const j = st.json();
      if (j.totals.count > N) bad.push(`/api/logs/stats?${q}: count ${j.totals.count} of ${N}`);
      if (!Array.isArray(j.series) || j.series.length > 1441) bad.push(`/api/logs/stats?${q}: ${j.series?.length} buckets`);
    }
  }
  assert.deepEqual(bad, [], `hostile query strings:\n${bad.join('\n')}`);
  // the table is intact and the gateway alive
  assert.equal((await getLogs(g.port, 'limit=1000')).total, N);
  assert.equal((await chatReq(g.port)).status, 200);
});

test('log rows survive a restart (SIGTERM drain, then start again on the same data_dir)', async () => {
  const g = await gateway(logsConfig());
  m.once({ delayMs: 300 });
  const inflight = chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-log-k2' } });
  for (let i = 0; i < 4; i++) assert.equal((await chatReq(g.port, { headers: { 'x-bf-vk': 'sk-bf-log-k1' } })).status, 200);
  const before = await logsTotal(g.port, 4);
  const stopping = restart(g);
  const last = await inflight; // in flight while SIGTERM arrives: drained, then logged
  assert.equal(last.status, 200, show(last));
  const g2 = await stopping;
  const j = await getLogs(g2.port, 'limit=1000');
  assert.equal(j.total, 5, `the 4 rows and the one drained at SIGTERM: ${JSON.stringify(j).slice(0, 400)}`);
  for (const r of before.logs) assert.deepEqual(j.logs.find((x) => x.id === r.id), r, `row ${r.id} unchanged after the restart`);
  assert.equal((await chatReq(g2.port)).status, 200);
  const j2 = await logsTotal(g2.port, 6);
  assert.equal(j2.total, 6);
  assert.ok(j2.logs[0].id > Math.max(...j.logs.map((r) => r.id)), 'new rows after the old ones');
  await g2.stop();
});

test('logs.content: /api/logs/{id} shows the request and answer bytes, cut at content_max_bytes; the list does not carry them', async () => {
  const g = await gateway(logsConfig({ logs: { content: true, content_max_bytes: 400 } }));
  const small = JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'short one' }] });
  const r1 = await request(g.port, { method: 'POST', path: '/v1/chat/completions', body: small });
  assert.equal(r1.status, 200, show(r1));
  const bigBody = JSON.stringify({ model: 'mock/gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(1000) }] });
  const r2 = await request(g.port, { method: 'POST', path: '/v1/chat/completions', body: bigBody });
  assert.equal(r2.status, 200, show(r2));
  const j = await logsTotal(g.port, 2);
  assert.equal(j.total, 2);
  for (const row of j.logs) assert.ok(!('request_body' in row) || row.request_body === undefined, `the list carries bodies: ${JSON.stringify(row).slice(0, 300)}`);
  const [rowBig, rowSmall] = j.logs;
  const one = (await apiJson(g.port, 'GET', `/api/logs/${rowSmall.id}`, undefined, 200)).j.log;
  assert.equal(one.request_body, small, 'the request as the client sent it');
  assert.equal(one.response_body, r1.text, 'the answer as the client got it');
  const two = (await apiJson(g.port, 'GET', `/api/logs/${rowBig.id}`, undefined, 200)).j.log;
  assert.equal(two.request_body, bigBody.slice(0, 400), 'cut at content_max_bytes');
  assert.ok(r2.text.startsWith(two.response_body) && two.response_body.length === Math.min(400, r2.text.length), `answer cut: ${two.response_body}`);
});

test('logs: {"enabled": false} writes no logs.db and /api/logs shows nothing', async () => {
  const g = await gateway(logsConfig({ logs: { enabled: false } }));
  for (let i = 0; i < 3; i++) assert.equal((await chatReq(g.port)).status, 200);
  await sleep(200);
  const r = await api(g.port, 'GET', '/api/logs');
  assert.ok(r.status === 200 || r.status === 503, show(r));
  if (r.status === 200) assert.equal(r.json().total, 0, r.text);
  const data = join(g.dir, 'data');
  assert.ok(!readdirSync(data).some((f) => f.startsWith('logs.db')), `files in data_dir: ${readdirSync(data)}`);
  assert.ok(!readdirSync(g.dir).some((f) => f.startsWith('logs.db')), `files next to the config: ${readdirSync(g.dir)}`);
});

test('logs disabled through the API (PUT /api/config): later requests are not logged', async () => {
  const g = await gateway(logsConfig());
  assert.equal((await chatReq(g.port)).status, 200);
  await logsTotal(g.port, 1);
  const cur = (await apiJson(g.port, 'GET', '/api/config', undefined, 200)).j;
  cur.logs = { enabled: false };
  assert.equal((await api(g.port, 'PUT', '/api/config', cur)).status, 200);
  for (let i = 0; i < 3; i++) assert.equal((await chatReq(g.port)).status, 200);
  await sleep(200);
  assert.equal((await getLogs(g.port, '')).total, 1, 'rows written after logs.enabled became false');
});

// =============================================================================================
// Browsers: a write from another origin, and DNS rebinding against the loopback-only mode

test('a write whose Origin is another host is refused (403) even with the admin token; same-origin writes pass', async () => {
  const g = await gateway(baseConfig());
  const bad = await api(g.port, 'POST', '/api/governance/customers', { id: 'c-evil' }, { headers: { origin: 'http://evil.example' } });
  assert.equal(bad.status, 403, show(bad));
  assert.ok(!readCfg(g).includes('c-evil'), 'nothing written');
  const ok = await api(g.port, 'POST', '/api/governance/customers', { id: 'c-same' },
    { headers: { origin: `http://127.0.0.1:${g.port}` } });
  assert.equal(ok.status, 201, show(ok));
  const read = await api(g.port, 'GET', '/api/governance/customers', undefined, { headers: { origin: 'http://evil.example' } });
  assert.equal(read.status, 200, 'reads are not refused for their Origin (the browser keeps the answer from the page)');
  await g.stop();
});

test('without admin credentials, a loopback request naming another host (DNS rebinding) gets 401', async () => {
  const g = await gateway({ ...baseConfig(), admin: undefined });
  const r = await api(g.port, 'GET', '/api/providers', undefined, { token: null, headers: { host: `evil.example:${g.port}` } });
  assert.equal(r.status, 401, show(r));
  const l = await api(g.port, 'GET', '/api/providers', undefined, { token: null, headers: { host: `localhost:${g.port}` } });
  assert.equal(l.status, 200, show(l));
  await g.stop();
});
