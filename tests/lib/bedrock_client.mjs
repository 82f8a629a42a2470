// Clients of the gateway's inbound Bedrock routes (/bedrock/model/{id}/...): the official
// AWS SDK (@aws-sdk/client-bedrock-runtime) set up the way a user points it at the gateway,
// and a raw eventstream decoder for tests that read the bytes themselves.
//
//   const c = bedrockClient(gw, { auth: 'bearer', key: vk });      // or 'sigv4' / 'env-bearer'
//   const r = await invoke(c, 'anthropic/claude-sonnet-4-5', bedrockBody({...}));  // { json, contentType, status }
//   const s = await invokeStream(c, modelId, body);                // { events, error, contentType }
//   c.destroy();
//
// Two things a user of the SDK must know (found while writing these tests, SDK 3.1164.0):
// - the client's default request handler is NodeHttp2Handler (HTTP/2, h2c prior knowledge on
//   an http:// endpoint); the gateway speaks HTTP/1.1 only, so the client is given a
//   NodeHttpHandler (`requestHandler: new NodeHttpHandler()`).
// - a Bedrock API key (bearer) is used when `token` is given *and* `authSchemePreference` puts
//   'httpBearerAuth' first, or when AWS_BEARER_TOKEN_BEDROCK is in the environment (the SDK
//   then prefers bearer by itself). Without either it signs with SigV4.

import {
  BedrockRuntimeClient, InvokeModelCommand, InvokeModelWithResponseStreamCommand,
  ConverseCommand, ConverseStreamCommand, CountTokensCommand, BedrockRuntimeServiceException,
} from '@aws-sdk/client-bedrock-runtime';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { EventStreamCodec } from '@smithy/eventstream-codec';

export {
  InvokeModelCommand, InvokeModelWithResponseStreamCommand, ConverseCommand, ConverseStreamCommand,
  CountTokensCommand, BedrockRuntimeServiceException, BedrockRuntimeClient, NodeHttpHandler,
};

/** The error classes the Bedrock Runtime service model defines (what x-amzn-ErrorType may name). */
export const BEDROCK_EXCEPTIONS = Object.freeze([
  'AccessDeniedException', 'ConflictException', 'InternalServerException', 'ModelErrorException',
  'ModelNotReadyException', 'ModelStreamErrorException', 'ModelTimeoutException', 'ResourceNotFoundException',
  'ServiceQuotaExceededException', 'ServiceUnavailableException', 'ThrottlingException', 'ValidationException',
]);

export const BEDROCK_VERSION = 'bedrock-2023-05-31';

/**
 * A BedrockRuntimeClient aimed at `${gw.url}/bedrock`.
 * auth: 'bearer' (token + authSchemePreference), 'sigv4' (static credentials, access key id =
 * key), 'env-bearer' (neither: the caller has set AWS_BEARER_TOKEN_BEDROCK).
 * maxAttempts 1: the SDK's own retries would hide what the gateway answered.
 */
export function bedrockClient(gw, { auth = 'bearer', key = 'vk-none', secret = 'not-a-real-secret', sessionToken, region = 'us-east-1', maxAttempts = 1, requestHandler, endpoint } = {}) {
  // the SDK warns once that it will need Node 22 from 2027; not this suite's business
  if (process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED === undefined) process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const cfg = {
    endpoint: endpoint ?? `${gw.url}/bedrock`,
    region,
    maxAttempts,
    requestHandler: requestHandler === undefined ? new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 30_000 }) : requestHandler,
  };
  if (requestHandler === null) delete cfg.requestHandler; // the SDK's default (HTTP/2)
  if (auth === 'bearer') {
    cfg.token = { token: key };
    cfg.authSchemePreference = ['httpBearerAuth'];
  } else if (auth === 'sigv4') {
    cfg.credentials = { accessKeyId: key, secretAccessKey: secret, ...(sessionToken ? { sessionToken } : {}) };
  } else if (auth !== 'env-bearer') {
    throw new Error(`bedrockClient: unknown auth ${auth}`);
  }
  return new BedrockRuntimeClient(cfg);
}

/** An Anthropic Messages body the way Bedrock takes it: no model, no stream, anthropic_version. */
export function bedrockBody(extra = {}) {
  return {
    anthropic_version: BEDROCK_VERSION,
    max_tokens: 64,
    messages: [{ role: 'user', content: 'Hello through Bedrock' }],
    ...extra,
  };
}

const encodeBody = (body) => (typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body));

/** InvokeModel; the answer's body parsed as JSON (text kept when it is not JSON). */
export async function invoke(client, modelId, body, { contentType = 'application/json', accept = 'application/json' } = {}) {
  const r = await client.send(new InvokeModelCommand({ modelId, body: encodeBody(body), contentType, accept }));
  const text = Buffer.from(r.body).toString('utf8');
  let json;
  try { json = JSON.parse(text); } catch { json = undefined; }
  return { json, text, contentType: r.contentType, status: r.$metadata?.httpStatusCode, raw: r };
}

/**
 * InvokeModelWithResponseStream; iterates the whole stream. Each chunk's bytes are decoded
 * as JSON (an Anthropic stream event). An error thrown by the iteration (an exception frame,
 * a cut connection) is returned in `error` with the events received before it; an error of
 * the call itself (an HTTP error before the stream) is thrown.
 */
export async function invokeStream(client, modelId, body) {
  const r = await client.send(new InvokeModelWithResponseStreamCommand({ modelId, body: encodeBody(body), contentType: 'application/json', accept: 'application/json' }));
  const events = [];
  const texts = [];
  let error = null;
  try {
    for await (const item of r.body) {
      if (item.chunk?.bytes) {
        const t = Buffer.from(item.chunk.bytes).toString('utf8');
        texts.push(t);
        events.push(JSON.parse(t));
      } else {
        events.push({ __nonChunk: Object.keys(item) });
      }
    }
  } catch (e) {
    error = e;
  }
  return { events, texts, error, contentType: r.contentType, status: r.$metadata?.httpStatusCode };
}

/** Send a command and return the error it throws (fails if it does not throw). */
export async function sendError(client, command) {
  try {
    const r = await client.send(command);
    // a stream that starts and then fails is not an error of the call
    return { noError: true, response: r };
  } catch (e) {
    return e;
  }
}

/** A short description of an SDK error for assertion messages. */
export function showErr(e) {
  if (!e) return String(e);
  if (e.noError) return `no error (status ${e.response?.$metadata?.httpStatusCode})`;
  return `${e.name} (${e.constructor?.name}) status ${e.$metadata?.httpStatusCode} fault ${e.$fault} message ${JSON.stringify(e.message)}`
    + ` response headers ${JSON.stringify(e.$response?.headers ?? null)}`;
}

// ---------------------------------------------------------------------------------------------
// the eventstream wire format, decoded by the SDK's own codec

const utf8 = {
  toUtf8: (u) => Buffer.from(u).toString('utf8'),
  fromUtf8: (s) => new Uint8Array(Buffer.from(s, 'utf8')),
};
export const codec = new EventStreamCodec(utf8.toUtf8, utf8.fromUtf8);

/**
 * Split a buffer of eventstream frames. Each: { headers: {name: value}, payload: Buffer, json }.
 * A CRC mismatch or a truncated frame throws (the codec checks both CRCs).
 * Returns { frames, rest } where rest is an incomplete trailing frame.
 */
export function decodeFrames(buf) {
  const frames = [];
  let pos = 0;
  while (buf.length - pos >= 12) {
    const total = buf.readUInt32BE(pos);
    if (total < 16 || total > 16 * 1024 * 1024) throw new Error(`eventstream: bad frame length ${total} at ${pos}`);
    if (buf.length - pos < total) break;
    const m = codec.decode(new Uint8Array(buf.subarray(pos, pos + total)));
    const headers = {};
    for (const [k, v] of Object.entries(m.headers)) headers[k] = v.value;
    const payload = Buffer.from(m.body);
    let json;
    try { json = JSON.parse(payload.toString('utf8')); } catch { json = undefined; }
    frames.push({ headers, payload, json });
    pos += total;
  }
  return { frames, rest: buf.subarray(pos) };
}

/** The Anthropic event inside a chunk frame. */
export function chunkEvent(frame) {
  if (frame.headers[':message-type'] !== 'event' || frame.headers[':event-type'] !== 'chunk') return undefined;
  return JSON.parse(Buffer.from(frame.json.bytes, 'base64').toString('utf8'));
}

/** Text of the text_delta events, concatenated. */
export function streamText(events) {
  return events.filter((e) => e?.type === 'content_block_delta' && e.delta?.type === 'text_delta').map((e) => e.delta.text).join('');
}

/** partial_json of the input_json_delta events of block `index`, concatenated. */
export function streamToolInput(events, index) {
  return events.filter((e) => e?.type === 'content_block_delta' && e.index === index && e.delta?.type === 'input_json_delta').map((e) => e.delta.partial_json).join('');
}

/** Percent-encode a model id the way the SDK puts it in the path (encodeURIComponent + ':' kept encoded). */
export function encodeModelId(id) {
  return encodeURIComponent(id);
}
