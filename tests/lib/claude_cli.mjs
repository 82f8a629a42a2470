// Run the real Claude Code CLI (@anthropic-ai/claude-code from tests/node_modules) offline
// against a local base URL, bounded in time.
//
//   const found = findClaude();            // { bin, version } or { reason } (why it can't run here)
//   const r = await runClaude(found.bin, { baseUrl, prompt, model, auth: 'api-key' | 'bearer' | 'none' });
//   (env: extra variables for the CLI, e.g. { NODE_EXTRA_CA_CERTS: ca.crt } for an https base URL)
//   r = { code, signal, stdout, stderr, timedOut, ms, show() }
//
// `-p` mode with `--allowedTools Bash`: as root, Claude Code refuses
// --dangerously-skip-permissions, but an allowed tool runs without prompting either way.
// A temp HOME per run, no network beyond the base URL (non-essential traffic, autoupdater,
// telemetry and error reporting off), CLAUDE_CODE_MAX_RETRIES=0.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, REPO } from './gateway.mjs';

export const RUN_TIMEOUT_MS = 60_000;

/** The CLI binary, or a reason why it cannot run here. */
export function findClaude() {
  const candidates = [
    join(REPO, 'tests', 'node_modules', '.bin', 'claude'),
    // the postinstall copies this over bin/claude.exe; if install scripts were skipped, use it directly
    join(REPO, 'tests', 'node_modules', '@anthropic-ai', `claude-code-${process.platform}-${process.arch}`, 'claude'),
  ];
  const tried = [];
  for (const bin of candidates) {
    if (!existsSync(bin)) { tried.push(`${bin}: missing`); continue; }
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH, HOME: tempDir('claude-home-'), DISABLE_AUTOUPDATER: '1' } });
    if (r.status === 0 && /Claude Code/.test(r.stdout)) return { bin, version: r.stdout.trim() };
    tried.push(`${bin}: exit ${r.status} signal ${r.signal} ${r.error ? r.error.message : ''} ${(r.stderr || r.stdout || '').trim().slice(0, 300)}`);
  }
  return { reason: `Claude Code CLI cannot run here (run (cd tests && npm ci)): ${tried.join('; ')}` };
}

/** Run `claude -p PROMPT` bounded by RUN_TIMEOUT_MS; SIGKILLed on timeout. The environment is
 * built from nothing but `env`, ANTHROPIC_BASE_URL = baseUrl (when given) and the credential
 * `auth` names ('none': the caller's env carries it, as in Bedrock mode). */
export function runClaude(bin, { baseUrl, prompt, model, auth = 'api-key', args = [], env: extraEnv = {} }) {
  const home = tempDir('claude-home-');
  const cwd = tempDir('claude-cwd-');
  mkdirSync(join(home, '.claude'), { recursive: true });
  const env = {
    PATH: process.env.PATH,
    HOME: home,
    TMPDIR: process.env.TMPDIR || '/tmp',
    LANG: 'C.UTF-8',
    ...(baseUrl ? { ANTHROPIC_BASE_URL: baseUrl } : {}),
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    CLAUDE_CODE_MAX_RETRIES: '0',
    ...(auth === 'api-key' ? { ANTHROPIC_API_KEY: 'vk-test' } : auth === 'none' ? {} : { ANTHROPIC_AUTH_TOKEN: 'vk-test-token' }),
    ...extraEnv,
  };
  const argv = ['-p', prompt, '--model', model, '--allowedTools', 'Bash', ...args];
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(bin, argv, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, RUN_TIMEOUT_MS);
    const kill = () => { try { child.kill('SIGKILL'); } catch { /* gone */ } };
    process.once('exit', kill);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      process.removeListener('exit', kill);
      resolve({ code, signal, stdout, stderr, timedOut, ms: Date.now() - t0, show() { return `exit ${code} ${signal || ''}${timedOut ? ' (timed out)' : ''} after ${Date.now() - t0} ms\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`; } });
    });
  });
}

