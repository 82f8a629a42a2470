// A mock OpenAI-compatible upstream on 127.0.0.1 (http, or https when given a key/cert).
//
//   const m = await startMock({ name: 'a' });          // m.baseUrl = http://127.0.0.1:PORT/v1
//   m.behave({ status: 429, body: {...} });            // default behaviour for every request
//   m.once({ delayMs: 2000 });                         // behaviour for the next request only
//   ... m.requests[i] = { method, url, rawHeaders, headers, body: Buffer, json, socketId }
//   ... m.sent[i]     = { status, body: Buffer } or, for streams, { status, events: [Buffer], usageIndex }
//   await m.close();
//
// Behaviour fields (all optional):
//   status, headers            status code and extra response headers
//   body                       response body (object → JSON, string/Buffer as is); replaces the generated one
//   content                    assistant text (default `Hello from <name>`)
//   delayMs                    wait before sending the status line
//   hang                       never answer
//   chunkedBody                non-stream: send the JSON with Transfer-Encoding: chunked in 97-byte pieces
//   raw                        write these bytes instead of an HTTP response, then close; or an async
//                              function (socket, requestRecord) that writes what it likes on the raw
//                              socket (ended afterwards unless the function destroyed it)
//   resetAfterBytes            non-stream: send this many body bytes (Content-Length says the full size), then RST
//   chunks, chunkDelayMs       stream: number of content chunks (default 3), and the gap between events
//   resetAfterChunks           stream: after this many events, RST the connection
//   hangAfterChunks            stream: after this many events, go silent (connection kept open)
//   writeMode                  stream: 'event' (one write per event, default), 'split' (each event in two
//                              writes 20 ms apart, cut mid-JSON), 'coalesce' (all events in one write)
//   closeDelimited             stream: an HTTP/1.1 head with `Connection: close` and neither
//                              Content-Length nor chunking; the events written raw, then FIN
//   usage                      { prompt_tokens, completion_tokens } (default 11 / 7); a BigInt value is
//                              written as its exact digits (e.g. 2n ** 63n - 1n)
// A behaviour may also be a function (requestRecord) → behaviour object.

import http from 'node:http';
import { requestRecorder } from './record.mjs';
import https from 'node:https';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const DEFAULT_USAGE = { prompt_tokens: 11, completion_tokens: 7 };

/** JSON.stringify that writes BigInt values as their exact digits (huge token counts). */
export function stringify(v) {
  let big = false;
  const s = JSON.stringify(v, (k, x) => {
    if (typeof x !== 'bigint') return x;
    big = true;
    return `\u0000big:${x}\u0000`;
  });
  return big ? s.replace(/"\\u0000big:(-?\d+)\\u0000"/g, '$1') : s;
}

export async function startMock({ name = 'mock', tls = null } = {}) {
  const mock = {
    name,
    requests: [],
    sent: [],
    connections: 0,
    _default: {},
    _queue: [],
    _waiters: [],
    behave(b) { this._default = b || {}; return this; },
    once(b) { this._queue.push(b); return this; },
    reset() { this.requests.length = 0; this.sent.length = 0; this._queue.length = 0; this._default = {}; },
    /** distinct upstream sockets that carried requests */
    socketIds() { return [...new Set(this.requests.map((r) => r.socketId))]; },
    async waitForRequests(n, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (this.requests.length < n) {
        if (Date.now() > until) throw new Error(`mock ${name}: waited for ${n} requests, got ${this.requests.length}`);
        await sleep(10);
      }
    },
  };

  const record = requestRecorder();

  const handler = async (req, res) => {
    const rec = await record(req);
    mock.requests.push(rec);

    let b = mock._queue.length ? mock._queue.shift() : mock._default;
    if (typeof b === 'function') b = b(rec) || {};
    try {
      await respond(mock, rec, b, res);
    } catch {
      // the peer went away; nothing to do
    }
  };

  const opts = { requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 120_000 };
  const server = tls
    ? https.createServer({ ...opts, key: tls.key, cert: tls.cert }, handler)
    : http.createServer(opts, handler);
  server.keepAliveTimeout = 120_000;
  server.on('connection', () => { mock.connections++; });
  server.on('clientError', (err, sock) => sock.destroy());

  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  mock.server = server;
  mock.port = server.address().port;
  mock.origin = `${tls ? 'https' : 'http'}://127.0.0.1:${mock.port}`;
  mock.baseUrl = `${mock.origin}/v1`;
  mock.close = () => new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
  return mock;
}

function splitContent(content, n) {
  const parts = [];
  const size = Math.ceil(content.length / n);
  for (let i = 0; i < n; i++) parts.push(content.slice(i * size, (i + 1) * size));
  return parts;
}

async function respond(mock, rec, b, res) {
  if (b.hang) return; // never answer; close() tears the socket down
  if (b.delayMs) await sleep(b.delayMs);
  if (typeof b.raw === 'function') { // the behaviour writes the bytes itself
    const sock = res.socket;
    await b.raw(sock, rec);
    if (!sock.destroyed) sock.end();
    return;
  }
  if (b.raw !== undefined) { res.socket.end(b.raw); return; } // not HTTP at all

  const path = rec.url.split('?')[0];
  const model = rec.json && typeof rec.json.model === 'string' ? rec.json.model : 'unknown';
  const content = b.content ?? `Hello from ${mock.name}`;
  const usage = { ...DEFAULT_USAGE, ...(b.usage || {}) };
  usage.total_tokens = typeof usage.prompt_tokens === 'bigint' || typeof usage.completion_tokens === 'bigint'
    ? BigInt(usage.prompt_tokens) + BigInt(usage.completion_tokens)
    : usage.prompt_tokens + usage.completion_tokens;
  const status = b.status ?? 200;
  const extra = b.headers || {};
  const n = mock.requests.length;

  const wantsStream = b.body === undefined && status === 200 && path.endsWith('/chat/completions') && rec.json?.stream === true;
  if (wantsStream) return streamChat(mock, rec, b, res, { model, content, usage, n, extra });

  let body;
  if (b.body !== undefined) {
    body = Buffer.isBuffer(b.body) ? b.body : Buffer.from(typeof b.body === 'string' ? b.body : stringify(b.body));
  } else if (path.endsWith('/chat/completions')) {
    body = Buffer.from(stringify({
      id: `chatcmpl-${mock.name}-${n}`, object: 'chat.completion', created: 1700000000, model,
      choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }],
      usage,
    }));
  } else if (path.endsWith('/completions')) {
    body = Buffer.from(stringify({
      id: `cmpl-${mock.name}-${n}`, object: 'text_completion', created: 1700000000, model,
      choices: [{ text: content, index: 0, logprobs: null, finish_reason: 'stop' }],
      usage,
    }));
  } else if (path.endsWith('/embeddings')) {
    body = Buffer.from(stringify({
      object: 'list', model,
      data: [{ object: 'embedding', index: 0, embedding: [0.25, -0.5, 0.125] }],
      usage: { prompt_tokens: usage.prompt_tokens, total_tokens: usage.prompt_tokens },
    }));
  } else {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `mock: no route ${rec.method} ${path}`, type: 'not_found', code: null } }));
    return;
  }

  mock.sent.push({ status, body });
  if (b.chunkedBody) {
    // no Content-Length: Transfer-Encoding: chunked, the body cut into small pieces
    res.writeHead(status, { 'content-type': 'application/json', ...extra });
    for (let i = 0; i < body.length; i += 97) {
      await new Promise((r) => res.write(body.subarray(i, i + 97), r));
      if (i === 0) await sleep(20);
    }
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, ...extra });
  if (b.resetAfterBytes !== undefined) {
    await new Promise((r) => res.write(body.subarray(0, b.resetAfterBytes), r));
    await sleep(50);
    res.socket.resetAndDestroy();
    return;
  }
  res.end(body);
}

async function streamChat(mock, rec, b, res, { model, content, usage, n, extra }) {
  const count = b.chunks ?? 3;
  const gap = b.chunkDelayMs ?? 0;
  const id = `chatcmpl-${mock.name}-${n}`;
  const chunk = (choices, more = {}) => ({ id, object: 'chat.completion.chunk', created: 1700000000, model, choices, ...more });
  const ev = (obj) => Buffer.from(`data: ${typeof obj === 'string' ? obj : stringify(obj)}\n\n`);

  const events = [];
  const parts = splitContent(content, count);
  parts.forEach((p, i) => events.push(ev(chunk([{ index: 0, delta: i === 0 ? { role: 'assistant', content: p } : { content: p }, finish_reason: null }]))));
  events.push(ev(chunk([{ index: 0, delta: {}, finish_reason: 'stop' }])));
  let usageIndex = -1;
  if (rec.json?.stream_options?.include_usage === true) {
    usageIndex = events.length;
    events.push(ev(chunk([], { usage })));
  }
  events.push(ev('[DONE]'));

  const record = { status: 200, events, usageIndex, times: [] };
  mock.sent.push(record);
  if (b.closeDelimited) { // the stream ends with the connection, as HTTP/1.0 servers do
    const sock = res.socket;
    const head = ['HTTP/1.1 200 OK', 'Content-Type: text/event-stream', 'Cache-Control: no-cache', 'Connection: close',
      ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    await new Promise((r) => sock.write(`${head}\r\n\r\n`, r));
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && gap) await sleep(gap);
      record.times.push(Date.now());
      await new Promise((r) => sock.write(events[i], r));
    }
    sock.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...extra });
  res.flushHeaders();
  if (b.writeMode === 'coalesce') {
    record.times.push(Date.now());
    res.end(Buffer.concat(events));
    return;
  }
  for (let i = 0; i < events.length; i++) {
    if (i > 0 && gap) await sleep(gap);
    if (b.resetAfterChunks !== undefined && i === b.resetAfterChunks) {
      await sleep(50);
      res.socket.resetAndDestroy();
      return;
    }
    if (b.hangAfterChunks !== undefined && i === b.hangAfterChunks) return;
    record.times.push(Date.now());
    if (b.writeMode === 'split') {
      const cut = Math.floor(events[i].length / 2);
      await new Promise((r) => res.write(events[i].subarray(0, cut), r));
      await sleep(20);
      await new Promise((r) => res.write(events[i].subarray(cut), r));
    } else {
      await new Promise((r) => res.write(events[i], r));
    }
  }
  res.end();
}
