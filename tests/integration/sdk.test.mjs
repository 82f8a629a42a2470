// The official `openai` npm package as the client: plain and streamed chat completions,
// embeddings, model listing and error mapping through the gateway.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the "openai" package is not installed: run (cd tests && npm ci) — ${e.message}`);
}

let m, gw, client;
const CONTENT = 'The quick brown fox jumps over the lazy dog.';

before(async () => {
  m = await startMock({ name: 'sdk' });
  m.behave({ content: CONTENT, chunks: 6 });
  gw = await startGateway({
    config: { providers: [{ name: 'sdk', provider: 'openai', apiKey: 'sk-upstream', base_url: m.baseUrl, models: ['gpt-4o', 'gpt-*'], max_retries: 0 }] },
  });
  client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'vk-anything', maxRetries: 0, timeout: 10000 });
});

after(async () => {
  await gw?.stop();
  await m?.close();
});

test('SDK: plain chat completion through the gateway', async () => {
  m.reset();
  m.behave({ content: CONTENT });
  const c = await client.chat.completions.create({ model: 'sdk/gpt-4o', messages: [{ role: 'user', content: 'Say the pangram' }] });
  assert.equal(c.object, 'chat.completion');
  assert.equal(c.choices[0].message.content, CONTENT);
  assert.equal(c.choices[0].finish_reason, 'stop');
  assert.equal(c.model, 'gpt-4o');
  assert.deepEqual(c.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
  const up = m.requests[0];
  assert.equal(up.headers.authorization, 'Bearer sk-upstream');
  assert.deepEqual(up.json.messages, [{ role: 'user', content: 'Say the pangram' }]);
});

test('SDK: withResponse exposes x-bifrost-provider', async () => {
  const { data, response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }).withResponse();
  assert.equal(data.choices[0].message.content, CONTENT);
  assert.equal(response.headers.get('x-bifrost-provider'), 'sdk/gpt-4o');
});

test('SDK: streamed chat completion, content reassembled, no usage chunk', async () => {
  m.reset();
  m.behave({ content: CONTENT, chunks: 6 });
  const stream = await client.chat.completions.create({ model: 'sdk/gpt-4o', stream: true, messages: [{ role: 'user', content: 'stream it' }] });
  let text = '';
  let n = 0;
  let finish = null;
  for await (const chunk of stream) {
    n++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    assert.ok(chunk.choices.length > 0, `a chunk with no choices (usage chunk) leaked: ${JSON.stringify(chunk)}`);
    assert.equal(chunk.usage ?? null, null);
    text += chunk.choices[0].delta?.content ?? '';
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  assert.equal(text, CONTENT);
  assert.equal(n, 7);
  assert.equal(finish, 'stop');
});

test('SDK: streamed with stream_options.include_usage → final usage chunk delivered', async () => {
  const stream = await client.chat.completions.create({ model: 'sdk/gpt-4o', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'x' }] });
  let text = '';
  let last;
  for await (const chunk of stream) { text += chunk.choices[0]?.delta?.content ?? ''; last = chunk; }
  assert.equal(text, CONTENT);
  assert.deepEqual(last.choices, []);
  assert.deepEqual(last.usage, { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 });
});

test('SDK: chat.completions.stream helper (finalChatCompletion)', async () => {
  const runner = client.chat.completions.stream({ model: 'sdk/gpt-4o', messages: [{ role: 'user', content: 'x' }] });
  const final = await runner.finalChatCompletion();
  assert.equal(final.choices[0].message.content, CONTENT);
});

test('SDK: embeddings', async () => {
  m.reset();
  const e = await client.embeddings.create({ model: 'sdk/text-embedding-3-small', input: 'hello', encoding_format: 'float' });
  assert.deepEqual(e.data[0].embedding, [0.25, -0.5, 0.125]);
  assert.equal(m.requests[0].url, '/v1/embeddings');
  assert.equal(m.requests[0].json.model, 'text-embedding-3-small');
});

test('SDK: models.list sees the configured concrete model', async () => {
  const ids = [];
  for await (const model of client.models.list()) ids.push(model.id);
  assert.deepEqual(ids, ['sdk/gpt-4o']);
});

test('SDK: gateway errors surface as APIError with status and message', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'nope/unknown', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.equal(err.status, 400, String(err));
      assert.ok(err instanceof OpenAI.BadRequestError, `not a BadRequestError: ${err?.constructor?.name}`);
      assert.equal(typeof err.error?.message, 'string');
      assert.ok(err.error.message.length > 0);
      return true;
    },
  );
});

test('SDK: upstream error is passed through with its message', async () => {
  m.once({ status: 404, body: { error: { message: 'The model `gpt-9` does not exist', type: 'invalid_request_error', param: null, code: 'model_not_found' } } });
  await assert.rejects(
    client.chat.completions.create({ model: 'sdk/gpt-9', messages: [{ role: 'user', content: 'x' }] }),
    (err) => {
      assert.equal(err.status, 404, String(err));
      assert.equal(err.code, 'model_not_found');
      assert.match(err.message, /gpt-9/);
      return true;
    },
  );
});
