// The HTTPS listener (BearSSL server engine): a test CA and certificates made at test time with
// the openssl CLI (RSA 2048 as PKCS#1 and PKCS#8, EC P-256 as SEC1 and P-384 as PKCS#8, a chain
// leaf + intermediate, an encrypted key, a mismatched pair, an expired certificate, one valid
// until 2061 — a GeneralizedTime notAfter); curl, Node's https (keep-alive, pipelining, session
// resumption, 200 concurrent handshakes), the openai and @anthropic-ai/sdk clients (a custom
// https agent in-process, NODE_EXTRA_CA_CERTS in a child process) and the real Claude Code CLI
// over HTTPS; TLS 1.0/1.1/1.3 and weak or non-ECDHE suites refused (openssl s_client and Node);
// ALPN http/1.1; renegotiation refused; a SIGHUP with new certificate files seen by the next
// handshake, a bad pair rejected with the old one kept; garbage and plain HTTP on the TLS port
// closed while both ports keep serving; stalled handshakes cut at limits.header_timeout_ms; the
// per-worker cap of 1024 TLS connections; `"listen": ""` (HTTPS only); `bifrost check` on good
// and bad certificate/key files.
//
// Nothing touches the system trust store: curl gets --cacert, openssl -CAfile, Node `ca` or
// NODE_EXTRA_CA_CERTS (child processes only).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import {
  startGateway, spawnBifrost, runBifrost, request, freePort, tempDir, sleep, show,
  RawConn, rawRequest, REPO,
} from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { startAnthropicMock } from '../lib/mock_anthropic.mjs';
import { makeCA } from '../lib/tlsca.mjs';
import { findClaude, runClaude, RUN_TIMEOUT_MS } from '../lib/claude_cli.mjs';

let OpenAI;
let Anthropic;
try {
  ({ default: OpenAI } = await import('openai'));
  ({ default: Anthropic } = await import('@anthropic-ai/sdk'));
} catch (e) {
  throw new Error(`the SDK packages are not installed: run (cd tests && npm ci) — ${e.message}`);
}

const TESTS_DIR = join(REPO, 'tests');

// ---------------------------------------------------------------------------------------------
// certificates (openssl CLI, at test time)

function openssl(args, { input } = {}) {
  try {
    return execFileSync('openssl', args, { input, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
  } catch (e) {
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.toString() || e.message}`);
  }
}

const pemLabel = (file) => /-----BEGIN ([A-Z0-9 ]+)-----/.exec(readFileSync(file, 'utf8'))?.[1];

/** A private key: rsa (2048) or ec256/ec384/ec521, written as pkcs1 / sec1 / pkcs8. */
function genKey(file, type, format) {
  const tmp = `${file}.pk8`;
  if (type === 'rsa') openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', tmp]);
  else openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', `ec_paramgen_curve:P-${type.slice(2)}`, '-pkeyopt', 'ec_param_enc:named_curve', '-out', tmp]);
  if (format === 'pkcs8') copyFileSync(tmp, file);
  else if (format === 'pkcs1') openssl(['rsa', '-in', tmp, '-traditional', '-out', file]);
  else if (format === 'sec1') openssl(['ec', '-in', tmp, '-out', file]);
  else throw new Error(`key format ${format}?`);
  const want = { pkcs8: 'PRIVATE KEY', pkcs1: 'RSA PRIVATE KEY', sec1: 'EC PRIVATE KEY' }[format];
  if (pemLabel(file) !== want) throw new Error(`${file}: expected a "${want}" PEM, got "${pemLabel(file)}"`);
}

/** `openssl ca` for an issuer (it takes -startdate/-enddate, which `x509 -req` of OpenSSL 3.0 lacks). */
function caDb(dir, issuer) {
  const db = join(dir, `${issuer.name}.db`);
  mkdirSync(join(db, 'new'), { recursive: true });
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'serial'), `${randomBytes(8).toString('hex').replace(/^./, '1')}\n`);
  writeFileSync(join(db, 'ca.cnf'), [
    '[ca]', 'default_ca=d',
    '[d]', `database=${db}/index.txt`, `new_certs_dir=${db}/new`, `serial=${db}/serial`,
    'default_md=sha256', 'policy=p', 'unique_subject=no', 'email_in_dn=no',
    '[p]', 'commonName=supplied', 'organizationName=optional',
    '',
  ].join('\n'));
  return join(db, 'ca.cnf');
}

function sign(dir, issuer, csr, out, ext, { days = 30, start, end } = {}) {
  const extFile = `${out}.ext`;
  writeFileSync(extFile, `[x]\n${ext.join('\n')}\n`);
  const dates = start ? ['-startdate', start, '-enddate', end] : ['-days', String(days)];
  openssl(['ca', '-batch', '-notext', '-config', issuer.cnf, '-cert', issuer.certFile, '-keyfile', issuer.keyFile,
    '-in', csr, '-out', out, '-extfile', extFile, '-extensions', 'x', ...dates]);
}

function leafExt(type) {
  return ['basicConstraints=critical,CA:FALSE',
    `keyUsage=critical,digitalSignature${type === 'rsa' ? ',keyEncipherment' : ''}`,
    'extendedKeyUsage=serverAuth', 'subjectAltName=DNS:localhost,IP:127.0.0.1'];
}

/** A server certificate for localhost + 127.0.0.1 signed by `issuer`; chain: append the issuer's cert. */
function makeLeaf(dir, issuer, name, { type = 'rsa', format = 'pkcs8', chain = false, ...dates } = {}) {
  const keyFile = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const leafFile = join(dir, `${name}.leaf.crt`);
  const certFile = join(dir, `${name}.crt`);
  genKey(keyFile, type, format);
  openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=localhost/O=Bifrost-C ${name}`, '-out', csr]);
  sign(dir, issuer, csr, leafFile, leafExt(type), dates);
  const leafPem = readFileSync(leafFile, 'utf8');
  writeFileSync(certFile, chain ? leafPem + issuer.cert : leafPem);
  const x = new X509Certificate(leafPem);
  return { name, type, format, keyFile, certFile, leafPem, fingerprint: x.fingerprint256, validTo: new Date(x.validTo) };
}

/** "YYYY-MM-DD HH:MM:SS UTC", as `bifrost check` prints a date. */
const utc = (d) => `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;

// ---------------------------------------------------------------------------------------------
// processes: curl, openssl s_client, node children (asynchronous: the mocks live in this process)

function run(cmd, args, { input = '', timeoutMs = 30_000, env, cwd } = {}) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { env: env ?? process.env, cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out = [];
    const err = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.stdin.on('error', () => {});
    child.stdin.end(input);
    let timedOut = false;
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out);
      const stderr = Buffer.concat(err).toString('utf8');
      resolve({ code, signal, timedOut, ms: Date.now() - t0, stdout, text: stdout.toString('utf8'), stderr,
        show() { return `${cmd} ${args.join(' ')}\n→ exit ${code} ${signal ?? ''}${timedOut ? ' (timed out)' : ''}\n--- stdout ---\n${stdout.toString('utf8').slice(0, 3000)}\n--- stderr ---\n${stderr.slice(-3000)}`; } });
    });
  });
}

/** openssl s_client against the TLS port; stdin closed at once (handshake, then close_notify). */
function sClient(port, args = [], opts = {}) {
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', certs.ca.certFile, ...args],
    { timeoutMs: 15_000, ...opts });
}

/** What s_client negotiated: { protocol, cipher } of the "New, …" line, or null (refused). */
function negotiated(r) {
  const m = /^(New|Reused), (TLSv[\d.]+), Cipher is (\S+)/m.exec(r.text);
  return m && m[3] !== '(NONE)' ? { protocol: m[2], cipher: m[3] } : null;
}

// ---------------------------------------------------------------------------------------------
// TLS clients in this process

/** A verified TLS connection to the gateway (CA = the test root only). */
function tlsConnect(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: certs.ca.cert, ...opts });
    s.once('secureConnect', () => { s.removeListener('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

/** A handshake attempt that is expected to fail: resolves with the error (or null if it succeeded). */
async function tlsRefused(port, opts = {}) {
  try {
    const s = await tlsConnect(port, opts);
    const info = `${s.getProtocol()} ${s.getCipher()?.name}`;
    s.destroy();
    return { ok: info };
  } catch (e) {
    return { error: e };
  }
}

/** A RawConn (exact bytes, parseResponse) over a fresh TLS connection. */
async function tlsRaw(port, opts = {}) {
  const s = await tlsConnect(port, opts);
  const c = new RawConn(s);
  c.port = port;
  return c;
}

/** One HTTPS request with node:https. Returns status/headers/body and what the TLS socket negotiated. */
function httpsRequest(port, { method = 'GET', path = '/', headers = {}, body, agent = false, timeout = 10_000, ca = certs.ca.cert, host = '127.0.0.1', servername = 'localhost', onSocket, ...tlsOpts } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
    const req = https.request({ host, port, servername, method, path, headers: h, agent, ca, ...tlsOpts }, (res) => {
      const chunks = [];
      const s = res.socket; // (a keep-alive agent takes it back at 'end')
      const tlsInfo = { protocol: s.getProtocol?.(), cipher: s.getCipher?.()?.name, alpn: s.alpnProtocol, reused: s.isSessionReused?.(), fingerprint: s.getPeerCertificate?.()?.fingerprint256 };
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        resolve({
          status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8'),
          json() { return JSON.parse(buf.toString('utf8')); },
          reusedSocket: req.reusedSocket,
          tls: tlsInfo,
          socket: s,
        });
      });
      res.on('error', reject);
    });
    if (onSocket) req.on('socket', onSocket);
    req.setTimeout(timeout, () => req.destroy(new Error(`https ${method} ${path} timed out after ${timeout} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** The first bytes a TLS client sends (one ClientHello record), captured on a local socket. */
async function captureClientHello() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const got = new Promise((resolve) => {
    srv.once('connection', (sock) => {
      let buf = Buffer.alloc(0);
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) { resolve(buf.subarray(0, 5 + buf.readUInt16BE(3))); sock.destroy(); }
      });
    });
  });
  const c = tls.connect({ host: '127.0.0.1', port: srv.address().port, servername: 'localhost', rejectUnauthorized: false });
  c.on('error', () => {});
  const hello = await got;
  c.destroy();
  srv.close();
  assert.equal(hello[0], 0x16, 'not a handshake record');
  return hello;
}

// ---------------------------------------------------------------------------------------------
// gateways

let certs;
let m;    // OpenAI-compatible mock
let ant;  // Anthropic mock
let gw;   // plain + HTTPS, the RSA chain (PKCS#1 key)
const MSG = [{ role: 'user', content: 'over https' }];

const providers = () => [
  { name: 'oa', provider: 'openai', apiKey: 'sk-oa', base_url: m.baseUrl, models: ['gpt-*'], max_retries: 0 },
  { name: 'anthropic', provider: 'anthropic', base_url: ant.origin, apiKey: 'sk-ant-up', max_retries: 0, models: ['claude-*'] },
];

const tlsBlock = (port, cred) => ({ listen: `127.0.0.1:${port}`, cert_file: cred.certFile, key_file: cred.keyFile });

/** Poll GET /health over HTTPS until 200. */
async function waitHttps(proc, port, { timeoutMs = 10_000, verify = true } = {}) {
  const until = Date.now() + timeoutMs;
  let last;
  for (;;) {
    if (proc.exited) throw new Error(`gateway exited (${JSON.stringify(proc.exited)})\n${proc.output()}`);
    try {
      const r = await httpsRequest(port, { path: '/health', timeout: 1000, rejectUnauthorized: verify });
      if (r.status === 200) return;
      last = show(r);
    } catch (e) { last = e.message; }
    if (Date.now() > until) throw new Error(`no HTTPS /health on ${port} after ${timeoutMs} ms (${last})\n${proc.output()}`);
    await sleep(50);
  }
}

/** A gateway with plain (-l) and HTTPS listeners. */
async function startTls(cred, { config = {}, workers = 1, verify = true } = {}) {
  const tlsPort = await freePort();
  const g = await startGateway({ config: { providers: providers(), ...config, tls: tlsBlock(tlsPort, cred) }, workers });
  g.tlsPort = tlsPort;
  await waitHttps(g.proc, tlsPort, { verify });
  return g;
}

/** Plain /health and HTTPS /health both answer 200 (the gateway survived whatever came before). */
async function assertBothServe(g, what) {
  assert.equal(g.exited, null, `${what}: the gateway exited\n${g.output?.()}`);
  const p = await request(g.port, { path: '/health' });
  assert.equal(p.status, 200, `${what}: plain /health ${show(p)}`);
  const s = await httpsRequest(g.tlsPort, { path: '/health' });
  assert.equal(s.status, 200, `${what}: https /health ${show(s)}`);
}

before(async () => {
  const dir = tempDir('bifrost-https-');
  const ca = makeCA(dir, 'Bifrost HTTPS Test Root', { name: 'root' });
  ca.cnf = caDb(dir, ca);
  // an intermediate CA signed by the root
  const inter = { name: 'inter', keyFile: join(dir, 'inter.key'), certFile: join(dir, 'inter.crt') };
  genKey(inter.keyFile, 'rsa', 'pkcs8');
  openssl(['req', '-new', '-key', inter.keyFile, '-subj', '/CN=Bifrost HTTPS Test Intermediate/O=Bifrost-C tests', '-out', join(dir, 'inter.csr')]);
  sign(dir, ca, join(dir, 'inter.csr'), inter.certFile,
    ['basicConstraints=critical,CA:TRUE,pathlen:0', 'keyUsage=critical,keyCertSign,cRLSign', 'subjectKeyIdentifier=hash', 'authorityKeyIdentifier=keyid'], { days: 60 });
  inter.cert = readFileSync(inter.certFile, 'utf8');
  inter.cnf = caDb(dir, inter);

  certs = {
    dir, ca, inter,
    chain: makeLeaf(dir, inter, 'chain', { type: 'rsa', format: 'pkcs1', chain: true }),
    rsa1: makeLeaf(dir, ca, 'rsa1', { type: 'rsa', format: 'pkcs1' }),
    rsa8: makeLeaf(dir, ca, 'rsa8', { type: 'rsa', format: 'pkcs8' }),
    rsaB: makeLeaf(dir, ca, 'rsaB', { type: 'rsa', format: 'pkcs8' }),
    ec256: makeLeaf(dir, ca, 'ec256', { type: 'ec256', format: 'sec1' }),
    ec384: makeLeaf(dir, ca, 'ec384', { type: 'ec384', format: 'pkcs8' }),
    ec521: makeLeaf(dir, ca, 'ec521', { type: 'ec521', format: 'pkcs8' }),
    expired: makeLeaf(dir, ca, 'expired', { type: 'rsa', format: 'pkcs8', start: '20200101000000Z', end: '20200201000000Z' }),
    y2061: makeLeaf(dir, ca, 'y2061', { type: 'ec256', format: 'pkcs8', start: '20200101000000Z', end: '20610304050607Z' }),
  };
  // an encrypted PKCS#8 key and a legacy encrypted PKCS#1 key ("Proc-Type: 4,ENCRYPTED")
  certs.enc8 = { ...certs.rsa8, keyFile: join(dir, 'enc8.key') };
  openssl(['pkey', '-in', certs.rsa8.keyFile, '-aes256', '-passout', 'pass:secret', '-out', certs.enc8.keyFile]);
  assert.equal(pemLabel(certs.enc8.keyFile), 'ENCRYPTED PRIVATE KEY');
  certs.enc1 = { ...certs.rsa1, keyFile: join(dir, 'enc1.key') };
  openssl(['rsa', '-in', certs.rsa1.keyFile, '-traditional', '-aes256', '-passout', 'pass:secret', '-out', certs.enc1.keyFile]);
  assert.match(readFileSync(certs.enc1.keyFile, 'utf8'), /Proc-Type: 4,ENCRYPTED/);
  // mismatched pairs: another RSA key; an EC key for an RSA certificate
  certs.mismatch = { certFile: certs.rsa8.certFile, keyFile: certs.rsaB.keyFile };
  certs.mixed = { certFile: certs.rsa8.certFile, keyFile: certs.ec256.keyFile };

  m = await startMock({ name: 'oa' });
  ant = await startAnthropicMock({ name: 'ant' });
  gw = await startTls(certs.chain);
});

after(async () => {
  await gw?.stop();
  await m?.close();
  await ant?.close();
});

// =============================================================================================
// curl

test('curl --cacert: GET /health over TLS 1.2 with an ECDHE-RSA AEAD suite, ALPN http/1.1, the chain verified', async () => {
  for (const host of ['localhost', '127.0.0.1']) {
    const r = await run('curl', ['-sS', '-v', '--cacert', certs.ca.certFile, '-w', '\n%{http_code}', `https://${host}:${gw.tlsPort}/health`]);
    assert.equal(r.code, 0, r.show());
    const [body, code] = r.text.split('\n');
    assert.equal(code, '200', r.show());
    assert.equal(JSON.parse(body).status, 'ok');
    assert.match(r.stderr, /SSL connection using TLSv1\.2 \/ ECDHE-RSA-(AES128-GCM-SHA256|AES256-GCM-SHA384|CHACHA20-POLY1305)/, r.show());
    assert.match(r.stderr, /ALPN: server accepted http\/1\.1/, r.show());
    assert.match(r.stderr, /SSL certificate verify ok/, r.show());
  }
});

test('curl: a chat completion through HTTPS reaches the mock byte-exact and comes back byte-exact', async () => {
  m.reset();
  const body = '{"model":"gpt-4o","messages":[{"role":"user","content":"h\\u00e9llo over \\"https\\" 🌍"}],  "temperature":0.25}';
  const f = join(certs.dir, 'chat.json');
  const out = join(certs.dir, 'chat.out');
  writeFileSync(f, body);
  const r = await run('curl', ['-sS', '--cacert', certs.ca.certFile, '-o', out, '-w', '%{http_code}',
    '-H', 'content-type: application/json', '-H', 'authorization: Bearer vk-curl', '--data-binary', `@${f}`,
    `https://localhost:${gw.tlsPort}/v1/chat/completions`]);
  assert.equal(r.code, 0, r.show());
  assert.equal(r.text, '200', r.show());
  assert.equal(m.requests.length, 1);
  assert.ok(m.requests[0].body.equals(Buffer.from(body)), `upstream body differs: ${m.requests[0].body}`);
  assert.equal(m.requests[0].headers.authorization, 'Bearer sk-oa');
  assert.ok(readFileSync(out).equals(m.sent[0].body), 'the answer was not relayed byte-exact');
});

test('curl: a 3 MB body with Expect: 100-continue — the 100 comes over TLS at once, the body arrives byte-exact', { timeout: 60_000 }, async () => {
  m.reset();
  const filler = Array.from({ length: 3 * 1024 * 1024 / 64 }, (_, i) => `${String(i).padStart(8, '0')}-abcdefghijklmnopqrstuvwxyz\\n0123456789ABCDEFGHIJKLMNOPQRS`).join('');
  const body = `{"model":"gpt-4o","messages":[{"role":"user","content":"${filler}"}]}`;
  assert.ok(body.length > 3 * 1024 * 1024);
  const f = join(certs.dir, 'big.json');
  const out = join(certs.dir, 'big.out');
  writeFileSync(f, body);
  // --expect100-timeout 20: if no 100 Continue came, curl would wait 20 s before sending the body
  const r = await run('curl', ['-sS', '-v', '--cacert', certs.ca.certFile, '-o', out, '-w', '%{http_code}',
    '-H', 'content-type: application/json', '-H', 'authorization: Bearer vk-curl', '-H', 'Expect: 100-continue',
    '--expect100-timeout', '20', '--data-binary', `@${f}`, `https://localhost:${gw.tlsPort}/v1/chat/completions`], { timeoutMs: 50_000 });
  assert.equal(r.code, 0, r.show());
  assert.equal(r.text, '200', r.show());
  assert.match(r.stderr, /< HTTP\/1\.1 100 Continue/, `no 100 Continue seen by curl\n${r.show()}`);
  assert.ok(r.ms < 15_000, `took ${r.ms} ms: the body waited for curl's expect timeout`);
  assert.equal(m.requests.length, 1);
  assert.equal(m.requests[0].body.length, Buffer.byteLength(body));
  assert.ok(m.requests[0].body.equals(Buffer.from(body)), 'the 3 MB body differs at the mock');
  assert.ok(readFileSync(out).equals(m.sent[0].body));
});

test('curl -N: a streamed SSE answer relayed over TLS byte-exact', async () => {
  m.reset();
  m.behave({ chunks: 40, chunkDelayMs: 5, content: 'streamed over https '.repeat(40) });
  const body = '{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"stream"}]}';
  const f = join(certs.dir, 'stream.json');
  writeFileSync(f, body);
  const r = await run('curl', ['-sS', '-N', '--cacert', certs.ca.certFile, '-D', join(certs.dir, 'stream.head'),
    '-H', 'content-type: application/json', '-H', 'authorization: Bearer vk-curl', '--data-binary', `@${f}`,
    `https://localhost:${gw.tlsPort}/v1/chat/completions`]);
  m.behave({});
  assert.equal(r.code, 0, r.show());
  const head = readFileSync(join(certs.dir, 'stream.head'), 'utf8');
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, /content-type: text\/event-stream/i);
  assert.ok(m.requests[0].body.equals(Buffer.from(body)), 'the stream request body differs at the mock');
  const expected = Buffer.concat(m.sent[0].events);
  assert.ok(r.stdout.equals(expected), `stream differs\n  expected: ${JSON.stringify(expected.toString().slice(0, 400))}\n  actual:   ${JSON.stringify(r.text.slice(0, 400))}`);
});

// =============================================================================================
// Node https / tls

test('node https keep-alive: several requests (GET, POST, stream) on one TLS connection, one handshake', async () => {
  m.reset();
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: certs.ca.cert });
  const sockets = new Set();
  let handshakes = 0;
  const onSocket = (s) => { if (!sockets.has(s)) { sockets.add(s); s.on('secureConnect', () => { handshakes++; }); } };
  try {
    const results = [];
    for (let i = 0; i < 6; i++) {
      const kind = i % 3;
      const body = kind === 0 ? undefined
        : JSON.stringify({ model: 'gpt-4o', stream: kind === 2, ...(kind === 2 ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content: `ka ${i}` }] });
      const r = await httpsRequest(gw.tlsPort, { agent, onSocket, method: body ? 'POST' : 'GET', path: body ? '/v1/chat/completions' : '/health', body, headers: { authorization: 'Bearer vk' } });
      assert.equal(r.status, 200, `request ${i}: ${show(r)}`);
      assert.equal(r.tls.protocol, 'TLSv1.2');
      assert.equal(r.tls.fingerprint, certs.chain.fingerprint);
      results.push(r);
    }
    assert.equal(sockets.size, 1, `${sockets.size} sockets for 6 requests`);
    assert.equal(handshakes, 1);
    assert.ok(results.slice(1).every((r) => r.reusedSocket), 'a request did not reuse the socket');
    // the stream answers (i = 2, 5) are the mock's events byte-exact; the plain ones its body
    const streams = m.sent.filter((s) => s.events);
    assert.equal(streams.length, 2);
    assert.ok(results[2].body.equals(Buffer.concat(streams[0].events)));
    assert.ok(results[5].body.equals(Buffer.concat(streams[1].events)));
    assert.equal(results[1].json().choices[0].message.content, 'Hello from oa');
  } finally {
    agent.destroy();
  }
});

test('node tls: the whole chain is sent (leaf + intermediate) and verifies against the root alone', async () => {
  const s = await tlsConnect(gw.tlsPort);
  try {
    const peer = s.getPeerCertificate(true);
    assert.equal(peer.fingerprint256, certs.chain.fingerprint);
    assert.equal(peer.issuerCertificate?.subject?.CN, 'Bifrost HTTPS Test Intermediate');
    assert.equal(s.authorized, true, String(s.authorizationError));
  } finally {
    s.destroy();
  }
});

test('pipelined requests in one TLS write get their answers in order', async () => {
  m.reset();
  const c = await tlsRaw(gw.tlsPort);
  try {
    const b1 = '{"model":"gpt-4o","messages":[{"role":"user","content":"first"}]}';
    const b2 = '{"model":"gpt-4o","messages":[{"role":"user","content":"second"}]}';
    const hdr = { 'content-type': 'application/json', authorization: 'Bearer vk' };
    await c.write(Buffer.concat([
      rawRequest('GET', '/health'),
      rawRequest('POST', '/v1/chat/completions', { headers: hdr, body: b1 }),
      rawRequest('POST', '/v1/chat/completions', { headers: hdr, body: b2 }),
    ]));
    const r1 = await c.readResponse();
    const r2 = await c.readResponse();
    const r3 = await c.readResponse();
    assert.deepEqual([r1.status, r2.status, r3.status], [200, 200, 200]);
    assert.equal(JSON.parse(r1.body).status, 'ok');
    assert.deepEqual(m.requests.map((q) => q.body.toString()), [b1, b2]);
    assert.ok(r2.body.equals(m.sent[0].body) && r3.body.equals(m.sent[1].body));
  } finally {
    c.destroy();
  }
});

test('a request dribbled over many small TLS records (head and body split) arrives byte-exact', async () => {
  m.reset();
  const c = await tlsRaw(gw.tlsPort);
  try {
    const body = `{"model":"gpt-4o","messages":[{"role":"user","content":"${'dribble '.repeat(500)}"}]}`;
    const bytes = rawRequest('POST', '/v1/chat/completions', { headers: { 'content-type': 'application/json', authorization: 'Bearer vk' }, body });
    for (let i = 0, n = 1; i < bytes.length; i += n, n = (n * 7) % 97 + 1) {
      await c.write(bytes.subarray(i, i + n)); // each write is a TLS record of its own
      if (i % 5 === 0) await sleep(1);
    }
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.rawHead);
    assert.ok(m.requests[0].body.equals(Buffer.from(body)));
  } finally {
    c.destroy();
  }
});

test('a 2 MB answer to a slow reader over TLS (backpressure) arrives byte-exact', async () => {
  m.reset();
  const big = Buffer.from(JSON.stringify({ id: 'x', object: 'chat.completion', model: 'gpt-4o',
    choices: [{ index: 0, message: { role: 'assistant', content: randomBytes(1536 * 1024).toString('base64') }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }));
  m.once({ body: big });
  const c = await tlsRaw(gw.tlsPort);
  try {
    c.sock.pause();
    await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'content-type': 'application/json', authorization: 'Bearer vk' }, body: '{"model":"gpt-4o","messages":[]}' }));
    await sleep(1500); // the gateway's sends stall on a full socket
    c.sock.resume();
    const r = await c.readResponse({ timeoutMs: 15_000 });
    assert.equal(r.status, 200, r.rawHead);
    assert.equal(r.body.length, big.length);
    assert.ok(r.body.equals(big), 'the 2 MB answer differs');
    // the connection is still good for another request
    await c.write(rawRequest('GET', '/health'));
    assert.equal((await c.readResponse()).status, 200);
  } finally {
    c.destroy();
  }
});

test('ALPN: a client offering h2 and http/1.1 gets http/1.1; one offering only h2 never gets h2', async () => {
  const s = await tlsConnect(gw.tlsPort, { ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(s.alpnProtocol, 'http/1.1');
  s.destroy();
  const r = await sClient(gw.tlsPort, ['-alpn', 'h2,http/1.1']);
  assert.match(r.text, /ALPN protocol: http\/1\.1/, r.show());
  const only = await tlsRefused(gw.tlsPort, { ALPNProtocols: ['h2'] });
  if (only.ok) {
    const s2 = await tlsConnect(gw.tlsPort, { ALPNProtocols: ['h2'] });
    assert.notEqual(s2.alpnProtocol, 'h2');
    s2.destroy();
  }
});

test('session resumption: openssl s_client -reconnect shows "Reused", and so does a Node client given the session', async () => {
  const r = await sClient(gw.tlsPort, ['-tls1_2', '-reconnect']);
  const lines = r.text.split('\n').filter((l) => /^(New|Reused), /.test(l));
  assert.ok(lines.length >= 2, r.show());
  assert.match(lines[0], /^New, TLSv1\.2, Cipher is ECDHE-RSA-/, r.show());
  assert.ok(lines.slice(1).every((l) => /^Reused, TLSv1\.2, Cipher is ECDHE-RSA-/.test(l)), `not every reconnect was resumed:\n${lines.join('\n')}`);

  const s1 = await tlsConnect(gw.tlsPort);
  const c1 = new RawConn(s1);
  await c1.write(rawRequest('GET', '/health'));
  assert.equal((await c1.readResponse()).status, 200);
  const session = s1.getSession();
  assert.ok(session, 'no session to resume');
  assert.equal(s1.isSessionReused(), false);
  c1.destroy();
  const s2 = await tlsConnect(gw.tlsPort, { session });
  try {
    assert.equal(s2.isSessionReused(), true, 'the session was not resumed');
    const c2 = new RawConn(s2);
    await c2.write(rawRequest('GET', '/health'));
    assert.equal((await c2.readResponse()).status, 200);
  } finally {
    s2.destroy();
  }
});

test('renegotiation is refused (s_client "R", Node renegotiate()) and the gateway keeps serving', async () => {
  const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${gw.tlsPort}`, '-servername', 'localhost', '-CAfile', certs.ca.certFile, '-tls1_2'],
    { input: 'R\n', timeoutMs: 15_000 });
  assert.match(r.text + r.stderr, /RENEGOTIATING/, r.show());
  assert.match(r.text + r.stderr, /no renegotiation/i, r.show());

  const s = await tlsConnect(gw.tlsPort);
  const err = await new Promise((resolve) => {
    const t = setTimeout(() => resolve('no answer within 5 s'), 5000);
    const done = (v) => { clearTimeout(t); resolve(v); };
    s.once('error', done); // OpenSSL reports the server's no_renegotiation alert as a socket error
    const ok = s.renegotiate({ rejectUnauthorized: true }, (e) => done(e ?? 'the renegotiation completed'));
    if (!ok) done('renegotiate() refused locally');
  });
  s.destroy();
  assert.equal(err?.code, 'ERR_SSL_NO_RENEGOTIATION', `renegotiation was not refused by the server: ${err}`);
  await assertBothServe(gw, 'after renegotiation attempts');
});

test('200 concurrent handshakes (each then a GET /health) all succeed', { timeout: 60_000 }, async () => {
  const one = async () => {
    const c = await tlsRaw(gw.tlsPort);
    try {
      await c.write(rawRequest('GET', '/health', { headers: { connection: 'close' } }));
      return (await c.readResponse({ timeoutMs: 20_000 })).status;
    } finally {
      c.destroy();
    }
  };
  const settled = await Promise.allSettled(Array.from({ length: 200 }, one));
  const bad = settled.filter((s) => s.status === 'rejected' || s.value !== 200);
  assert.equal(bad.length, 0, `${bad.length} of 200 failed, e.g. ${bad.slice(0, 3).map((b) => b.reason?.message ?? b.value).join(' | ')}`);
  await assertBothServe(gw, 'after 200 concurrent handshakes');
});

test('two workers: 100 concurrent handshakes + requests all served; s_client -reconnect (sessions cached per worker) always connects', { timeout: 60_000 }, async () => {
  const g = await startTls(certs.ec256, { workers: 2 });
  try {
    m.reset();
    const one = async (i) => {
      const c = await tlsRaw(g.tlsPort);
      try {
        await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'content-type': 'application/json', authorization: 'Bearer vk', connection: 'close' }, body: `{"model":"gpt-4o","messages":[{"role":"user","content":"w${i}"}]}` }));
        return (await c.readResponse({ timeoutMs: 20_000 })).status;
      } finally {
        c.destroy();
      }
    };
    const st = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => one(i)));
    const bad = st.filter((x) => x.status === 'rejected' || x.value !== 200);
    assert.equal(bad.length, 0, `${bad.length} of 100 failed: ${bad.slice(0, 3).map((b) => b.reason?.message ?? b.value).join(' | ')}`);
    assert.deepEqual(m.requests.map((q) => q.json.messages[0].content).sort(), Array.from({ length: 100 }, (_, i) => `w${i}`).sort());
    const s = await run('openssl', ['s_client', '-connect', `127.0.0.1:${g.tlsPort}`, '-servername', 'localhost', '-CAfile', certs.ca.certFile, '-tls1_2', '-reconnect'], { timeoutMs: 15_000 });
    const lines = s.text.split('\n').filter((l) => /^(New|Reused), /.test(l));
    assert.equal(lines.length, 6, s.show()); // the first connection and five reconnects
    assert.ok(lines.every((l) => /^(New|Reused), TLSv1\.2, Cipher is ECDHE-ECDSA-/.test(l)), lines.join('\n'));
    await assertBothServe(g, 'two workers');
  } finally {
    await g.stop();
  }
});

// =============================================================================================
// SDK clients

/** fetch() over node:https with a given agent (the SDKs take a custom fetch). */
function agentFetch(agent) {
  return (url, init = {}) => new Promise((resolve, reject) => {
    const u = new URL(url);
    const headers = {};
    new Headers(init.headers || {}).forEach((v, k) => { headers[k] = v; });
    const req = https.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method: init.method || 'GET', headers, agent, servername: u.hostname }, (res) => {
      const h = new Headers();
      for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
      const noBody = res.statusCode === 204 || res.statusCode === 304;
      resolve(new Response(noBody ? null : Readable.toWeb(res), { status: res.statusCode, headers: h }));
    });
    req.on('error', reject);
    init.signal?.addEventListener('abort', () => req.destroy(new Error('aborted')));
    if (init.body == null) req.end();
    else req.end(typeof init.body === 'string' || init.body instanceof Uint8Array ? init.body : Buffer.from(String(init.body)));
  });
}

test('openai SDK in-process (custom fetch over an https.Agent trusting the test CA): plain and streamed, one keep-alive socket', async () => {
  m.reset();
  m.behave({ content: 'The quick brown fox over TLS.', chunks: 5 });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: certs.ca.cert });
  let sockets = 0;
  const createConnection = agent.createConnection.bind(agent);
  agent.createConnection = (...a) => { sockets++; return createConnection(...a); };
  try {
    const client = new OpenAI({ baseURL: `https://localhost:${gw.tlsPort}/v1`, apiKey: 'vk-sdk', maxRetries: 0, timeout: 10_000, fetch: agentFetch(agent) });
    const c = await client.chat.completions.create({ model: 'gpt-4o', messages: MSG });
    assert.equal(c.choices[0].message.content, 'The quick brown fox over TLS.');
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: MSG });
    let text = '';
    for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
    assert.equal(text, 'The quick brown fox over TLS.');
    const c2 = await client.chat.completions.create({ model: 'gpt-4o', messages: MSG });
    assert.equal(c2.choices[0].message.content, 'The quick brown fox over TLS.');
    assert.equal(sockets, 1, `${sockets} TLS connections for 3 SDK calls`);
    assert.equal(m.requests.length, 3);
    assert.equal(m.requests[0].headers.authorization, 'Bearer sk-oa');
  } finally {
    agent.destroy();
    m.behave({});
  }
});

test('@anthropic-ai/sdk in-process (custom fetch, test CA): messages.create plain and streamed via /anthropic', async () => {
  ant.reset();
  ant.behave({ text: 'anthropic over https ok' });
  const agent = new https.Agent({ keepAlive: true, ca: certs.ca.cert });
  try {
    const client = new Anthropic({ baseURL: `https://localhost:${gw.tlsPort}/anthropic`, apiKey: 'vk-ant', maxRetries: 0, timeout: 10_000, fetch: agentFetch(agent) });
    const msg = await client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(msg.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), 'anthropic over https ok');
    const stream = client.messages.stream({ model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    const final = await stream.finalMessage();
    assert.equal(final.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), 'anthropic over https ok');
    assert.equal(ant.messages().length, 2);
    assert.equal(ant.messages()[0].headers['x-api-key'], 'sk-ant-up');
  } finally {
    agent.destroy();
    ant.behave({});
  }
});

test('openai and @anthropic-ai/sdk in a child process with NODE_EXTRA_CA_CERTS (default agent, built-in fetch)', { timeout: 60_000 }, async () => {
  m.reset();
  ant.reset();
  m.behave({ content: 'child openai ok', chunks: 4 });
  ant.behave({ text: 'child anthropic ok' });
  const script = `
    import OpenAI from 'openai';
    import Anthropic from '@anthropic-ai/sdk';
    const port = process.env.TLS_PORT;
    const out = {};
    const oa = new OpenAI({ baseURL: 'https://localhost:' + port + '/v1', apiKey: 'vk-child', maxRetries: 0, timeout: 15000 });
    out.plain = (await oa.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] })).choices[0].message.content;
    let s = '';
    for await (const ch of await oa.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'x' }] })) s += ch.choices[0]?.delta?.content ?? '';
    out.stream = s;
    const an = new Anthropic({ baseURL: 'https://localhost:' + port + '/anthropic', apiKey: 'vk-child', maxRetries: 0, timeout: 15000 });
    const msg = await an.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 32, messages: [{ role: 'user', content: 'x' }] });
    out.anthropic = msg.content.map((b) => b.text ?? '').join('');
    console.log(JSON.stringify(out));
  `;
  const env = { ...process.env, NODE_EXTRA_CA_CERTS: certs.ca.certFile, TLS_PORT: String(gw.tlsPort) };
  delete env.NODE_TLS_REJECT_UNAUTHORIZED;
  try {
    const r = await run(process.execPath, ['--input-type=module', '-e', script], { env, cwd: TESTS_DIR, timeoutMs: 45_000 });
    assert.equal(r.code, 0, r.show());
    assert.deepEqual(JSON.parse(r.text.trim().split('\n').pop()), { plain: 'child openai ok', stream: 'child openai ok', anthropic: 'child anthropic ok' });
    // without the CA the same child fails verification (the CA is what made it work)
    const env2 = { ...env };
    delete env2.NODE_EXTRA_CA_CERTS;
    const r2 = await run(process.execPath, ['--input-type=module', '-e', script], { env: env2, cwd: TESTS_DIR, timeoutMs: 45_000 });
    assert.notEqual(r2.code, 0, r2.show());
    assert.match(r2.stderr + r2.text, /certificate|self.signed|issuer|Connection error/i, r2.show());
  } finally {
    m.behave({});
    ant.behave({});
  }
});

// =============================================================================================
// Claude Code over HTTPS

const claude = findClaude();

test(`Claude Code (${claude.version ?? 'not available'}) -p over HTTPS: ANTHROPIC_BASE_URL=https://localhost:PORT/anthropic, NODE_EXTRA_CA_CERTS`, { skip: claude.bin ? false : claude.reason, timeout: RUN_TIMEOUT_MS + 15_000 }, async () => {
  ant.reset();
  ant.behave({ text: 'bifrost-https-answer-5c1e' });
  try {
    const r = await runClaude(claude.bin, {
      baseUrl: `https://localhost:${gw.tlsPort}/anthropic`, prompt: 'Say hello', model: 'anthropic/claude-sonnet-4-5',
      env: { NODE_EXTRA_CA_CERTS: certs.ca.certFile },
    });
    const diag = () => `${r.show()}\n--- mock ---\n${ant.summary()}\n--- gateway ---\n${gw.stderr.slice(-10).join('\n')}`;
    assert.equal(r.code, 0, diag());
    assert.match(r.stdout, /bifrost-https-answer-5c1e/, diag());
    const msgs = ant.messages();
    assert.ok(msgs.length >= 1, diag());
    assert.equal(msgs[0].headers['x-api-key'], 'sk-ant-up');
    assert.equal(msgs[0].json.model, 'claude-sonnet-4-5');
    // every request the CLI made came in over the TLS port and was answered 2xx
    const bad = gw.logLines().filter((l) => 'path' in l && l.status >= 400);
    assert.deepEqual(bad, [], diag());
  } finally {
    ant.behave({});
  }
});

// =============================================================================================
// protocol versions and cipher suites

test('TLS 1.0 and 1.1 are refused (openssl s_client -tls1 / -tls1_1, Node with maxVersion TLSv1.1)', async () => {
  for (const v of ['-tls1', '-tls1_1']) {
    // SECLEVEL=0 so that the client's own policy does not stop it before the ClientHello
    const r = await sClient(gw.tlsPort, [v, '-cipher', 'DEFAULT:@SECLEVEL=0']);
    assert.doesNotMatch(r.text + r.stderr, /no protocols available|unsupported protocol/i, `the client did not even try\n${r.show()}`);
    assert.equal(negotiated(r), null, `${v} was accepted\n${r.show()}`);
    assert.match(r.text, /Cipher is \(NONE\)/, r.show());
  }
  for (const maxVersion of ['TLSv1', 'TLSv1.1']) {
    const res = await tlsRefused(gw.tlsPort, { minVersion: 'TLSv1', maxVersion, ciphers: 'DEFAULT:@SECLEVEL=0' });
    assert.ok(res.error, `${maxVersion} handshake succeeded: ${res.ok}`);
    assert.notEqual(res.error.code, 'ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'the client refused locally');
  }
  await assertBothServe(gw, 'after old-version handshakes');
});

test('TLS 1.3-only clients are refused (the server speaks TLS 1.2 only)', async () => {
  const r = await sClient(gw.tlsPort, ['-tls1_3']);
  assert.equal(negotiated(r), null, r.show());
  const res = await tlsRefused(gw.tlsPort, { minVersion: 'TLSv1.3' });
  assert.ok(res.error, `TLS 1.3 handshake succeeded: ${res.ok}`);
});

test('weak and non-ECDHE suites are refused: AES128-SHA, ECDHE-RSA-AES128-SHA, ECDHE-RSA-AES128-SHA256, AES128-GCM-SHA256, DHE-RSA-AES128-GCM-SHA256', async () => {
  for (const cipher of ['AES128-SHA', 'ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA384', 'ECDHE-RSA-AES128-SHA256', 'AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'DHE-RSA-AES128-GCM-SHA256']) {
    const r = await sClient(gw.tlsPort, ['-tls1_2', '-cipher', `${cipher}:@SECLEVEL=0`]);
    assert.doesNotMatch(r.text + r.stderr, /no cipher match|no ciphers available/i, `the client did not offer ${cipher}\n${r.show()}`);
    assert.equal(negotiated(r), null, `${cipher} was accepted\n${r.show()}`);
  }
  const res = await tlsRefused(gw.tlsPort, { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-SHA:AES128-SHA' });
  assert.ok(res.error, `a CBC suite was accepted: ${res.ok}`);
  await assertBothServe(gw, 'after refused suites');
});

test('the three ECDHE-RSA AEAD suites are each accepted', async () => {
  for (const cipher of ['ECDHE-RSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES256-GCM-SHA384', 'ECDHE-RSA-CHACHA20-POLY1305']) {
    const r = await sClient(gw.tlsPort, ['-tls1_2', '-cipher', cipher]);
    assert.deepEqual(negotiated(r), { protocol: 'TLSv1.2', cipher }, r.show());
    assert.match(r.text, /Verify return code: 0 \(ok\)/, r.show());
  }
});

// =============================================================================================
// garbage on the TLS port

/** Open a raw TCP connection to the TLS port, send bytes, wait for the close. */
async function sendRaw(port, bytes, { waitMs = 3000 } = {}) {
  const c = await RawConn.open(port);
  const t0 = Date.now();
  try { await c.write(bytes); } catch { /* closed while writing */ }
  const closed = await c.waitClose(waitMs);
  const r = { closed, ms: Date.now() - t0, got: c.all };
  c.destroy();
  return r;
}

test('plain HTTP sent to the TLS port: the connection is closed (no plaintext answer), both ports keep serving', async () => {
  for (const bytes of [
    rawRequest('GET', '/health'),
    rawRequest('POST', '/v1/chat/completions', { headers: { 'content-type': 'application/json' }, body: '{"model":"gpt-4o","messages":[]}' }),
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  ]) {
    const r = await sendRaw(gw.tlsPort, bytes);
    assert.ok(r.closed, `not closed within 3 s (header timeout is 10 s): ${JSON.stringify(bytes.toString().slice(0, 40))}`);
    assert.ok(!r.got.toString('latin1').includes('HTTP/1.'), `a plaintext HTTP answer came back: ${JSON.stringify(r.got.toString('latin1'))}`);
  }
  await assertBothServe(gw, 'after plain HTTP on the TLS port');
});

test('garbage on the TLS port (random bytes, bogus record headers, a ClientHello then junk) is closed; both ports keep serving', async () => {
  const hello = await captureClientHello();
  const cases = {
    random: randomBytes(4096),
    'random 64 KB': randomBytes(65536),
    'zero bytes': Buffer.alloc(1024),
    'record too long': Buffer.concat([Buffer.from([0x16, 0x03, 0x03, 0xff, 0xff]), randomBytes(2000)]),
    'alert record first': Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28]),
    'application data first': Buffer.concat([Buffer.from([0x17, 0x03, 0x03, 0x00, 0x20]), randomBytes(32)]),
    'SSLv2-style hello': Buffer.from('8031010002001800000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000', 'hex'),
    'ClientHello with a corrupted body': Buffer.concat([hello.subarray(0, 9), randomBytes(hello.length - 9)]),
    'ClientHello then junk': Buffer.concat([hello, randomBytes(3000)]),
    'ClientHello then plain HTTP': Buffer.concat([hello, rawRequest('GET', '/health')]),
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const r = await sendRaw(gw.tlsPort, bytes);
    assert.ok(r.closed, `${name}: not closed within 3 s (header timeout is 10 s)`);
    assert.ok(!r.got.toString('latin1').includes('HTTP/1.'), `${name}: plaintext HTTP came back`);
  }
  // a burst of them at once
  await Promise.all(Array.from({ length: 50 }, (_, i) => sendRaw(gw.tlsPort, randomBytes(100 + i * 37))));
  await assertBothServe(gw, 'after garbage');
  // and a full request still works on a keep-alive TLS connection made now
  m.reset();
  const r = await httpsRequest(gw.tlsPort, { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify({ model: 'gpt-4o', messages: MSG }), headers: { authorization: 'Bearer vk' } });
  assert.equal(r.status, 200, show(r));
});

test('the client closing mid-handshake or mid-request (RST/FIN) leaves the gateway serving', async () => {
  const hello = await captureClientHello();
  for (let i = 0; i < 20; i++) {
    const c = await RawConn.open(gw.tlsPort);
    await c.write(hello.subarray(0, 1 + (i * 31) % hello.length));
    if (i % 2) c.sock.resetAndDestroy(); else c.sock.end();
  }
  for (let i = 0; i < 10; i++) {
    const c = await tlsRaw(gw.tlsPort);
    await c.write(rawRequest('POST', '/v1/chat/completions', { headers: { 'content-type': 'application/json', 'content-length': '1000' } }).subarray(0, 60 + i));
    if (i % 2) c.sock.end(); else c.sock.destroy(); // close_notify + FIN, or just FIN
  }
  await sleep(100);
  await assertBothServe(gw, 'after clients vanished mid-way');
});

// =============================================================================================
// deadlines: limits.header_timeout_ms bounds the handshake

test('a stalled handshake is closed after limits.header_timeout_ms (500): nothing sent, half a ClientHello, a dribbled one, no request after it', { timeout: 60_000 }, async () => {
  const g = await startTls(certs.rsa8, { config: { limits: { header_timeout_ms: 500 } } });
  try {
    const hello = await captureClientHello();
    const timed = async (what, fn) => {
      const t0 = Date.now();
      const c = await RawConn.open(g.tlsPort);
      const stop = { v: false };
      const feeding = fn(c, stop).catch(() => {});
      const closed = await c.waitClose(4000);
      stop.v = true;
      await feeding;
      const ms = Date.now() - t0;
      c.destroy();
      assert.ok(closed, `${what}: still open after 4 s`);
      assert.ok(ms >= 400, `${what}: closed after ${ms} ms, before the 500 ms deadline`);
      return ms;
    };
    const ms1 = await timed('connect, send nothing', async () => {});
    assert.ok(ms1 < 2000, `nothing sent: closed only after ${ms1} ms`);
    const ms2 = await timed('half a ClientHello', async (c) => { await c.write(hello.subarray(0, hello.length >> 1)); });
    assert.ok(ms2 < 2000, `half a ClientHello: closed only after ${ms2} ms`);
    const ms3 = await timed('ClientHello dribbled a byte per 50 ms', async (c, stop) => {
      for (let i = 0; i < hello.length && !stop.v; i++) { await c.write(hello.subarray(i, i + 1)); await sleep(50); }
    });
    assert.ok(ms3 < 2500, `a dribbled ClientHello kept the handshake open for ${ms3} ms (deadline 500 ms)`);
    // a completed handshake followed by silence
    const t0 = Date.now();
    const s = await tlsConnect(g.tlsPort);
    const closed = await new Promise((resolve) => { const t = setTimeout(() => resolve(false), 4000); s.on('close', () => { clearTimeout(t); resolve(true); }); s.on('error', () => {}); });
    assert.ok(closed && Date.now() - t0 < 2500, `a handshake without a request was kept for ${Date.now() - t0} ms`);
    // a prompt client is not affected by the low deadline
    const r = await httpsRequest(g.tlsPort, { path: '/health' });
    assert.equal(r.status, 200);
    await assertBothServe(g, 'after stalled handshakes');
  } finally {
    await g.stop();
  }
});

test('at most 1024 TLS connections per worker: the 1025th is refused, plain HTTP is not, and closed ones free their places', { timeout: 90_000 }, async () => {
  const g = await startTls(certs.ec256, { config: { limits: { header_timeout_ms: 60_000 } } });
  const open = async (n) => {
    const conns = [];
    for (let i = 0; i < n; i += 64) conns.push(...await Promise.all(Array.from({ length: Math.min(64, n - i) }, () => RawConn.open(g.tlsPort))));
    return conns;
  };
  let held = [];
  try {
    await sleep(300); // the readiness probe's connection is gone
    held = await open(1024);
    await sleep(500);
    assert.equal(held.filter((c) => c.closed).length, 0, 'some of the first 1024 TLS connections were closed');
    const extra = await tlsRefused(g.tlsPort);
    assert.ok(extra.error, 'a 1025th TLS connection was served');
    const p = await request(g.port, { path: '/health' });
    assert.equal(p.status, 200, 'plain HTTP was refused too');
    for (const c of held) c.destroy();
    held = [];
    await sleep(500);
    const r = await httpsRequest(g.tlsPort, { path: '/health' });
    assert.equal(r.status, 200, 'TLS still refused after the 1024 closed');
    // the count went back to zero: 1024 fit again
    held = await open(1024);
    await sleep(500);
    assert.equal(held.filter((c) => c.closed).length, 0, 'after a full cycle, fewer than 1024 TLS connections fit (the count leaked)');
  } finally {
    for (const c of held) c.destroy();
    await g.stop();
  }
});

// =============================================================================================
// key types and formats

for (const [label, key, suite] of [
  ['RSA 2048, PKCS#1 key', 'rsa1', /^ECDHE-RSA-/],
  ['RSA 2048, PKCS#8 key', 'rsa8', /^ECDHE-RSA-/],
  ['EC P-256, SEC1 key', 'ec256', /^ECDHE-ECDSA-/],
  ['EC P-384, PKCS#8 key', 'ec384', /^ECDHE-ECDSA-/],
]) {
  test(`${label}: served (fingerprint matches), ${suite.source.slice(1, -1)} suites, curl and s_client verify; bifrost check describes it`, async () => {
    const cred = certs[key];
    const g = await startTls(cred);
    try {
      const r = await httpsRequest(g.tlsPort, { path: '/health' });
      assert.equal(r.status, 200);
      assert.equal(r.tls.fingerprint, cred.fingerprint);
      assert.equal(r.tls.protocol, 'TLSv1.2');
      assert.match(r.tls.cipher, suite);
      const c = await run('curl', ['-sS', '--cacert', certs.ca.certFile, '-w', '%{http_code}', '-o', '/dev/null', `https://localhost:${g.tlsPort}/health`]);
      assert.equal(c.text, '200', c.show());
      if (cred.type !== 'rsa') {
        for (const cipher of ['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-ECDSA-CHACHA20-POLY1305']) {
          const s = await sClient(g.tlsPort, ['-tls1_2', '-cipher', cipher]);
          assert.deepEqual(negotiated(s), { protocol: 'TLSv1.2', cipher }, s.show());
        }
        for (const cipher of ['ECDHE-ECDSA-AES128-SHA', 'ECDHE-ECDSA-AES128-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256']) {
          const s = await sClient(g.tlsPort, ['-tls1_2', '-cipher', cipher]);
          assert.equal(negotiated(s), null, `${cipher} accepted by the EC listener\n${s.show()}`);
        }
      }
    } finally {
      await g.stop();
    }
    const ck = await checkTls(cred);
    assert.equal(ck.code, 0, ck.out);
    assert.match(ck.stdout, new RegExp(`^tls: ${cred.type === 'rsa' ? 'RSA' : 'EC'} key, 1 certificate, valid until ${utc(cred.validTo)}$`, 'm'), ck.out);
    assert.doesNotMatch(ck.stdout, /EXPIRED/);
  });
}

// =============================================================================================
// SIGHUP: a new certificate for the next handshake; a bad pair rejected

/** A gateway whose cert/key paths are files we overwrite; hup(re) sends SIGHUP and waits for re on stderr. */
async function reloadable(first) {
  const dir = tempDir('bifrost-hup-');
  const live = { certFile: join(dir, 'live.crt'), keyFile: join(dir, 'live.key') };
  const install = (c) => { copyFileSync(c.certFile, live.certFile); copyFileSync(c.keyFile, live.keyFile); };
  install(first);
  const g = await startTls(live);
  const count = (re) => g.stderr.filter((l) => re.test(l)).length;
  g.live = live;
  g.install = install;
  g.hup = async (re) => {
    const before = count(re);
    g.child.kill('SIGHUP');
    const until = Date.now() + 5000;
    while (count(re) === before) {
      assert.ok(Date.now() < until, `no ${re} on stderr after SIGHUP\n${g.output()}`);
      await sleep(2);
    }
  };
  g.served = async () => {
    const s = await tlsConnect(g.tlsPort);
    const fp = s.getPeerCertificate().fingerprint256;
    const cipher = s.getCipher().name;
    s.destroy();
    return { fp, cipher };
  };
  /** poll until the listener serves `fp` (≤ 1 s): the properties below, not the first-handshake timing */
  g.servedSoon = async (fp) => {
    const until = Date.now() + 1000;
    let got;
    while ((got = await g.served()).fp !== fp && Date.now() < until) await sleep(10);
    return got;
  };
  return g;
}

test('SIGHUP after replacing the cert and key files: the very next handshake (after "config reloaded") shows the new certificate', { timeout: 30_000 }, async () => {
  const g = await reloadable(certs.rsa8);
  try {
    assert.equal((await g.served()).fp, certs.rsa8.fingerprint);
    const stale = [];
    for (const [i, c] of [certs.rsaB, certs.rsa1, certs.ec256, certs.rsa8, certs.rsaB].entries()) {
      g.install(c);
      await g.hup(/config reloaded/);
      const first = (await g.served()).fp; // connect at once: the log line says the new config is live
      const second = (await g.served()).fp;
      if (first !== c.fingerprint) stale.push(`reload ${i + 1} (${c.name}): the first handshake showed the ${first === second ? 'new one only on the second' : 'old certificate'}`);
      assert.equal(second, c.fingerprint, `reload ${i + 1}: the second handshake still shows the old certificate`);
    }
    assert.deepEqual(stale, [], 'a handshake made right after "config reloaded" was served the previous certificate');
  } finally {
    await g.stop();
  }
});

test('SIGHUP: RSA → EC switches the suites, a connection from before keeps working; a bad pair / encrypted key / empty key is rejected ("reload rejected") and the last good certificate kept', { timeout: 60_000 }, async () => {
  const g = await reloadable(certs.rsa8);
  let ka;
  try {
    assert.equal((await g.served()).fp, certs.rsa8.fingerprint);
    ka = await tlsRaw(g.tlsPort); // a keep-alive connection made before the reloads

    g.install(certs.ec384);
    await g.hup(/config reloaded/);
    const ec = await g.servedSoon(certs.ec384.fingerprint);
    assert.equal(ec.fp, certs.ec384.fingerprint, 'the new certificate was not served within 1 s of the reload');
    assert.match(ec.cipher, /^ECDHE-ECDSA-/);
    // the connection from before keeps working (on its RSA session)
    await ka.write(rawRequest('GET', '/health'));
    assert.equal((await ka.readResponse()).status, 200);

    // a bad pair: rejected, the EC certificate stays
    copyFileSync(certs.rsa8.certFile, g.live.certFile);
    copyFileSync(certs.rsaB.keyFile, g.live.keyFile);
    await g.hup(/reload rejected/);
    assert.ok(g.stderr.some((l) => /does not match/.test(l)), `the reason was not given\n${g.output()}`);
    assert.equal((await g.served()).fp, certs.ec384.fingerprint, 'after a rejected reload the old certificate must still be served');
    // an encrypted key, then an empty key file: rejected as well
    copyFileSync(certs.enc8.keyFile, g.live.keyFile);
    await g.hup(/reload rejected/);
    assert.ok(g.stderr.some((l) => /encrypted/.test(l)), g.output());
    writeFileSync(g.live.keyFile, '');
    await g.hup(/reload rejected/);
    await sleep(100);
    assert.equal((await g.served()).fp, certs.ec384.fingerprint);
    await assertBothServe(g, 'after rejected reloads');
    await ka.write(rawRequest('GET', '/health'));
    assert.equal((await ka.readResponse()).status, 200);

    // good again
    g.install(certs.rsa1);
    await g.hup(/config reloaded/);
    assert.equal((await g.servedSoon(certs.rsa1.fingerprint)).fp, certs.rsa1.fingerprint);
  } finally {
    ka?.destroy();
    await g.stop();
  }
});

// =============================================================================================
// "listen": "" — HTTPS only

test('"listen": "" serves HTTPS only (no plain listener), requests work end to end', async () => {
  const dir = tempDir('bifrost-httpsonly-');
  const tlsPort = await freePort();
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ listen: '', providers: providers(), tls: tlsBlock(tlsPort, certs.ec256) }));
  const proc = spawnBifrost({ args: ['-c', cfg, '-w', '1', '-d', join(dir, 'data')], cwd: dir });
  try {
    await waitHttps(proc, tlsPort);
    const startLine = proc.stderr.find((l) => /listening on/.test(l)) ?? '';
    assert.match(startLine, new RegExp(`listening on https://127\\.0\\.0\\.1:${tlsPort} \\(`), proc.output());
    assert.doesNotMatch(startLine, /http:\/\//, proc.output());
    // the process listens on the TLS port and nothing else (no plain 0.0.0.0:8080 default either)
    const ss = await run('ss', ['-Hltnp']);
    if (ss.code === 0) {
      const mine = ss.text.split('\n').filter((l) => l.includes(`pid=${proc.child.pid},`));
      assert.ok(mine.length >= 1, `ss shows no listener of pid ${proc.child.pid}:\n${ss.text}`);
      for (const l of mine) assert.match(l, new RegExp(`127\\.0\\.0\\.1:${tlsPort}\\s`), `a listener besides the TLS port: ${l}`);
    }
    m.reset();
    const r = await httpsRequest(tlsPort, { method: 'POST', path: '/v1/chat/completions', body: JSON.stringify({ model: 'gpt-4o', messages: MSG }), headers: { authorization: 'Bearer vk' } });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json().choices[0].message.content, 'Hello from oa');
  } finally {
    proc.child.kill('SIGTERM');
    await proc.wait(10_000);
  }
});

test('"listen": "" without a "tls" block: the gateway refuses to start (no listener)', async () => {
  const dir = tempDir('bifrost-nolisten-');
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ listen: '', providers: [] }));
  const r = await runBifrost(['-c', cfg, '-w', '1', '-d', join(dir, 'data')], { cwd: dir });
  assert.notEqual(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, /no listener/);
});

test('the live tail over HTTPS is answered 501 (it is served on the plain listener only)', async () => {
  const r = await httpsRequest(gw.tlsPort, { path: '/api/logs/stream' });
  assert.equal(r.status, 501, show(r));
  assert.match(r.json().error.message, /plain listener/);
  await assertBothServe(gw, 'after the 501');
});

// =============================================================================================
// bifrost check, and startup with bad files

async function checkTls(cred, extra = {}) {
  const dir = tempDir('bifrost-check-');
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ providers: [], tls: { listen: '127.0.0.1:0', cert_file: cred.certFile, key_file: cred.keyFile, ...extra } }));
  const r = await runBifrost(['check', '-c', cfg], { cwd: dir });
  return { ...r, cfg, out: `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}` };
}

test('bifrost check: a chain prints "2 certificates"; an expired one "(EXPIRED)"; a GeneralizedTime notAfter (2061) is read', async () => {
  const chain = await checkTls(certs.chain);
  assert.equal(chain.code, 0, chain.out);
  assert.match(chain.stdout, new RegExp(`^tls: RSA key, 2 certificates, valid until ${utc(certs.chain.validTo)}$`, 'm'), chain.out);

  const exp = await checkTls(certs.expired);
  assert.equal(exp.code, 0, exp.out);
  assert.match(exp.stdout, /^tls: RSA key, 1 certificate, valid until 2020-02-01 00:00:00 UTC \(EXPIRED\)$/m, exp.out);

  const far = await checkTls(certs.y2061);
  assert.equal(far.code, 0, far.out);
  assert.match(far.stdout, /^tls: EC key, 1 certificate, valid until 2061-03-04 05:06:07 UTC$/m, far.out);
});

test('bifrost check refuses: mismatched pair, RSA cert + EC key, encrypted keys (PKCS#8 and legacy), P-521, missing files, no key, no certificate, incomplete block', async () => {
  const dir = tempDir('bifrost-badtls-');
  const empty = join(dir, 'empty.pem');
  writeFileSync(empty, '');
  const junk = join(dir, 'junk.pem');
  writeFileSync(junk, '-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n');
  const cases = [
    ['mismatched RSA pair', certs.mismatch, /tls: the key in .*rsaB\.key does not match the certificate in .*rsa8\.crt/],
    ['RSA certificate, EC key', certs.mixed, /does not match/],
    ['encrypted PKCS#8 key', certs.enc8, /encrypted/],
    ['legacy encrypted PKCS#1 key', certs.enc1, /encrypted/],
    ['EC P-521', certs.ec521, /EC keys must be on P-256 or P-384/],
    ['missing certificate file', { certFile: join(dir, 'nope.crt'), keyFile: certs.rsa8.keyFile }, /cannot open certificate file .*nope\.crt/],
    ['missing key file', { certFile: certs.rsa8.certFile, keyFile: join(dir, 'nope.key') }, /cannot open key file .*nope\.key/],
    ['key file holds only a certificate', { certFile: certs.rsa8.certFile, keyFile: certs.rsa8.certFile }, /no private key/],
    ['certificate file holds only a key', { certFile: certs.rsa8.keyFile, keyFile: certs.rsa8.keyFile }, /holds no certificate/],
    ['empty certificate file', { certFile: empty, keyFile: certs.rsa8.keyFile }, /holds no certificate/],
    ['broken PEM', { certFile: junk, keyFile: certs.rsa8.keyFile }, /not valid PEM/],
  ];
  for (const [name, cred, re] of cases) {
    const r = await checkTls(cred);
    assert.equal(r.code, 1, `${name}: ${r.out}`);
    assert.match(r.stderr, re, `${name}: ${r.out}`);
    assert.doesNotMatch(r.stdout, /: ok/, `${name}: ${r.out}`);
  }
  for (const [name, block] of [['no key_file', { key_file: undefined }], ['no cert_file', { cert_file: undefined }], ['empty listen', { listen: '' }]]) {
    const r = await checkTls(certs.rsa8, block);
    assert.equal(r.code, 1, `${name}: ${r.out}`);
    assert.match(r.stderr, /tls: listen, cert_file and key_file are all required/, `${name}: ${r.out}`);
  }
});

test('cert and key in one PEM file given as both cert_file and key_file: one certificate, served once', async () => {
  const dir = tempDir('bifrost-combined-');
  const both = join(dir, 'both.pem');
  writeFileSync(both, readFileSync(certs.rsa8.certFile, 'utf8') + readFileSync(certs.rsa8.keyFile, 'utf8'));
  const ck = await checkTls({ certFile: both, keyFile: both });
  assert.equal(ck.code, 0, ck.out);
  const problems = [];
  if (!/^tls: RSA key, 1 certificate, /m.test(ck.stdout)) problems.push(`bifrost check: ${ck.stdout.split('\n').find((l) => l.startsWith('tls:'))}`);
  const g = await startTls({ certFile: both, keyFile: both });
  try {
    const r = await sClient(g.tlsPort, ['-tls1_2', '-showcerts']);
    assert.ok(negotiated(r), r.show());
    const sent = (r.text.match(/-----BEGIN CERTIFICATE-----/g) || []).length;
    if (sent !== 1) problems.push(`the handshake's Certificate message carries ${sent} certificates (the leaf ${sent} times)`);
  } finally {
    await g.stop();
  }
  assert.deepEqual(problems, [], 'a combined cert+key file given as both files');
});

test('a bad TLS pair at startup: the gateway exits with the reason; an expired certificate starts with a warning and verifying clients refuse it', async () => {
  const dir = tempDir('bifrost-start-');
  const cfg = join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify({ providers: [], tls: tlsBlock(await freePort(), certs.mismatch) }));
  const r = await runBifrost(['-c', cfg, '-l', `127.0.0.1:${await freePort()}`, '-w', '1', '-d', join(dir, 'data')], { cwd: dir });
  assert.notEqual(r.code, 0, r.stderr);
  assert.match(r.stderr, /does not match/);

  const g = await startTls(certs.expired, { verify: false });
  try {
    assert.ok(g.stderr.some((l) => /warning: tls: the certificate in .*expired\.crt has expired/.test(l)), g.output());
    const res = await tlsRefused(g.tlsPort);
    assert.equal(res.error?.code, 'CERT_HAS_EXPIRED', `expected CERT_HAS_EXPIRED, got ${res.error?.code ?? res.ok}`);
    const s = await tlsConnect(g.tlsPort, { rejectUnauthorized: false });
    assert.equal(s.getPeerCertificate().fingerprint256, certs.expired.fingerprint);
    s.destroy();
  } finally {
    await g.stop();
  }
});
