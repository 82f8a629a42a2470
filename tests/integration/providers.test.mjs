// Provider adapters end to end: Azure (deployment path, api-version, api-key header) and the
// OpenAI-compatible shorthands with their base URL overridden to a mock.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, chat, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const MSG = [{ role: 'user', content: 'hi' }];
const started = [];
after(async () => { for (const x of started) await (x.stop ? x.stop() : x.close()); });

test('azure: /openai/deployments/<deployment>/chat/completions?api-version=…, api-key header, model kept in the body', async () => {
  const m = await startMock({ name: 'az' });
  const root = m.baseUrl.replace(/\/v1$/, '');
  const gw = await startGateway({
    config: {
      providers: [{ name: 'az', provider: 'azure', apiKey: 'AZKEY', base_url: root, api_version: '2024-10-21',
        deployments: { 'gpt-4o': 'prod-4o' } }],
      log_requests: false,
    },
  });
  started.push(gw, m);
  const r = await chat(gw.port, { model: 'az/gpt-4o', messages: MSG }, { headers: { authorization: 'Bearer client-secret' } });
  assert.equal(r.status, 200, show(r));
  const up = m.requests.at(-1);
  assert.equal(up.url, '/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21');
  assert.equal(up.headers['api-key'], 'AZKEY');
  assert.equal(up.headers.authorization, undefined, 'the client credential reached Azure');
  assert.equal(up.json.model, 'gpt-4o');
  // a model without a deployment entry is used as the deployment name, percent-encoded
  const r2 = await chat(gw.port, { model: 'az/my model', messages: MSG });
  assert.equal(r2.status, 200, show(r2));
  assert.equal(m.requests.at(-1).url, '/openai/deployments/my%20model/chat/completions?api-version=2024-10-21');
});

test('OpenAI-compatible shorthands route with their kind and an overridden base_url', async () => {
  const m = await startMock({ name: 'compat' });
  const kinds = ['groq', 'mistral', 'ollama', 'openrouter', 'deepseek', 'xai', 'together', 'fireworks', 'vllm', 'gemini'];
  const gw = await startGateway({
    config: { providers: kinds.map((k) => ({ provider: k, apiKey: `key-${k}`, base_url: m.baseUrl })), log_requests: false },
  });
  started.push(gw, m);
  for (const k of kinds) {
    const r = await chat(gw.port, { model: `${k}/some-model`, messages: MSG });
    assert.equal(r.status, 200, `${k}: ${show(r)}`);
    assert.equal(r.headers['x-bifrost-provider'], `${k}/some-model`);
    const up = m.requests.at(-1);
    assert.equal(up.headers.authorization, `Bearer key-${k}`);
    assert.equal(up.json.model, 'some-model');
  }
});
