// The HTTP/1.1 front end: health/metrics, malformed input (400/413/431), request smuggling
// shapes, keep-alive, pipelining, Expect: 100-continue, header and idle timeouts.
// After every malformed input the gateway must keep serving.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, chat, request, errorBody, RawConn, rawRequest, tempDir, sleep, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

let m, gw;
const GOOD = '{"model":"p1/gpt-4o","messages":[{"role":"user","content":"hi"}]}';

before(async () => {
  m = await startMock({ name: 'up' });
  gw = await startGateway({
    config: {
      limits: { max_body_bytes: 4096, max_header_bytes: 4096, header_timeout_ms: 600, idle_timeout_ms: 700 },
      providers: [{ name: 'p1', provider: 'openai', apiKey: 'sk-p1', base_url: m.baseUrl, models: ['gpt-*'] }],
    },
  });
});

after(async () => {
  await gw?.stop();
  await m?.close();
});

/** the gateway still answers a good request on a fresh connection */
async function assertStillServing() {
  const r = await chat(gw.port, GOOD);
  assert.equal(r.status, 200, `gateway stopped serving: ${r.status} ${r.text}`);
}

function chatReq(body, headers = {}) {
  return rawRequest('POST', '/v1/chat/completions', { headers: { 'Content-Type': 'application/json', ...headers }, body });
}

// ---------------------------------------------------------------------------------------------
// plain endpoints

test('GET /health → 200 JSON {"status":"ok"}', async () => {
  const r = await request(gw.port, { path: '/health' });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] || '', /application\/json/);
  assert.equal(r.json().status, 'ok');
});

test('HEAD / → 200 with no body', async () => {
  const conn = await RawConn.open(gw.port);
  await conn.write('HEAD / HTTP/1.1\r\nHost: gw\r\n\r\n');
  const r = await conn.readResponse({ noBody: true });
  assert.equal(r.status, 200, show(r));
  // no body bytes may follow a HEAD response: a follow-up request must parse cleanly
  await conn.write('GET /health HTTP/1.1\r\nHost: gw\r\n\r\n');
  const r2 = await conn.readResponse();
  assert.equal(r2.status, 200, 'bytes after the HEAD response corrupted the stream');
  conn.destroy();
});

test('GET /metrics → 200 Prometheus text', async () => {
  await assertStillServing();
  const r = await request(gw.port, { path: '/metrics' });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] || '', /^text\/plain/);
  assert.match(r.text, /^# (HELP|TYPE) \w+/m);
  assert.match(r.text, /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? [0-9.eE+-]+$/m, 'no sample line');
});

// ---------------------------------------------------------------------------------------------
// bad JSON / bad fields → 400

for (const [name, body] of [
  ['missing model', '{"messages":[{"role":"user","content":"hi"}]}'],
  ['model not a string', '{"model":5,"messages":[]}'],
  ['model null', '{"model":null,"messages":[]}'],
  ['duplicate model key', '{"model":"p1/gpt-4o","messages":[],"model":"p1/gpt-3.5"}'],
  ['duplicate model key spelled with an escape', '{"model":"p1/gpt-4o","messages":[],"mod\\u0065l":"p1/gpt-3.5"}'],
  ['bad string escape', '{"model":"p1/gpt-4o","messages":[{"role":"user","content":"bad \\x escape"}]}'],
  ['bad \\u escape', '{"model":"p1/gpt-4o","messages":[{"role":"user","content":"\\u12G4"}]}'],
  ['trailing garbage', '{"model":"p1/gpt-4o","messages":[]} xyz'],
  ['two JSON values', '{"model":"p1/gpt-4o","messages":[]}{"model":"p1/gpt-4o"}'],
  ['truncated JSON', '{"model":"p1/gpt-4o","messages":['],
  ['missing comma', '{"model":"p1/gpt-4o" "messages":[]}'],
  ['top level array', '[{"model":"p1/gpt-4o"}]'],
  ['empty body', ''],
  ['unescaped control char in string', '{"model":"p1/gpt-4o","messages":[{"role":"user","content":"a\u0001b"}]}'],
]) {
  test(`400 on ${name}, nothing sent upstream, gateway keeps serving`, async () => {
    m.reset();
    const r = await chat(gw.port, body);
    assert.equal(r.status, 400, `${name}: status ${r.status} body ${r.text}`);
    errorBody(r);
    assert.equal(m.requests.length, 0, `${name}: the upstream received ${m.requests[0]?.body}`);
    await assertStillServing();
  });
}

// ---------------------------------------------------------------------------------------------
// limits

test('413 when the body is over limits.max_body_bytes (4096)', async () => {
  m.reset();
  const body = `{"model":"p1/gpt-4o","messages":[{"role":"user","content":"${'x'.repeat(5000)}"}]}`;
  const r = await chat(gw.port, body);
  assert.equal(r.status, 413, r.text);
  errorBody(r);
  assert.equal(m.requests.length, 0);
  await assertStillServing();
});

test('a body just under max_body_bytes is accepted', async () => {
  m.reset();
  const head = '{"model":"p1/gpt-4o","messages":[{"role":"user","content":"';
  const tail = '"}]}';
  const body = head + 'y'.repeat(4000 - head.length - tail.length) + tail;
  assert.equal(body.length, 4000);
  const r = await chat(gw.port, body);
  assert.equal(r.status, 200, r.text);
});

test('413 for a chunked body that grows over max_body_bytes', async () => {
  m.reset();
  const c = await RawConn.open(gw.port);
  try {
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n');
    const piece = 'z'.repeat(1000);
    for (let i = 0; i < 6 && !c.closed && c.buf.length === 0; i++) {
      await c.write(`${piece.length.toString(16)}\r\n${piece}\r\n`).catch(() => {});
      await sleep(20);
    }
    const r = await c.readResponse({ timeoutMs: 3000 });
    assert.equal(r.status, 413, r.body.toString());
    assert.equal(m.requests.length, 0);
  } finally {
    c.destroy();
  }
  await assertStillServing();
});

test('431 when the headers are over limits.max_header_bytes (4096)', async () => {
  const c = await RawConn.open(gw.port);
  try {
    await c.write(`GET /health HTTP/1.1\r\nHost: gw\r\nX-Big: ${'h'.repeat(6000)}\r\n\r\n`).catch(() => {});
    const r = await c.readResponse({ timeoutMs: 3000 });
    assert.equal(r.status, 431, r.body.toString());
  } finally {
    c.destroy();
  }
  await assertStillServing();
});

test('431 when many small headers add up over max_header_bytes', async () => {
  const hs = Array.from({ length: 200 }, (_, i) => `X-H${i}: ${'v'.repeat(30)}`).join('\r\n');
  const c = await RawConn.open(gw.port);
  try {
    await c.write(`GET /health HTTP/1.1\r\nHost: gw\r\n${hs}\r\n\r\n`).catch(() => {});
    const r = await c.readResponse({ timeoutMs: 3000 });
    assert.equal(r.status, 431, r.body.toString());
  } finally {
    c.destroy();
  }
  await assertStillServing();
});

// ---------------------------------------------------------------------------------------------
// malformed HTTP and request smuggling shapes: 400, the connection closed (the framing is
// unknown, so nothing after it may be read as a request), nothing upstream.

const SMUGGLED = 'GET /health HTTP/1.1\r\nHost: smuggled\r\n\r\n';
for (const [name, bytes, statuses] of [
  ['Content-Length together with Transfer-Encoding',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: ${GOOD.length}\r\nTransfer-Encoding: chunked\r\n\r\n${GOOD.length.toString(16)}\r\n${GOOD}\r\n0\r\n\r\n${SMUGGLED}`],
  ['Transfer-Encoding before Content-Length',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${GOOD.length.toString(16)}\r\n${GOOD}\r\n0\r\n\r\n${SMUGGLED}`],
  ['two differing Content-Length headers',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: ${GOOD.length}\r\nContent-Length: 5\r\n\r\n${GOOD}${SMUGGLED}`],
  ['Content-Length list with differing values',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: ${GOOD.length}, 5\r\n\r\n${GOOD}${SMUGGLED}`],
  ['negative Content-Length',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: -1\r\n\r\n${GOOD}${SMUGGLED}`],
  ['overflowing Content-Length',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: 18446744073709551617\r\n\r\n${GOOD}${SMUGGLED}`],
  ['Content-Length with a plus sign',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length: +${GOOD.length}\r\n\r\n${GOOD}${SMUGGLED}`],
  ['bad chunk size',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${GOOD}\r\n0\r\n\r\n${SMUGGLED}`],
  ['overflowing chunk size',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000001\r\n${GOOD}\r\n0\r\n\r\n${SMUGGLED}`],
  ['unknown Transfer-Encoding (400 or 501)',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: gzip\r\n\r\n${GOOD}${SMUGGLED}`, [400, 501]],
  ['space before the header colon',
    `POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Length : ${GOOD.length}\r\n\r\n${GOOD}${SMUGGLED}`],
  ['garbage request line', `GARBAGE\r\n\r\n${SMUGGLED}`],
  ['HTTP/1.1 without Host', `GET /health HTTP/1.1\r\n\r\n${SMUGGLED}`],
].map(([n, b, st]) => [n, b, st || [400]])) {
  test(`${statuses.join('/')} and close on ${name}; the smuggled request is not served`, async () => {
    m.reset();
    const c = await RawConn.open(gw.port);
    try {
      await c.write(bytes).catch(() => {});
      const r = await c.readResponse({ timeoutMs: 3000 });
      assert.ok(statuses.includes(r.status), `${name}: got ${r.status} ${r.body.toString()}`);
      const closed = await c.waitClose(2000);
      assert.ok(closed, `${name}: connection left open after a framing error; extra bytes: ${JSON.stringify(c.buf.toString('latin1'))}`);
      assert.equal(c.buf.length, 0, `${name}: a second response was sent: ${JSON.stringify(c.buf.toString('latin1'))}`);
      assert.equal(m.requests.length, 0, `${name}: upstream received a request`);
    } finally {
      c.destroy();
    }
    await assertStillServing();
  });
}

// ---------------------------------------------------------------------------------------------
// keep-alive, pipelining, 100-continue, chunked

test('keep-alive: three requests on one connection', async () => {
  const c = await RawConn.open(gw.port);
  try {
    for (let i = 0; i < 3; i++) {
      await c.write(chatReq(`{"model":"p1/gpt-ka-${i}","messages":[]}`));
      const r = await c.readResponse();
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(r.headers['x-bifrost-provider'], `p1/gpt-ka-${i}`);
    }
    assert.equal(c.closed, false);
  } finally {
    c.destroy();
  }
});

test('pipelining: two requests in one write → two responses in order', async () => {
  m.reset();
  // the first one is slower upstream, so out-of-order completion would show
  m.behave((rec) => (rec.json?.model === 'gpt-first' ? { delayMs: 300 } : {}));
  const c = await RawConn.open(gw.port);
  try {
    await c.write(Buffer.concat([
      chatReq('{"model":"p1/gpt-first","messages":[]}'),
      chatReq('{"model":"p1/gpt-second","messages":[]}'),
      rawRequest('GET', '/health'),
    ]));
    const r1 = await c.readResponse();
    const r2 = await c.readResponse();
    const r3 = await c.readResponse();
    assert.equal(r1.status, 200, show(r1));
    assert.equal(r1.headers['x-bifrost-provider'], 'p1/gpt-first');
    assert.equal(JSON.parse(r1.body).model, 'gpt-first');
    assert.equal(r2.status, 200, show(r2));
    assert.equal(r2.headers['x-bifrost-provider'], 'p1/gpt-second');
    assert.equal(JSON.parse(r2.body).model, 'gpt-second');
    assert.equal(r3.status, 200, show(r3));
    assert.equal(JSON.parse(r3.body).status, 'ok');
  } finally {
    c.destroy();
    m.behave({});
  }
});

test('Expect: 100-continue → interim 100 before the body is sent, then 200', async () => {
  m.reset();
  const body = `{"model":"p1/gpt-4o","messages":[{"role":"user","content":"${'e'.repeat(1500)}"}]}`;
  const c = await RawConn.open(gw.port);
  try {
    await c.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
    const interim = await c.readResponse({ timeoutMs: 2000, interim: true });
    assert.equal(interim.status, 100, `expected 100 Continue, got ${interim.rawHead}`);
    await c.write(body);
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(m.requests.length, 1);
    assert.equal(m.requests[0].body.length, body.length - 3);
  } finally {
    c.destroy();
  }
});

test('Expect: 100-continue with a body over the limit → 413 without reading the body', async () => {
  const c = await RawConn.open(gw.port);
  try {
    await c.write('POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n');
    const r = await c.readResponse({ timeoutMs: 2000, interim: true });
    assert.equal(r.status, 413, `expected an immediate 413 instead of 100 Continue: ${r.rawHead}`);
  } finally {
    c.destroy();
  }
  await assertStillServing();
});

test('curl with a >1 KB body and Expect: 100-continue gets 100 then 200 promptly', async () => {
  const dir = tempDir();
  const f = join(dir, 'body.json');
  const body = `{"model":"p1/gpt-curl","messages":[{"role":"user","content":"${'c'.repeat(2000)}"}]}`;
  writeFileSync(f, body);
  const t0 = Date.now();
  const out = await new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-v', '--max-time', '10', '-H', 'Content-Type: application/json', '-H', 'Expect: 100-continue', '--data-binary', `@${f}`,
      '-w', '\n%{http_code}', `http://127.0.0.1:${gw.port}/v1/chat/completions`], (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`)); else resolve({ stdout, stderr });
    });
  });
  const elapsed = Date.now() - t0;
  assert.match(out.stderr, /> Expect: 100-continue/i, 'curl did not send Expect (test premise)');
  assert.match(out.stderr, /< HTTP\/1.1 100/i, 'gateway did not answer 100 Continue');
  assert.equal(out.stdout.trim().split('\n').pop(), '200', out.stdout);
  assert.ok(elapsed < 900, `took ${elapsed} ms: curl waited for its 1 s Expect timeout`);
});

test('chunked request body with extensions and trailers → 200', async () => {
  m.reset();
  const c = await RawConn.open(gw.port);
  try {
    const a = GOOD.slice(0, 20);
    const b = GOOD.slice(20);
    await c.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n`
      + `${a.length.toString(16)};ext=1\r\n${a}\r\n${b.length.toString(16).toUpperCase()}\r\n${b}\r\n0\r\nX-Trailer: t\r\n\r\n`);
    const r = await c.readResponse();
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(m.requests[0].body.toString(), GOOD.replace('"p1/gpt-4o"', '"gpt-4o"'));
    // the connection is still usable after the chunked body
    await c.write(rawRequest('GET', '/health'));
    const r2 = await c.readResponse();
    assert.equal(r2.status, 200, show(r2));
  } finally {
    c.destroy();
  }
});

// ---------------------------------------------------------------------------------------------
// timeouts

test('a header that does not finish within header_timeout_ms (600) → connection closed', async () => {
  const c = await RawConn.open(gw.port);
  const t0 = Date.now();
  try {
    await c.write('GET /health HTTP/1.1\r\nHost: gw\r\n');
    const closed = await c.waitClose(4000);
    const dt = Date.now() - t0;
    assert.ok(closed, 'connection still open 4 s after an unfinished header');
    assert.ok(dt >= 400, `closed after only ${dt} ms`);
    if (c.buf.length) assert.match(c.buf.toString('latin1'), /^HTTP\/1\.1 (408|400)/);
  } finally {
    c.destroy();
  }
});

test('slowloris: a header trickled one byte per 100 ms is cut off by header_timeout_ms', async () => {
  const c = await RawConn.open(gw.port);
  const t0 = Date.now();
  try {
    const trickle = `GET /health HTTP/1.1\r\nHost: gw\r\n${'X-Slow: '.padEnd(200, 's')}`;
    for (let i = 0; i < trickle.length && !c.closed && Date.now() - t0 < 4000; i++) {
      await c.write(trickle[i]).catch(() => {});
      await sleep(100);
    }
    const dt = Date.now() - t0;
    assert.ok(c.closed, `still open after trickling for ${dt} ms`);
    assert.ok(c.closedAt - t0 < 2500, `closed only after ${c.closedAt - t0} ms (header_timeout_ms is 600)`);
  } finally {
    c.destroy();
  }
});

test('an idle keep-alive connection is closed after idle_timeout_ms (700)', async () => {
  const c = await RawConn.open(gw.port);
  try {
    await c.write(rawRequest('GET', '/health'));
    const r = await c.readResponse();
    assert.equal(r.status, 200, show(r));
    const t0 = Date.now();
    const closed = await c.waitClose(4000);
    const dt = Date.now() - t0;
    assert.ok(closed, 'idle connection still open 4 s later');
    assert.ok(dt >= 300, `closed after only ${dt} ms of idleness`);
  } finally {
    c.destroy();
  }
});

test('a connection used within idle_timeout_ms stays open', async () => {
  const c = await RawConn.open(gw.port);
  try {
    for (let i = 0; i < 4; i++) {
      await c.write(rawRequest('GET', '/health'));
      const r = await c.readResponse();
      assert.equal(r.status, 200, show(r));
      await sleep(350);
    }
    assert.equal(c.closed, false, 'closed although never idle for idle_timeout_ms');
  } finally {
    c.destroy();
  }
});

test('Connection: close is honoured: response then close', async () => {
  const c = await RawConn.open(gw.port);
  try {
    await c.write('GET /health HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 200, show(r));
    assert.ok(await c.waitClose(2000), 'connection not closed after Connection: close');
  } finally {
    c.destroy();
  }
});

test('HTTP/1.0 request without keep-alive → response then close', async () => {
  const c = await RawConn.open(gw.port);
  try {
    await c.write('GET /health HTTP/1.0\r\n\r\n');
    const r = await c.readResponse();
    assert.equal(r.status, 200, show(r));
    assert.ok(await c.waitClose(2000), 'HTTP/1.0 connection not closed');
  } finally {
    c.destroy();
  }
});
