// Start the real gateway binary and talk to it.
//
//   const gw = await startGateway({ config: {...} });      // -c cfg.json -l 127.0.0.1:PORT -w 1 -d DIR/data
//   const r = await request(gw.port, { method: 'POST', path: '/v1/chat/completions', body: '{...}' });
//   await gw.reload({...});                                // rewrite config + SIGHUP
//   const { code } = await gw.stop();                      // SIGTERM, wait for exit
//
// Every spawned process is remembered and SIGKILLed when the test process exits, so a failing
// test never leaves a gateway behind.

import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, '..', '..');
export const BIN = process.env.BIFROST_BIN || join(REPO, 'dist', 'bifrost');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// process bookkeeping

const live = new Set();
const byPort = new Map(); // gateway port → proc, to explain connection failures
const tmpDirs = new Set();
function killAll() {
  for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  live.clear();
  for (const d of tmpDirs) { try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ } }
}
process.on('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => { killAll(); process.exit(128 + (sig === 'SIGINT' ? 2 : 15)); });
}

export function tempDir(prefix = 'bifrost-test-') {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.add(d);
  return d;
}

export function requireBinary() {
  if (!existsSync(BIN)) throw new Error(`gateway binary not found at ${BIN}: build it with ./build.sh or set BIFROST_BIN`);
  return BIN;
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** An environment without any provider credentials or BIFROST_* settings of the developer's. */
export function cleanEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(OPENAI|ANTHROPIC|GEMINI|GROQ|MISTRAL|OPENROUTER)_API_KEY$/.test(k)) continue;
    if (k.startsWith('AWS_') || k.startsWith('BIFROST_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

// ---------------------------------------------------------------------------------------------
// spawning

/**
 * Spawn the binary with raw argv; collect output lines; no readiness wait.
 * opts: { args, env, cwd, ulimitNofile, ulimitFsizeKiB, bareEnv }
 * bareEnv: the environment is PATH, HOME (= cwd) and `env`, nothing else of the test's.
 */
export function spawnBifrost({ args = [], env = {}, cwd, ulimitNofile, ulimitFsizeKiB, bareEnv = false } = {}) {
  requireBinary();
  const fullEnv = bareEnv ? { PATH: process.env.PATH || '/usr/bin:/bin', HOME: cwd, ...env } : cleanEnv(env);
  // ulimitFsizeKiB: the largest file the gateway may write (a "disk full" for its journal)
  const child = ulimitNofile || ulimitFsizeKiB
    ? spawn('sh', ['-c', [
      ulimitNofile ? `ulimit -n ${ulimitNofile} 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true` : ':',
      ulimitFsizeKiB ? `prlimit --pid $$ --fsize=${ulimitFsizeKiB * 1024}:` : ':',
      'exec "$0" "$@"'].join('; '), BIN, ...args], { env: fullEnv, cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    : spawn(BIN, args, { env: fullEnv, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  const proc = {
    child,
    stdout: [],
    stderr: [],
    exited: null, // { code, signal } once exited
  };
  const collect = (stream, into) => {
    let partial = '';
    stream.setEncoding('utf8');
    stream.on('data', (d) => {
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop();
      for (const l of lines) into.push(l);
      if (into.length > 50000) into.splice(0, into.length - 50000);
    });
    stream.on('end', () => { if (partial) into.push(partial); partial = ''; });
  };
  collect(child.stdout, proc.stdout);
  collect(child.stderr, proc.stderr);
  proc.exitPromise = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      live.delete(child);
      proc.exited = { code, signal };
      resolve(proc.exited);
    });
    child.on('error', (err) => {
      live.delete(child);
      proc.exited = { code: null, signal: null, error: err };
      resolve(proc.exited);
    });
  });
  /** wait for exit; SIGKILL after timeoutMs */
  proc.wait = async (timeoutMs = 10000) => {
    const t = setTimeout(() => { try { child.kill('SIGKILL'); } catch { /* gone */ } }, timeoutMs);
    const r = await proc.exitPromise;
    clearTimeout(t);
    // let the stdio streams drain
    await sleep(20);
    return r;
  };
  proc.output = () => `--- stdout ---\n${proc.stdout.join('\n')}\n--- stderr ---\n${proc.stderr.join('\n')}`;
  proc.all = () => `${proc.stdout.join('\n')}\n${proc.stderr.join('\n')}`;
  return proc;
}

/** Run the binary to completion (for --version, check …). */
export async function runBifrost(args, { env = {}, cwd, timeoutMs = 10000 } = {}) {
  const p = spawnBifrost({ args, env, cwd });
  const r = await p.wait(timeoutMs);
  return { ...r, stdout: p.stdout.join('\n'), stderr: p.stderr.join('\n') };
}

/** Poll GET /health until 200; throws with the captured output on exit or timeout. */
export async function waitHealthy(proc, port, timeoutMs = 10000) {
  byPort.set(port, proc);
  const until = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exited) throw new Error(`gateway exited early (${JSON.stringify(proc.exited)})\n${proc.output()}`);
    try {
      const r = await request(port, { path: '/health', timeout: 1000 });
      if (r.status === 200) return;
    } catch { /* not up yet */ }
    if (Date.now() > until) throw new Error(`gateway not healthy on port ${port} after ${timeoutMs} ms\n${proc.output()}`);
    await sleep(50);
  }
}

/**
 * Start a gateway with a config and wait until it is healthy.
 * opts: { config (object or raw string), workers = 1, env, extraArgs, ulimitNofile, readyTimeoutMs }
 */
export async function startGateway({ config = { providers: [] }, workers = 1, env = {}, extraArgs = [], ulimitNofile, readyTimeoutMs = 10000 } = {}) {
  const dir = tempDir();
  const cfgPath = join(dir, 'config.json');
  const writeConfig = (c) => writeFileSync(cfgPath, typeof c === 'string' ? c : JSON.stringify(c, null, 2));
  writeConfig(config);
  const port = await freePort();
  const args = ['-c', cfgPath, '-l', `127.0.0.1:${port}`, '-w', String(workers), '-d', join(dir, 'data'), ...extraArgs];
  const proc = spawnBifrost({ args, env, cwd: dir, ulimitNofile });
  try {
    await waitHealthy(proc, port, readyTimeoutMs);
  } catch (e) {
    try { proc.child.kill('SIGKILL'); } catch { /* gone */ }
    await proc.wait(2000);
    throw e;
  }
  const gw = {
    proc,
    child: proc.child,
    stdout: proc.stdout,
    stderr: proc.stderr,
    get exited() { return proc.exited; },
    output: proc.output,
    dir,
    cfgPath,
    port,
    url: `http://127.0.0.1:${port}`,
    writeConfig,
    /** rewrite the config file and send SIGHUP */
    async reload(c) { writeConfig(c); proc.child.kill('SIGHUP'); },
    /** SIGTERM (or another signal) and wait for the exit */
    async stop(signal = 'SIGTERM', timeoutMs = 10000) {
      if (proc.exited) return proc.exited;
      try { proc.child.kill(signal); } catch { /* gone */ }
      return proc.wait(timeoutMs);
    },
    /** parsed JSON lines from stdout (non-JSON lines skipped) */
    logLines() {
      const out = [];
      for (const l of proc.stdout) {
        const t = l.trim();
        if (!t.startsWith('{')) continue;
        try { out.push(JSON.parse(t)); } catch { /* not JSON */ }
      }
      return out;
    },
    async waitForLine(pred, timeoutMs = 3000, stream = 'any') {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const lines = stream === 'stdout' ? proc.stdout : stream === 'stderr' ? proc.stderr : [...proc.stdout, ...proc.stderr];
        const hit = lines.find(pred);
        if (hit !== undefined) return hit;
        if (Date.now() > until) return undefined;
        await sleep(20);
      }
    },
  };
  return gw;
}

// ---------------------------------------------------------------------------------------------
// HTTP client helpers

/**
 * One HTTP request on a fresh connection (unless opts.agent is given).
 * Returns { status, headers, rawHeaders, body: Buffer, text, json() }.
 */
export function request(port, { method = 'GET', path = '/', headers = {}, body, timeout = 3000, agent = false, host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined && h['content-type'] === undefined && h['Content-Type'] === undefined) h['content-type'] = 'application/json';
    const req = http.request({ host, port, method, path, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode,
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: buf,
          text: buf.toString('utf8'),
          json() { return JSON.parse(buf.toString('utf8')); },
        });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeout, () => req.destroy(new Error(`request ${method} ${path} timed out after ${timeout} ms`)));
    req.on('error', (err) => reject(explain(err, port)));
    if (body !== undefined) req.write(typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body));
    req.end();
  });
}

/** Add the gateway's exit status and last stderr lines to a connection error if it died. */
export function explain(err, port) {
  const proc = byPort.get(port);
  if (proc?.exited) {
    err.message += ` — the gateway on port ${port} has exited (${JSON.stringify(proc.exited)}); last stderr:\n${proc.stderr.slice(-15).join('\n')}`;
  }
  return err;
}

/** POST a chat completion (body object or exact string). */
export function chat(port, body, { headers = {}, path = '/v1/chat/completions', agent = false, timeout } = {}) {
  return request(port, { method: 'POST', path, body: typeof body === 'string' ? body : JSON.stringify(body), headers: { authorization: 'Bearer vk-client-secret', ...headers }, agent, timeout });
}

/** A short description of a response for assertion messages. */
export function show(r) {
  if (!r) return String(r);
  const body = r.text ?? r.body?.toString?.() ?? '';
  return `status ${r.status}, body ${JSON.stringify(body.length > 600 ? `${body.slice(0, 600)}…` : body)}`;
}

/** Assert-friendly check of the OpenAI error shape; returns the parsed error object. */
export function errorBody(res) {
  let j;
  try { j = JSON.parse(res.text); } catch { throw new Error(`error body is not JSON: ${JSON.stringify(res.text)}`); }
  if (!j || typeof j.error !== 'object' || j.error === null) throw new Error(`no "error" object in ${res.text}`);
  if (typeof j.error.message !== 'string' || j.error.message.length === 0) throw new Error(`error.message missing in ${res.text}`);
  if (typeof j.error.type !== 'string') throw new Error(`error.type missing in ${res.text}`);
  if (!('code' in j.error)) throw new Error(`error.code missing in ${res.text}`);
  return j.error;
}

// ---------------------------------------------------------------------------------------------
// raw sockets

/**
 * Parse one HTTP/1.x response from the front of buf.
 * Returns null when incomplete (unless atEof: then a body read to EOF is complete), else
 * { status, reason, headers (lower-case → string), rawHead, body (decoded), consumed }.
 */
export function parseResponse(buf, { noBody = false, atEof = false } = {}) {
  const end = buf.indexOf('\r\n\r\n');
  if (end < 0) return null;
  const rawHead = buf.subarray(0, end).toString('latin1');
  const [statusLine, ...lines] = rawHead.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(statusLine)}`);
  const status = Number(m[1]);
  const headers = {};
  const headerList = [];
  for (const l of lines) {
    const i = l.indexOf(':');
    const k = l.slice(0, i).trim().toLowerCase();
    const v = l.slice(i + 1).trim();
    headerList.push([k, v]);
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  let pos = end + 4;
  const base = { status, reason: m[2] ?? '', headers, headerList, rawHead };
  if (noBody || (status >= 100 && status < 200) || status === 204 || status === 304) {
    return { ...base, body: Buffer.alloc(0), consumed: pos };
  }
  if (/chunked/i.test(headers['transfer-encoding'] || '')) {
    const parts = [];
    for (;;) {
      const le = buf.indexOf('\r\n', pos);
      if (le < 0) return null;
      const size = parseInt(buf.subarray(pos, le).toString('latin1').split(';')[0], 16);
      if (Number.isNaN(size)) throw new Error(`bad chunk size at ${pos}: ${JSON.stringify(buf.subarray(pos, le).toString('latin1'))}`);
      pos = le + 2;
      if (size === 0) {
        // trailers until an empty line
        for (;;) {
          const te = buf.indexOf('\r\n', pos);
          if (te < 0) return null;
          const empty = te === pos;
          pos = te + 2;
          if (empty) break;
        }
        return { ...base, body: Buffer.concat(parts), consumed: pos };
      }
      if (buf.length < pos + size + 2) return null;
      parts.push(buf.subarray(pos, pos + size));
      pos += size + 2;
    }
  }
  if (headers['content-length'] !== undefined) {
    const n = Number(headers['content-length']);
    if (buf.length < pos + n) return null;
    return { ...base, body: buf.subarray(pos, pos + n), consumed: pos + n };
  }
  if (!atEof) return null;
  return { ...base, body: buf.subarray(pos), consumed: buf.length };
}

/** A raw TCP connection to the gateway: exact bytes out, raw bytes in. */
export class RawConn {
  static open(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host }, () => { const c = new RawConn(sock); c.port = port; resolve(c); });
      sock.once('error', (e) => reject(explain(e, port)));
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.all = Buffer.alloc(0); // everything ever received
    this.closed = false;
    this.closedAt = null;
    this.error = null;
    this._wakers = new Set();
    sock.setNoDelay(true);
    sock.on('data', (d) => { this.buf = Buffer.concat([this.buf, d]); this.all = Buffer.concat([this.all, d]); this._wake(); });
    sock.on('error', (e) => { this.error = e; });
    sock.on('close', () => { this.closed = true; this.closedAt = Date.now(); this._wake(); });
  }

  _wake() { for (const w of this._wakers) w(); }

  write(data) {
    return new Promise((resolve, reject) => this.sock.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** resolve true once pred() holds, false after timeoutMs */
  waitFor(pred, timeoutMs) {
    if (pred()) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v) => { clearTimeout(t); this._wakers.delete(w); resolve(v); };
      const w = () => { if (pred()) done(true); };
      const t = setTimeout(() => done(pred()), timeoutMs);
      this._wakers.add(w);
    });
  }

  /**
   * Read one full response; throws on timeout or EOF before it is complete.
   * Interim 1xx responses (which a server may send unasked, RFC 9110 §15.2) are skipped
   * unless `interim` is true.
   */
  async readResponse({ timeoutMs = 5000, noBody = false, interim = false } = {}) {
    for (;;) {
      const r = await this._readOne({ timeoutMs, noBody });
      if (interim || r.status < 100 || r.status > 199 || r.status === 101) return r;
    }
  }

  async _readOne({ timeoutMs, noBody }) {
    let r = null;
    const ok = await this.waitFor(() => {
      r = parseResponse(this.buf, { noBody, atEof: this.closed });
      return r !== null || this.closed;
    }, timeoutMs);
    if (!r) {
      const got = JSON.stringify(this.buf.toString('latin1').slice(0, 600));
      throw explain(new Error(ok ? `connection closed before a full response; received ${got}` : `no full response within ${timeoutMs} ms; received ${got}`), this.port);
    }
    this.buf = this.buf.subarray(r.consumed);
    return r;
  }

  /** true once the peer closed (or reset) the connection within timeoutMs */
  waitClose(timeoutMs = 3000) { return this.waitFor(() => this.closed, timeoutMs); }

  destroy() { this.sock.destroy(); }
}

/** Send exact bytes on a fresh connection; collect responses until `responses` are read or the peer closes. */
export async function rawExchange(port, bytes, { timeoutMs = 5000, responses = 1 } = {}) {
  const c = await RawConn.open(port);
  try {
    await c.write(bytes);
    const out = [];
    for (let i = 0; i < responses; i++) out.push(await c.readResponse({ timeoutMs }));
    return { responses: out, conn: c };
  } catch (e) {
    c.destroy();
    throw e;
  }
}

/** Build a raw HTTP/1.1 request (Content-Length computed unless given in headers). */
export function rawRequest(method, path, { headers = {}, body, host = '127.0.0.1' } = {}) {
  const b = body === undefined ? null : Buffer.isBuffer(body) ? body : Buffer.from(body);
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${host}`];
  const lower = Object.keys(headers).map((k) => k.toLowerCase());
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  if (b && !lower.includes('content-length') && !lower.includes('transfer-encoding')) lines.push(`Content-Length: ${b.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return b ? Buffer.concat([head, b]) : head;
}
