// The real Codex CLI (`@openai/codex`, installed by tests/package.json) for the integration
// tests: find its native binary, run `codex exec` offline against a gateway with a generated
// CODEX_HOME (every other connection goes to a trap that refuses it), record what Codex sends
// (a tap in front of the gateway), and read a shell command's output from a tool result.
//
//   const codex = findCodex();                          // { bin, version } or { reason } (skip)
//   const trap = await startTrap(); const tap = await startTap(gw.port);
//   const r = await runCodex(codex.bin, { model, baseUrl: `http://127.0.0.1:${tap.port}/v1`, key, prompt, trapUrl: trap.url });
import http from 'node:http';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, REPO } from './gateway.mjs';
import { requestRecorder } from './record.mjs';

export const RUN_TIMEOUT_MS = 40_000;
const TRIPLES = { 'linux-x64': 'x86_64-unknown-linux-musl', 'linux-arm64': 'aarch64-unknown-linux-musl',
  'darwin-x64': 'x86_64-apple-darwin', 'darwin-arm64': 'aarch64-apple-darwin' };

export function findCodex() {
  const key = `${process.platform}-${process.arch}`;
  const triple = TRIPLES[key];
  if (!triple) return { reason: `no Codex binary for ${key}` };
  const bin = join(REPO, 'tests', 'node_modules', '@openai', `codex-${key}`, 'vendor', triple, 'bin', 'codex');
  if (!existsSync(bin)) return { reason: `Codex CLI missing at ${bin} (run (cd tests && npm ci))` };
  const home = tempDir('codex-ver-');
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 20_000, env: { PATH: process.env.PATH, HOME: home, CODEX_HOME: home } });
  if (r.status === 0 && /codex-cli \d/.test(r.stdout)) return { bin, version: r.stdout.trim() };
  return { reason: `Codex CLI cannot run here: exit ${r.status} signal ${r.signal} ${r.error?.message ?? ''} ${(r.stderr || r.stdout || '').slice(0, 300)}` };
}

/** `codex exec PROMPT` against baseUrl with the key in $BIFROST_CODEX_KEY, offline; bounded, its
 * process group SIGKILLed at the end. → { code, signal, stdout, stderr, last (the -o file), timedOut, ms, show() } */
export function runCodex(bin, { model, baseUrl, key, prompt, trapUrl, config = [], args = [] }) {
  const home = tempDir('codex-home-');
  const cwd = tempDir('codex-cwd-');
  const lastFile = join(home, 'last-message.txt');
  writeFileSync(join(home, 'config.toml'), [
    `model = ${JSON.stringify(model)}`,
    'model_provider = "bifrost"',
    'approval_policy = "never"',
    'sandbox_mode = "danger-full-access"',
    'check_for_update_on_startup = false',
    ...config,
    '',
    '[analytics]',
    'enabled = false',
    '',
    '[model_providers.bifrost]',
    'name = "Bifrost"',
    `base_url = ${JSON.stringify(baseUrl)}`,
    'env_key = "BIFROST_CODEX_KEY"',
    'wire_api = "responses"',
    'request_max_retries = 0',
    'stream_max_retries = 0',
    'stream_idle_timeout_ms = 20000',
    '',
  ].join('\n'));
  const env = {
    PATH: process.env.PATH, HOME: home, CODEX_HOME: home, TMPDIR: process.env.TMPDIR || '/tmp', LANG: 'C.UTF-8', TERM: 'dumb',
    BIFROST_CODEX_KEY: key,
    HTTPS_PROXY: trapUrl, HTTP_PROXY: trapUrl, ALL_PROXY: trapUrl, https_proxy: trapUrl, http_proxy: trapUrl, all_proxy: trapUrl,
    NO_PROXY: '127.0.0.1', no_proxy: '127.0.0.1',
  };
  const argv = ['exec', '--strict-config', '--skip-git-repo-check', '--ephemeral', '-s', 'danger-full-access', '-c', 'approval_policy="never"',
    '--disable', 'plugins', '--disable', 'apps', ...args, '--color', 'never', '-o', lastFile, prompt];
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(bin, argv, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d) => { stderr += d; });
    let timedOut = false;
    const killGroup = () => { try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ } };
    const timer = setTimeout(() => { timedOut = true; killGroup(); }, RUN_TIMEOUT_MS);
    process.once('exit', killGroup);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      killGroup();
      process.removeListener('exit', killGroup);
      const last = existsSync(lastFile) ? readFileSync(lastFile, 'utf8') : null;
      const ms = Date.now() - t0;
      resolve({ code, signal, stdout, stderr, last, timedOut, ms,
        show() { return `codex exit ${code} ${signal || ''}${timedOut ? ' (timed out)' : ''} after ${ms} ms\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr.slice(-4000)}`; } });
    });
  });
}

/** A proxy that refuses every connection and records it: Codex must not reach the internet. */
export async function startTrap() {
  const hits = [];
  const server = http.createServer((req, res) => { hits.push(`${req.method} ${req.url}`); res.writeHead(403); res.end(); });
  server.on('connect', (req, sock) => { hits.push(`CONNECT ${req.url}`); sock.destroy(); });
  server.on('clientError', (err, sock) => sock.destroy());
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { hits, url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) };
}

/** A recording pass-through in front of the gateway: `seen` holds what Codex sent. */
export async function startTap(targetPort, { dump } = {}) {
  const record = requestRecorder();
  const seen = [];
  const server = http.createServer(async (req, res) => {
    const rec = await record(req);
    seen.push(rec);
    if (dump) writeFileSync(`${dump}.${seen.length}.json`, rec.body);
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i];
      if (/^(connection|keep-alive|transfer-encoding)$/i.test(k)) continue;
      headers[k] = req.rawHeaders[i + 1];
    }
    headers['content-length'] = rec.body.length;
    const up = http.request({ host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers, agent: false }, (ur) => {
      res.writeHead(ur.statusCode, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    up.end(rec.body);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { seen, port: server.address().port, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }) };
}

/** A shell tool result's command output (Codex's exec_command text, or a JSON {output}). */
export function commandOutput(s) {
  const i = s.indexOf('\nOutput:\n');
  if (i >= 0) return s.slice(i + '\nOutput:\n'.length).replace(/\n$/, '');
  try { const j = JSON.parse(s); if (typeof j.output === 'string') return j.output.replace(/\n$/, ''); } catch { /* text */ }
  return s.replace(/\n$/, '');
}
