// Routing: provider/model prefixes, bare models by glob and model_map, weights, keys,
// env.NAME values, the map form of providers, the other OpenAI routes, /v1/models.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, chat, request, errorBody } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

const mocks = {};
let gw;
const MESSAGES = [{ role: 'user', content: 'hi' }];

before(async () => {
  for (const n of ['alpha', 'beta', 'orr', 'deep', 'w3', 'w1', 'keyed']) mocks[n] = await startMock({ name: n });
  gw = await startGateway({
    env: { BETA_KEY: 'sk-beta-from-env' },
    config: {
      providers: [
        { name: 'alpha', provider: 'openai', apiKey: 'sk-alpha', base_url: mocks.alpha.baseUrl,
          models: ['gpt-alpha*', 'alpha-exact'], headers: { 'x-extra-one': 'v1', 'x-org': 'acme' } },
        { name: 'beta', provider: 'openai', apiKey: 'env.BETA_KEY', base_url: mocks.beta.baseUrl,
          models: ['llama*'], model_map: { 'claude-*': 'gpt-4o', 'alias-b': 'real-b' } },
        { name: 'orr', provider: 'openrouter', apiKey: 'sk-orr', base_url: mocks.orr.baseUrl,
          models: ['nothing-matches-this'] },
        { name: 'deep', provider: 'openai', apiKey: 'sk-deep', base_url: `${mocks.deep.origin}/api/openai/v1`,
          models: ['deep-*'] },
        { name: 'w3', provider: 'openai', apiKey: 'sk-w3', base_url: mocks.w3.baseUrl, models: ['shared-*'], weight: 3 },
        { name: 'w1', provider: 'openai', apiKey: 'sk-w1', base_url: mocks.w1.baseUrl, models: ['shared-*'], weight: 1 },
        { name: 'keyed', provider: 'openai', base_url: mocks.keyed.baseUrl, models: ['keyed-*'],
          keys: [{ value: 'sk-k1', weight: 1 }, { value: 'sk-k2', weight: 1 }] },
      ],
    },
  });
});

after(async () => {
  await gw?.stop();
  for (const m of Object.values(mocks)) await m.close();
});

const resetAll = () => { for (const m of Object.values(mocks)) m.reset(); };
const hits = () => Object.fromEntries(Object.entries(mocks).map(([k, m]) => [k, m.requests.length]));

test('P/M routes to provider P with upstream model M, its key, Host, extra headers', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'alpha/gpt-alpha-1', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(hits(), { alpha: 1, beta: 0, orr: 0, deep: 0, w3: 0, w1: 0, keyed: 0 });
  const up = mocks.alpha.requests[0];
  assert.equal(up.method, 'POST');
  assert.equal(up.url, '/v1/chat/completions');
  assert.equal(up.json.model, 'gpt-alpha-1');
  assert.equal(up.headers.authorization, 'Bearer sk-alpha');
  assert.equal(up.headers.host, `127.0.0.1:${mocks.alpha.port}`);
  assert.equal(up.headers['x-extra-one'], 'v1');
  assert.equal(up.headers['x-org'], 'acme');
  for (let i = 1; i < up.rawHeaders.length; i += 2) {
    assert.ok(!up.rawHeaders[i].includes('vk-client-secret'), `client credential leaked upstream in ${up.rawHeaders[i - 1]}`);
  }
  assert.equal(res.headers['x-bifrost-provider'], 'alpha/gpt-alpha-1');
  assert.deepEqual(res.body, mocks.alpha.sent[0].body, 'response body must be byte-identical to the upstream body');
});

test('P/M goes to P even when M is outside P\'s models globs', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'alpha/some-other-model', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.alpha.requests.length, 1);
  assert.equal(mocks.alpha.requests[0].json.model, 'some-other-model');
  assert.equal(res.headers['x-bifrost-provider'], 'alpha/some-other-model');
});

test('only the first "/" splits: orr/meta-llama/llama-3-70b → model meta-llama/llama-3-70b', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'orr/meta-llama/llama-3-70b', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.orr.requests.length, 1);
  assert.equal(mocks.orr.requests[0].json.model, 'meta-llama/llama-3-70b');
  assert.equal(mocks.orr.requests[0].headers.authorization, 'Bearer sk-orr');
  assert.equal(res.headers['x-bifrost-provider'], 'orr/meta-llama/llama-3-70b');
});

test('bare model routes by the models glob; apiKey "env.NAME" is read from the environment', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'llama-3.1-8b', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.deepEqual(hits(), { alpha: 0, beta: 1, orr: 0, deep: 0, w3: 0, w1: 0, keyed: 0 });
  assert.equal(mocks.beta.requests[0].json.model, 'llama-3.1-8b');
  assert.equal(mocks.beta.requests[0].headers.authorization, 'Bearer sk-beta-from-env');
  assert.equal(res.headers['x-bifrost-provider'], 'beta/llama-3.1-8b');
});

test('model_map glob rewrites the upstream model (claude-* → gpt-4o)', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'claude-3-5-sonnet', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.beta.requests.length, 1);
  assert.equal(mocks.beta.requests[0].json.model, 'gpt-4o');
  assert.equal(res.headers['x-bifrost-provider'], 'beta/gpt-4o');
});

test('model_map exact key rewrites the upstream model (alias-b → real-b)', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'alias-b', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.beta.requests.length, 1);
  assert.equal(mocks.beta.requests[0].json.model, 'real-b');
  assert.equal(res.headers['x-bifrost-provider'], 'beta/real-b');
});

test('base_url path is kept: <base path>/chat/completions', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'deep-1', messages: MESSAGES });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.deep.requests.length, 1);
  assert.equal(mocks.deep.requests[0].url, '/api/openai/v1/chat/completions');
  assert.equal(mocks.deep.requests[0].headers.authorization, 'Bearer sk-deep');
});

test('unknown provider prefix with no bare-model match → 400 OpenAI error, nothing sent upstream', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'nope/whatever', messages: MESSAGES });
  assert.equal(res.status, 400, res.text);
  errorBody(res);
  assert.deepEqual(hits(), { alpha: 0, beta: 0, orr: 0, deep: 0, w3: 0, w1: 0, keyed: 0 });
});

test('bare model that no provider serves → 4xx OpenAI error, nothing sent upstream', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'totally-unknown-model', messages: MESSAGES });
  assert.ok(res.status === 400 || res.status === 404, `status ${res.status}: ${res.text}`);
  errorBody(res);
  assert.deepEqual(hits(), { alpha: 0, beta: 0, orr: 0, deep: 0, w3: 0, w1: 0, keyed: 0 });
});

test('weights 3:1 split traffic about 75/25 over 200 requests', async () => {
  resetAll();
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const N = 200;
  const served = { w3: 0, w1: 0 };
  try {
    for (let i = 0; i < N; i += 4) {
      const rs = await Promise.all([0, 1, 2, 3].map(() => chat(gw.port, { model: 'shared-model', messages: MESSAGES }, { agent })));
      for (const r of rs) {
        assert.equal(r.status, 200, r.text);
        const p = r.headers['x-bifrost-provider'];
        assert.ok(p === 'w3/shared-model' || p === 'w1/shared-model', `x-bifrost-provider ${p}`);
        served[p.split('/')[0]]++;
      }
    }
  } finally {
    agent.destroy();
  }
  assert.equal(mocks.w3.requests.length, served.w3, 'header must name the provider that served');
  assert.equal(mocks.w1.requests.length, served.w1);
  // binomial(200, 0.75): mean 150, sd 6.1 → [125, 175] is > 4 sd
  assert.ok(served.w3 >= 125 && served.w3 <= 175, `w3 served ${served.w3} of ${N} (expected ~150)`);
});

test('keys: several credentials are all used, each sent as Bearer', async () => {
  resetAll();
  for (let i = 0; i < 40; i++) {
    const r = await chat(gw.port, { model: 'keyed-x', messages: MESSAGES });
    assert.equal(r.status, 200, r.text);
  }
  const seen = new Set(mocks.keyed.requests.map((r) => r.headers.authorization));
  assert.deepEqual([...seen].sort(), ['Bearer sk-k1', 'Bearer sk-k2']);
});

test('/openai/v1/chat/completions is an alias of /v1/chat/completions', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'alpha/gpt-alpha-2', messages: MESSAGES }, { path: '/openai/v1/chat/completions' });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.alpha.requests.length, 1);
  assert.equal(mocks.alpha.requests[0].url, '/v1/chat/completions');
  assert.equal(mocks.alpha.requests[0].json.model, 'gpt-alpha-2');
  assert.deepEqual(res.body, mocks.alpha.sent[0].body);
});

test('POST /v1/completions is forwarded to <base>/completions with the model rewritten', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'alpha/gpt-alpha-instruct', prompt: 'Say hi' }, { path: '/v1/completions' });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.alpha.requests.length, 1);
  const up = mocks.alpha.requests[0];
  assert.equal(up.url, '/v1/completions');
  assert.deepEqual(up.json, { model: 'gpt-alpha-instruct', prompt: 'Say hi' });
  assert.equal(up.headers.authorization, 'Bearer sk-alpha');
  assert.equal(res.headers['x-bifrost-provider'], 'alpha/gpt-alpha-instruct');
  assert.deepEqual(res.body, mocks.alpha.sent[0].body);
});

test('POST /v1/embeddings is forwarded to <base>/embeddings with the model rewritten', async () => {
  resetAll();
  const res = await chat(gw.port, { model: 'alpha/text-embedding-3-small', input: ['a', 'b'] }, { path: '/v1/embeddings' });
  assert.equal(res.status, 200, res.text);
  assert.equal(mocks.alpha.requests.length, 1);
  const up = mocks.alpha.requests[0];
  assert.equal(up.url, '/v1/embeddings');
  assert.deepEqual(up.json, { model: 'text-embedding-3-small', input: ['a', 'b'] });
  assert.equal(res.headers['x-bifrost-provider'], 'alpha/text-embedding-3-small');
  assert.deepEqual(res.body, mocks.alpha.sent[0].body);
  assert.deepEqual(res.json().data[0].embedding, [0.25, -0.5, 0.125]);
});

test('GET /v1/models lists the concrete names of models and model_map keys as NAME/MODEL', async () => {
  const res = await request(gw.port, { path: '/v1/models' });
  assert.equal(res.status, 200, res.text);
  assert.match(res.headers['content-type'] || '', /application\/json/);
  const j = res.json();
  assert.equal(j.object, 'list');
  assert.ok(Array.isArray(j.data));
  for (const m of j.data) {
    assert.equal(m.object, 'model', JSON.stringify(m));
    assert.equal(m.owned_by, m.id.split('/')[0], JSON.stringify(m));
  }
  const ids = j.data.map((m) => m.id).sort();
  assert.deepEqual(ids, ['alpha/alpha-exact', 'beta/alias-b', 'orr/nothing-matches-this']);
});

test('map form of providers ("providers": {"openai": {"keys": [...], "base_url"}}) routes P/M and bare models', async () => {
  const m = await startMock({ name: 'mapform' });
  const g = await startGateway({
    config: { providers: { openai: { keys: [{ value: 'sk-map', weight: 1 }], base_url: m.baseUrl } } },
  });
  try {
    const r1 = await chat(g.port, { model: 'openai/gpt-4o-mini', messages: MESSAGES });
    assert.equal(r1.status, 200, r1.text);
    assert.equal(m.requests[0].json.model, 'gpt-4o-mini');
    assert.equal(m.requests[0].headers.authorization, 'Bearer sk-map');
    assert.equal(r1.headers['x-bifrost-provider'], 'openai/gpt-4o-mini');
    const r2 = await chat(g.port, { model: 'gpt-4o', messages: MESSAGES });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(m.requests[1].json.model, 'gpt-4o');
    assert.equal(r2.headers['x-bifrost-provider'], 'openai/gpt-4o');
  } finally {
    await g.stop();
    await m.close();
  }
});
