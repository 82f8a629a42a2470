// A mock Anthropic Messages API upstream on 127.0.0.1 (the counterpart of mock.mjs for the
// Anthropic dialect).
//
//   const a = await startAnthropicMock({ name: 'ant' });   // a.origin = http://127.0.0.1:PORT
//   a.behave({ text: 'hi', toolUse: {...} });              // default behaviour for every request
//   a.once({ status: 529, body: {...} });                  // behaviour for the next request only
//   ... a.requests[i] = { method, url, path, query, rawHeaders, headers, body: Buffer, json, socketId, time }
//   ... a.sent[i]     = { status, body: Buffer } or, for streams, { status, events: [Buffer], names: [..], times: [..] }
//   await a.close();
//
// Routes: POST /v1/messages (JSON or SSE when the body says "stream": true),
// POST /v1/messages/count_tokens ({"input_tokens": N}), GET /v1/models, HEAD|GET / → 200.
// Anything else → 404 in the Anthropic error shape.
//
// Behaviour fields (all optional):
//   status, headers        status code and extra response headers
//   body                   response body (object → JSON, string/Buffer as is), sent instead of the generated one
//   delayMs                wait before sending the status line
//   hang                   never answer
//   text                   assistant text (default `Hello from <name>`); '' → no text block
//   textChunks             number of text_delta events the text is cut into (default 3)
//   thinking               a thinking block first: { thinking: 'text', signature: 'sig' }
//   toolUse                a tool_use block after the text: { id, name, input, fragments (default 3) }
//                          → stop_reason "tool_use"
//   stopReason             overrides the stop reason
//   usage                  { input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens }
//                          (a BigInt value is written as its exact digits)
//   eventDelayMs           stream: the gap between events
//   ping                   stream: send an `event: ping` after message_start
//   model                  the model named in the answer (default: the request's)
//   countTokens            input_tokens answered by count_tokens (default 42)
//   resetAfterEvents       stream: RST the connection after this many events
//   closeDelimited         stream: an HTTP/1.1 head with `Connection: close` and neither
//                          Content-Length nor chunking; the events written raw, then FIN
// A behaviour may also be a function (requestRecord) → behaviour object.
//
// scripted(): a behaviour for agent loops (Claude Code): when the last user message carries no
// tool_result, answer with a tool_use of the given tool; when it does, answer with text that
// quotes what the tool returned (`TOOL RESULT: <content>`).

import http from 'node:http';
import { requestRecorder } from './record.mjs';
import { stringify } from './mock.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export const DEFAULT_ANTHROPIC_USAGE = Object.freeze({
  input_tokens: 25,
  output_tokens: 9,
  cache_read_input_tokens: 100,
  cache_creation_input_tokens: 50,
});

export function anthropicError(type, message) {
  return { type: 'error', error: { type, message } };
}

export async function startAnthropicMock({ name = 'anthropic-mock', log = false } = {}) {
  const mock = {
    name,
    requests: [],
    sent: [],
    connections: 0,
    _default: {},
    _queue: [],
    behave(b) { this._default = b || {}; return this; },
    once(b) { this._queue.push(b); return this; },
    reset() { this.requests.length = 0; this.sent.length = 0; this._queue.length = 0; this._default = {}; },
    /** the POST /v1/messages requests only */
    messages() { return this.requests.filter((r) => r.method === 'POST' && r.path === '/v1/messages'); },
    async waitForRequests(n, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (this.requests.length < n) {
        if (Date.now() > until) throw new Error(`mock ${name}: waited for ${n} requests, got ${this.requests.length}`);
        await sleep(10);
      }
    },
    /** one line per request: method, url, selected headers, body keys (for debugging / reports) */
    summary() {
      return this.requests.map((r) => {
        const keys = r.json && typeof r.json === 'object' ? Object.keys(r.json).join(',') : `${r.body.length} bytes`;
        return `${r.method} ${r.url} [${keys}]`;
      }).join('\n');
    },
  };

  const record = requestRecorder();

  const handler = async (req, res) => {
    const rec = await record(req);
    mock.requests.push(rec);
    if (log) process.stderr.write(`[${name}] ${req.method} ${req.url} ${rec.body.length}B\n`);

    let b = mock._queue.length ? mock._queue.shift() : mock._default;
    if (typeof b === 'function') b = b(rec) || {};
    try {
      await respond(mock, rec, b, res);
    } catch {
      // the peer went away
    }
  };

  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 120_000 }, handler);
  server.keepAliveTimeout = 120_000;
  server.on('connection', () => { mock.connections++; });
  server.on('clientError', (err, sock) => sock.destroy());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  mock.server = server;
  mock.port = server.address().port;
  mock.origin = `http://127.0.0.1:${mock.port}`;
  mock.baseUrl = mock.origin; // Anthropic base URLs carry no /v1
  mock.close = () => new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
  return mock;
}

function splitN(s, n) {
  if (n <= 1 || s.length === 0) return [s];
  const size = Math.ceil(s.length / n);
  const out = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function sendJson(mock, res, status, obj, extra = {}) {
  const body = Buffer.isBuffer(obj) ? obj : Buffer.from(typeof obj === 'string' ? obj : stringify(obj));
  mock.sent.push({ status, body });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': body.length, ...extra });
  res.end(body);
}

/** The content blocks (final form) a behaviour describes. */
export function blocksFor(b, mock) {
  const blocks = [];
  if (b.thinking) blocks.push({ type: 'thinking', thinking: b.thinking.thinking ?? 'Let me think.', signature: b.thinking.signature ?? 'c2lnbmF0dXJl' });
  const text = b.text ?? `Hello from ${mock.name}`;
  if (text !== '') blocks.push({ type: 'text', text });
  if (b.toolUse) {
    blocks.push({ type: 'tool_use', id: b.toolUse.id ?? 'toolu_01MockToolUse', name: b.toolUse.name, input: b.toolUse.input ?? {} });
  }
  return blocks;
}

async function respond(mock, rec, b, res) {
  if (b.hang) return;
  if (b.delayMs) await sleep(b.delayMs);
  const status = b.status ?? 200;
  const extra = { 'request-id': `req_mock_${mock.requests.length}`, ...(b.headers || {}) };

  if (b.body !== undefined) return sendJson(mock, res, status, b.body, extra);

  if (rec.method === 'HEAD' || (rec.method === 'GET' && (rec.path === '/' || rec.path === ''))) {
    mock.sent.push({ status: 200, body: Buffer.alloc(0) });
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 0 });
    res.end();
    return;
  }
  if (rec.method === 'GET' && rec.path === '/v1/models') {
    return sendJson(mock, res, status, {
      data: [{ type: 'model', id: 'claude-sonnet-4-5', display_name: 'Claude Sonnet 4.5', created_at: '2025-09-29T00:00:00Z' }],
      has_more: false, first_id: 'claude-sonnet-4-5', last_id: 'claude-sonnet-4-5',
    }, extra);
  }
  if (rec.method === 'POST' && rec.path === '/v1/messages/count_tokens') {
    return sendJson(mock, res, status, { input_tokens: b.countTokens ?? 42 }, extra);
  }
  if (!(rec.method === 'POST' && rec.path === '/v1/messages')) {
    return sendJson(mock, res, 404, anthropicError('not_found_error', `mock: no route ${rec.method} ${rec.path}`));
  }
  if (!rec.json || typeof rec.json !== 'object') {
    return sendJson(mock, res, 400, anthropicError('invalid_request_error', 'mock: body is not JSON'));
  }

  const n = mock.requests.length;
  const model = b.model ?? (typeof rec.json.model === 'string' ? rec.json.model : 'unknown');
  const usage = { ...DEFAULT_ANTHROPIC_USAGE, ...(b.usage || {}) };
  const blocks = blocksFor(b, mock);
  const stopReason = b.stopReason ?? (b.toolUse ? 'tool_use' : 'end_turn');
  const id = `msg_mock_${mock.name}_${n}`;

  if (rec.json.stream !== true) {
    return sendJson(mock, res, status, {
      id, type: 'message', role: 'assistant', model, content: blocks,
      stop_reason: stopReason, stop_sequence: null, usage,
    }, extra);
  }

  // --- SSE stream
  const names = [];
  const events = [];
  const ev = (type, obj) => { names.push(type); events.push(Buffer.from(`event: ${type}\ndata: ${stringify(obj)}\n\n`)); };
  ev('message_start', {
    type: 'message_start',
    message: {
      id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null,
      usage: { input_tokens: usage.input_tokens, cache_creation_input_tokens: usage.cache_creation_input_tokens, cache_read_input_tokens: usage.cache_read_input_tokens, output_tokens: 1 },
    },
  });
  if (b.ping) ev('ping', { type: 'ping' });
  blocks.forEach((blk, index) => {
    if (blk.type === 'thinking') {
      ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'thinking', thinking: '', signature: '' } });
      ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: blk.thinking } });
      ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: blk.signature } });
    } else if (blk.type === 'text') {
      ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
      for (const part of splitN(blk.text, b.textChunks ?? 3)) {
        ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'text_delta', text: part } });
      }
    } else {
      ev('content_block_start', { type: 'content_block_start', index, content_block: { type: 'tool_use', id: blk.id, name: blk.name, input: {} } });
      // the first input_json_delta is empty, like the real API's
      ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } });
      for (const part of splitN(JSON.stringify(blk.input), b.toolUse.fragments ?? 3)) {
        ev('content_block_delta', { type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: part } });
      }
    }
    ev('content_block_stop', { type: 'content_block_stop', index });
  });
  ev('message_delta', { type: 'message_delta', delta: { stop_reason: stopReason, stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
  ev('message_stop', { type: 'message_stop' });

  const record = { status, events, names, times: [] };
  mock.sent.push(record);
  if (b.closeDelimited) { // the stream ends with the connection, as HTTP/1.0 servers do
    const sock = res.socket;
    const head = [`HTTP/1.1 ${status} OK`, 'Content-Type: text/event-stream; charset=utf-8', 'Cache-Control: no-cache',
      'Connection: close', ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
    await new Promise((r) => sock.write(`${head}\r\n\r\n`, r));
    for (let i = 0; i < events.length; i++) {
      if (i > 0 && b.eventDelayMs) await sleep(b.eventDelayMs);
      record.times.push(Date.now());
      await new Promise((r) => sock.write(events[i], r));
    }
    sock.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', ...extra });
  res.flushHeaders();
  for (let i = 0; i < events.length; i++) {
    if (i > 0 && b.eventDelayMs) await sleep(b.eventDelayMs);
    if (b.resetAfterEvents !== undefined && i === b.resetAfterEvents) {
      await sleep(50);
      res.socket.resetAndDestroy();
      return;
    }
    record.times.push(Date.now());
    await new Promise((r) => res.write(events[i], r));
  }
  res.end();
}

// ---------------------------------------------------------------------------------------------
// agent-loop helpers

/** The last message with role user, or undefined. */
export function lastUserMessage(body) {
  const msgs = Array.isArray(body?.messages) ? body.messages : [];
  for (let i = msgs.length - 1; i >= 0; i--) if (msgs[i]?.role === 'user') return msgs[i];
  return undefined;
}

/** tool_result blocks of a message (content array), possibly empty. */
export function toolResults(msg) {
  return Array.isArray(msg?.content) ? msg.content.filter((c) => c?.type === 'tool_result') : [];
}

/** Flatten a tool_result's content (string or list of text blocks) to text. */
export function toolResultText(tr) {
  if (typeof tr?.content === 'string') return tr.content;
  if (Array.isArray(tr?.content)) return tr.content.map((c) => (typeof c === 'string' ? c : c?.text ?? '')).join('');
  return '';
}

/**
 * Behaviour for a tool round trip: no tool_result in the last user turn → ask for `tool`
 * with `input`; a tool_result → answer `TOOL RESULT: <text>`. Requests that are not the main
 * conversation (no tools offered, e.g. a title or quota probe) get `sideText`.
 * opts: { tool = 'Bash', input = { command: 'echo bifrost-tool-ok', description: ... }, id, sideText, extra }
 */
export function scripted({ tool = 'Bash', input = { command: 'echo bifrost-tool-ok', description: 'Print a marker' }, id = 'toolu_01BifrostScripted', sideText = 'ok', extra = {} } = {}) {
  return (rec) => {
    if (!(rec.method === 'POST' && rec.path === '/v1/messages')) return { ...extra };
    const body = rec.json || {};
    const offered = Array.isArray(body.tools) ? body.tools.map((t) => t?.name) : [];
    const results = toolResults(lastUserMessage(body));
    if (results.length > 0) {
      // Claude Code appends <system-reminder> blocks to tool output: quote only the output
      const text = results.map(toolResultText).join('\n').replace(/<system-reminder>[\s\S]*?<\/system-reminder>/g, '').trim();
      return { ...extra, text: `TOOL RESULT: ${text}` };
    }
    if (!offered.includes(tool)) return { ...extra, text: sideText };
    return { ...extra, text: 'Running the tool.', toolUse: { id, name: tool, input } };
  };
}
