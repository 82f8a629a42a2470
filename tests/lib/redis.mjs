// A real redis-server for the cluster tests, and a tiny RESP2 client to look inside it.
//
//   if (!redisAvailable()) ...                                  // skip when redis-server is missing
//   const r = await startRedis();                               // a free loopback port, --save '' --appendonly no
//   const r = await startRedis({ persist: true });              // appendonly yes (appendfsync always) in r.dir
//   const r = await startRedis({ args: ['--requirepass', pw], password: pw }); // helpers AUTH first
//   r.url                                                       // redis://127.0.0.1:PORT
//   await r.kill();  await r.restart();                         // SIGKILL; start again on the same port and dir
//   await r.restart({ fresh: true });                           // ... with an empty dir: an empty Redis
//   await r.stop();                                             // SIGTERM, wait for the exit
//   r.pause(); r.resume();                                      // SIGSTOP / SIGCONT: a Redis that does not answer
//   const c = await r.client();                                 // RESP client (closed by r.stop/kill)
//   await c.cmd('HGETALL', key) → ['f', 'v', ...];  await c.hgetall(key) → { f: 'v' }
//   await c.keys('bifrost:*'); await c.flushall(); c.close();
//
// Every redis-server started here is SIGKILLed when the test process exits.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, sleep } from './gateway.mjs';

export const REDIS_BIN = process.env.REDIS_SERVER || 'redis-server';

const live = new Set();
const dirs = new Set();
process.on('exit', () => {
  for (const p of live) { try { p.kill('SIGKILL'); } catch { /* gone */ } }
  for (const d of dirs) { try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ } }
});

/** true when a redis-server binary runs here. */
export function redisAvailable() {
  try {
    return spawnSync(REDIS_BIN, ['--version'], { encoding: 'utf8', timeout: 5000 }).status === 0;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// RESP2

/**
 * Parse one RESP2 value from buf at pos. Returns null when incomplete, else { v, end }.
 * Simple strings and bulk strings → string, integers → number, nil → null, arrays → array,
 * errors → an Error object (returned, not thrown: the caller decides).
 */
export function parseResp(buf, pos = 0) {
  if (pos >= buf.length) return null;
  const le = buf.indexOf('\r\n', pos);
  if (le < 0) return null;
  const type = String.fromCharCode(buf[pos]);
  const line = buf.toString('utf8', pos + 1, le);
  const next = le + 2;
  switch (type) {
    case '+': return { v: line, end: next };
    case '-': { const e = new Error(line); e.redis = true; return { v: e, end: next }; }
    case ':': return { v: Number(line), end: next };
    case '$': {
      const n = Number(line);
      if (n < 0) return { v: null, end: next };
      if (buf.length < next + n + 2) return null;
      return { v: buf.toString('utf8', next, next + n), end: next + n + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { v: null, end: next };
      const out = [];
      let p = next;
      for (let i = 0; i < n; i++) {
        const r = parseResp(buf, p);
        if (!r) return null;
        out.push(r.v);
        p = r.end;
      }
      return { v: out, end: p };
    }
    default: throw new Error(`RESP: unexpected type byte ${JSON.stringify(type)} at ${pos}`);
  }
}

function encode(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)];
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a), 'utf8');
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'));
  }
  return Buffer.concat(parts);
}

/** One connection; commands are pipelined and answered in order. */
export class RespClient {
  static connect(port, host = '127.0.0.1', timeoutMs = 2000) {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ port, host });
      const t = setTimeout(() => { sock.destroy(); reject(new Error(`redis ${host}:${port}: connect timed out`)); }, timeoutMs);
      sock.once('connect', () => { clearTimeout(t); resolve(new RespClient(sock)); });
      sock.once('error', (e) => { clearTimeout(t); reject(e); });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = []; // { resolve, reject, timer }
    this.closed = false;
    sock.setNoDelay(true);
    sock.on('data', (d) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      for (;;) {
        const r = parseResp(this.buf, 0);
        if (!r) break;
        this.buf = this.buf.subarray(r.end);
        const w = this.waiting.shift();
        if (!w) continue;
        clearTimeout(w.timer);
        if (r.v instanceof Error) w.reject(r.v); else w.resolve(r.v);
      }
    });
    const fail = (e) => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) { clearTimeout(w.timer); w.reject(e || new Error('redis connection closed')); }
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('redis connection closed')));
  }

  /** Send one command; its reply (an error reply rejects). */
  cmd(...args) {
    if (this.closed) return Promise.reject(new Error('redis connection closed'));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis ${args[0]}: no answer in 5 s`)), 5000);
      this.waiting.push({ resolve, reject, timer });
      this.sock.write(encode(args));
    });
  }

  async ping() { return this.cmd('PING'); }

  /** HGETALL as an object (values as strings). */
  async hgetall(key) {
    const a = await this.cmd('HGETALL', key);
    const o = {};
    for (let i = 0; i + 1 < a.length; i += 2) o[a[i]] = a[i + 1];
    return o;
  }

  async keys(pattern = '*') { return (await this.cmd('KEYS', pattern)).sort(); }
  async flushall() { return this.cmd('FLUSHALL'); }
  async get(key) { return this.cmd('GET', key); }

  close() {
    this.closed = true;
    try { this.sock.destroy(); } catch { /* gone */ }
  }
}

// ---------------------------------------------------------------------------------------------
// the server

/**
 * Start redis-server on a free loopback port (or `port`), in its own directory.
 * opts: { port, persist (appendonly yes + appendfsync always; default: --save '' --appendonly no),
 *         args (more redis-server arguments), readyTimeoutMs }
 */
export async function startRedis({ port, persist = false, args = [], password = null, readyTimeoutMs = 10000 } = {}) {
  const r = {
    port: port ?? await freePort(),
    dir: null,
    proc: null,
    exited: null,
    output: [],
    clients: new Set(),
    persist,
    args,
  };
  const newDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'bifrost-redis-'));
    dirs.add(d);
    return d;
  };
  r.dir = newDir();
  r.url = `redis://127.0.0.1:${r.port}`;

  const launch = async () => {
    const argv = [
      '--port', String(r.port), '--bind', '127.0.0.1', '--dir', r.dir,
      '--save', '',
      ...(r.persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']),
      '--maxmemory-policy', 'noeviction',
      '--protected-mode', 'no', '--daemonize', 'no', '--loglevel', 'warning',
      ...r.args,
    ];
    const child = spawn(REDIS_BIN, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    r.proc = child;
    r.exited = null;
    const collect = (s) => { s.setEncoding('utf8'); s.on('data', (d) => { r.output.push(d); if (r.output.length > 2000) r.output.splice(0, 1000); }); };
    collect(child.stdout);
    collect(child.stderr);
    r.exitPromise = new Promise((resolve) => child.on('exit', (code, signal) => {
      live.delete(child);
      r.exited = { code, signal };
      resolve(r.exited);
    }));
    const until = Date.now() + readyTimeoutMs;
    for (;;) {
      if (r.exited) throw new Error(`redis-server exited at start (${JSON.stringify(r.exited)}): ${r.output.join('')}`);
      try {
        const c = await RespClient.connect(r.port);
        try {
          const pong = await c.ping();
          if (pong === 'PONG') return;
        } catch (e) {
          if (/^NOAUTH/.test(e.message)) return; // up, and wants a password
          /* LOADING: not ready */
        } finally { c.close(); }
      } catch { /* not listening yet */ }
      if (Date.now() > until) {
        try { child.kill('SIGKILL'); } catch { /* gone */ }
        throw new Error(`redis-server not ready on ${r.port} after ${readyTimeoutMs} ms: ${r.output.join('')}`);
      }
      await sleep(20);
    }
  };

  const closeClients = () => { for (const c of r.clients) c.close(); r.clients.clear(); };
  const open = async () => {
    const c = await RespClient.connect(r.port);
    if (password) {
      try { await c.cmd('AUTH', password); } catch (e) { c.close(); throw e; }
    }
    return c;
  };

  /** A RESP client connected to it, authenticated with `password` if given (closed when the server is stopped or killed). */
  r.client = async () => {
    const c = await open();
    r.clients.add(c);
    return c;
  };
  /** One command on a short-lived connection. */
  r.cmd = async (...a) => {
    const c = await open();
    try { return await c.cmd(...a); } finally { c.close(); }
  };
  r.hgetall = async (key) => {
    const c = await open();
    try { return await c.hgetall(key); } finally { c.close(); }
  };
  r.keys = async (pattern) => {
    const c = await open();
    try { return await c.keys(pattern); } finally { c.close(); }
  };
  r.alive = () => !!r.proc && !r.exited;
  /** SIGKILL, and wait for the process to be gone (the port is free again). */
  r.kill = async () => {
    closeClients();
    if (r.alive()) { try { r.proc.kill('SIGKILL'); } catch { /* gone */ } await r.exitPromise; }
  };
  /** SIGTERM (a clean shutdown: an appendonly file is flushed), wait for the exit. */
  r.stop = async () => {
    closeClients();
    if (!r.alive()) return;
    try { r.proc.kill('SIGCONT'); r.proc.kill('SIGTERM'); } catch { /* gone */ }
    const t = setTimeout(() => { try { r.proc.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
    await r.exitPromise;
    clearTimeout(t);
  };
  /** Start again on the same port; fresh: in a new empty directory (nothing to load). */
  r.restart = async ({ fresh = false } = {}) => {
    if (r.alive()) await r.kill();
    if (fresh) r.dir = newDir();
    await launch();
  };
  /** SIGSTOP: connections stay open, nothing is answered. */
  r.pause = () => { if (r.alive()) r.proc.kill('SIGSTOP'); };
  r.resume = () => { if (r.alive()) r.proc.kill('SIGCONT'); };

  await launch();
  return r;
}
