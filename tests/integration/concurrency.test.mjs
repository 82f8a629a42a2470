// Many simultaneous clients: 1,000 concurrent connections each doing one request → all 200,
// each answered with its own upstream reply; 200 concurrent streams all complete.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startGateway, request, show } from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';

let m, gw;

before(async () => {
  m = await startMock({ name: 'c' });
  gw = await startGateway({
    workers: 2,
    ulimitNofile: 65536,
    config: {
      limits: { header_timeout_ms: 30000, idle_timeout_ms: 60000 },
      providers: [{ name: 'c', provider: 'openai', apiKey: 'sk-c', base_url: m.baseUrl, timeout_ms: 60000 }],
    },
  });
});

after(async () => {
  await gw?.stop();
  await m?.close();
});

/** one request per fresh connection, all started at once */
async function fanOut(n, makeBody, timeout = 20000) {
  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  try {
    return await Promise.all(Array.from({ length: n }, (_, i) => request(gw.port, {
      method: 'POST', path: '/v1/chat/completions', body: JSON.stringify(makeBody(i)), agent, timeout,
      headers: { authorization: 'Bearer vk-x' },
    }).catch((e) => ({ status: `error: ${e.code || e.message}` }))));
  } finally {
    agent.destroy();
  }
}

test('1,000 concurrent client connections each doing a request → all 200 with their own reply', { timeout: 40000 }, async () => {
  m.reset();
  m.behave((rec) => ({ delayMs: 300, content: `for ${rec.json?.model}` }));
  const t0 = Date.now();
  const rs = await fanOut(1000, (i) => ({ model: `c/m-${i}`, messages: [{ role: 'user', content: `n${i}` }] }));
  const dt = Date.now() - t0;
  const byStatus = {};
  for (const r of rs) byStatus[r.status] = (byStatus[r.status] || 0) + 1;
  assert.deepEqual(byStatus, { 200: 1000 }, `statuses: ${JSON.stringify(byStatus)} after ${dt} ms`);
  rs.forEach((r, i) => {
    assert.equal(r.headers['x-bifrost-provider'], `c/m-${i}`);
    assert.equal(r.json().choices[0].message.content, `for m-${i}`);
  });
  assert.equal(m.requests.length, 1000);
  // the gateway is still healthy afterwards
  const h = await request(gw.port, { path: '/health' });
  assert.equal(h.status, 200, show(h));
});

test('200 concurrent streams all complete with [DONE] and no leaked usage chunk', { timeout: 30000 }, async () => {
  m.reset();
  m.behave({ chunks: 5, chunkDelayMs: 50 });
  const rs = await fanOut(200, (i) => ({ model: `c/s-${i}`, stream: true, messages: [] }));
  const bad = rs.filter((r) => r.status !== 200);
  assert.equal(bad.length, 0, `non-200: ${JSON.stringify(bad.slice(0, 5).map((r) => r.status))}`);
  for (const r of rs) {
    assert.match(r.text, /data: \[DONE\]\n\n$/);
    assert.ok(!r.text.includes('"usage"'));
    assert.equal((r.text.match(/^data: /gm) || []).length, 5 + 1 + 1, r.text);
  }
});
