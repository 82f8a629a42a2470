// The real Claude Code CLI (@anthropic-ai/claude-code, a native binary shipped in the npm
// package) as the client, offline, in `-p` mode: ANTHROPIC_BASE_URL points at the gateway,
// which routes to the Anthropic mock. A plain answer and a tool round trip (the mock asks for
// Bash, Claude Code runs it and sends the tool_result, the mock answers with what it got).
//
// As root, Claude Code refuses --dangerously-skip-permissions (and bypassPermissions), so the
// tool is allowed with `--allowedTools Bash`, which works for root and non-root alike.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../lib/gateway.mjs';
import { findClaude, runClaude, RUN_TIMEOUT_MS } from '../lib/claude_cli.mjs';
import { startAnthropicMock, scripted, toolResults, toolResultText, lastUserMessage } from '../lib/mock_anthropic.mjs';

const found = findClaude();
const SKIP = found.bin ? false : found.reason;

let a, gw;

before(async () => {
  if (SKIP) return;
  a = await startAnthropicMock({ name: 'cc' });
  gw = await startGateway({
    config: {
      providers: [
        { name: 'anthropic', provider: 'anthropic', base_url: a.origin, apiKey: 'sk-ant-up', max_retries: 0, models: ['claude-*'] },
      ],
    },
  });
});

after(async () => {
  await gw?.stop();
  await a?.close();
});

/** What the gateway logged for this run (paths and statuses) plus what the mock saw. */
function diag(r) {
  const lines = gw.logLines().filter((l) => 'path' in l).map((l) => `${l.method} ${l.path} → ${l.status} ${l.provider ?? ''}`);
  return `${r.show()}\n--- gateway log ---\n${lines.slice(-20).join('\n')}\n--- mock ---\n${a.summary()}`;
}

function assertCliMessagesRequest(up) {
  assert.equal(up.method, 'POST');
  assert.equal(up.path, '/v1/messages');
  assert.equal(up.headers['x-api-key'], 'sk-ant-up', 'the upstream key was not used');
  assert.equal(up.headers.authorization, undefined, 'the client Authorization leaked upstream');
  assert.ok(!JSON.stringify(up.rawHeaders).includes('vk-test'), `the client key leaked upstream: ${up.rawHeaders}`);
  assert.equal(up.headers['anthropic-version'], '2023-06-01');
  assert.match(up.headers['anthropic-beta'] || '', /claude-code-\d{8}/, 'the CLI anthropic-beta list was not forwarded');
  assert.equal(up.json.model, 'claude-sonnet-4-5');
  assert.equal(up.json.stream, true);
  assert.ok(Array.isArray(up.json.tools) && up.json.tools.some((t) => t.name === 'Bash'), 'no Bash tool offered');
}

test(`Claude Code (${found.version ?? 'not available'}) -p via ANTHROPIC_BASE_URL=…/anthropic: plain answer`, { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async () => {
  a.reset();
  a.behave({ text: 'bifrost-plain-answer-7f3a' });
  const r = await runClaude(found.bin, { baseUrl: `${gw.url}/anthropic`, prompt: 'Say hello', model: 'anthropic/claude-sonnet-4-5' });
  assert.equal(r.code, 0, diag(r));
  assert.match(r.stdout, /bifrost-plain-answer-7f3a/, diag(r));
  const msgs = a.messages();
  assert.ok(msgs.length >= 1, diag(r));
  assertCliMessagesRequest(msgs[0]);
  assert.equal(msgs[0].query, 'beta=true', 'the ?beta=true query was not kept');
  // the CLI's Anthropic-only fields arrive (byte-exactness itself is covered by anthropic.test.mjs)
  assert.ok(msgs[0].json.thinking && msgs[0].json.context_management && msgs[0].json.metadata?.user_id, Object.keys(msgs[0].json).join(','));
  assert.ok(Array.isArray(msgs[0].json.system) && msgs[0].json.system.some((blk) => blk.cache_control), 'system blocks with cache_control');
  // the stream was billed from message_start / message_delta
  const billed = gw.logLines().filter((l) => l.provider === 'anthropic/claude-sonnet-4-5');
  assert.ok(billed.length >= 1, diag(r));
  const l = billed.at(-1);
  assert.deepEqual([l.stream, l.in_tokens, l.out_tokens, l.cached_tokens, l.cache_write_tokens], [true, 25, 9, 100, 50], JSON.stringify(l));
  // everything the CLI sent to the gateway was answered with 2xx
  const bad = gw.logLines().filter((l) => 'path' in l && l.status >= 400);
  assert.deepEqual(bad, [], diag(r));
});

test('Claude Code -p via …/anthropic: Bash tool round trip (tool_use → run → tool_result → answer)', { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async () => {
  a.reset();
  a.behave(scripted({ tool: 'Bash', input: { command: 'echo bifrost-tool-ok', description: 'Print a marker' }, id: 'toolu_01BifrostCC' }));
  const r = await runClaude(found.bin, { baseUrl: `${gw.url}/anthropic`, prompt: 'Run the marker command and report its output', model: 'anthropic/claude-sonnet-4-5' });
  assert.equal(r.code, 0, diag(r));
  const msgs = a.messages();
  const withResult = msgs.find((m) => toolResults(lastUserMessage(m.json)).length > 0);
  assert.ok(withResult, `the mock never saw a tool_result\n${diag(r)}`);
  const tr = toolResults(lastUserMessage(withResult.json))[0];
  assert.equal(tr.tool_use_id, 'toolu_01BifrostCC');
  assert.notEqual(tr.is_error, true, `the tool failed: ${toolResultText(tr)}`);
  assert.match(toolResultText(tr), /^bifrost-tool-ok/);
  assertCliMessagesRequest(withResult);
  assert.match(r.stdout, /TOOL RESULT: bifrost-tool-ok/, diag(r));
});

test('Claude Code -p via the bare root URL, bare model routed by a glob, ANTHROPIC_AUTH_TOKEN: tool round trip', { skip: SKIP, timeout: RUN_TIMEOUT_MS + 10_000 }, async () => {
  a.reset();
  a.behave(scripted({ tool: 'Bash', input: { command: 'echo root-$((40+2))', description: 'Arithmetic' }, id: 'toolu_01Root' }));
  const r = await runClaude(found.bin, { baseUrl: gw.url, prompt: 'Compute it with the shell', model: 'claude-sonnet-4-5', auth: 'bearer' });
  assert.equal(r.code, 0, diag(r));
  const msgs = a.messages();
  assert.ok(msgs.length >= 2, diag(r));
  for (const m of msgs) assertCliMessagesRequest(m);
  assert.match(r.stdout, /TOOL RESULT: root-42/, diag(r));
  const served = gw.logLines().filter((l) => l.provider === 'anthropic/claude-sonnet-4-5');
  assert.ok(served.length >= 2, diag(r));
});
