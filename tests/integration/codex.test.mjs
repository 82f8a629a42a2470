// The real Codex CLI (@openai/codex, the native binary shipped in the npm package) as the
// client, offline, in `codex exec` mode: a temporary CODEX_HOME whose config.toml declares a
// model provider "bifrost" (wire_api = "responses", the key in an env var) pointing at the
// gateway, which forwards /v1/responses natively to an "openai" provider: a mock speaking the
// Responses API (streamed, as Codex asks for stream: true).
//
// The round trip: Codex sends its first turn with its tools; the mock answers with a
// function_call of the shell tool Codex declared (exec_command {cmd} in 0.169.0; the name and
// schema are read from the request); Codex runs the command and sends a function_call_output;
// the mock answers with a final message quoting the command's output.
//   1. plain gateway, through a recording pass-through: what Codex sent is what the provider
//      got, byte for byte but "model"
//   2. governed gateway, Codex's key = a virtual key with a budget: spend = the usage the
//      provider reported × the model's price
//   3. governed gateway, an unknown key: 401 in Codex's output, nothing upstream, no spend
//
// Offline: HTTP(S)_PROXY/ALL_PROXY point at a local trap that refuses (and records) every
// connection, NO_PROXY exempts only 127.0.0.1 (the gateway), and plugins (a clone from
// github.com), apps (chatgpt.com), analytics and the update check are off, so the trap must
// stay empty. Every run is bounded (SIGKILL of its process group after RUN_TIMEOUT_MS); the
// temp directories go when the test process exits.
//
// Flags that work with codex-cli 0.169.0 (`--full-auto` no longer exists, nor `-a`):
//   codex exec --strict-config --skip-git-repo-check --ephemeral -s danger-full-access
//     -c approval_policy="never" --disable plugins --disable apps --color never
//     -o LAST_MESSAGE_FILE PROMPT

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startGateway, sleep } from '../lib/gateway.mjs';
import { requestRecorder } from '../lib/record.mjs';
import { costMicros, entity, quiet } from '../lib/usage.mjs';
import { findCodex, runCodex as runCodexCli, startTrap, startTap, commandOutput as outputOf, RUN_TIMEOUT_MS } from '../lib/codex_cli.mjs';

const T = { timeout: RUN_TIMEOUT_MS + 15_000 };
const MODEL = 'oai/gpt-5';
const UP_KEY = 'sk-oai-codex-upstream-0001';
const CLIENT_KEY = 'sk-codex-client-not-a-provider-key';
const ADMIN = 'adm-codex-token-1';
const VK = 'sk-bf-codex-vk-0001';
const PRICE = { input: 1.25, output: 10, cache_read: 0.125 };

// ---------------------------------------------------------------------------------------------
// the Codex binary



const found = findCodex();
const runCodex = (o) => runCodexCli(found.bin, { model: MODEL, ...o });
const SKIP = found.bin ? false : found.reason;


// ---------------------------------------------------------------------------------------------
// the trap for every connection that is not to the gateway


// ---------------------------------------------------------------------------------------------
// a Responses API upstream (streamed), scripted per request

function usageObj({ input_tokens, cached = 0, output_tokens, reasoning = 0 }) {
  return {
    input_tokens, input_tokens_details: { cached_tokens: cached },
    output_tokens, output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: input_tokens + output_tokens,
  };
}

function responseObj({ id, model, status, output, usage }) {
  return {
    id, object: 'response', created_at: Math.floor(Date.now() / 1000), status, background: false, error: null,
    incomplete_details: null, instructions: null, max_output_tokens: null, model, output, parallel_tool_calls: true,
    previous_response_id: null, reasoning: { effort: 'medium', summary: null }, service_tier: 'default', store: false,
    temperature: 1.0, text: { format: { type: 'text' }, verbosity: 'medium' }, tool_choice: 'auto', tools: [],
    top_p: 1.0, truncation: 'disabled', usage, user: null, metadata: {},
  };
}

/** The SSE events of one answer whose only output item is `item` (a message or a function_call). */
function streamEvents({ id, model, item, usage }) {
  const evs = [];
  const push = (name, data) => evs.push({ name, data: { type: name, ...data, sequence_number: evs.length } });
  push('response.created', { response: responseObj({ id, model, status: 'in_progress', output: [], usage: null }) });
  push('response.in_progress', { response: responseObj({ id, model, status: 'in_progress', output: [], usage: null }) });
  if (item.type === 'function_call') {
    push('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', arguments: '' } });
    push('response.function_call_arguments.delta', { item_id: item.id, output_index: 0, delta: item.arguments });
    push('response.function_call_arguments.done', { item_id: item.id, output_index: 0, name: item.name, arguments: item.arguments });
  } else {
    const text = item.content[0].text;
    const part = (t) => ({ type: 'output_text', text: t, annotations: [], logprobs: [] });
    push('response.output_item.added', { output_index: 0, item: { ...item, status: 'in_progress', content: [] } });
    push('response.content_part.added', { item_id: item.id, output_index: 0, content_index: 0, part: part('') });
    const half = Math.ceil(text.length / 2);
    for (const d of [text.slice(0, half), text.slice(half)]) push('response.output_text.delta', { item_id: item.id, output_index: 0, content_index: 0, delta: d, logprobs: [] });
    push('response.output_text.done', { item_id: item.id, output_index: 0, content_index: 0, text, logprobs: [] });
    push('response.content_part.done', { item_id: item.id, output_index: 0, content_index: 0, part: part(text) });
  }
  push('response.output_item.done', { output_index: 0, item });
  push('response.completed', { response: responseObj({ id, model, status: 'completed', output: [item], usage }) });
  return evs;
}

/**
 * m.script = (rec) → { item, usage } for each POST …/responses (null: a 404, as is anything
 * else). m.requests: every request (record.mjs); m.sent[i]: the events of answer i.
 */
async function startResponsesMock() {
  const record = requestRecorder();
  const m = { requests: [], sent: [], script: null, reset() { this.requests.length = 0; this.sent.length = 0; this.script = null; } };
  const server = http.createServer({ keepAliveTimeout: 60000 }, async (req, res) => {
    const rec = await record(req);
    m.requests.push(rec);
    const isResponses = rec.method === 'POST' && /\/responses$/.test(rec.path) && rec.json;
    const plan = isResponses && m.script ? m.script(rec) : null;
    if (!plan) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { message: `mock: no route ${rec.method} ${rec.url}`, type: 'invalid_request_error', code: null } }));
      return;
    }
    const id = `resp_${randomBytes(24).toString('hex')}`;
    const evs = streamEvents({ id, model: rec.json.model, item: plan.item, usage: usageObj(plan.usage) });
    m.sent.push(evs);
    if (rec.json.stream !== true) { // not what Codex does; answered anyway
      const body = JSON.stringify(evs.at(-1).data.response);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
    res.flushHeaders();
    try {
      for (const ev of evs) {
        await new Promise((r) => res.write(`event: ${ev.name}\ndata: ${JSON.stringify(ev.data)}\n\n`, r));
        await sleep(2);
      }
      res.end();
    } catch { /* the gateway went away */ }
  });
  server.on('clientError', (err, sock) => sock.destroy());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  m.baseUrl = `http://127.0.0.1:${server.address().port}/v1`;
  m.close = () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); });
  return m;
}

// ---------------------------------------------------------------------------------------------
// a pass-through in front of the gateway that records exactly what Codex sent


// ---------------------------------------------------------------------------------------------
// the scenario

/** The shell tool Codex declares in its request: { name, argsFor(command) } (throws if none). */
function shellTool(body) {
  const tools = Array.isArray(body?.tools) ? body.tools : [];
  const fn = (n) => tools.find((t) => t?.type === 'function' && t.name === n);
  const ex = fn('exec_command');
  if (ex && ex.parameters?.properties?.cmd) return { name: 'exec_command', argsFor: (c) => ({ cmd: c, login: false, yield_time_ms: 5000 }) };
  const sh = fn('shell') || fn('container.exec');
  if (sh && sh.parameters?.properties?.command?.type === 'array') return { name: sh.name, argsFor: (c) => ({ command: ['bash', '-c', c], timeout_ms: 10000 }) };
  const sc = fn('shell_command');
  if (sc) return { name: 'shell_command', argsFor: (c) => ({ command: c }) };
  throw new Error(`no shell tool among ${JSON.stringify(tools.map((t) => `${t.type}:${t.name}`))}`);
}

const USAGE_1 = { input_tokens: 9000, cached: 8000, output_tokens: 120, reasoning: 64 };
const USAGE_2 = { input_tokens: 9400, cached: 8960, output_tokens: 40, reasoning: 0 };

/**
 * Script the mock for one Codex run: the first request gets a function_call of the shell tool
 * running `command`; the one carrying its function_call_output gets "TOOL OUTPUT: <output>".
 */
function scriptRoundTrip(m, command, callId) {
  const state = { tool: null, call: null };
  m.script = (rec) => {
    const input = Array.isArray(rec.json.input) ? rec.json.input : [];
    const out = input.find((x) => x?.type === 'function_call_output' && x.call_id === callId);
    if (!out) {
      state.tool = shellTool(rec.json);
      state.call = { id: `fc_${randomBytes(20).toString('hex')}`, type: 'function_call', status: 'completed',
        arguments: JSON.stringify(state.tool.argsFor(command)), call_id: callId, name: state.tool.name };
      return { item: state.call, usage: USAGE_1 };
    }
    const text = `TOOL OUTPUT: ${commandOutput(out.output)}`;
    return { item: { id: `msg_${randomBytes(20).toString('hex')}`, type: 'message', status: 'completed', role: 'assistant',
      content: [{ type: 'output_text', text, annotations: [], logprobs: [] }] }, usage: USAGE_2 };
  };
  return state;
}

/** The output text in a function_call_output (a string, or content items). */
function outputText(o) {
  if (typeof o === 'string') return o;
  if (Array.isArray(o)) return o.map((c) => c?.text ?? '').join('');
  return JSON.stringify(o);
}

/**
 * The command's own output in what Codex sends back: exec_command wraps it
 * ("Chunk ID: …\nWall time: …\nProcess exited with code 0\n…\nOutput:\n<output>"), the older
 * shell tool sends JSON {"output": …} or plain text.
 */
function commandOutput(o) {
  return outputOf(outputText(o));
}

let mock, trap, gw, gov, tap;

before(async () => {
  if (SKIP) return;
  mock = await startResponsesMock();
  trap = await startTrap();
  const provider = { name: 'oai', provider: 'openai', apiKey: UP_KEY, base_url: mock.baseUrl, models: ['gpt-*'], max_retries: 0 };
  gw = await startGateway({ config: { log_requests: true, providers: [provider] } });
  gov = await startGateway({
    config: {
      admin: { token: ADMIN },
      log_requests: true,
      providers: [provider],
      pricing: { [MODEL]: PRICE },
      governance: { enforce: true, virtual_keys: [{ id: 'codex', value: VK, budget: { max_limit: 5, reset_duration: '1d' } }] },
    },
  });
  tap = await startTap(gw.port);
});

after(async () => {
  await gw?.stop('SIGKILL');
  await gov?.stop('SIGKILL');
  await tap?.close();
  await mock?.close();
  await trap?.close();
});

function diag(r, g) {
  const lines = g.logLines().filter((l) => 'path' in l).map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''} ${l.error ?? ''}`);
  const reqs = mock.requests.map((q) => `${q.method} ${q.url} input items: ${(q.json?.input ?? []).map((x) => x.type).join(',')}`);
  return `${r.show()}\n--- gateway log ---\n${lines.slice(-20).join('\n')}\n--- mock ---\n${reqs.join('\n')}\n--- trap ---\n${trap.hits.join('\n')}`;
}

/** The gateway's log lines of /v1/responses, waited for until there are n. */
async function responsesLines(g, n) {
  const get = () => g.logLines().filter((l) => l.path === '/v1/responses');
  for (let i = 0; i < 150 && get().length < n; i++) await sleep(20);
  return get();
}

/** Everything asserted on one Codex run: the CLI, the mock, the gateway log. */
async function assertRoundTrip(r, g, { command, expected, callId, state }) {
  assert.equal(r.timedOut, false, diag(r, g));
  assert.equal(r.code, 0, diag(r, g));
  // Codex printed the final answer, which quotes the command's real output
  assert.match(r.stdout, new RegExp(`TOOL OUTPUT: ${expected}`), diag(r, g));
  assert.equal(r.last?.trim(), `TOOL OUTPUT: ${expected}`, diag(r, g));
  // exactly two requests reached the mock, both POST /v1/responses with the provider key
  assert.equal(mock.requests.length, 2, diag(r, g));
  for (const q of mock.requests) {
    assert.equal(q.method, 'POST');
    assert.equal(q.url, '/v1/responses');
    assert.equal(q.headers.authorization, `Bearer ${UP_KEY}`, 'the provider key was not used');
    assert.ok(!JSON.stringify(q.rawHeaders).includes(CLIENT_KEY) && !JSON.stringify(q.rawHeaders).includes(VK), `the client key reached the provider: ${q.rawHeaders}`);
    assert.ok(!q.body.includes(CLIENT_KEY) && !q.body.includes(VK), 'the client key is in the upstream body');
    assert.equal(q.json.model, 'gpt-5');
    assert.equal(q.json.stream, true);
    assert.match(q.headers.accept ?? '', /text\/event-stream/);
  }
  // the first carried the shell tool the mock called; the second the call and its output
  assert.ok(state.tool, 'the mock never chose a tool');
  assert.ok(mock.requests[0].json.tools.some((t) => t.name === state.tool.name));
  const input2 = mock.requests[1].json.input;
  const call = input2.find((x) => x?.type === 'function_call' && x.call_id === callId);
  assert.ok(call, `the function_call is not in the second request: ${JSON.stringify(input2.map((x) => x.type))}`);
  assert.equal(call.name, state.tool.name);
  assert.deepEqual(JSON.parse(call.arguments), JSON.parse(state.call.arguments));
  const outs = input2.filter((x) => x?.type === 'function_call_output');
  assert.equal(outs.length, 1, JSON.stringify(outs));
  assert.equal(outs[0].call_id, callId);
  assert.equal(commandOutput(outs[0].output), expected, `function_call_output: ${JSON.stringify(outs[0].output)}`);
  // the gateway: two /v1/responses lines, 200, served by oai, streamed
  const lines = await responsesLines(g, 2);
  assert.equal(lines.length, 2, diag(r, g));
  for (const l of lines) {
    assert.equal(l.method, 'POST', JSON.stringify(l));
    assert.equal(l.status, 200, JSON.stringify(l));
    assert.equal(l.provider, MODEL, JSON.stringify(l));
    assert.equal(l.stream, true, JSON.stringify(l));
    assert.equal(l.attempts, 1, JSON.stringify(l));
  }
  // nothing else was asked of the gateway, and nothing of the internet
  const other = g.logLines().filter((l) => 'path' in l && l.path !== '/health' && l.path !== '/v1/responses');
  assert.deepEqual(other, [], diag(r, g));
  assert.deepEqual(trap.hits, [], `Codex tried to reach the internet: ${trap.hits.join(', ')}`);
  return lines;
}

test(`Codex (${found.version ?? 'not available'}) exec via a model provider with wire_api = "responses": shell tool round trip through /v1/responses`, { ...T, skip: SKIP }, async () => {
  mock.reset();
  trap.hits.length = 0;
  tap.seen.length = 0;
  const token = randomBytes(6).toString('hex');
  const command = `echo codex-$((6*7))-${token}`;
  const expected = `codex-42-${token}`;
  const callId = `call_${randomBytes(12).toString('hex')}`;
  const state = scriptRoundTrip(mock, command, callId);
  const r = await runCodex({ baseUrl: `http://127.0.0.1:${tap.port}/v1`, key: CLIENT_KEY, prompt: 'Run the marker command and report its output.', trapUrl: trap.url });
  const lines = await assertRoundTrip(r, gw, { command, expected, callId, state });
  // what Codex sent the gateway: its key, and a body the provider got byte for byte but "model"
  const sent = tap.seen.filter((q) => q.path === '/v1/responses');
  assert.equal(sent.length, 2, `Codex → gateway: ${tap.seen.map((q) => `${q.method} ${q.url}`).join(', ')}`);
  assert.deepEqual(tap.seen.map((q) => `${q.method} ${q.url}`), ['POST /v1/responses', 'POST /v1/responses']);
  for (let i = 0; i < 2; i++) {
    const c = sent[i];
    assert.equal(c.headers.authorization, `Bearer ${CLIENT_KEY}`);
    assert.equal(c.headers['content-encoding'], undefined, 'Codex compressed its body');
    const from = `"model":${JSON.stringify(MODEL)}`;
    const clientBody = c.body.toString('utf8');
    assert.equal(clientBody.split(from).length, 2, `expected one ${from} in the client body`);
    assert.equal(mock.requests[i].body.toString('utf8'), clientBody.replace(from, '"model":"gpt-5"'), `request ${i + 1}: the upstream body is not the client's with "model" changed`);
  }
  // the tokens reported by the provider were logged
  assert.deepEqual(lines.map((l) => [l.in_tokens, l.cached_tokens, l.out_tokens]),
    [[USAGE_1.input_tokens - USAGE_1.cached, USAGE_1.cached, USAGE_1.output_tokens], [USAGE_2.input_tokens - USAGE_2.cached, USAGE_2.cached, USAGE_2.output_tokens]], JSON.stringify(lines));
});

test('Codex exec with a governed virtual key as the provider key: round trip, spend = the usage the provider reported × the price', { ...T, skip: SKIP }, async () => {
  mock.reset();
  trap.hits.length = 0;
  const token = randomBytes(6).toString('hex');
  const command = `printf 'gov-%s-%s' "$((1+2))" ${token}`;
  const expected = `gov-3-${token}`;
  const callId = `call_${randomBytes(12).toString('hex')}`;
  const state = scriptRoundTrip(mock, command, callId);
  const r = await runCodex({ baseUrl: `${gov.url}/v1`, key: VK, prompt: 'Run the command and report what it printed.', trapUrl: trap.url });
  const lines = await assertRoundTrip(r, gov, { command, expected, callId, state });
  const C1 = costMicros({ in: USAGE_1.input_tokens - USAGE_1.cached, out: USAGE_1.output_tokens, cacheRead: USAGE_1.cached }, PRICE);
  const C2 = costMicros({ in: USAGE_2.input_tokens - USAGE_2.cached, out: USAGE_2.output_tokens, cacheRead: USAGE_2.cached }, PRICE);
  assert.equal(C1, 1250 + 1200 + 1000); // 1000 in × $1.25 + 120 out × $10 + 8000 cached × $0.125, per M
  assert.equal(C2, 550 + 400 + 1120);
  assert.deepEqual(lines.map((l) => l.cost_usd), [C1 / 1e6, C2 / 1e6], JSON.stringify(lines));
  const e = entity(await quiet(gov.port, ADMIN, { extra: (u) => entity(u, 'virtual_keys', 'codex').requests === 2 }), 'virtual_keys', 'codex');
  assert.equal(e.requests, 2, JSON.stringify(e));
  assert.equal(e.spend_micros, C1 + C2, JSON.stringify(e));
  assert.equal(e.tokens, USAGE_1.input_tokens + USAGE_1.output_tokens + USAGE_2.input_tokens + USAGE_2.output_tokens, JSON.stringify(e));
  assert.equal(e.reserved_micros, 0, JSON.stringify(e));
  assert.equal(e.in_flight, 0, JSON.stringify(e));
});

test('Codex exec with a key the governed gateway does not know: 401 before anything goes upstream, Codex exits non-zero with the gateway\'s message', { ...T, skip: SKIP }, async () => {
  mock.reset();
  trap.hits.length = 0;
  mock.script = () => null; // a 404, should anything get through
  const spendBefore = entity(await quiet(gov.port, ADMIN), 'virtual_keys', 'codex');
  const logged = () => gov.logLines().filter((l) => l.path === '/v1/responses' && l.status === 401);
  const n0 = logged().length;
  const r = await runCodex({ baseUrl: `${gov.url}/v1`, key: 'sk-bf-not-a-virtual-key', prompt: 'Say hi.', trapUrl: trap.url });
  assert.equal(r.timedOut, false, diag(r, gov));
  assert.notEqual(r.code, 0, diag(r, gov));
  assert.match(r.stderr, /401 Unauthorized: missing or unknown virtual key/, diag(r, gov));
  assert.equal(r.last ?? '', '', diag(r, gov));
  for (let i = 0; i < 150 && logged().length === n0; i++) await sleep(20);
  await sleep(100);
  const lines = logged().slice(n0);
  assert.equal(lines.length, 1, `Codex retried a 401: ${JSON.stringify(lines)}`);
  assert.deepEqual([lines[0].method, lines[0].provider, lines[0].attempts, lines[0].error], ['POST', null, 0, 'missing or unknown virtual key'], JSON.stringify(lines[0]));
  assert.equal(mock.requests.length, 0, 'a request reached the provider');
  const e = entity(await quiet(gov.port, ADMIN), 'virtual_keys', 'codex');
  assert.deepEqual([e.requests, e.spend_micros, e.reserved_micros], [spendBefore.requests, spendBefore.spend_micros, 0], JSON.stringify(e));
  assert.deepEqual(trap.hits, [], `Codex tried to reach the internet: ${trap.hits.join(', ')}`);
});
