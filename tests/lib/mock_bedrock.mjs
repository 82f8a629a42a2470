// A mock AWS Bedrock runtime (bedrock-runtime.{region}.amazonaws.com) on 127.0.0.1.
//
//   const br = await startBedrockMock({ region: 'us-east-1', accessKeyId: 'AKIDEXAMPLE', secretAccessKey: '...' });
//   br.behave({ text: 'hi', toolUse: {...} });        // default behaviour for every request
//   br.once({ status: 429 });                         // behaviour for the next request only
//   ... br.requests[i] = { method, url, path (raw, still percent-encoded), query, headers, rawHeaders,
//                          body (text), bytes (Buffer), json, route, modelId (decoded), auth, socketId, time }
//   ... br.sent[i]     = { status, body } or, for streams, { status, frames: [{ headers, payload, event, bytes }], times: [ms] }
//   await br.close();
//
// Authentication, like AWS:
//   - apiKey given: a Bedrock API key; only `Authorization: Bearer <apiKey>` is accepted.
//   - otherwise SigV4: the Authorization header is parsed (AWS4-HMAC-SHA256 Credential=AKID/
//     YYYYMMDD/region/bedrock/aws4_request, SignedHeaders=..., Signature=...), the key id,
//     scope, x-amz-date (±5 min), session token and x-amz-content-sha256 are checked, and the
//     signature is recomputed with @smithy/signature-v4 over the received method, raw path,
//     query, ONLY the headers named in SignedHeaders with their received values, and the
//     received body. Any mismatch → 403 with `x-amzn-ErrorType` and `{"message": ...}`, the
//     texts AWS uses. rec.auth = { ok, mode: 'sigv4'|'bearer', signedHeaders, type, message }.
//
// Routes (POST only; anything else → 404 UnknownOperationException):
//   /model/{id}/invoke                        Anthropic Messages body (no model, no stream,
//                                             anthropic_version "bedrock-2023-05-31") → message JSON
//   /model/{id}/invoke-with-response-stream   → application/vnd.amazon.eventstream, one `chunk`
//                                             frame per Anthropic event: {"bytes": base64(event), "p": pad}
//   /model/{id}/converse                      Converse request → Converse response
//   /model/{id}/converse-stream               → eventstream frames messageStart / contentBlockStart /
//                                             contentBlockDelta / contentBlockStop / messageStop / metadata
// /invoke* serve Anthropic model ids only (anthropic.*, {us,eu,apac,global,...}.anthropic.*, ARNs
// naming one); Converse serves every model.
//
// Behaviour fields (all optional):
//   text                 assistant text (default `Hello from <name>`); '' → no text block
//   textChunks           number of text deltas (default 3)
//   toolUse              a tool call after the text: { id, name, input, fragments (default 3) }
//   stopReason           overrides the stop reason (Anthropic names for invoke, Converse names for converse)
//   usage                { input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens }
//                        (Converse: reported as inputTokens/outputTokens/cacheRead.../cacheWrite...)
//   model                the model named in an invoke answer (default derived from the id)
//   headers              extra response headers
//   status, errorType,   a plain HTTP error (e.g. 429 → ThrottlingException, "Too many requests,
//   message              please wait before trying again."), x-amzn-ErrorType header, {"message"}
//   hang                 never answer
//   firstDelayMs         wait before the first frame (streams; the head goes out at once) or
//                        before the answer (non-streamed)
//   delayMs              streams: the gap between two frames
//   split                streams: every frame written in random small pieces (at least one cut
//                        inside the 12-byte prelude, the tail of one frame sent with the head of
//                        the next), 1-3 ms apart; `split: { seed }` to pick the pieces
//   exception            streams: { type: 'throttlingException', message, afterEvents: N, sameWrite } —
//                        after N event frames (and delayMs), an exception frame (:message-type
//                        exception) and the end; sameWrite: in one write with the frame before it
//   coalesce             streams: every frame (exception included) in one write, after the head
//   badCrc               streams: the message CRC of one frame is corrupted (true → frame 2,
//                        a number → that frame)
//   cutAfterFrames       streams: destroy the connection after this many frames
// A behaviour may also be a function (requestRecord) → behaviour object.
//
// Helpers: signRequest() signs a request like the AWS SDK does (for direct calls and for the
// verifier's self-test), decodeFrames() parses an eventstream body (CRCs checked),
// invokeModelFromPath() decodes the model id of a /model/{id}/... path.

import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { Hash } from '@smithy/hash-node';
import { EventStreamCodec } from '@smithy/eventstream-codec';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// @smithy/util-utf8 is not a direct dependency (and not installed on its own): the two
// functions the codec needs, on Buffer.
export const fromUtf8 = (s) => new Uint8Array(Buffer.from(s, 'utf8'));
export const toUtf8 = (u8) => Buffer.from(u8.buffer, u8.byteOffset, u8.byteLength).toString('utf8');
export const codec = new EventStreamCodec(toUtf8, fromUtf8);

export const DEFAULT_BEDROCK_USAGE = Object.freeze({ input_tokens: 21, output_tokens: 8, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });
export const SIGNATURE_MISMATCH = 'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';
export const BAD_TOKEN = 'The security token included in the request is invalid.';

const ERROR_DEFAULTS = {
  400: ['ValidationException', 'Malformed input request, please reformat your input and try again.'],
  403: ['AccessDeniedException', "You don't have access to the model with the specified model ID."],
  404: ['ResourceNotFoundException', 'Could not resolve the foundation model from the provided model identifier.'],
  408: ['ModelTimeoutException', 'Model has timed out in processing the request. Try your request again.'],
  424: ['ModelErrorException', 'The model returned an error.'],
  429: ['ThrottlingException', 'Too many requests, please wait before trying again.'],
  500: ['InternalServerException', 'The server encountered an internal error while processing the request.'],
  503: ['ServiceUnavailableException', 'Bedrock is unable to process your request.'],
};
const STREAM_EXCEPTION_MESSAGES = {
  throttlingException: 'Too many requests, please wait before trying again.',
  internalServerException: 'The server encountered an internal error while processing the request.',
  serviceUnavailableException: 'Bedrock is unable to process your request.',
  modelStreamErrorException: 'The model stream encountered an error.',
  validationException: 'Input validation failed.',
};

/** The model id of a raw `/model/{id}/...` path (percent-decoded), or null. */
export function invokeModelFromPath(path) {
  const m = /^\/model\/([^/]+)\/(invoke|invoke-with-response-stream|converse|converse-stream)$/.exec(path);
  if (!m) return null;
  try { return { modelId: decodeURIComponent(m[1]), route: m[2] }; } catch { return null; }
}

/** anthropic.*, us./eu./apac./global./...anthropic.*, or an ARN naming one */
export function isAnthropicModel(id) {
  const bare = id.startsWith('arn:') ? id.slice(id.lastIndexOf('/') + 1) : id;
  return /^(?:[a-z]{2,7}\.)?anthropic\./.test(bare) || (id.startsWith('arn:') && /anthropic/.test(id));
}

/** us.anthropic.claude-sonnet-4-5-20250929-v1:0 → claude-sonnet-4-5-20250929 (what Bedrock answers as "model") */
export function anthropicModelName(id) {
  const bare = id.startsWith('arn:') ? id.slice(id.lastIndexOf('/') + 1) : id;
  return bare.replace(/^(?:[a-z]{2,7}\.)?anthropic\./, '').replace(/-v\d+(?::\d+)?$/, '');
}

// ---------------------------------------------------------------------------------------------
// SigV4

const sha256hex = (buf) => createHash('sha256').update(buf).digest('hex');
const AMZ_DATE_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

function parseAmzDate(s) {
  const m = AMZ_DATE_RE.exec(s || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return Number.isNaN(d.getTime()) ? null : d;
}
const amzDate = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

/** Raw query string → { name: value | [values] }, decoded (the signer re-encodes). */
function parseQuery(q) {
  const out = {};
  if (!q) return out;
  for (const part of q.split('&')) {
    if (part === '') continue;
    const i = part.indexOf('=');
    const k = decodeURIComponent(i < 0 ? part : part.slice(0, i));
    const v = decodeURIComponent(i < 0 ? '' : part.slice(i + 1));
    if (out[k] === undefined) out[k] = v;
    else out[k] = [].concat(out[k], v);
  }
  return out;
}

function newSigner({ region, accessKeyId, secretAccessKey, sessionToken, service = 'bedrock' }) {
  return new SignatureV4({
    service,
    region,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
    sha256: Hash.bind(null, 'sha256'),
    // AWS services other than S3 take the payload hash from the body; the signer must not
    // add an x-amz-content-sha256 header of its own to the canonical headers
    applyChecksum: false,
  });
}

/**
 * Sign a request the way the AWS SDK does. Returns the headers to send (host, x-amz-date,
 * x-amz-security-token when a session token is given, x-amz-content-sha256 when asked for,
 * authorization, and the given headers).
 *   { origin | host, method, path (raw, as it will be sent), body, headers, region,
 *     accessKeyId, secretAccessKey, sessionToken, date, contentSha256 }
 */
export async function signRequest({ origin, host, method = 'POST', path, body = '', headers = {}, region = 'us-east-1',
  accessKeyId, secretAccessKey, sessionToken, date = new Date(), contentSha256 = false, service = 'bedrock' }) {
  const h = host ?? new URL(origin).host;
  const q = path.indexOf('?');
  const bytes = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const req = {
    method, protocol: 'http:', hostname: h.split(':')[0], port: Number(h.split(':')[1]) || undefined,
    path: q < 0 ? path : path.slice(0, q), query: parseQuery(q < 0 ? '' : path.slice(q + 1)),
    headers: { host: h, ...Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v])) },
    body: bytes,
  };
  if (contentSha256) req.headers['x-amz-content-sha256'] = sha256hex(bytes);
  const signed = await newSigner({ region, accessKeyId, secretAccessKey, sessionToken, service }).sign(req, { signingDate: date });
  return signed.headers;
}

function authError(type, message) { return { ok: false, status: 403, type, message }; }

/** The SignedHeaders' values as received: duplicate header lines joined with ",". */
function signedHeaderValues(rawHeaders, names) {
  const want = new Set(names);
  const out = {};
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const k = rawHeaders[i].toLowerCase();
    if (!want.has(k)) continue;
    out[k] = out[k] === undefined ? rawHeaders[i + 1] : `${out[k]},${rawHeaders[i + 1]}`;
  }
  return out;
}

/**
 * Verify the SigV4 signature of a recorded request like AWS does.
 * cfg: { region, accessKeyId, secretAccessKey, sessionToken, maxSkewMs = 5 min, now }
 */
export async function verifySigV4(rec, cfg) {
  const auth = rec.headers.authorization;
  if (!auth) return authError('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const m = /^AWS4-HMAC-SHA256 Credential=([^,\s]+),\s*SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) {
    return authError('IncompleteSignatureException',
      `Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters (AWS4-HMAC-SHA256). Authorization=${auth}`);
  }
  const [, credential, signedList, signature] = m;
  const scope = credential.split('/');
  if (scope.length !== 5) return authError('IncompleteSignatureException', `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${credential}'`);
  const [akid, date, region, service, term] = scope;
  if (akid !== cfg.accessKeyId) return authError('UnrecognizedClientException', BAD_TOKEN);
  if (term !== 'aws4_request') return authError('InvalidSignatureException', `Credential should be scoped with a valid terminator: 'aws4_request', not '${term}'. `);
  if (service !== 'bedrock') return authError('InvalidSignatureException', `Credential should be scoped to correct service: 'bedrock'. `);
  if (region !== cfg.region) return authError('InvalidSignatureException', `Credential should be scoped to a valid region. `);

  const xAmzDate = rec.headers['x-amz-date'];
  const when = parseAmzDate(xAmzDate);
  if (!when) return authError('IncompleteSignatureException', `Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=${auth}`);
  if (date !== xAmzDate.slice(0, 8)) return authError('InvalidSignatureException', `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${date}' != '${xAmzDate.slice(0, 8)}', from '${xAmzDate}'.`);
  const now = cfg.now ? cfg.now() : Date.now();
  const skew = cfg.maxSkewMs ?? 5 * 60 * 1000;
  if (when.getTime() < now - skew) return authError('InvalidSignatureException', `Signature expired: ${xAmzDate} is now earlier than ${amzDate(new Date(now - skew))} (${amzDate(new Date(now))} - 5 min.)`);
  if (when.getTime() > now + skew) return authError('InvalidSignatureException', `Signature not yet current: ${xAmzDate} is still later than ${amzDate(new Date(now + skew))} (${amzDate(new Date(now))} + 5 min.)`);

  const names = signedList.split(';');
  const sorted = [...new Set(names)].sort();
  if (names.some((n) => n !== n.toLowerCase() || n === '') || sorted.join(';') !== signedList) {
    return authError('InvalidSignatureException', SIGNATURE_MISMATCH); // AWS lower-cases and sorts; anything else cannot match
  }
  for (const need of ['host', 'x-amz-date']) {
    if (!names.includes(need)) return authError('InvalidSignatureException', `'${need === 'host' ? 'Host' : 'X-Amz-Date'}' must be a 'SignedHeader' in the AWS Authorization.`);
  }
  for (const n of names) {
    if (rec.headers[n] === undefined) return authError('InvalidSignatureException', SIGNATURE_MISMATCH);
  }
  const token = rec.headers['x-amz-security-token'];
  if (cfg.sessionToken) {
    if (token !== cfg.sessionToken) return authError('UnrecognizedClientException', BAD_TOKEN);
    if (!names.includes('x-amz-security-token')) return authError('InvalidSignatureException', SIGNATURE_MISMATCH);
  } else if (token !== undefined) {
    return authError('UnrecognizedClientException', BAD_TOKEN); // a token for credentials that have none
  }
  const claimed = rec.headers['x-amz-content-sha256'];
  if (claimed !== undefined && claimed !== sha256hex(rec.bytes)) {
    return authError('XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.');
  }

  const host = rec.headers.host || '';
  const toSign = {
    method: rec.method, protocol: 'http:', hostname: host.split(':')[0], port: Number(host.split(':')[1]) || undefined,
    path: rec.path, query: parseQuery(rec.query), headers: signedHeaderValues(rec.rawHeaders, names), body: rec.bytes,
  };
  const signer = newSigner(cfg);
  let ours;
  try {
    ours = await signer.sign(toSign, { signingDate: when, signableHeaders: new Set(names) });
  } catch (e) {
    return authError('InvalidSignatureException', `${SIGNATURE_MISMATCH} (mock: ${e.message})`);
  }
  const om = /SignedHeaders=([^,\s]+),\s*Signature=([0-9a-f]{64})$/.exec(ours.headers.authorization);
  if (!om || om[1] !== signedList || om[2] !== signature) return authError('InvalidSignatureException', SIGNATURE_MISMATCH);
  return { ok: true, mode: 'sigv4', signedHeaders: names, accessKeyId: akid, region, date: xAmzDate };
}

// ---------------------------------------------------------------------------------------------
// eventstream frames

/** One eventstream frame (every header a string). */
export function encodeFrame(headers, payload) {
  const h = {};
  for (const [k, v] of Object.entries(headers)) h[k] = { type: 'string', value: String(v) };
  const body = Buffer.isBuffer(payload) || payload instanceof Uint8Array ? payload : fromUtf8(typeof payload === 'string' ? payload : JSON.stringify(payload));
  return Buffer.from(codec.encode({ headers: h, body }));
}

/** Parse a whole eventstream body into [{ headers: {name: value}, payload (text), json }] (throws on a bad CRC or a torn tail). */
export function decodeFrames(buf) {
  const out = [];
  let pos = 0;
  while (pos < buf.length) {
    if (buf.length - pos < 16) throw new Error(`eventstream: ${buf.length - pos} trailing bytes`);
    const total = buf.readUInt32BE(pos);
    if (pos + total > buf.length) throw new Error(`eventstream: frame of ${total} bytes at ${pos}, only ${buf.length - pos} left`);
    const msg = codec.decode(new Uint8Array(buf.subarray(pos, pos + total)));
    const headers = {};
    for (const [k, v] of Object.entries(msg.headers)) headers[k] = v.value;
    const payload = toUtf8(msg.body);
    let json;
    try { json = JSON.parse(payload); } catch { json = undefined; }
    out.push({ headers, payload, json });
    pos += total;
  }
  return out;
}

/** The Anthropic events carried by invoke-with-response-stream frames: [{ event, json }] / exceptions as { exception, json }. */
export function decodeInvokeStream(buf) {
  return decodeFrames(buf).map((f) => {
    if (f.headers[':message-type'] === 'exception') return { exception: f.headers[':exception-type'], json: f.json };
    const ev = JSON.parse(Buffer.from(f.json.bytes, 'base64').toString('utf8'));
    return { event: ev.type, json: ev };
  });
}

const PAD = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
function pad(rand) { return PAD.slice(0, 1 + Math.floor(rand() * (PAD.length - 1))); }

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function splitN(s, n) {
  if (n <= 1 || s.length === 0) return [s];
  const size = Math.ceil(s.length / n);
  const out = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function randomId(prefix, n, rand) {
  const al = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let s = prefix;
  for (let i = 0; i < n; i++) s += al[Math.floor(rand() * al.length)];
  return s;
}

// ---------------------------------------------------------------------------------------------
// request validation (the messages real Bedrock answers with)

const malformed = (detail) => `Malformed input request: ${detail}, please reformat your input and try again.`;

function validateInvoke(j) {
  if (!j || typeof j !== 'object' || Array.isArray(j)) return 'Malformed input request, please reformat your input and try again.';
  // Bedrock's schema for Anthropic bodies permits no unknown key; the mock refuses the ones a
  // gateway could leak (its own "fallbacks", OpenAI's stream_options), not every future field
  for (const k of ['model', 'stream', 'fallbacks', 'stream_options']) {
    if (k in j) return malformed(`#: extraneous key [${k}] is not permitted`);
  }
  if (!('anthropic_version' in j)) return malformed('#: required key [anthropic_version] not found');
  if (j.anthropic_version !== 'bedrock-2023-05-31') return malformed(`#/anthropic_version: ${JSON.stringify(j.anthropic_version)} is not a valid enum value`);
  if (!('max_tokens' in j)) return malformed('#: required key [max_tokens] not found');
  if (!Number.isInteger(j.max_tokens) || j.max_tokens < 1) return malformed('#/max_tokens: must be an integer >= 1');
  if (!Array.isArray(j.messages)) return malformed('#: required key [messages] not found');
  if ('anthropic_beta' in j && (!Array.isArray(j.anthropic_beta) || j.anthropic_beta.some((x) => typeof x !== 'string'))) {
    return malformed('#/anthropic_beta: expected type: JSONArray of strings');
  }
  return null;
}

const CONVERSE_KEYS = new Set(['messages', 'system', 'inferenceConfig', 'toolConfig', 'guardrailConfig', 'additionalModelRequestFields',
  'additionalModelResponseFieldPaths', 'promptVariables', 'requestMetadata', 'performanceConfig', 'serviceTier']);
const CONTENT_KEYS = new Set(['text', 'image', 'document', 'video', 'toolUse', 'toolResult', 'guardContent', 'cachePoint', 'reasoningContent', 'citationsContent']);
const isObj = (x) => x !== null && typeof x === 'object' && !Array.isArray(x);

function validateConverse(j) {
  if (!isObj(j)) return 'Malformed input request, please reformat your input and try again.';
  for (const k of Object.keys(j)) {
    if (!CONVERSE_KEYS.has(k)) return `1 validation error detected: the request has no member '${k}' (mock: Converse fields are ${[...CONVERSE_KEYS].join(', ')})`;
  }
  if (!Array.isArray(j.messages) || j.messages.length === 0) return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
  let usesTools = false;
  for (let i = 0; i < j.messages.length; i++) {
    const msg = j.messages[i];
    if (!isObj(msg) || !['user', 'assistant'].includes(msg.role)) return `1 validation error detected: Value at 'messages.${i + 1}.member.role' failed to satisfy constraint: Member must satisfy enum value set: [user, assistant]`;
    if (i === 0 && msg.role !== 'user') return 'A conversation must start with a user message. Try again with a conversation that starts with a user message.';
    if (i > 0 && j.messages[i - 1].role === msg.role) return 'A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.';
    if (!Array.isArray(msg.content) || msg.content.length === 0) return `The content field in the Message object at messages.${i} is empty. Add a ContentBlock object to the content field and try again.`;
    for (let c = 0; c < msg.content.length; c++) {
      const blk = msg.content[c];
      const keys = isObj(blk) ? Object.keys(blk) : [];
      if (keys.length !== 1 || !CONTENT_KEYS.has(keys[0])) return `1 validation error detected: messages.${i}.content.${c} must set exactly one of ${[...CONTENT_KEYS].join(', ')} (got ${JSON.stringify(blk)})`;
      if ('text' in blk && (typeof blk.text !== 'string' || blk.text.trim() === '')) return `The text field in the ContentBlock object at messages.${i}.content.${c} is blank. Add text to the text field, and try again.`;
      if ('toolUse' in blk) {
        usesTools = true;
        const t = blk.toolUse;
        if (msg.role !== 'assistant') return `messages.${i}.content.${c}: toolUse blocks belong to assistant messages`;
        if (!isObj(t) || typeof t.toolUseId !== 'string' || typeof t.name !== 'string' || !isObj(t.input)) return `messages.${i}.content.${c}.toolUse must have toolUseId, name and an object input (got ${JSON.stringify(t)})`;
      }
      if ('toolResult' in blk) {
        usesTools = true;
        const t = blk.toolResult;
        if (msg.role !== 'user') return `messages.${i}.content.${c}: toolResult blocks belong to user messages`;
        if (!isObj(t) || typeof t.toolUseId !== 'string' || !Array.isArray(t.content)) return `messages.${i}.content.${c}.toolResult must have toolUseId and a content array (got ${JSON.stringify(t)})`;
        for (const rc of t.content) {
          const ks = isObj(rc) ? Object.keys(rc) : [];
          if (ks.length !== 1 || !['text', 'json', 'image', 'document', 'video'].includes(ks[0])) return `messages.${i}.content.${c}.toolResult.content: each item sets exactly one of text, json, image, document, video (got ${JSON.stringify(rc)})`;
        }
        if ('status' in t && !['success', 'error'].includes(t.status)) return `messages.${i}.content.${c}.toolResult.status must be success or error`;
      }
    }
  }
  if ('system' in j) {
    if (!Array.isArray(j.system)) return "1 validation error detected: Value at 'system' must be a list of SystemContentBlock";
    for (let s = 0; s < j.system.length; s++) {
      const blk = j.system[s];
      const keys = isObj(blk) ? Object.keys(blk) : [];
      if (keys.length !== 1 || !['text', 'guardContent', 'cachePoint'].includes(keys[0])) return `system.${s} must set exactly one of text, guardContent, cachePoint (got ${JSON.stringify(blk)})`;
      if ('text' in blk && (typeof blk.text !== 'string' || blk.text.trim() === '')) return `The text field in the SystemContentBlock object at system.${s} is blank. Add text to the text field, and try again.`;
    }
  }
  if ('inferenceConfig' in j) {
    const ic = j.inferenceConfig;
    if (!isObj(ic)) return 'inferenceConfig must be an object';
    for (const k of Object.keys(ic)) if (!['maxTokens', 'temperature', 'topP', 'stopSequences'].includes(k)) return `inferenceConfig has no member '${k}'`;
    if ('maxTokens' in ic && (!Number.isInteger(ic.maxTokens) || ic.maxTokens < 1)) return "1 validation error detected: Value at 'inferenceConfig.maxTokens' failed to satisfy constraint: Member must have value greater than or equal to 1";
    for (const k of ['temperature', 'topP']) {
      if (k in ic && (typeof ic[k] !== 'number' || ic[k] < 0 || ic[k] > 1)) return `1 validation error detected: Value at 'inferenceConfig.${k}' failed to satisfy constraint: Member must have value between 0 and 1`;
    }
    if ('stopSequences' in ic && (!Array.isArray(ic.stopSequences) || ic.stopSequences.some((x) => typeof x !== 'string' || x === ''))) return 'inferenceConfig.stopSequences must be a list of non-empty strings';
  }
  if ('toolConfig' in j) {
    const tc = j.toolConfig;
    if (!isObj(tc) || !Array.isArray(tc.tools) || tc.tools.length === 0) return "1 validation error detected: Value at 'toolConfig.tools' failed to satisfy constraint: Member must have length greater than or equal to 1";
    for (const k of Object.keys(tc)) if (!['tools', 'toolChoice'].includes(k)) return `toolConfig has no member '${k}'`;
    for (let t = 0; t < tc.tools.length; t++) {
      const tool = tc.tools[t];
      if (isObj(tool) && isObj(tool.cachePoint) && Object.keys(tool).length === 1) continue;
      const spec = isObj(tool) && Object.keys(tool).length === 1 ? tool.toolSpec : undefined;
      if (!isObj(spec) || typeof spec.name !== 'string' || !/^[a-zA-Z0-9_-]{1,64}$/.test(spec.name)) return `toolConfig.tools.${t} must be {"toolSpec":{"name",...}} with a name of [a-zA-Z0-9_-]{1,64} (got ${JSON.stringify(tool)})`;
      if (!isObj(spec.inputSchema) || !isObj(spec.inputSchema.json)) return `toolConfig.tools.${t}.toolSpec.inputSchema must be {"json": {...}} (got ${JSON.stringify(spec.inputSchema)})`;
      for (const k of Object.keys(spec)) if (!['name', 'description', 'inputSchema', 'strict'].includes(k)) return `toolConfig.tools.${t}.toolSpec has no member '${k}'`;
    }
    if ('toolChoice' in tc) {
      const ch = tc.toolChoice;
      const keys = isObj(ch) ? Object.keys(ch) : [];
      if (keys.length !== 1 || !['auto', 'any', 'tool'].includes(keys[0]) || (keys[0] === 'tool' && typeof ch.tool?.name !== 'string')) return `toolConfig.toolChoice must be one of {"auto":{}}, {"any":{}}, {"tool":{"name"}} (got ${JSON.stringify(ch)})`;
    }
  } else if (usesTools) {
    return 'The toolConfig field must be defined when using toolUse and toolResult content blocks.';
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// the server

export async function startBedrockMock({ region = 'us-east-1', accessKeyId, secretAccessKey, sessionToken, apiKey, name = 'bedrock', log = false } = {}) {
  if (!apiKey && !(accessKeyId && secretAccessKey)) throw new Error('startBedrockMock: give accessKeyId and secretAccessKey, or apiKey');
  const mock = {
    name,
    region,
    requests: [],
    sent: [],
    connections: 0,
    _default: {},
    _queue: [],
    cfg: { region, accessKeyId, secretAccessKey, sessionToken, apiKey },
    behave(b) { this._default = b || {}; return this; },
    once(b) { this._queue.push(b); return this; },
    reset() { this.requests.length = 0; this.sent.length = 0; this._queue.length = 0; this._default = {}; },
    async waitForRequests(n, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      while (this.requests.length < n) {
        if (Date.now() > until) throw new Error(`mock ${name}: waited for ${n} requests, got ${this.requests.length}`);
        await sleep(10);
      }
    },
    /** one line per request: method, raw path, auth verdict, body keys */
    summary() {
      return this.requests.map((r) => {
        const keys = r.json && typeof r.json === 'object' ? Object.keys(r.json).join(',') : `${r.bytes.length} bytes`;
        const a = r.auth ? (r.auth.ok ? `${r.auth.mode} ok` : `${r.auth.type}: ${r.auth.message}`) : '-';
        return `${r.method} ${r.url} [${keys}] auth=${a}`;
      }).join('\n');
    },
  };

  const socketIds = new WeakMap();
  let nextSocketId = 0;

  const handler = async (req, res) => {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const bytes = Buffer.concat(chunks);
    let sid = socketIds.get(req.socket);
    if (!sid) { sid = ++nextSocketId; socketIds.set(req.socket, sid); }
    const headers = {};
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const k = req.rawHeaders[i].toLowerCase();
      headers[k] = headers[k] === undefined ? req.rawHeaders[i + 1] : `${headers[k]}, ${req.rawHeaders[i + 1]}`;
    }
    const q = req.url.indexOf('?');
    const text = bytes.toString('utf8');
    let json;
    try { json = JSON.parse(text); } catch { json = undefined; }
    const rec = {
      method: req.method, url: req.url, path: q < 0 ? req.url : req.url.slice(0, q), query: q < 0 ? '' : req.url.slice(q + 1),
      headers, rawHeaders: req.rawHeaders.slice(), body: text, bytes, json, socketId: sid, time: Date.now(),
    };
    const r = invokeModelFromPath(rec.path);
    rec.route = r?.route ?? null;
    rec.modelId = r?.modelId ?? null;
    if (apiKey) {
      rec.auth = headers.authorization === `Bearer ${apiKey}`
        ? { ok: true, mode: 'bearer' }
        : authError(headers.authorization?.startsWith('Bearer ') ? 'UnrecognizedClientException' : 'AccessDeniedException',
          headers.authorization?.startsWith('Bearer ') ? 'Invalid API Key format: Must start with pre-defined prefix' : 'Authentication failed: Please make sure your API Key is valid.');
    } else {
      rec.auth = await verifySigV4(rec, mock.cfg);
    }
    mock.requests.push(rec);
    if (log) process.stderr.write(`[${name}] ${req.method} ${req.url} ${bytes.length}B auth=${rec.auth.ok ? 'ok' : rec.auth.type}\n`);

    let b = mock._queue.length ? mock._queue.shift() : mock._default;
    if (typeof b === 'function') b = b(rec) || {};
    try {
      await respond(mock, rec, b, res);
    } catch {
      // the peer went away
    }
  };

  const server = http.createServer({ requestTimeout: 0, headersTimeout: 60_000, keepAliveTimeout: 120_000, noDelay: true }, handler);
  server.keepAliveTimeout = 120_000;
  server.on('connection', (s) => { mock.connections++; s.setNoDelay(true); });
  server.on('clientError', (err, sock) => sock.destroy());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  mock.server = server;
  mock.port = server.address().port;
  mock.origin = `http://127.0.0.1:${mock.port}`;
  mock.baseUrl = mock.origin;
  /** sign a request for this mock with its own credentials (direct calls) */
  mock.sign = (opts) => signRequest({ origin: mock.origin, region, accessKeyId, secretAccessKey, sessionToken, ...opts });
  mock.close = () => new Promise((resolve) => {
    server.closeAllConnections?.();
    server.close(() => resolve());
  });
  return mock;
}

function baseHeaders(extra = {}) {
  return { 'x-amzn-requestid': randomUUID(), date: new Date().toUTCString(), ...extra };
}

function sendJson(mock, res, status, obj, extra = {}) {
  const body = Buffer.from(typeof obj === 'string' ? obj : JSON.stringify(obj));
  mock.sent.push({ status, body });
  res.writeHead(status, baseHeaders({ 'content-type': 'application/json', 'content-length': body.length, ...extra }));
  res.end(body);
}

function sendError(mock, res, status, type, message, extra = {}) {
  sendJson(mock, res, status, { message }, { 'x-amzn-errortype': type, ...extra });
}

/** The content blocks (final form) a behaviour describes: [{type:'text',text}|{type:'tool_use',id,name,input}] */
function blocksFor(b, mock, rand) {
  const blocks = [];
  const text = b.text ?? `Hello from ${mock.name}`;
  if (text !== '') blocks.push({ type: 'text', text });
  if (b.toolUse) blocks.push({ type: 'tool_use', id: b.toolUse.id ?? randomId('toolu_bdrk_01', 22, rand), name: b.toolUse.name, input: b.toolUse.input ?? {} });
  return blocks;
}

async function respond(mock, rec, b, res) {
  if (b.hang) return;
  const t0 = Date.now();
  const rand = mulberry32(b.split?.seed ?? (mock.requests.length * 7919 + 17));
  const extra = { ...(b.headers || {}) };

  if (!rec.auth.ok) return sendError(mock, res, rec.auth.status, rec.auth.type, rec.auth.message, extra);
  if (rec.method !== 'POST' || !rec.route) return sendError(mock, res, 404, 'UnknownOperationException', `mock: no operation ${rec.method} ${rec.path}`, extra);

  if (b.status !== undefined && b.status !== 200) {
    const [type, message] = ERROR_DEFAULTS[b.status] ?? ['InternalServerException', 'mock error'];
    if (b.firstDelayMs) await sleep(b.firstDelayMs);
    return sendError(mock, res, b.status, b.errorType ?? type, b.message ?? message, extra);
  }

  const converse = rec.route === 'converse' || rec.route === 'converse-stream';
  const streaming = rec.route === 'invoke-with-response-stream' || rec.route === 'converse-stream';
  if (!converse && !isAnthropicModel(rec.modelId)) {
    return sendError(mock, res, 400, 'ValidationException', `mock: /invoke is implemented for Anthropic model ids only, not ${rec.modelId}`, extra);
  }
  const invalid = converse ? validateConverse(rec.json) : validateInvoke(rec.json);
  if (invalid) return sendError(mock, res, 400, 'ValidationException', invalid, extra);

  const usage = { ...DEFAULT_BEDROCK_USAGE, ...(b.usage || {}) };
  const blocks = blocksFor(b, mock, rand);
  const hasTool = blocks.some((x) => x.type === 'tool_use');

  if (!streaming) {
    if (b.firstDelayMs) await sleep(b.firstDelayMs);
    if (!converse) {
      const out = {
        id: randomId('msg_bdrk_01', 22, rand), type: 'message', role: 'assistant',
        model: b.model ?? anthropicModelName(rec.modelId), content: blocks,
        stop_reason: b.stopReason ?? (hasTool ? 'tool_use' : 'end_turn'), stop_sequence: null, usage,
      };
      return sendJson(mock, res, 200, out, {
        'x-amzn-bedrock-input-token-count': String(usage.input_tokens),
        'x-amzn-bedrock-output-token-count': String(usage.output_tokens),
        'x-amzn-bedrock-invocation-latency': String(Date.now() - t0 + 100),
        ...extra,
      });
    }
    const content = blocks.map((x) => (x.type === 'text' ? { text: x.text } : { toolUse: { toolUseId: x.id, name: x.name, input: x.input } }));
    return sendJson(mock, res, 200, {
      output: { message: { role: 'assistant', content } },
      stopReason: b.stopReason ?? (hasTool ? 'tool_use' : 'end_turn'),
      usage: converseUsage(usage),
      metrics: { latencyMs: Date.now() - t0 + 100 },
    }, extra);
  }

  // --- streams: the frames first, then written with the behaviour's timing
  const frames = []; // { headers, payload (object), event }
  if (!converse) {
    const id = randomId('msg_bdrk_01', 22, rand);
    const evs = [];
    evs.push({
      type: 'message_start',
      message: {
        id, type: 'message', role: 'assistant', model: b.model ?? anthropicModelName(rec.modelId), content: [],
        stop_reason: null, stop_sequence: null,
        usage: { input_tokens: usage.input_tokens, cache_creation_input_tokens: usage.cache_creation_input_tokens, cache_read_input_tokens: usage.cache_read_input_tokens, output_tokens: 1 },
      },
    });
    blocks.forEach((blk, index) => {
      if (blk.type === 'text') {
        evs.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } });
        for (const part of splitN(blk.text, b.textChunks ?? 3)) evs.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: part } });
      } else {
        evs.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: blk.id, name: blk.name, input: {} } });
        evs.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } });
        for (const part of splitN(JSON.stringify(blk.input), b.toolUse.fragments ?? 3)) evs.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: part } });
      }
      evs.push({ type: 'content_block_stop', index });
    });
    evs.push({ type: 'message_delta', delta: { stop_reason: b.stopReason ?? (hasTool ? 'tool_use' : 'end_turn'), stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
    evs.push({ type: 'message_stop' }); // invocation metrics are added when it is written
    for (const ev of evs) frames.push({ event: ev.type, anthropic: ev });
  } else {
    const cev = (event, payload) => frames.push({ event, converse: payload });
    cev('messageStart', { role: 'assistant' });
    blocks.forEach((blk, contentBlockIndex) => {
      if (blk.type === 'text') {
        for (const part of splitN(blk.text, b.textChunks ?? 3)) cev('contentBlockDelta', { contentBlockIndex, delta: { text: part } });
      } else {
        cev('contentBlockStart', { contentBlockIndex, start: { toolUse: { toolUseId: blk.id, name: blk.name } } });
        for (const part of splitN(JSON.stringify(blk.input), b.toolUse.fragments ?? 3)) cev('contentBlockDelta', { contentBlockIndex, delta: { toolUse: { input: part } } });
      }
      cev('contentBlockStop', { contentBlockIndex });
    });
    cev('messageStop', { stopReason: b.stopReason ?? (hasTool ? 'tool_use' : 'end_turn') });
    cev('metadata', { usage: converseUsage(usage), metrics: { latencyMs: 0 } });
  }

  const record = { status: 200, frames: [], times: [], route: rec.route };
  mock.sent.push(record);
  res.writeHead(200, baseHeaders({ 'content-type': 'application/vnd.amazon.eventstream', 'x-amzn-bedrock-content-type': 'application/json', ...extra }));
  res.flushHeaders();

  const write = (buf) => new Promise((resolve, reject) => {
    if (res.destroyed || res.socket?.destroyed) { reject(new Error('gone')); return; }
    res.write(buf, (err) => (err ? reject(err) : resolve()));
  });
  let pending = Buffer.alloc(0); // split mode: the tail of the previous frame, sent with the next one's head
  const coalesced = []; // b.coalesce: every frame in one write at the end
  const emit = async (buf) => {
    if (b.coalesce) { coalesced.push(buf); return; }
    if (!b.split) { await write(buf); return; }
    const data = Buffer.concat([pending, buf]);
    const cuts = new Set([pending.length + 1 + Math.floor(rand() * 11)]); // one cut inside this frame's prelude
    for (let p = 0; p < data.length;) { p += 1 + Math.floor(rand() * 40); if (p < data.length) cuts.add(p); }
    const pts = [...cuts].filter((x) => x > 0 && x < data.length).sort((x, y) => x - y);
    let prev = 0;
    for (const c of pts) {
      await write(data.subarray(prev, c));
      prev = c;
      await sleep(1 + Math.floor(rand() * 3));
    }
    pending = data.subarray(prev);
  };

  const exc = b.exception;
  const excAt = exc ? (exc.afterEvents ?? 0) : -1;
  const badAt = b.badCrc === true ? 2 : (typeof b.badCrc === 'number' ? b.badCrc : -1);
  let firstAt = null;
  try {
    if (b.firstDelayMs) await sleep(b.firstDelayMs);
    let held = null; // exception.sameWrite: the frame before the exception, sent with it
    for (let i = 0; i <= frames.length; i++) {
      if (i > 0 && b.delayMs && !(held && i === excAt)) await sleep(b.delayMs);
      if (i === excAt) {
        const type = exc.type ?? 'throttlingException';
        const payload = { message: exc.message ?? STREAM_EXCEPTION_MESSAGES[type] ?? 'mock stream exception', ...(exc.extra || {}) };
        const hdrs = { ':exception-type': type, ':content-type': 'application/json', ':message-type': 'exception' };
        const bytes = encodeFrame(hdrs, payload);
        record.frames.push({ headers: hdrs, payload, event: `exception:${type}`, bytes });
        record.times.push(Date.now());
        await emit(held ? Buffer.concat([held, bytes]) : bytes);
        break;
      }
      if (i === frames.length) break;
      if (b.cutAfterFrames !== undefined && i === b.cutAfterFrames) {
        if (pending.length) { await write(pending); pending = Buffer.alloc(0); }
        await sleep(20);
        res.socket.destroy();
        return;
      }
      const f = frames[i];
      if (firstAt === null) firstAt = Date.now();
      let hdrs;
      let payload;
      if (f.anthropic) {
        const ev = f.event === 'message_stop'
          ? {
            ...f.anthropic,
            'amazon-bedrock-invocationMetrics': {
              inputTokenCount: usage.input_tokens, outputTokenCount: usage.output_tokens,
              invocationLatency: Date.now() - t0, firstByteLatency: firstAt - t0,
              ...(usage.cache_read_input_tokens ? { cacheReadInputTokenCount: usage.cache_read_input_tokens } : {}),
              ...(usage.cache_creation_input_tokens ? { cacheWriteInputTokenCount: usage.cache_creation_input_tokens } : {}),
            },
          }
          : f.anthropic;
        hdrs = { ':event-type': 'chunk', ':content-type': 'application/json', ':message-type': 'event' };
        payload = { bytes: Buffer.from(JSON.stringify(ev)).toString('base64'), p: pad(rand) };
        f.anthropic = ev;
      } else {
        if (f.event === 'metadata') f.converse.metrics.latencyMs = Date.now() - t0;
        hdrs = { ':event-type': f.event, ':content-type': 'application/json', ':message-type': 'event' };
        payload = { ...f.converse, p: pad(rand) };
      }
      const bytes = encodeFrame(hdrs, payload);
      if (i === badAt) bytes[bytes.length - 1] ^= 0x5a; // the message CRC no longer matches
      record.frames.push({ headers: hdrs, payload, event: f.event, json: f.anthropic ?? f.converse, bytes, badCrc: i === badAt });
      record.times.push(Date.now());
      if (exc?.sameWrite && i === excAt - 1) held = bytes;
      else await emit(bytes);
    }
    if (coalesced.length) await write(Buffer.concat(coalesced));
    if (pending.length) await write(pending);
    res.end();
  } catch {
    // the peer went away mid-stream
  }
}

function converseUsage(u) {
  const out = { inputTokens: u.input_tokens, outputTokens: u.output_tokens, totalTokens: u.input_tokens + u.output_tokens + (u.cache_read_input_tokens || 0) + (u.cache_creation_input_tokens || 0) };
  if (u.cache_read_input_tokens) out.cacheReadInputTokens = u.cache_read_input_tokens;
  if (u.cache_creation_input_tokens) out.cacheWriteInputTokens = u.cache_creation_input_tokens;
  return out;
}
