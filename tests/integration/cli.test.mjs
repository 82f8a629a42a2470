// Command line: --version, --help, `check`, zero-config start, ./config.json discovery,
// BIFROST_LISTEN and flag precedence, several workers.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import http from 'node:http';
import { runBifrost, spawnBifrost, waitHealthy, startGateway, chat, request, freePort, tempDir, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const procs = [];
const mocks = [];
after(async () => {
  for (const p of procs) { if (!p.exited) { p.child.kill('SIGKILL'); await p.wait(3000); } }
  for (const m of mocks) await m.close();
});

function spawnTracked(opts) { const p = spawnBifrost(opts); procs.push(p); return p; }
async function stopProc(p) { if (!p.exited) p.child.kill('SIGTERM'); return p.wait(5000); }

test('--version prints a version and exits 0', async () => {
  const r = await runBifrost(['--version']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(`${r.stdout}\n${r.stderr}`, /bifrost/i);
  assert.match(`${r.stdout}\n${r.stderr}`, /\S+/);
});

test('--help prints usage with every flag and exits 0', async () => {
  const r = await runBifrost(['--help']);
  assert.equal(r.code, 0, r.stderr);
  const out = `${r.stdout}\n${r.stderr}`;
  for (const f of ['--config', '--listen', '--workers', '--data-dir', 'check']) assert.ok(out.includes(f), `--help does not mention ${f}:\n${out}`);
});

test('an unknown flag exits non-zero', async () => {
  const r = await runBifrost(['--no-such-flag'], { timeoutMs: 5000 });
  assert.notEqual(r.code, 0);
  assert.equal(r.signal, null, 'it did not exit by itself (killed after 5 s)');
});

test('check -c good.json → exit 0', async () => {
  const dir = tempDir();
  const f = join(dir, 'good.json');
  writeFileSync(f, JSON.stringify({
    listen: '127.0.0.1:9999',
    log_requests: true,
    limits: { max_body_bytes: 1048576, max_header_bytes: 16384, header_timeout_ms: 5000, idle_timeout_ms: 30000 },
    providers: [
      { name: 'a', provider: 'openai', apiKey: 'sk-a', base_url: 'http://127.0.0.1:1/v1', models: ['gpt-*'], model_map: { 'claude-*': 'gpt-4o' },
        headers: { 'x-a': '1' }, weight: 2, timeout_ms: 1000, connect_timeout_ms: 500, stream_idle_timeout_ms: 1000 },
      { name: 'b', provider: 'groq', keys: [{ value: 'k1', weight: 1 }, { value: 'k2', weight: 3 }] },
    ],
  }));
  const r = await runBifrost(['check', '-c', f]);
  assert.equal(r.code, 0, `check rejected a good config:\n${r.stdout}\n${r.stderr}`);
});

test('check accepts the map form of providers', async () => {
  const dir = tempDir();
  const f = join(dir, 'map.json');
  writeFileSync(f, JSON.stringify({ providers: { openai: { keys: [{ value: 'sk-x', weight: 1 }] }, groq: { keys: [{ value: 'sk-y', weight: 1 }] } } }));
  const r = await runBifrost(['check', '-c', f]);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
});

test('check -c bad.json → exit 1 listing every problem on stderr', async () => {
  const dir = tempDir();
  const f = join(dir, 'bad.json');
  writeFileSync(f, JSON.stringify({
    providers: [
      { name: 'alpha', provider: 'nosuchprovider', apiKey: 'x' },
      { name: 'dup', provider: 'openai', apiKey: 'x' },
      { name: 'dup', provider: 'openai', apiKey: 'y' },
      { name: 'gamma', provider: 'openai', apiKey: 'z', weight: 'heavy' },
    ],
  }));
  const r = await runBifrost(['check', '-c', f]);
  assert.equal(r.code, 1, `exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, /nosuchprovider/, `unknown provider kind not reported:\n${r.stderr}`);
  assert.match(r.stderr, /dup/, `duplicate name not reported:\n${r.stderr}`);
  assert.match(r.stderr, /weight/, `non-numeric weight not reported:\n${r.stderr}`);
  const problemLines = r.stderr.split('\n').filter((l) => /nosuchprovider|dup|weight/.test(l));
  assert.ok(problemLines.length >= 3, `expected each problem on its own line:\n${r.stderr}`);
});

test('check on invalid JSON → exit 1 with a message', async () => {
  const dir = tempDir();
  const f = join(dir, 'broken.json');
  writeFileSync(f, '{"providers": [ {"name": "a", }');
  const r = await runBifrost(['check', '-c', f]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.trim().length > 0, 'no message on stderr');
});

test('check on a missing file → exit 1', async () => {
  const r = await runBifrost(['check', '-c', '/nonexistent/bifrost-config.json']);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.trim().length > 0);
});

test('starting with a broken config fails with a non-zero exit and a message', async () => {
  const dir = tempDir();
  const f = join(dir, 'bad.json');
  writeFileSync(f, JSON.stringify({ providers: [{ name: 'z', provider: 'nosuchprovider' }] }));
  const port = await freePort();
  const r = await runBifrost(['-c', f, '-l', `127.0.0.1:${port}`, '-w', '1', '-d', join(dir, 'data')], { timeoutMs: 5000 });
  assert.notEqual(r.code, 0, 'started with an invalid config');
  assert.equal(r.signal, null, 'did not exit by itself');
  assert.match(r.stderr, /nosuchprovider/);
});

test('zero config: OPENAI_API_KEY only, empty cwd → healthy, openai provider found', async () => {
  const cwd = tempDir();
  const port = await freePort();
  const p = spawnTracked({ args: ['-l', `127.0.0.1:${port}`], env: { OPENAI_API_KEY: 'sk-test' }, cwd });
  await waitHealthy(p, port, 10000);
  const models = await request(port, { path: '/v1/models' });
  const health = await request(port, { path: '/health' });
  assert.equal(health.status, 200, show(health));
  const said = `${p.stdout.join('\n')}\n${p.stderr.join('\n')}\n${models.text}\n${health.text}`;
  assert.match(said, /openai/i, `nothing mentions the openai provider:\n${said}`);
  assert.ok(!said.includes('sk-test'), 'the API key was printed');
  const { code } = await stopProc(p);
  assert.equal(code, 0);
});

test('zero config with no keys at all still starts and answers /health', async () => {
  const cwd = tempDir();
  const port = await freePort();
  const p = spawnTracked({ args: ['-l', `127.0.0.1:${port}`], cwd });
  await waitHealthy(p, port, 10000);
  const r = await request(port, { path: '/health' });
  assert.equal(r.json().status, 'ok');
  await stopProc(p);
});

test('no -c: ./config.json in the working directory is used', async () => {
  const m = await startMock({ name: 'cwdcfg' });
  mocks.push(m);
  const cwd = tempDir();
  writeFileSync(join(cwd, 'config.json'), JSON.stringify({ providers: [{ name: 'fromcwd', provider: 'openai', apiKey: 'sk-cwd', base_url: m.baseUrl }] }));
  const port = await freePort();
  const p = spawnTracked({ args: ['-l', `127.0.0.1:${port}`, '-w', '1'], cwd });
  await waitHealthy(p, port, 10000);
  const r = await chat(port, { model: 'fromcwd/gpt-4o', messages: [] });
  assert.equal(r.status, 200, r.text);
  assert.equal(m.requests[0].headers.authorization, 'Bearer sk-cwd');
  await stopProc(p);
});

test('listen precedence: config file < BIFROST_LISTEN < -l flag', async () => {
  const dir = tempDir();
  const [pFile, pEnv, pFlag] = [await freePort(), await freePort(), await freePort()];
  const f = join(dir, 'c.json');
  writeFileSync(f, JSON.stringify({ listen: `127.0.0.1:${pFile}`, workers: 1, providers: [] }));

  const p1 = spawnTracked({ args: ['-c', f, '-d', join(dir, 'd1')], cwd: dir });
  await waitHealthy(p1, pFile, 10000);
  await stopProc(p1);

  const p2 = spawnTracked({ args: ['-c', f, '-d', join(dir, 'd2')], env: { BIFROST_LISTEN: `127.0.0.1:${pEnv}` }, cwd: dir });
  await waitHealthy(p2, pEnv, 10000);
  await assert.rejects(request(pFile, { path: '/health', timeout: 1000 }), 'file port must not be used when BIFROST_LISTEN is set');
  await stopProc(p2);

  const p3 = spawnTracked({ args: ['-c', f, '-l', `127.0.0.1:${pFlag}`, '-d', join(dir, 'd3')], env: { BIFROST_LISTEN: `127.0.0.1:${pEnv}` }, cwd: dir });
  await waitHealthy(p3, pFlag, 10000);
  await assert.rejects(request(pEnv, { path: '/health', timeout: 1000 }), 'BIFROST_LISTEN port must not be used when -l is given');
  await stopProc(p3);
});

test('-w 2: two workers serve 60 concurrent requests', async () => {
  const m = await startMock({ name: 'w2' });
  mocks.push(m);
  m.behave({ delayMs: 50 });
  const g = await startGateway({ workers: 2, config: { providers: [{ name: 'w', provider: 'openai', apiKey: 'sk-w', base_url: m.baseUrl }] } });
  procs.push(g.proc);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 60 });
  try {
    const rs = await Promise.all(Array.from({ length: 60 }, (_, i) => chat(g.port, { model: `w/m${i}`, messages: [] }, { agent })));
    rs.forEach((r, i) => {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.headers['x-bifrost-provider'], `w/m${i}`);
    });
  } finally {
    agent.destroy();
    await g.stop();
  }
});
