// A network-level hostile catalogue against the real binary. From the client side: very long and
// escaped model names, control characters, invalid UTF-8 and lone surrogates in every field that
// can reach a log line, a response header, a metric or an error message (model, fallbacks,
// virtual key, path, user agent, anthropic-beta/-version), on the OpenAI and Anthropic routes and
// count_tokens, with governance enforced and without. From the provider side: garbage, a 1xx
// storm, a truncated chunked body, endless headers, an endless SSE line.
//
// After every case the gateway must still be up and answer a normal request; every response
// head must be clean (no control bytes, valid UTF-8), every JSON body parse, every stdout log
// line be valid UTF-8 and JSON, and /metrics stay well-formed.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  BIN, requireBinary, cleanEnv, freePort, tempDir, waitHealthy, RawConn, rawRequest, request,
} from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { startAnthropicMock } from '../lib/mock_anthropic.mjs';

const VK = 'sk-bf-hostile-0001';
const SHOW = Number(process.env.HOSTILE_SHOW) || 25; // failures listed per catalogue
const utf8 = new TextDecoder('utf-8', { fatal: true });
const B = (s) => (Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8'));

let m;   // well-behaved OpenAI upstream (provider o)
let f;   // an OpenAI upstream that always fails with 500 (provider f)
let an;  // well-behaved Anthropic upstream (provider an)
let h;   // the hostile upstream: raw bytes, for provider h (OpenAI) and ha (Anthropic)
const gws = {};

// ---------------------------------------------------------------------------------------------
// a gateway whose stdout is kept as bytes (gateway.mjs decodes it, which would hide bad UTF-8)

const spawned = new Set();
process.on('exit', () => { for (const c of spawned) { try { c.kill('SIGKILL'); } catch { /* gone */ } } });

async function startRawGateway(config) {
  requireBinary();
  const dir = tempDir('bifrost-hostile-');
  const cfgPath = join(dir, 'config.json');
  writeFileSync(cfgPath, JSON.stringify(config, null, 2));
  const port = await freePort();
  const child = spawn(BIN, ['-c', cfgPath, '-l', `127.0.0.1:${port}`, '-w', '1', '-d', join(dir, 'data')],
    { env: cleanEnv(), cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  spawned.add(child);
  const out = [];
  const err = [];
  child.stdout.on('data', (d) => out.push(d));
  child.stderr.on('data', (d) => err.push(d));
  const g = {
    child, port, exited: null,
    stdoutBytes: () => Buffer.concat(out),
    stderrBytes: () => Buffer.concat(err),
    output: () => `--- stdout (tail) ---\n${Buffer.concat(out).toString('latin1').slice(-3000)}\n--- stderr ---\n${Buffer.concat(err).toString('latin1').slice(-3000)}`,
    async stop() {
      if (g.exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10000);
      await new Promise((r) => child.once('exit', r));
      clearTimeout(t);
    },
  };
  child.on('exit', (code, signal) => { spawned.delete(child); g.exited = { code, signal }; });
  await waitHealthy(g, port);
  return g;
}

function config(governed) {
  const c = {
    providers: [
      { name: 'o', provider: 'openai', apiKey: 'sk-o-upstream', base_url: m.baseUrl, max_retries: 0, models: ['gpt-*'] },
      { name: 'f', provider: 'openai', apiKey: 'sk-f-upstream', base_url: f.baseUrl, max_retries: 0 },
      { name: 'an', provider: 'anthropic', apiKey: 'sk-an-upstream', base_url: an.origin, max_retries: 0, models: ['claude-*'] },
      { name: 'h', provider: 'openai', apiKey: 'sk-h-upstream', base_url: h.baseUrl, max_retries: 0, timeout_ms: 4000, stream_idle_timeout_ms: 4000 },
      { name: 'ha', provider: 'anthropic', apiKey: 'sk-ha-upstream', base_url: h.origin, max_retries: 0, timeout_ms: 4000, stream_idle_timeout_ms: 4000 },
    ],
    limits: { max_response_bytes: 1 << 20 },
    circuit_breaker: { failures: 1000000, cooldown_ms: 1000 },
    admin: { token: 'adm-hostile' },
  };
  if (governed) {
    c.pricing = { 'o/gpt-4o': { input: 2.5, output: 10 } };
    c.governance = {
      enforce: true,
      virtual_keys: [{ id: 'hostile', value: VK, budget: { max_limit: 1000000, reset_duration: '1d' },
        rate_limit: { request_max_limit: 1000000000, request_reset_duration: '1m' } }],
    };
  }
  return c;
}

before(async () => {
  m = await startMock({ name: 'o' });
  f = await startMock({ name: 'f' });
  f.behave({ status: 500, body: { error: { message: 'f always fails', type: 'server_error', code: null } } });
  an = await startAnthropicMock({ name: 'an' });
  h = await startMock({ name: 'h' });
  gws.on = await startRawGateway(config(true));
  gws.off = await startRawGateway(config(false));
});

after(async () => {
  for (const g of Object.values(gws)) await g?.stop();
  for (const x of [m, f, an, h]) await x?.close();
});

// ---------------------------------------------------------------------------------------------
// checks

/** Send exact bytes on a fresh connection; the parsed response, or null if the gateway closed without one. */
async function exchange(port, bytes, { timeoutMs = 4000, allowClose = false } = {}) {
  const c = await RawConn.open(port);
  try {
    await c.write(bytes).catch(() => {}); // the gateway may answer (and close) before it read everything
    try {
      return await c.readResponse({ timeoutMs });
    } catch (e) {
      if (allowClose && c.closed && c.buf.length === 0) return null;
      throw e;
    }
  } finally {
    c.destroy();
  }
}

/** Every header line `name: value` with no control byte; the head valid UTF-8. */
function assertCleanHead(rawHead, what) {
  const bytes = Buffer.from(rawHead, 'latin1');
  try { utf8.decode(bytes); } catch { assert.fail(`${what}: the response head is not valid UTF-8: ${JSON.stringify(rawHead.slice(0, 400))}`); }
  const lines = rawHead.split('\r\n');
  assert.match(lines[0], /^HTTP\/1\.[01] [1-5]\d\d [\x20-\x7e]*$/, `${what}: status line ${JSON.stringify(lines[0])}`);
  for (const l of lines.slice(1)) {
    assert.match(l, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\t\x20-\x7e\x80-\xff]*$/, `${what}: a header line with a control byte: ${JSON.stringify(l.slice(0, 300))}`);
  }
}

/** A response the gateway made: clean head, body valid UTF-8 and JSON (or SSE of JSON events). */
function assertCleanResponse(r, what) {
  assert.ok(r.status >= 200 && r.status <= 599, `${what}: status ${r.status}`);
  assertCleanHead(r.rawHead, what);
  const ct = r.headers['content-type'] || '';
  if (!/json|event-stream/.test(ct) || r.body.length === 0) return;
  let text;
  try { text = utf8.decode(r.body); } catch { assert.fail(`${what}: the body is not valid UTF-8: ${JSON.stringify(r.body.toString('latin1').slice(0, 300))}`); }
  if (/json/.test(ct)) {
    try { JSON.parse(text); } catch { assert.fail(`${what}: the body is not JSON: ${JSON.stringify(text.slice(0, 300))}`); }
  } else {
    for (const l of text.split('\n')) {
      if (!l.startsWith('data:')) continue;
      const d = l.slice(5).trim();
      if (d === '[DONE]') continue;
      try { JSON.parse(d); } catch { assert.fail(`${what}: an SSE data line is not JSON: ${JSON.stringify(d.slice(0, 300))}`); }
    }
  }
}

const NORMAL = Buffer.from('{"model":"o/gpt-4o","messages":[{"role":"user","content":"normal"}]}');

/** The gateway is up and answers a normal request. */
async function assertServing(g, what) {
  assert.equal(g.exited, null, `the gateway died after ${what}: ${JSON.stringify(g.exited)}\n${g.output()}`);
  const r = await exchange(g.port, rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json', 'x-bf-vk': VK }, body: NORMAL }));
  assert.equal(r.status, 200, `a normal request after ${what}: ${r.status} ${r.body.toString().slice(0, 300)}\n${g.output()}`);
}

/** Every stdout line (from byte `from` on) is valid UTF-8 and parses as JSON. */
function assertLogLines(g, what, from = 0) {
  const bytes = g.stdoutBytes();
  let start = from;
  for (let i = bytes.indexOf(10, start); i >= 0; start = i + 1, i = bytes.indexOf(10, start)) {
    const line = bytes.subarray(start, i);
    let text;
    try { text = utf8.decode(line); } catch { assert.fail(`${what}: a log line is not valid UTF-8: ${JSON.stringify(line.toString('latin1').slice(0, 400))}`); }
    if (!text.trim()) continue;
    try { JSON.parse(text); } catch { assert.fail(`${what}: a log line is not JSON: ${JSON.stringify(text.slice(0, 400))}`); }
  }
}

/** /metrics is well-formed Prometheus text (names, escaped label values, numeric samples). */
async function assertMetrics(g, what) {
  const r = await request(g.port, { path: '/metrics' });
  assert.equal(r.status, 200, what);
  const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\[\\\\"n])*"';
  const sample = new RegExp(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\\{(${label})(,${label})*,?\\})? -?([0-9.eE+-]+|NaN|[+-]Inf)( -?\\d+)?$`);
  try { utf8.decode(r.body); } catch { assert.fail(`${what}: /metrics is not valid UTF-8`); }
  for (const l of r.text.split('\n')) {
    if (l === '' || l.startsWith('#')) continue;
    assert.match(l, sample, `${what}: a malformed /metrics line: ${JSON.stringify(l.slice(0, 300))}`);
  }
}

/**
 * Run every case, collecting failures so one report names them all; a dead gateway stops at once.
 * run(what, fn) per case, then done() asserts there were none.
 */
function catalogue(g, budgetMs = 15000) {
  const failures = [];
  const logFrom = g.stdoutBytes().length; // this catalogue's log lines only
  const errFrom = g.stderrBytes().length;
  const until = Date.now() + budgetMs;
  let cases = 0;
  let skipped = 0;
  return {
    async run(what, fn) {
      if (Date.now() > until) { skipped++; return; } // a broken build: report what failed so far, in bounded time
      cases++;
      try {
        await fn();
      } catch (e) {
        const msg = e.message.split('\n')[0].slice(0, 400);
        failures.push(`- ${msg.startsWith(what) ? msg : `${what}: ${msg}`}`);
        if (g.exited) throw new Error(`the gateway died at ${what}: ${JSON.stringify(g.exited)}\n${failures.join('\n')}\n${g.output()}`);
      }
    },
    logLines() { assertLogLines(g, 'log', logFrom); },
    done(title, t) {
      assert.ok(cases > 0);
      t?.diagnostic(`${cases} cases, ${failures.length} failed, ${skipped} not run`);
      if (skipped) failures.push(`- ${skipped} cases not run: the catalogue took more than ${budgetMs} ms`);
      const errText = g.stderrBytes().subarray(errFrom).toString('latin1');
      const san = errText.search(/AddressSanitizer|LeakSanitizer|runtime error:/);
      if (san >= 0) failures.unshift(`- a sanitizer report on the gateway's stderr:\n${errText.slice(Math.max(0, san - 200), san + 4000)}`);
      if (failures.length) assert.fail(`${title}: ${failures.length} of ${cases} cases failed:\n${failures.slice(0, SHOW).join('\n')}${failures.length > SHOW ? `\n… and ${failures.length - SHOW} more (HOSTILE_SHOW=N shows N)` : ''}`);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// hostile strings: the bytes between the quotes of a JSON string (escapes as written, raw bytes as sent)

const C0 = Array.from({ length: 31 }, (_, i) => `\\u00${(i + 1).toString(16).padStart(2, '0')}`).join('');
const SUFFIXES = [
  ['64 KB name', B('x'.repeat(65536))],
  ['64 KB of \\u escapes', B('\\u0041'.repeat(11000))],
  ['quote and backslash escapes', B('gpt\\"4o\\\\\\/')],
  ['every C0 control as \\u00XX', B(`gpt${C0}`)],
  ['NUL', B('gpt\\u0000-4o')],
  ['CR LF and a header', B('gpt-4o\\r\\nX-Injected: 1\\r\\n\\r\\nHTTP/1.1 200 OK')],
  ['DEL, C1, U+2028', B('gpt\\u007f\\u0085\\u009b\\u2028')],
  ['lone high surrogate', B('gpt\\ud800')],
  ['lone low surrogate', B('\\udc00gpt')],
  ['reversed surrogate pair', B('gpt\\udc00\\ud800')],
  ['raw invalid UTF-8 bytes', Buffer.concat([B('gpt'), Buffer.from([0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xf8, 0x88, 0x80, 0x80, 0x80, 0xe2, 0x82])])],
  ['raw UTF-8, long (cut mid-character if truncated by bytes)', B('é'.repeat(400))],
  ['emoji and escaped pair', B('gpt-😀-\\ud83d\\ude00')],
  ['percent and format specifiers', B('%s%n%x%%00%0d%0a')],
];
const WHOLE_MODELS = [
  ['unknown provider with controls', B('nope\\u0001/x\\u001b[31m')],
  ['bare model with controls', B('\\u0007gpt\\u001b')],
  ['surrogate provider name', B('\\ud800/x')],
  ['raw invalid UTF-8 without a slash', Buffer.from([0x67, 0xff, 0xc3, 0x28])],
  ['64 KB without a slash', B('y'.repeat(65536))],
  ['empty', B('')],
  ['only a slash', B('/')],
];

const jstr = (raw) => Buffer.concat([B('"'), raw, B('"')]);
const MSGS = B('[{"role":"user","content":"hostile"}]');

function body(parts) { // parts: [[key, rawJsonValueBytes], ...]
  const out = [B('{')];
  parts.forEach(([k, v], i) => out.push(B(`${i ? ',' : ''}"${k}":`), v));
  out.push(B('}'));
  return Buffer.concat(out);
}

function post(path, bodyBytes, headers = {}) {
  // Connection: close: a response whose framing an injected header broke still ends (at EOF)
  return rawRequest('POST', path, { headers: { 'Content-Type': 'application/json', 'x-bf-vk': VK, Connection: 'close', ...headers }, body: bodyBytes });
}

/** The requests that carry one hostile model string (suffix after `o/`, `an/`, ...) to every route. */
function bodyCases(raw, whole) {
  const model = (prov) => jstr(whole ? raw : Buffer.concat([B(`${prov}/`), raw]));
  return [
    ['chat', post('/v1/chat/completions', body([['model', model('o')], ['messages', MSGS]]))],
    ['chat stream', post('/v1/chat/completions', body([['model', model('o')], ['stream', B('true')], ['messages', MSGS]]))],
    ['chat, in fallbacks after a failing provider', post('/v1/chat/completions', body([['model', jstr(B('f/x'))],
      ['fallbacks', Buffer.concat([B('['), model('f'), B(','), model('o'), B(']')])], ['messages', MSGS]]))],
    ['chat, failing provider', post('/v1/chat/completions', body([['model', model('f')], ['messages', MSGS]]))],
    ['messages (Anthropic provider)', post('/v1/messages', body([['model', model('an')], ['max_tokens', B('16')], ['messages', MSGS]]))],
    ['messages stream (Anthropic provider)', post('/v1/messages', body([['model', model('an')], ['max_tokens', B('16')], ['stream', B('true')], ['messages', MSGS]]))],
    ['messages (translated to OpenAI)', post('/anthropic/v1/messages', body([['model', model('o')], ['max_tokens', B('16')], ['messages', MSGS]]))],
    ['messages stream (translated)', post('/v1/messages', body([['model', model('o')], ['max_tokens', B('16')], ['stream', B('true')], ['messages', MSGS]]))],
    ['count_tokens (forwarded)', post('/v1/messages/count_tokens', body([['model', model('an')], ['messages', MSGS]]))],
    ['count_tokens (estimated)', post('/v1/messages/count_tokens', body([['model', model('o')], ['messages', MSGS]]))],
  ];
}

for (const mode of ['on', 'off']) {
  test(`hostile model and fallbacks strings on every route (governance ${mode})`, async (t) => {
    const g = gws[mode];
    const cat = catalogue(g);
    for (const [name, raw, whole] of [...SUFFIXES.map(([n, r]) => [n, r, false]), ...WHOLE_MODELS.map(([n, r]) => [n, r, true])]) {
      for (const [route, bytes] of bodyCases(raw, whole)) {
        const what = `${route}, model ${name}`;
        await cat.run(what, async () => {
          const r = await exchange(g.port, bytes);
          assertCleanResponse(r, what);
          assert.equal(r.headers['x-injected'], undefined, `${what}: an injected header`);
        });
        await assertServing(g, what);
      }
    }
    await cat.run('log lines', async () => cat.logLines());
    await cat.run('/metrics', () => assertMetrics(g, '/metrics'));
    cat.done(`model strings, governance ${mode}`, t);
  });
}

test('escaped spellings of a valid model route like the plain one', async () => {
  for (const mode of ['on', 'off']) {
    const g = gws[mode];
    m.reset();
    const r = await exchange(g.port, post('/v1/chat/completions', body([['model', B('"\\u006f\\/gpt\\u002d4o"')], ['messages', MSGS]])));
    assert.equal(r.status, 200, `governance ${mode}: ${r.status} ${r.body}`);
    assert.equal(r.headers['x-bifrost-provider'], 'o/gpt-4o');
    assert.equal(m.requests[0]?.json?.model, 'gpt-4o', `the upstream got model ${JSON.stringify(m.requests[0]?.json?.model)}`);
  }
});

// ---------------------------------------------------------------------------------------------
// hostile headers and paths (raw bytes on the wire)

const CTL = Buffer.from(Array.from({ length: 32 }, (_, i) => i).filter((c) => c !== 9 && c !== 10 && c !== 13).concat([0x7f]));
const HEADER_VALUES = [
  ['control bytes', Buffer.concat([B('v-'), CTL, B('-v')])],
  ['NUL', Buffer.from([0x61, 0x00, 0x62])],
  ['bare CR', B('a\rX-Injected: 1')],
  ['high bytes, invalid UTF-8', Buffer.from([0x76, 0xff, 0xfe, 0xc0, 0x80, 0xed, 0xa0, 0x80, 0xe2, 0x82])],
  ['CESU surrogate bytes', Buffer.from([0xed, 0xa0, 0x80, 0xed, 0xb0, 0x80])],
  ['JSON-looking escapes', B('\\u0000\\ud800"},{"x":"')],
  ['raw UTF-8', B('ünïcødé-😀')],
  ['8 KB', B('k'.repeat(8192))],
  ['60 KB', B('K'.repeat(60000))],
];
const HEADER_NAMES = ['x-bf-vk', 'authorization', 'x-api-key', 'user-agent', 'anthropic-beta', 'anthropic-version'];

function rawPost(path, headerLines, bodyBytes) {
  const head = Buffer.concat([B(`POST `), Buffer.isBuffer(path) ? path : B(path), B(' HTTP/1.1\r\nHost: gw\r\nConnection: close\r\nContent-Type: application/json\r\n'),
    ...headerLines.map((l) => Buffer.concat([l, B('\r\n')])), B(`Content-Length: ${bodyBytes.length}\r\n\r\n`)]);
  return Buffer.concat([head, bodyBytes]);
}

for (const mode of ['on', 'off']) {
  test(`hostile header values and paths (governance ${mode})`, async (t) => {
    const g = gws[mode];
    const cat = catalogue(g);
    const chatBody = B('{"model":"o/gpt-4o","messages":[{"role":"user","content":"h"}]}');
    const antBody = B('{"model":"an/claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"h"}]}');
    const transBody = B('{"model":"o/gpt-4o","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"h"}]}');
    for (const name of HEADER_NAMES) {
      for (const [vname, v] of HEADER_VALUES) {
        const value = name === 'authorization' ? Buffer.concat([B('Bearer '), v]) : v;
        const line = Buffer.concat([B(`${name}: `), value]);
        const vk = name === 'x-bf-vk' ? [] : [B(`x-bf-vk: ${VK}`)];
        for (const [route, path, bd] of [['chat', '/v1/chat/completions', chatBody], ['messages', '/v1/messages', antBody],
          ['messages translated stream', '/v1/messages', transBody], ['count_tokens', '/v1/messages/count_tokens', antBody]]) {
          const what = `${route}, ${name}: ${vname}`;
          // a control byte in a header is malformed HTTP: a 400 or a close are both fine answers
          await cat.run(what, async () => {
            const r = await exchange(g.port, rawPost(path, [...vk, line], bd), { allowClose: true });
            if (r) {
              assertCleanResponse(r, what);
              assert.equal(r.headers['x-injected'], undefined, `${what}: an injected header`);
            }
          });
          await assertServing(g, what);
        }
      }
    }
    const paths = [
      ['high bytes', Buffer.concat([B('/v1/chat/completions?x='), Buffer.from([0xff, 0xc0, 0x80, 0xed, 0xa0, 0x80])])],
      ['raw UTF-8 path, long', B(`/v1/${'é'.repeat(300)}`)],
      ['percent-encoded CR LF', B('/v1/chat/completions%0d%0aX-Injected:%201')],
      ['percent-encoded NUL and controls', B('/v1/chat/completions?%00%01%1b[31m')],
      ['control byte', Buffer.concat([B('/v1/chat/'), Buffer.from([0x01, 0x1b, 0x7f])])],
      ['8 KB query', B(`/v1/chat/completions?q=${'q'.repeat(8192)}`)],
      ['dot segments', B('/v1/messages/count_tokens/../../../admin')],
      ['quotes and backslashes', B('/v1/"\\"\\\\')],
      ['format specifiers', B('/v1/%s%n%x')],
    ];
    for (const [pname, p] of paths) {
      const what = `path ${pname}`;
      await cat.run(what, async () => {
        const r = await exchange(g.port, rawPost(p, [B(`x-bf-vk: ${VK}`)], chatBody), { allowClose: true });
        if (r) {
          assertCleanResponse(r, what);
          assert.equal(r.headers['x-injected'], undefined, `${what}: an injected header`);
        }
      });
      await assertServing(g, what);
    }
    await cat.run('log lines', async () => cat.logLines());
    await cat.run('/metrics', () => assertMetrics(g, '/metrics'));
    cat.done(`headers and paths, governance ${mode}`, t);
  });
}

// ---------------------------------------------------------------------------------------------
// hostile providers

/** A deterministic byte generator (xorshift32). */
function noise(n, seed) {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

const okBody = B('{"id":"chatcmpl-h","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"after the storm"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}');
const write = (sock, data) => new Promise((r) => { if (sock.destroyed) r(false); else sock.write(data, (e) => r(!e)); });

/** Write `piece` again and again until the gateway gives up on us (bounded by maxBytes); endless.sent says how far it got. */
async function endless(sock, piece, maxBytes) {
  endless.sent = 0;
  while (endless.sent < maxBytes) {
    if (!(await write(sock, piece))) return;
    endless.sent += piece.length;
  }
}

const PROVIDER_CASES = [
  ['garbage bytes', { raw: noise(3000, 7) }, { status: [502] }],
  ['garbage after a status line', { raw: Buffer.concat([B('HTTP/1.1 200 OK\r\n'), noise(2000, 11)]) }, { status: [502] }],
  ['a head with a bad Content-Length', { raw: B('HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n{}') }, { status: [502] }],
  ['a chunk size beyond 64 bits', { raw: B('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n{}\r\n0\r\n\r\n') }, { status: [502] }],
  ['500 × 100 Continue before the answer', { raw: Buffer.concat([B('HTTP/1.1 100 Continue\r\n\r\n'.repeat(500)),
    B(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${okBody.length}\r\n\r\n`), okBody]) }, { status: [200, 502], body: okBody }],
  ['300 × 103 Early Hints with headers', { raw: Buffer.concat([B('HTTP/1.1 103 Early Hints\r\nLink: </a>; rel=preload\r\n\r\n'.repeat(300)),
    B(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${okBody.length}\r\n\r\n`), okBody]) }, { status: [200, 502], body: okBody }],
  ['a truncated chunked body', { raw: Buffer.concat([B('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n400\r\n'), okBody.subarray(0, 60)]) }, { status: [502] }],
  ['a Content-Length longer than the body, then close', { raw: Buffer.concat([B('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n'), okBody]) }, { status: [502] }],
  ['5000 small headers', { raw: Buffer.concat([B('HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'), B('X-H: v\r\n'.repeat(5000)),
    B(`Content-Length: ${okBody.length}\r\n\r\n`), okBody]) }, { status: [200, 502], body: okBody }],
  ['endless response headers', { raw: async (sock) => { await write(sock, 'HTTP/1.1 200 OK\r\n'); await endless(sock, B(`X-Endless: ${'a'.repeat(1000)}\r\n`), 16 << 20); } }, { status: [502], maxMs: 4000 }],
  ['one endless header line', { raw: async (sock) => { await write(sock, 'HTTP/1.1 200 OK\r\nX-Long: '); await endless(sock, B('b'.repeat(16384)), 16 << 20); } }, { status: [502], maxMs: 4000 }],
  ['an endless chunked body', { raw: async (sock) => { await write(sock, 'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n'); await endless(sock, B(`4000\r\n${'c'.repeat(16384)}\r\n`), 16 << 20); } }, { status: [502], maxMs: 4000 }],
];

// [name, writer, the client's stream must end with an error event]
const STREAM_CASES = [
  ['an endless SSE line (chunked)', async (sock) => {
    await write(sock, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    await write(sock, '6\r\ndata: \r\n');
    await endless(sock, B(`4000\r\n${'z'.repeat(16384)}\r\n`), 16 << 20);
  }, true],
  ['an endless SSE line (close-delimited)', async (sock) => {
    await write(sock, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\ndata: {"x":"');
    await endless(sock, B('z'.repeat(16384)), 16 << 20);
  }, true],
  ['a truncated chunk mid-stream', async (sock) => {
    await write(sock, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n');
    const ev = 'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"part"},"finish_reason":null}]}\n\n';
    await write(sock, `${Buffer.byteLength(ev).toString(16)}\r\n${ev}\r\n`);
    await write(sock, '400\r\ndata: {"choices":[{"delta":{"content":"cut');
  }, true],
  ['garbage in the stream', async (sock) => {
    await write(sock, 'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n');
    await write(sock, Buffer.concat([B('data: '), noise(4000, 99), B('\n\nevent: \x01\x02\ndata: {"type":"\\ud800"}\n\n')]));
  }, false],
];

for (const mode of ['on', 'off']) {
  test(`hostile providers: garbage, 1xx storms, truncation, endless heads and bodies (governance ${mode})`, async (t) => {
    const g = gws[mode];
    const cat = catalogue(g);
    for (const [name, behaviour, expect] of PROVIDER_CASES) {
      for (const [route, path, model] of [['chat', '/v1/chat/completions', 'h/m'], ['messages translated', '/v1/messages', 'h/m'],
        ['messages (Anthropic provider)', '/v1/messages', 'ha/claude-x']]) {
        const what = `${name}, ${route}`;
        h.reset();
        h.behave(behaviour);
        endless.sent = 0;
        await cat.run(what, async () => {
          const t0 = Date.now();
          const r = await exchange(g.port, post(path, body([['model', jstr(B(model))], ['max_tokens', B('8')], ['messages', MSGS]])));
          const ms = Date.now() - t0;
          assert.equal(h.requests.length, 1, `${what}: the hostile provider was called ${h.requests.length} times`);
          assertCleanResponse(r, what);
          assert.ok(expect.status.includes(r.status), `${what}: status ${r.status} (want ${expect.status.join(' or ')}): ${r.body.toString().slice(0, 300)}`);
          if (r.status === 200 && expect.body && route === 'chat') assert.ok(r.body.equals(expect.body), `${what}: the body is not the provider's`);
          if (expect.maxMs) assert.ok(ms < expect.maxMs, `${what}: answered after ${ms} ms`);
          assert.ok(endless.sent < 12 << 20, `${what}: the gateway read ${endless.sent} bytes of an endless answer (limits.max_response_bytes is 1 MiB)`);
        });
        h.behave({});
        await assertServing(g, what);
      }
    }
    for (const [name, fn, cut] of STREAM_CASES) {
      for (const [route, path, translated] of [['chat stream', '/v1/chat/completions', false], ['messages stream translated', '/v1/messages', true]]) {
        const what = `${name}, ${route}`;
        h.reset();
        h.behave({ raw: fn });
        endless.sent = 0;
        await cat.run(what, async () => {
          const t0 = Date.now();
          const r = await exchange(g.port, post(path, body([['model', jstr(B('h/m'))], ['max_tokens', B('8')], ['stream', B('true')], ['messages', MSGS]])));
          const ms = Date.now() - t0;
          assert.ok(ms < 5000, `${what}: the stream ended after ${ms} ms`);
          assertCleanHead(r.rawHead, what);
          assert.ok(r.status === 200 || r.status === 502, `${what}: status ${r.status}`);
          const text = r.body.toString('latin1');
          assert.ok(r.body.length < 256 * 1024, `${what}: ${r.body.length} bytes of the provider's stream reached the client (limits.max_response_bytes is 1 MiB, one event never completed)`);
          assert.ok(endless.sent < 12 << 20, `${what}: the gateway read ${endless.sent} bytes of one endless event (limits.max_response_bytes is 1 MiB)`);
          if (r.status === 200 && cut) {
            assert.match(text.slice(-1000), /error/, `${what}: the stream does not end with an error: …${JSON.stringify(text.slice(-300))}`);
          }
          if (translated) { // the gateway wrote every byte of a translated stream itself
            try { utf8.decode(r.body); } catch { assert.fail(`${what}: the translated stream is not valid UTF-8: ${JSON.stringify(text.slice(0, 300))}`); }
          }
        });
        h.behave({});
        await assertServing(g, what);
      }
    }
    await cat.run('log lines', async () => cat.logLines());
    await cat.run('/metrics', () => assertMetrics(g, '/metrics'));
    cat.done(`hostile providers, governance ${mode}`, t);
  });
}
