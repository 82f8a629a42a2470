// config.json strictness and Bifrost compatibility: unknown fields are errors naming the JSON
// path and the closest known name (in `check`, at start, at SIGHUP reload); the original
// Bifrost's unimplemented fields are accepted with one warning each; float weights and a key's
// `models` list (map form) work; malformed JSON is reported with line and column; header values
// with CR/LF and base_urls carrying credentials are refused (without echoing the secret).

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { runBifrost, startGateway, chat, freePort, tempDir, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const MSG = [{ role: 'user', content: 'cfg' }];
const mocks = [];
const gws = [];
async function mock(name) { const m = await startMock({ name }); mocks.push(m); return m; }
async function gateway(opts) { const g = await startGateway(opts); gws.push(g); return g; }
after(async () => {
  for (const g of gws) await g.stop('SIGKILL');
  for (const m of mocks) await m.close();
});

// ---------------------------------------------------------------------------------------------
// helpers

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Write a config (object or exact text) to a temp file; returns its path. */
function writeCfg(cfg, name = 'config.json') {
  const f = join(tempDir(), name);
  writeFileSync(f, typeof cfg === 'string' ? cfg : JSON.stringify(cfg, null, 2));
  return f;
}

async function check(cfg, env = {}) {
  const f = writeCfg(cfg);
  const r = await runBifrost(['check', '-c', f], { env });
  return { ...r, file: f };
}

/** Start the binary on a config and expect it to exit by itself (3 s at most). */
async function startExpectingExit(cfg, env = {}) {
  const f = writeCfg(cfg);
  const port = await freePort();
  const r = await runBifrost(['-c', f, '-l', `127.0.0.1:${port}`, '-w', '1', '-d', join(tempDir(), 'data')], { env, timeoutMs: 3000 });
  return { ...r, file: f };
}

/**
 * A regex for a JSON path as the loader should print it. `{name}` marks a map-form key and
 * may be written `.name`, `["name"]`, `['name']` or `[name]`; everything else is literal.
 * The path must not be the tail of a longer one (`x.wieght` does not match `wieght`).
 */
function pathRe(path) {
  let src = '';
  for (const part of path.split(/(\{[^}]+\})/)) {
    if (!part) continue;
    const m = /^\{(.+)\}$/.exec(part);
    src += m ? `(?:\\.${esc(m[1])}|\\[["']?${esc(m[1])}["']?\\])` : esc(part);
  }
  return new RegExp(`(?:^|[^\\w.\\]$])${src}(?![\\w])`);
}

const quoted = (name) => new RegExp(`["'\`“]${esc(name)}["'\`”]`);

/** The stderr line reporting `path` as an unknown field (with `suggest` quoted on it, if given). */
function assertUnknown(stderr, path, suggest) {
  const pr = pathRe(path);
  const lines = stderr.split('\n').filter((l) => pr.test(l) && /unknown field/i.test(l));
  assert.ok(lines.length > 0, `no line says "${path}: unknown field":\n${stderr}`);
  if (suggest) {
    assert.ok(lines.some((l) => quoted(suggest).test(l)), `"${path}" reported without suggesting "${suggest}":\n${lines.join('\n')}`);
  } else {
    const field = path.replace(/^.*[.\]}]/, '');
    for (const l of lines) {
      assert.doesNotMatch(l, /did you mean|perhaps|maybe/i, `a suggestion for "${path}", which has no close match:\n${l}`);
      const others = [...l.matchAll(/["'`“]([^"'`”]+)["'`”]/g)].map((m) => m[1]).filter((q) => q !== field && !q.includes(field));
      assert.deepEqual(others, [], `a known name is quoted for "${path}", which has no close match:\n${l}`);
    }
  }
}

const MOCK_URL = 'http://127.0.0.1:9/v1'; // never contacted by `check`

/** Array form, with `extra` merged into providers[0] (and `top` into the top level). */
const arrayCfg = (extra = {}, top = {}) => ({
  providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: MOCK_URL, ...extra }],
  ...top,
});
/** Map form: providers.openai with `prov` merged in and `key` merged into keys[0]. */
const mapCfg = (prov = {}, key = {}, top = {}) => ({
  providers: {
    openai: {
      keys: [{ value: 'sk-m', models: ['*'], weight: 1, ...key }],
      network_config: { base_url: MOCK_URL },
      ...prov,
    },
  },
  ...top,
});

// ---------------------------------------------------------------------------------------------
// 1. unknown fields in `bifrost check`

const UNKNOWN = [
  // array form
  { path: 'providers[0].apikey', suggest: 'apiKey', cfg: arrayCfg({ apikey: 'sk-x' }) },
  { path: 'providers[0].baseUrl', suggest: 'base_url', cfg: arrayCfg({ baseUrl: MOCK_URL }) },
  { path: 'providers[0].wieght', suggest: 'weight', cfg: arrayCfg({ wieght: 2 }) },
  { path: 'providers[0].modles', suggest: 'models', cfg: arrayCfg({ modles: ['gpt-*'] }) },
  { path: 'providers[0].keys[0].wieght', suggest: 'weight', cfg: arrayCfg({ keys: [{ value: 'k1', wieght: 2 }] }) },
  { path: 'providers[0].zzqx_frob', suggest: null, cfg: arrayCfg({ zzqx_frob: 1 }) },
  // top level and governance
  { path: 'govenance', suggest: 'governance', cfg: arrayCfg({}, { govenance: { enforce: false } }) },
  { path: 'governance.enforced', suggest: 'enforce', cfg: arrayCfg({}, { governance: { enforced: true } }) },
  { path: 'zzqx_frob', suggest: null, cfg: arrayCfg({}, { zzqx_frob: true }) },
  // map form (the original Bifrost's)
  { path: 'providers{openai}.apikey', suggest: 'apiKey', cfg: mapCfg({ apikey: 'sk-x' }) },
  { path: 'providers{openai}.baseUrl', suggest: 'base_url', cfg: mapCfg({ baseUrl: MOCK_URL }) },
  { path: 'providers{openai}.network_config.baseUrl', suggest: 'base_url', cfg: mapCfg({ network_config: { baseUrl: MOCK_URL } }) },
  { path: 'providers{openai}.keys[0].wieght', suggest: 'weight', cfg: mapCfg({}, { wieght: 1 }) },
  { path: 'providers{openai}.keys[0].modles', suggest: 'models', cfg: mapCfg({}, { modles: ['gpt-4o'] }) },
  { path: 'providers{openai}.zzqx_frob', suggest: null, cfg: mapCfg({ zzqx_frob: 1 }) },
  // elsewhere
  { path: 'limits.max_body_byte', suggest: 'max_body_bytes', cfg: arrayCfg({}, { limits: { max_body_byte: 1048576 } }) },
  { path: 'providers[0].tls.ca_fle', suggest: 'ca_file', cfg: arrayCfg({ tls: { ca_fle: '/nonexistent.pem' } }) },
  {
    path: 'governance.virtual_keys[0].allowed_model', suggest: 'allowed_models',
    cfg: arrayCfg({}, { governance: { enforce: false, virtual_keys: [{ id: 'k', value: 'sk-bf-k', allowed_model: ['*'] }] } }),
  },
];

for (const tc of UNKNOWN) {
  test(`check: unknown field ${tc.path} → exit 1, ${tc.suggest ? `suggests "${tc.suggest}"` : 'no suggestion'}`, async () => {
    const r = await check(tc.cfg);
    assert.equal(r.code, 1, `check accepted a config with ${tc.path}:\n${r.stdout}\n${r.stderr}`);
    assertUnknown(r.stderr, tc.path, tc.suggest);
  });
}

test('check: several unknown fields are all listed, each on its own line', async () => {
  const r = await check({
    govenance: {},
    providers: [
      { name: 'a', provider: 'openai', apikey: 'x', base_url: MOCK_URL },
      { name: 'b', provider: 'openai', apiKey: 'y', base_url: MOCK_URL, wieght: 2 },
    ],
  });
  assert.equal(r.code, 1, r.stderr);
  assertUnknown(r.stderr, 'govenance', 'governance');
  assertUnknown(r.stderr, 'providers[0].apikey', 'apiKey');
  assertUnknown(r.stderr, 'providers[1].wieght', 'weight');
  const lines = r.stderr.split('\n').filter((l) => /unknown field/i.test(l));
  assert.equal(lines.length, 3, `expected 3 "unknown field" lines:\n${r.stderr}`);
});

test('check: free-form maps (model_map, headers, deployments, pricing) are not field-checked', async () => {
  const r = await check({
    providers: [
      { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: MOCK_URL, model_map: { 'claude-*': 'gpt-4o', 'whatever-name': 'x' }, headers: { 'x-anything': '1', 'X-Custom-Thing': 'y' } },
      { name: 'az', provider: 'azure', apiKey: 'sk-az', base_url: 'https://example.openai.azure.com', deployments: { 'gpt-4o': 'my-deploy', 'gpt-4o-mini': 'mini' } },
    ],
    pricing: { 'openai/my-custom-model': { input: 1, output: 2 } },
  });
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /unknown field/i);
});

// ---------------------------------------------------------------------------------------------
// 2. unknown fields at start and at reload

for (const tc of UNKNOWN.filter((t) => ['providers[0].wieght', 'governance.enforced', 'providers{openai}.keys[0].modles', 'zzqx_frob'].includes(t.path))) {
  test(`start: unknown field ${tc.path} → non-zero exit with the path named`, async () => {
    const r = await startExpectingExit(tc.cfg);
    assert.equal(r.signal, null, `the gateway started with ${tc.path} in its config (killed after 3 s):\n${r.stderr}`);
    assert.notEqual(r.code, 0);
    assertUnknown(r.stderr, tc.path, tc.suggest);
  });
}

test('reload: an unknown field is rejected, logged with path and suggestion, old config keeps serving', async () => {
  const a = await mock('a');
  const b = await mock('b');
  const cfg = { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] };
  const g = await gateway({ config: cfg });
  const errBefore = g.stderr.length;
  await g.reload({
    providers: [
      { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl, wieght: 3 },
      { name: 'b', provider: 'openai', apiKey: 'sk-b', base_url: b.baseUrl },
    ],
  });
  const pr = pathRe('providers[0].wieght');
  await g.waitForLine((l) => pr.test(l), 3000, 'stderr');
  await sleep(200);
  assert.equal(g.exited, null, `the gateway exited on a bad reload:\n${g.output()}`);
  assertUnknown(g.stderr.slice(errBefore).join('\n'), 'providers[0].wieght', 'weight');
  const ra = await chat(g.port, { model: 'a/gpt-4o', messages: MSG });
  assert.equal(ra.status, 200, `old config stopped serving: ${show(ra)}`);
  // under the old config "b/gpt-4o" is a bare model name that provider a (no models list) serves
  const rb = await chat(g.port, { model: 'b/gpt-4o', messages: MSG });
  assert.ok(!String(rb.headers['x-bifrost-provider'] || '').startsWith('b/'), `the rejected config was applied: ${show(rb)}`);
  assert.equal(b.requests.length, 0, 'provider b of the rejected config was called');
});

// ---------------------------------------------------------------------------------------------
// 3. the original Bifrost's unimplemented fields: accepted, one warning line each

const BIFROST_ONLY = {
  $schema: 'https://www.getbifrost.ai/schema',
  client: { drop_excess_requests: false, initial_pool_size: 300, enable_logging: true, prometheus_labels: ['team'] },
  config_store: { enabled: false, type: 'sqlite', config: { path: './config.db' } },
  logs_store: { enabled: true, type: 'sqlite', config: { path: './logs.db' } },
};

function assertOneWarningEach(stderr, fields) {
  for (const f of fields) {
    const re = new RegExp(`(?:^|[^\\w$.])${esc(f)}(?![\\w])`);
    const lines = stderr.split('\n').filter((l) => re.test(l));
    assert.equal(lines.length, 1, `expected exactly one stderr line naming ${f}, got ${lines.length}:\n${stderr}`);
    assert.match(lines[0], /warn|ignor|not (yet )?(implemented|supported)/i, `the line naming ${f} is not a warning: ${lines[0]}`);
  }
  assert.doesNotMatch(stderr, /unknown field/i);
}

test('check: $schema, client, config_store, logs_store are accepted with exactly one warning line each', async () => {
  const r = await check(mapCfg({}, {}, BIFROST_ONLY));
  assert.equal(r.code, 0, `check refused the original Bifrost's fields:\n${r.stdout}\n${r.stderr}`);
  assertOneWarningEach(r.stderr, Object.keys(BIFROST_ONLY));
});

test('start: $schema, client, config_store, logs_store → healthy, exactly one warning line each', async () => {
  const m = await mock('bf');
  const g = await gateway({ config: { ...BIFROST_ONLY, providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: m.baseUrl }] } });
  await sleep(100);
  assertOneWarningEach(g.stderr.join('\n'), Object.keys(BIFROST_ONLY));
  const r = await chat(g.port, { model: 'a/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, show(r));
});

test('check: a Bifrost-docs style map-form config (key name, network_config retries, concurrency_and_buffer_size) is accepted', async () => {
  const r = await check(`{
  "$schema": "https://www.getbifrost.ai/schema",
  "client": { "drop_excess_requests": false, "enable_logging": true },
  "providers": {
    "openai": {
      "keys": [ { "name": "openai-primary", "value": "sk-o", "models": ["gpt-4o", "gpt-4o-mini"], "weight": 1.0 } ],
      "network_config": { "base_url": "${MOCK_URL}", "default_request_timeout_in_seconds": 30, "max_retries": 1,
                          "retry_backoff_initial_ms": 100, "retry_backoff_max_ms": 2000 },
      "concurrency_and_buffer_size": { "concurrency": 3, "buffer_size": 10 }
    }
  },
  "config_store": { "enabled": false }
}`);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /unknown field/i);
});

// ---------------------------------------------------------------------------------------------
// 4. float weights, a key's models list

test('check: "weight": 1.0 (float) is accepted on a provider, an array-form key and a map-form key', async () => {
  const r1 = await check(`{"providers": [
    {"name": "a", "provider": "openai", "apiKey": "sk-a", "base_url": "${MOCK_URL}", "weight": 1.0},
    {"name": "b", "provider": "openai", "base_url": "${MOCK_URL}", "keys": [{"value": "k1", "weight": 1.0}, {"value": "k2", "weight": 0.5}]}
  ]}`);
  assert.equal(r1.code, 0, `array form: ${r1.stdout}\n${r1.stderr}`);
  const r2 = await check(`{"providers": {"openai": {"keys": [{"value": "sk-m", "models": ["gpt-4o"], "weight": 1.0}],
    "network_config": {"base_url": "${MOCK_URL}"}}}}`);
  assert.equal(r2.code, 0, `map form: ${r2.stdout}\n${r2.stderr}`);
});

/** n sequential chats on one keep-alive connection; returns the responses. */
async function chats(port, model, n) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const rs = [];
    for (let i = 0; i < n; i++) rs.push(await chat(port, { model, messages: MSG }, { agent }));
    return rs;
  } finally { agent.destroy(); }
}

test('fractional provider weights 0.75 / 0.25 split traffic about 75/25', async () => {
  const m = await mock('w');
  const g = await gateway({ config: `{"providers": [
    {"name": "a", "provider": "openai", "apiKey": "sk-a", "base_url": "${m.baseUrl}", "models": ["gpt-4o"], "weight": 0.75},
    {"name": "b", "provider": "openai", "apiKey": "sk-b", "base_url": "${m.baseUrl}", "models": ["gpt-4o"], "weight": 0.25}
  ]}` });
  const N = 200;
  const rs = await chats(g.port, 'gpt-4o', N);
  rs.forEach((r) => assert.equal(r.status, 200, show(r)));
  const a = m.requests.filter((q) => q.headers.authorization === 'Bearer sk-a').length;
  assert.equal(m.requests.length, N);
  // p = .75, sd ≈ 6.1: 4 sigma
  assert.ok(a >= 126 && a <= 174, `provider a got ${a}/${N} (expected ~150)`);
});

test('map form: fractional key weights 0.75 / 0.25 split traffic about 75/25', async () => {
  const m = await mock('kw');
  const g = await gateway({ config: `{"providers": {"openai": {
    "keys": [{"value": "sk-k1", "models": ["*"], "weight": 0.75}, {"value": "sk-k2", "models": ["*"], "weight": 0.25}],
    "network_config": {"base_url": "${m.baseUrl}"}}}}` });
  const N = 200;
  const rs = await chats(g.port, 'openai/gpt-4o', N);
  rs.forEach((r) => assert.equal(r.status, 200, show(r)));
  const k1 = m.requests.filter((q) => q.headers.authorization === 'Bearer sk-k1').length;
  assert.equal(m.requests.length, N);
  assert.ok(k1 >= 126 && k1 <= 174, `key 1 got ${k1}/${N} (expected ~150)`);
});

test('map form: a key\'s models list is honoured (gpt-4o only with key A, gpt-4o-mini only with key B, other models with neither)', async () => {
  const m = await mock('km');
  const g = await gateway({ config: `{"providers": {"openai": {
    "keys": [{"value": "sk-A", "models": ["gpt-4o"], "weight": 1}, {"value": "sk-B", "models": ["gpt-4o-mini"], "weight": 1}],
    "network_config": {"base_url": "${m.baseUrl}"}}}}` });
  for (const [model, key] of [['gpt-4o', 'Bearer sk-A'], ['gpt-4o-mini', 'Bearer sk-B']]) {
    m.reset();
    const rs = await chats(g.port, `openai/${model}`, 20);
    rs.forEach((r) => assert.equal(r.status, 200, `${model}: ${show(r)}`));
    const auths = m.requests.map((q) => q.headers.authorization);
    assert.deepEqual([...new Set(auths)], [key], `${model} was sent with ${JSON.stringify(auths)}`);
  }
  m.reset();
  const r = await chat(g.port, { model: 'openai/gpt-3.5-turbo', messages: MSG });
  assert.notEqual(r.status, 200, `a model no key lists was served: ${show(r)}`);
  assert.deepEqual(m.requests.map((q) => q.headers.authorization), [], 'a model no key lists reached the upstream');
});

test('map form: a key with models ["*"] serves everything, a key with a list only its models', async () => {
  const m = await mock('kstar');
  const g = await gateway({ config: `{"providers": {"openai": {
    "keys": [{"value": "sk-A", "models": ["gpt-4o"], "weight": 1}, {"value": "sk-ALL", "models": ["*"], "weight": 1}],
    "network_config": {"base_url": "${m.baseUrl}"}}}}` });
  await chats(g.port, 'openai/gpt-4o', 30);
  const a = m.requests.filter((q) => q.headers.authorization === 'Bearer sk-A').length;
  assert.ok(a > 0 && a < 30, `gpt-4o: key A got ${a}/30, expected a share (both keys may serve it)`);
  m.reset();
  const rs = await chats(g.port, 'openai/o3-mini', 20);
  rs.forEach((r) => assert.equal(r.status, 200, show(r)));
  assert.deepEqual([...new Set(m.requests.map((q) => q.headers.authorization))], ['Bearer sk-ALL']);
});

// ---------------------------------------------------------------------------------------------
// 5. malformed JSON: line and column

/** 1-based line and column of the first occurrence of `needle` in `text`. */
function lineCol(text, needle) {
  const i = text.indexOf(needle);
  const before = text.slice(0, i).split('\n');
  return { line: before.length, col: before.at(-1).length + 1 };
}
const locRe = ({ line, col }) => new RegExp(`:${line}:${col}\\b|line ${line},? col(?:umn)?\\.? ${col}\\b`, 'i');

const BAD_CHAR = '{\n  "listen": "127.0.0.1:1",\n  "workers": @\n}\n';

test('check: malformed JSON is reported with line and column', async () => {
  const r = await check(BAD_CHAR);
  assert.equal(r.code, 1, r.stderr);
  const at = lineCol(BAD_CHAR, '@'); // line 3, column 14
  assert.match(r.stderr, locRe(at), `no "config.json:${at.line}:${at.col}" or "line ${at.line}, column ${at.col}":\n${r.stderr}`);
});

test('check: a trailing comma is reported at its line and column', async () => {
  const text = '{\n  "providers": [\n    {"name": "a", "provider": "openai",}\n  ]\n}\n';
  const r = await check(text);
  assert.equal(r.code, 1, r.stderr);
  const comma = lineCol(text, ',}');
  const brace = { line: comma.line, col: comma.col + 1 };
  assert.ok(locRe(comma).test(r.stderr) || locRe(brace).test(r.stderr), `line ${comma.line}, column ${comma.col} or ${brace.col} not reported:\n${r.stderr}`);
});

test('start: malformed JSON → non-zero exit with line and column', async () => {
  const r = await startExpectingExit(BAD_CHAR);
  assert.equal(r.signal, null, 'started on malformed JSON');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, locRe(lineCol(BAD_CHAR, '@')), r.stderr);
});

// ---------------------------------------------------------------------------------------------
// 6. header values with CR/LF, base_url with credentials

const CRLF_CASES = [
  { what: 'CRLF', value: '1\r\nx-injected: yes' },
  { what: 'LF', value: '1\nx-injected: yes' },
  { what: 'CR', value: '1\rx-injected: yes' },
];

for (const tc of CRLF_CASES) {
  test(`check: a provider header value with ${tc.what} is refused`, async () => {
    const r = await check(arrayCfg({ headers: { 'x-ok': 'fine', 'x-a': tc.value } }));
    assert.equal(r.code, 1, `accepted a header value with ${tc.what}:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /x-a|headers/, r.stderr);
  });
}

test('check: a header value with CRLF from an env. variable is refused', async () => {
  const r = await check(arrayCfg({ headers: { 'x-a': 'env.BIFROST_TEST_HDR' } }), { BIFROST_TEST_HDR: '1\r\nx-injected: yes' });
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /x-a|headers/, r.stderr);
});

test('check: map form network_config.extra_headers with CRLF is refused', async () => {
  const r = await check(mapCfg({ network_config: { base_url: MOCK_URL, extra_headers: { 'x-a': '1\r\nx-injected: yes' } } }));
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /x-a|extra_headers|headers/, r.stderr);
});

test('start: a header value with CRLF → non-zero exit', async () => {
  const r = await startExpectingExit(arrayCfg({ headers: { 'x-a': '1\r\nx-injected: yes' } }));
  assert.equal(r.signal, null, 'started with a CRLF header value');
  assert.notEqual(r.code, 0);
});

const CRED_URLS = [
  'https://user:secret@api.openai.com/v1',
  'http://user:secret@127.0.0.1:9/v1',
  'https://secret@api.openai.com/v1',
];

for (const url of CRED_URLS) {
  test(`check: base_url with credentials (${url.replace('secret', '***')}) is refused, the secret not printed`, async () => {
    const r = await check(arrayCfg({ base_url: url }));
    assert.equal(r.code, 1, `accepted ${url}:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /base_url/, r.stderr);
    assert.ok(!`${r.stdout}\n${r.stderr}`.includes('secret'), `the secret was printed:\n${r.stdout}\n${r.stderr}`);
  });
}

test('check: map form network_config.base_url with credentials is refused, the secret not printed', async () => {
  const r = await check(mapCfg({ network_config: { base_url: 'https://user:secret@api.openai.com/v1' } }));
  assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /base_url/, r.stderr);
  assert.ok(!`${r.stdout}\n${r.stderr}`.includes('secret'), `the secret was printed:\n${r.stderr}`);
});

test('start: base_url with credentials → non-zero exit, the secret not printed', async () => {
  const r = await startExpectingExit(arrayCfg({ base_url: 'https://user:secret@api.openai.com/v1' }));
  assert.equal(r.signal, null, 'started with credentials in base_url');
  assert.notEqual(r.code, 0);
  assert.ok(!`${r.stdout}\n${r.stderr}`.includes('secret'), `the secret was printed:\n${r.stderr}`);
});

test('reload: base_url with credentials is rejected, old config kept, the secret not logged', async () => {
  const a = await mock('ra');
  const cfg = { providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: a.baseUrl }] };
  const g = await gateway({ config: cfg });
  const errBefore = g.stderr.length;
  await g.reload({ providers: [{ name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: `http://user:secret@127.0.0.1:${a.port}/v1` }] });
  await g.waitForLine((l) => /base_url/.test(l), 3000, 'stderr');
  await sleep(200);
  assert.equal(g.exited, null, g.output());
  const r = await chat(g.port, { model: 'a/gpt-4o', messages: MSG });
  assert.equal(r.status, 200, show(r));
  assert.equal(a.requests.at(-1).headers.authorization, 'Bearer sk-a');
  const said = [...g.stdout, ...g.stderr.slice(errBefore)].join('\n');
  assert.match(g.stderr.slice(errBefore).join('\n'), /base_url/, 'the rejection is not logged');
  assert.ok(!said.includes('secret'), `the secret was logged:\n${said}`);
});
