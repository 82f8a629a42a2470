// The real Claude Code CLI in Bedrock mode (CLAUDE_CODE_USE_BEDROCK=1) as the client of the
// gateway's inbound Bedrock routes, offline, in `-p` mode:
//
//   ANTHROPIC_BEDROCK_BASE_URL=${gw.url}/bedrock  AWS_REGION=us-east-1
//   CLAUDE_CODE_SKIP_BEDROCK_AUTH=1              (a gateway without virtual keys: nothing signed)
//   AWS_BEARER_TOKEN_BEDROCK=<virtual key>       (a gateway requiring keys: `Authorization: Bearer <vk>`)
//
// The gateway routes the model id of the path (`anthropic%2Fclaude-sonnet-4-5`, or a Bedrock
// id such as `us.anthropic.claude-sonnet-4-5-20250929-v1:0`) to the Anthropic mock, which
// must see an ordinary Messages request with the provider's key. A plain answer and a Bash
// tool round trip (the mock asks for Bash, Claude Code runs it, sends the tool_result, the
// mock answers with what it got).
//
// What Claude Code 2.1.330 sends in Bedrock mode (seen against a stub and in the gateway's
// log lines, which every test prints as a diagnostic):
//   GET  /bedrock/inference-profiles?type=SYSTEM_DEFINED     (the control-plane API,
//        ListInferenceProfiles, by the AWS SDK inside the CLI; Bearer when a token is set,
//        unsigned with SKIP_BEDROCK_AUTH; the CLI carries on whatever the gateway answers)
//   POST /bedrock/model/{id}/invoke                          (side requests with a bearer token:
//        small-model probes, e.g. us.anthropic.claude-haiku-4-5-20251001-v1:0 — ':' not encoded)
//   POST /bedrock/model/{id}/invoke-with-response-stream     (the conversation; '/' as %2F)
// with headers anthropic-version: 2023-06-01, anthropic-beta: claude-code-20250219,
// x-app: cli, x-claude-code-session-id, user-agent claude-cli/2.1.330, and the body's
// "anthropic_beta": [...] (interleaved-thinking-..., tool-search-tool-...) and
// "anthropic_version": "bedrock-2023-05-31". The body's betas become the upstream's
// anthropic-beta header (the CLI's header value is not added to them).
//
// The last test sends Claude Code on through the gateway to a Bedrock provider (the Bedrock
// mock, which verifies the gateway's SigV4 signature as AWS does).
//
// The CLI runs through claude_cli.mjs's runClaude without ANTHROPIC_BASE_URL or an Anthropic
// credential (auth 'none'), which a Bedrock-mode run must not have.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startGateway, tempDir, sleep } from '../lib/gateway.mjs';
import { findClaude, runClaude, RUN_TIMEOUT_MS } from '../lib/claude_cli.mjs';
import { startAnthropicMock, scripted, toolResults, toolResultText, lastUserMessage } from '../lib/mock_anthropic.mjs';
import { quiet, entity } from '../lib/usage.mjs';
import { startBedrockMock } from '../lib/mock_bedrock.mjs';

const found = findClaude();
const SKIP = found.bin ? false : found.reason;

const ADMIN = 'adm-cc-bedrock-1';
const VK = 'sk-bf-claude-bedrock-0001';
const ANT_KEY = 'sk-ant-upstream-cc-bedrock';

let a;     // Anthropic mock
let open;  // gateway without virtual keys
let gov;   // gateway requiring virtual keys
let br;    // a Bedrock runtime mock (verifies SigV4 like AWS)
let viaBr; // gateway requiring virtual keys whose provider is Bedrock itself
const BR_AKID = 'AKIDCLAUDECODEBEDROCK';
const BR_SECRET = 'cc/bedrock+secret/0123456789abcdefEXAMPLE';

function providers() {
  return [{
    name: 'anthropic', provider: 'anthropic', base_url: a.origin, apiKey: ANT_KEY, max_retries: 0,
    // any Claude id Claude Code may ask for in Bedrock mode (main, small/fast, probes) routes here
    models: ['*claude*'],
    // Bedrock's id for Sonnet 4.5 is served as claude-sonnet-4-5
    model_map: { '*anthropic.claude-sonnet-4-5*': 'claude-sonnet-4-5' },
  }];
}

before(async () => {
  if (SKIP) return;
  a = await startAnthropicMock({ name: 'ccb' });
  open = await startGateway({ config: { providers: providers() } });
  br = await startBedrockMock({ name: 'br', region: 'us-east-1', accessKeyId: BR_AKID, secretAccessKey: BR_SECRET });
  viaBr = await startGateway({
    config: {
      admin: { token: ADMIN },
      providers: [{
        name: 'br', provider: 'bedrock', region: 'us-east-1', access_key_id: BR_AKID, secret_access_key: BR_SECRET,
        base_url: br.origin, models: ['*anthropic.claude-*'], max_retries: 0,
      }],
      governance: { enforce: true, virtual_keys: [{ id: 'claude-user', value: VK }] },
    },
  });
  gov = await startGateway({
    config: {
      admin: { token: ADMIN },
      providers: providers(),
      governance: { enforce: true, virtual_keys: [{ id: 'claude-user', value: VK }] },
    },
  });
});

after(async () => {
  await open?.stop();
  await gov?.stop();
  await viaBr?.stop();
  await a?.close();
  await br?.close();
});

/**
 * `claude -p PROMPT --model MODEL --allowedTools Bash` in Bedrock mode, bounded by
 * RUN_TIMEOUT_MS. The environment is built from nothing: no ANTHROPIC_BASE_URL /
 * ANTHROPIC_API_KEY / AWS credentials of the developer's, no instance metadata lookups.
 */
function runClaudeBedrock({ baseUrl, prompt, model, auth }) {
  const home = tempDir('claude-bedrock-aws-');
  return runClaude(found.bin, {
    prompt, model, auth: 'none',
    env: {
      CLAUDE_CODE_USE_BEDROCK: '1',
      ANTHROPIC_BEDROCK_BASE_URL: baseUrl,
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: join(home, 'no-aws-config'),
      AWS_SHARED_CREDENTIALS_FILE: join(home, 'no-aws-credentials'),
      ...(auth.skip ? { CLAUDE_CODE_SKIP_BEDROCK_AUTH: '1' } : { AWS_BEARER_TOKEN_BEDROCK: auth.bearer }),
    },
  });
}

/** The gateway's log lines since `from` (index into gw.logLines()): what the CLI requested
 * (the test's own /api/usage reads left out). */
function requested(gw, from) {
  return gw.logLines().slice(from).filter((l) => 'path' in l && !l.path.startsWith('/api/'));
}

/** Log lines reach stdout a moment after the answer: wait until no new one came for 150 ms. */
async function settle(gw, maxMs = 2000) {
  const until = Date.now() + maxMs;
  let n = -1;
  while (Date.now() < until && gw.stdout.length !== n) {
    n = gw.stdout.length;
    await sleep(150);
  }
}
function describe(lines) {
  return lines.map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''}${l.error ? ` (${l.error})` : ''}`).join('\n');
}
function diag(gw, from, r) {
  return `${r.show()}\n--- gateway log ---\n${describe(requested(gw, from)).split('\n').slice(-25).join('\n')}\n--- mock ---\n${a.summary()}`;
}

/** Every POST /bedrock/model/... of the run succeeded; the paths are printed as a diagnostic. */
async function checkPaths(t, gw, from) {
  await settle(gw);
  const lines = requested(gw, from);
  t.diagnostic(`paths Claude Code requested in Bedrock mode:\n${describe(lines)}`);
  const model = lines.filter((l) => l.method === 'POST' && /^\/bedrock\/model\//.test(l.path));
  assert.ok(model.some((l) => /\/invoke-with-response-stream(\?|$)/.test(l.path)), `no streaming invoke:\n${describe(lines)}`);
  const bad = model.filter((l) => l.status >= 400);
  assert.deepEqual(bad.map((l) => `${l.path} ${l.status}`), [], `model requests refused:\n${describe(lines)}`);
  // (the test harness's own readiness probe, GET /health, can be logged late: not the CLI's)
  const elsewhere = lines.filter((l) => !l.path.startsWith('/bedrock/') && !(l.method === 'GET' && l.path === '/health'));
  assert.deepEqual(elsewhere.map((l) => `${l.method} ${l.path}`), [], 'Claude Code in Bedrock mode requested paths outside the base URL');
  return lines;
}

/** An upstream request of the conversation: provider key, no client credential, Bedrock fields gone. */
function assertConversationRequest(up, { model = 'claude-sonnet-4-5', clientKey } = {}) {
  assert.equal(up.method, 'POST');
  assert.equal(up.path, '/v1/messages');
  assert.equal(up.headers['x-api-key'], ANT_KEY, 'the upstream key was not used');
  assert.equal(up.headers.authorization, undefined, `the client's Authorization reached the upstream: ${up.headers.authorization}`);
  if (clientKey) {
    assert.ok(!JSON.stringify(up.rawHeaders).includes(clientKey), `the virtual key leaked upstream: ${up.rawHeaders}`);
    assert.ok(!up.body.toString('latin1').includes(clientKey), 'the virtual key leaked into the upstream body');
  }
  assert.equal(up.headers['anthropic-version'], '2023-06-01');
  assert.equal(up.json.model, model);
  assert.equal(up.json.stream, true);
  assert.ok(!('anthropic_version' in up.json), 'anthropic_version reached the Anthropic API');
  assert.ok(!('anthropic_beta' in up.json), 'anthropic_beta reached the Anthropic API in the body');
  // the betas Claude Code put in the body arrive as the anthropic-beta header
  const betas = (up.headers['anthropic-beta'] || '').split(',').map((s) => s.trim());
  assert.ok(betas.some((b) => /^interleaved-thinking-/.test(b)), `the body's anthropic_beta list was not forwarded as a header: ${up.headers['anthropic-beta']}`);
  assert.ok(Array.isArray(up.json.tools) && up.json.tools.some((t) => t.name === 'Bash'), 'no Bash tool offered');
  assert.ok(up.json.thinking && up.json.metadata?.user_id, `CLI fields missing: ${Object.keys(up.json).join(',')}`);
}

/** The conversation's requests to the mock (the ones offering tools; side requests offer none). */
function conversation() {
  return a.messages().filter((m) => Array.isArray(m.json?.tools) && m.json.tools.length > 0);
}

test(`Claude Code (${found.version ?? 'not available'}) Bedrock mode, CLAUDE_CODE_SKIP_BEDROCK_AUTH, gateway without keys, --model anthropic/claude-sonnet-4-5: plain answer`, { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async (t) => {
  a.reset();
  a.behave({ text: 'bifrost-bedrock-plain-5c1e' });
  const from = open.logLines().length;
  const r = await runClaudeBedrock({ baseUrl: `${open.url}/bedrock`, prompt: 'Say hello', model: 'anthropic/claude-sonnet-4-5', auth: { skip: true } });
  assert.equal(r.code, 0, diag(open, from, r));
  assert.match(r.stdout, /bifrost-bedrock-plain-5c1e/, diag(open, from, r));
  await checkPaths(t, open, from);
  const conv = conversation();
  assert.ok(conv.length >= 1, diag(open, from, r));
  t.diagnostic(`upstream saw: ${conv[0].method} ${conv[0].url} anthropic-version=${conv[0].headers['anthropic-version']} anthropic-beta=${conv[0].headers['anthropic-beta']} body keys=${Object.keys(conv[0].json).join(',')}`);
  assertConversationRequest(conv[0]);
  // every request the mock got carried the upstream key and no client credential
  for (const up of a.requests) assert.equal(up.headers['x-api-key'], ANT_KEY);
  // billed from the stream's usage like any Anthropic stream
  const served = open.logLines().slice(from).filter((l) => l.provider === 'anthropic/claude-sonnet-4-5' && l.stream === true);
  assert.ok(served.length >= 1, diag(open, from, r));
  assert.deepEqual([served.at(-1).in_tokens, served.at(-1).out_tokens], [25, 9], JSON.stringify(served.at(-1)));
});

test('Claude Code Bedrock mode, CLAUDE_CODE_SKIP_BEDROCK_AUTH: Bash tool round trip (tool_use → run → tool_result → answer)', { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async (t) => {
  a.reset();
  a.behave(scripted({ tool: 'Bash', input: { command: 'echo bedrock-tool-ok', description: 'Print a marker' }, id: 'toolu_01BedrockCC' }));
  const from = open.logLines().length;
  const r = await runClaudeBedrock({ baseUrl: `${open.url}/bedrock`, prompt: 'Run the marker command and report its output', model: 'anthropic/claude-sonnet-4-5', auth: { skip: true } });
  assert.equal(r.code, 0, diag(open, from, r));
  await checkPaths(t, open, from);
  const withResult = a.messages().find((m) => toolResults(lastUserMessage(m.json)).length > 0);
  assert.ok(withResult, `the mock never saw a tool_result\n${diag(open, from, r)}`);
  const tr = toolResults(lastUserMessage(withResult.json))[0];
  assert.equal(tr.tool_use_id, 'toolu_01BedrockCC');
  assert.notEqual(tr.is_error, true, `the tool failed: ${toolResultText(tr)}`);
  assert.match(toolResultText(tr), /^bedrock-tool-ok/);
  assertConversationRequest(withResult);
  assert.match(r.stdout, /TOOL RESULT: bedrock-tool-ok/, diag(open, from, r));
});

test('Claude Code Bedrock mode, AWS_BEARER_TOKEN_BEDROCK=<virtual key>, gateway requiring keys, Bedrock id us.anthropic.claude-sonnet-4-5-20250929-v1:0: tool round trip, upstream sees only the provider key', { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async (t) => {
  a.reset();
  a.behave(scripted({ tool: 'Bash', input: { command: 'echo governed-$((6*7))', description: 'Arithmetic' }, id: 'toolu_01BedrockVK' }));
  const from = gov.logLines().length;
  const before = entity(await quiet(gov.port, ADMIN), 'virtual_keys', 'claude-user').requests;
  const r = await runClaudeBedrock({ baseUrl: `${gov.url}/bedrock`, prompt: 'Compute it with the shell', model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', auth: { bearer: VK } });
  assert.equal(r.code, 0, diag(gov, from, r));
  assert.match(r.stdout, /TOOL RESULT: governed-42/, diag(gov, from, r));
  const lines = await checkPaths(t, gov, from);
  const conv = conversation();
  assert.ok(conv.length >= 2, diag(gov, from, r));
  for (const up of conv) assertConversationRequest(up, { clientKey: VK });
  for (const up of a.requests) {
    assert.equal(up.headers['x-api-key'], ANT_KEY, `${up.url}: not the provider key`);
    assert.ok(!JSON.stringify(up.rawHeaders).includes(VK), `${up.url}: the virtual key leaked upstream`);
  }
  // the model requests were governed as the key (each counted once)
  const modelReqs = lines.filter((l) => l.method === 'POST' && /^\/bedrock\/model\//.test(l.path)).length;
  const after = entity(await quiet(gov.port, ADMIN), 'virtual_keys', 'claude-user').requests;
  assert.equal(after - before, modelReqs, `the virtual key counted ${after - before} requests for ${modelReqs} model requests`);
});

test('Claude Code Bedrock mode with a wrong AWS_BEARER_TOKEN_BEDROCK: refused by the gateway, nothing reaches the upstream, the CLI fails', { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async (t) => {
  a.reset();
  a.behave({ text: 'must-not-be-seen' });
  const from = gov.logLines().length;
  const r = await runClaudeBedrock({ baseUrl: `${gov.url}/bedrock`, prompt: 'Say hello', model: 'anthropic/claude-sonnet-4-5', auth: { bearer: 'sk-bf-not-a-key' } });
  await settle(gov);
  const lines = requested(gov, from);
  t.diagnostic(`paths Claude Code requested with a wrong key:\n${describe(lines)}\n--- CLI ---\n${r.stdout.slice(0, 500)}${r.stderr.slice(0, 500)}`);
  assert.notEqual(r.code, 0, diag(gov, from, r));
  assert.doesNotMatch(r.stdout, /must-not-be-seen/);
  assert.equal(a.requests.length, 0, `a request with a wrong key reached the upstream\n${diag(gov, from, r)}`);
  const model = lines.filter((l) => /^\/bedrock\/model\//.test(l.path));
  assert.ok(model.length >= 1, diag(gov, from, r));
  for (const l of model) assert.ok([401, 403].includes(l.status), `${l.path}: ${l.status}`);
});

test('Claude Code Bedrock mode → gateway (AWS_BEARER_TOKEN_BEDROCK=<vk>) → a Bedrock provider: requests re-signed with the provider\'s SigV4 credentials, tool round trip', { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async (t) => {
  br.reset();
  const script = scripted({ tool: 'Bash', input: { command: 'echo via-bedrock-ok', description: 'Print a marker' }, id: 'toolu_01ViaBedrock' });
  // scripted() reads Anthropic requests; the Bedrock mock's records carry the same body
  br.behave((rec) => script({ ...rec, method: 'POST', path: '/v1/messages' }));
  const from = viaBr.logLines().length;
  const r = await runClaudeBedrock({ baseUrl: `${viaBr.url}/bedrock`, prompt: 'Run the marker command', model: 'us.anthropic.claude-sonnet-4-5-20250929-v1:0', auth: { bearer: VK } });
  const show = `${diag(viaBr, from, r)}\n--- bedrock mock ---\n${br.summary()}`;
  assert.equal(r.code, 0, show);
  assert.match(r.stdout, /TOOL RESULT: via-bedrock-ok/, show);
  await checkPaths(t, viaBr, from);
  t.diagnostic(`Bedrock saw:\n${br.summary()}`);
  assert.ok(br.requests.length >= 2, show);
  for (const up of br.requests) {
    assert.ok(up.auth?.ok, `${up.url}: the Bedrock mock refused the gateway's signature: ${JSON.stringify(up.auth)}`);
    assert.ok(!JSON.stringify(up.rawHeaders).includes(VK) && !up.body.includes(VK), `${up.url}: the virtual key reached Bedrock`);
    assert.equal(up.json?.anthropic_version, 'bedrock-2023-05-31', up.url);
    assert.ok(!('model' in up.json) && !('stream' in up.json), `${up.url}: ${Object.keys(up.json)}`);
  }
  const conv = br.requests.filter((x) => Array.isArray(x.json?.tools) && x.json.tools.length > 0);
  assert.ok(conv.length >= 2, show);
  for (const up of conv) {
    assert.equal(up.path, '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream');
    assert.ok((up.json.anthropic_beta || []).some((b) => /^interleaved-thinking-/.test(b)), `anthropic_beta ${JSON.stringify(up.json.anthropic_beta)}`);
  }
  const withResult = conv.find((x) => toolResults(lastUserMessage(x.json)).length > 0);
  assert.ok(withResult, show);
  const tr = toolResults(lastUserMessage(withResult.json))[0];
  assert.equal(tr.tool_use_id, 'toolu_01ViaBedrock');
  assert.match(toolResultText(tr), /^via-bedrock-ok/);
});
