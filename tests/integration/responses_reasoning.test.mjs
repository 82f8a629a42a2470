// The Responses API translated to a Chat provider that reasons (DeepSeek-style
// `reasoning_content`): the reasoning comes back as a `reasoning` item whose summary is the
// provider's reasoning text — whole answers and streams (reasoning_summary_* events) — and
// the usage carries the provider's reasoning_tokens.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, requireBinary } from '../lib/gateway.mjs';
import OpenAI from 'openai';

requireBinary();
const T = { timeout: 30_000 };
const seen = [];
const USAGE = { prompt_tokens: 5, completion_tokens: 7, completion_tokens_details: { reasoning_tokens: 3 } };
const srv = http.createServer((req, res) => {
  let b = '';
  req.on('data', (c) => { b += c; });
  req.on('end', () => {
    const j = JSON.parse(b);
    seen.push({ url: req.url, json: j });
    if (!j.stream) {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ id: 'chatcmpl-r1', created: 1, choices: [{ index: 0, finish_reason: 'stop',
        message: { role: 'assistant', content: 'forty-two', reasoning_content: 'six times "seven"' } }], usage: USAGE }));
      return;
    }
    res.setHeader('content-type', 'text/event-stream');
    const ch = (d, f = null) => `data: ${JSON.stringify({ id: 'chatcmpl-r2', choices: [{ index: 0, delta: d, finish_reason: f }] })}\n\n`;
    res.write(ch({ role: 'assistant' }));
    res.write(ch({ reasoning_content: 'six times ' }));
    res.write(ch({ reasoning_content: '"seven"' }));
    res.write(ch({ content: 'forty-' }));
    res.write(ch({ content: 'two' }, 'stop'));
    res.end(`data: ${JSON.stringify({ id: 'chatcmpl-r2', choices: [], usage: USAGE })}\n\ndata: [DONE]\n\n`);
  });
});
await new Promise((r) => srv.listen(0, '127.0.0.1', r));
const gw = await startGateway({ config: { providers: [{ name: 'ds', provider: 'deepseek', apiKey: 'sk-ds',
  base_url: `http://127.0.0.1:${srv.address().port}/v1`, models: ['deepseek-*'] }] } });
after(async () => { await gw.stop?.(); srv.close(); });
const client = new OpenAI({ baseURL: `http://127.0.0.1:${gw.port}/v1`, apiKey: 'x', maxRetries: 0 });
const REASONING = { type: 'reasoning', summary: [{ type: 'summary_text', text: 'six times "seven"' }] };
const USAGE_R = { input_tokens: 5, input_tokens_details: { cached_tokens: 0 }, output_tokens: 7,
  output_tokens_details: { reasoning_tokens: 3 }, total_tokens: 12 };

test('a whole answer: a reasoning item before the message, reasoning_tokens in the usage', T, async () => {
  const r = await client.responses.create({ model: 'ds/deepseek-reasoner', input: 'q' });
  assert.equal(seen.at(-1).url, '/v1/chat/completions');
  assert.equal(r.output.length, 2, JSON.stringify(r.output));
  assert.deepEqual({ type: r.output[0].type, summary: r.output[0].summary }, REASONING);
  assert.match(r.output[0].id, /^rs_/);
  assert.equal(r.output[1].type, 'message');
  assert.equal(r.output_text, 'forty-two');
  assert.deepEqual(r.usage, USAGE_R);
});

test('a stream: the reasoning item\'s summary events, then the message\'s, numbered; completed carries both items', T, async () => {
  const s = await client.responses.create({ model: 'ds/deepseek-reasoner', input: 'q', stream: true });
  const evs = [];
  for await (const ev of s) evs.push(ev);
  assert.deepEqual(evs.map((e) => e.type), ['response.created', 'response.in_progress',
    'response.output_item.added', 'response.reasoning_summary_part.added', 'response.reasoning_summary_text.delta',
    'response.reasoning_summary_text.delta', 'response.reasoning_summary_text.done', 'response.reasoning_summary_part.done',
    'response.output_item.done', 'response.output_item.added', 'response.content_part.added', 'response.output_text.delta',
    'response.output_text.delta', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done',
    'response.completed']);
  assert.deepEqual(evs.map((e) => e.sequence_number), evs.map((_, i) => i));
  assert.equal(evs.filter((e) => e.type === 'response.reasoning_summary_text.delta').map((e) => e.delta).join(''), 'six times "seven"');
  assert.equal(evs.find((e) => e.type === 'response.reasoning_summary_text.done').text, 'six times "seven"');
  const done = evs.at(-1).response;
  assert.deepEqual({ type: done.output[0].type, summary: done.output[0].summary }, REASONING);
  assert.equal(done.output[1].content[0].text, 'forty-two');
  assert.equal(evs[2].output_index, 0);
  assert.equal(evs[9].output_index, 1);
  assert.deepEqual(done.usage, USAGE_R);
});
