// Cluster mode (issue 16; bifrost.c section 19 clu_): several gateway processes, one set of
// budgets and rate windows in a real redis-server. Three nodes, each started the way an operator
// would (its own config file with its own listen/workers/data_dir/cluster.node_id, `-c` only),
// one OpenAI mock upstream they all use, and tests/lib/redis.mjs to start, kill, restart, empty
// and look inside Redis.
//
// Numbers. Every governed request sends the same body (BODY, B bytes) with max_tokens = OUT and
// the mock reports prompt_tokens = ⌊B/4⌋ and completion_tokens = OUT: the admission estimate
// (input ≈ body bytes / 4, output = max_tokens) is then exactly the real cost, C µ$ at PRICE, so
// a budget of K × C is K requests and "one request's estimate" is C.
//
// What is asserted, test by test:
//  1. a budget of K × C on one key, 100 parallel requests over 3 nodes: ≤ K + 3 answered 200
//     (the bound: one estimate per node and tier), the upstream saw exactly those, the nodes'
//     own log lines add up to ≤ limit + 3 C, /api/usage on every node shows the cluster's total,
//     windows aligned to the epoch; the same load on 3 nodes WITHOUT "cluster" admits ~3 K (so
//     the test can fail). 1b: the same for a provider's own budget (unkeyed requests).
//  2. 9 requests an hour on one key, 27 parallel attempts over 3 nodes: ≤ 9 + 2 pass, the rest
//     429 with Retry-After; without "cluster": 27 pass. 2b: a token window, likewise.
//  3. Redis SIGKILLed mid-run (requests upstream at that moment): every node keeps serving
//     (local_share: each admits 1/3 of what was left), /metrics redis_up 0, one stderr line;
//     Redis restarted on the same port (its appendonly file holds the counters of before the
//     outage): redis_up 1 within ~3 s, Redis's hashes hold every node's spend made meanwhile,
//     /api/usage on every node shows the total; the budget is enforced again everywhere.
//     3b: a node restarted with its data_dir and node_id is counted once.
//  4. Redis emptied (FLUSHALL) and replaced by an empty server: the nodes reseed it (every
//     node's field comes back with its spend) within ~2 s; the spent budget stays spent (402).
//     4b: requests sent right after a FLUSHALL, before the reseed, on a spent budget.
//  5. on_redis_down "deny": 503 + Retry-After for governed requests while Redis is away,
//     ungoverned ones pass, governed ones pass again once it is back; "allow": each node on its
//     own limits (a 3-request budget admits 3 requests on each node).
//  6. A virtual key created through node 1's admin API works on node 3 within ~2 s; every node's
//     file on disk holds the key and still its own listen, workers, data_dir and cluster block;
//     a file edited on node 2 (SIGHUP) reaches the others too. 6b: a node that cannot install
//     the cluster's config says so once and leaves the cluster's config alone. 6c: a node
//     restarted with a stale file takes the cluster's config (a later SIGHUP edit is its own).
//  7. max_concurrent 2 on one key, 6 parallel slow requests over 3 nodes: 2 admitted; without
//     "cluster": 6.
//  8. Redis that stops answering (SIGSTOP): a governed request is decided by on_redis_down
//     after cluster.timeout_ms instead of waiting for Redis. 8b: local_share with Redis stopped
//     holds a request window to its limit + one per node (token windows: measured, node-local
//     by design). 8c: SCRIPT FLUSH: the script is loaded again.
//  9. redis://:password@host:port/db and redis://user:password@... (ACL): the keys land in that
//     database; a wrong password is "Redis down".
// 10. dist/cluster/: its three node configs pass `bifrost check`, and share everything but
//     their own members.
// Every test ends with every node still running and exiting 0 on SIGTERM.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  REPO, spawnBifrost, waitHealthy, freePort, tempDir, request, sleep, show, errorBody, runBifrost,
} from '../lib/gateway.mjs';
import { startMock } from '../lib/mock.mjs';
import { costMicros, usage, entity, metricSum, entKey, KIND } from '../lib/usage.mjs';
import { redisAvailable, startRedis } from '../lib/redis.mjs';
import { makeCA, makeServerCert } from '../lib/tlsca.mjs';

const HAVE_REDIS = redisAvailable();
const SKIP = HAVE_REDIS ? false : 'redis-server is not installed (apt-get install redis-server)';

const ADMIN = 'adm-cluster-token-5e1d';
const PRICE = { input: 1, output: 10 };             // $ per million tokens
const OUT = 20;                                     // max_tokens = completion tokens reported
const BODY = JSON.stringify({ model: 'mock/gpt-4o', max_tokens: OUT, messages: [{ role: 'user', content: 'cluster budget' }] });
const B = Buffer.byteLength(BODY);
const IN = Math.floor(B / 4);                       // the gateway's input estimate: body bytes / 4
const USAGE = { prompt_tokens: IN, completion_tokens: OUT };
const C = costMicros({ in: IN, out: OUT }, PRICE);  // µ$ per request: estimate = real cost
const usd = (micros) => Number((micros / 1e6).toFixed(6));
// cluster.timeout_ms of the nodes unless a test says otherwise: a Redis answer later than this is
// decided by on_redis_down by design (tests 8, 8b use 200-300 ms on purpose); on a loaded 2-core
// VM a thread can wait longer than the default 250 ms, which would turn a bound test into a test
// of the fallback.
const TIMEOUT_MS = 2000;

let m;           // the OpenAI mock all nodes use
let redis;       // the Redis of tests 1, 2, 6, 7 (tests that kill Redis have their own)
const allNodes = [];
const redises = [];
let prefixSeq = 0;

before(async () => {
  if (!HAVE_REDIS) return;
  m = await startMock({ name: 'up' });
  redis = await startRedis();
  redises.push(redis);
  assert.equal(C, IN * 1 + OUT * 10, 'cost formula self-check');
});

after(async () => {
  for (const n of allNodes) { try { n.proc.child.kill('SIGKILL'); } catch { /* gone */ } }
  for (const r of redises) await r.kill();
  await m?.close();
});

// ---------------------------------------------------------------------------------------------
// helpers

/** A fresh key prefix per test: its keys in Redis are its own. */
const newPrefix = () => `bft${process.pid}x${++prefixSeq}:`;

/** Wait until now is at least marginS away from the end of an epoch-aligned window of periodS. */
async function awayFromBoundary(periodS, marginS = 25) {
  const into = (Date.now() / 1000) % periodS;
  if (periodS - into < marginS) await sleep((periodS - into + 1) * 1000);
}

function sharedConfig(governance, extra = {}) {
  return {
    admin: { token: ADMIN },
    log_requests: true,
    providers: [{ name: 'mock', provider: 'openai', base_url: m.baseUrl, apiKey: 'sk-up-cluster', max_retries: 0 }],
    pricing: { 'mock/gpt-4o': PRICE },
    governance,
    ...extra,
  };
}

/**
 * One node as an operator starts it: its own directory and config file (the shared part, then
 * its own listen, workers, data_dir and, with `cluster`, the cluster block with node_id = id),
 * `bifrost -c config.json` and nothing else on the command line.
 */
async function startNode(id, shared, cluster, { workers = 1, waitRedis = true } = {}) {
  const dir = tempDir('bifrost-cluster-');
  const port = await freePort();
  const cfg = { ...shared, listen: `127.0.0.1:${port}`, workers, data_dir: join(dir, 'data') };
  if (cluster) cfg.cluster = { node_id: id, timeout_ms: TIMEOUT_MS, ...cluster };
  const cfgPath = join(dir, 'config.json');
  writeFileSync(cfgPath, JSON.stringify(cfg, null, 2));
  const proc = spawnBifrost({ args: ['-c', cfgPath], cwd: dir });
  try {
    await waitHealthy(proc, port, 20000);
  } catch (e) {
    try { proc.child.kill('SIGKILL'); } catch { /* gone */ }
    await proc.wait(2000);
    throw e;
  }
  const node = { id, proc, port, dir, cfgPath, cfg, stdout: proc.stdout, stderr: proc.stderr };
  allNodes.push(node);
  if (cluster && waitRedis) {
    // /health answers before the node's first exchange with Redis; until then its admissions
    // are on_redis_down's (a race of its own, not what these tests are about)
    const up = await pollNodes([node], (n) => metric(n, 'bifrost_cluster_redis_up'), (v) => v === 1, 5000);
    assert.ok(up.ok, `node ${id} never reached Redis: ${JSON.stringify(up.last)}\n${proc.stderr.slice(-5).join('\n')}`);
  }
  return node;
}

/** Three nodes n1..n3 with the same shared config (and cluster block, when given). */
async function startNodes(shared, cluster, opts) {
  const out = [];
  for (const id of ['n1', 'n2', 'n3']) out.push(await startNode(id, shared, cluster, opts));
  return out;
}

/** Stop a node (SIGTERM, exit 0) and start it again on its own directory, file and port. */
async function restartNode(node) {
  node.proc.child.kill('SIGTERM');
  const r = await node.proc.wait(15000);
  assert.equal(r.code, 0, `node ${node.id} exit on SIGTERM: ${JSON.stringify(r)}`);
  const proc = spawnBifrost({ args: ['-c', node.cfgPath], cwd: node.dir });
  await waitHealthy(proc, node.port, 20000);
  Object.assign(node, { proc, stdout: proc.stdout, stderr: proc.stderr });
  allNodes.push(node);
  const up = await pollNodes([node], (n) => metric(n, 'bifrost_cluster_redis_up'), (v) => v === 1, 5000);
  assert.ok(up.ok, `node ${node.id} never reached Redis after its restart`);
  return node;
}

/** The gateway never crashed: every node is alive, and exits 0 on SIGTERM. */
async function finish(nodes) {
  for (const n of nodes) {
    assert.equal(n.proc.exited, null, `node ${n.id} died: ${JSON.stringify(n.proc.exited)}\n${n.stderr.slice(-20).join('\n')}`);
  }
  for (const n of nodes) {
    n.proc.child.kill('SIGTERM');
    const r = await n.proc.wait(15000);
    assert.equal(r.code, 0, `node ${n.id} exit on SIGTERM: ${JSON.stringify(r)}\n${n.stderr.slice(-20).join('\n')}`);
  }
}

/** One governed chat completion (the fixed BODY) on a node with a virtual key. */
function send(node, key, { timeout = 15000, body = BODY } = {}) {
  return request(node.port, {
    method: 'POST', path: '/v1/chat/completions', timeout, body,
    headers: key ? { 'x-bf-vk': key } : {},
  });
}

function countOf(rs, s) { return rs.filter((r) => r.status === s).length; }
function histogram(rs) {
  const h = {};
  for (const r of rs) h[r.status] = (h[r.status] ?? 0) + 1;
  return JSON.stringify(h);
}

function retryAfter(r, max) {
  const v = r.headers['retry-after'];
  assert.ok(v !== undefined, `${r.status} without Retry-After: ${show(r)}`);
  assert.match(v, /^[1-9][0-9]*$/, `Retry-After must be whole seconds >= 1, got ${JSON.stringify(v)}`);
  assert.ok(Number(v) <= max, `Retry-After ${v} > ${max}`);
  return Number(v);
}

/** The node's request log lines for chat completions answered 200, with cost_usd in µ$ (exact). */
function okLines(node) {
  const out = [];
  for (const raw of node.stdout) {
    const t = raw.trim();
    if (!t.startsWith('{')) continue;
    let j;
    try { j = JSON.parse(t); } catch { continue; }
    if (j.path !== '/v1/chat/completions' || j.status !== 200) continue;
    const mm = /"cost_usd":(\d+)\.(\d{6})/.exec(t);
    out.push({ ...j, micros: mm ? Number(mm[1]) * 1e6 + Number(mm[2]) : null });
  }
  return out;
}

/** Wait until the node's log shows n answered requests (lines are written by the ring, later). */
async function logSpend(node, n, timeoutMs = 5000) {
  const until = Date.now() + timeoutMs;
  let lines = okLines(node);
  while (lines.length < n && Date.now() < until) { await sleep(50); lines = okLines(node); }
  assert.equal(lines.length, n, `node ${node.id}: ${lines.length} log lines with status 200, expected ${n}`);
  for (const l of lines) assert.notEqual(l.micros, null, `node ${node.id}: a 200 line without cost_usd: ${JSON.stringify(l)}`);
  return lines.reduce((s, l) => s + l.micros, 0);
}

async function metric(node, name) {
  return (await metricSum(node.port, new RegExp(`^${name}$`))).sum;
}

/** Poll until pred(value) for every node, or the deadline; returns { ms, last } (last per node). */
async function pollNodes(nodes, get, pred, timeoutMs) {
  const t0 = Date.now();
  const last = {};
  for (;;) {
    let all = true;
    for (const n of nodes) {
      try { last[n.id] = await get(n); } catch (e) { last[n.id] = `error: ${e.message}`; }
      if (!pred(last[n.id])) all = false;
    }
    if (all) return { ms: Date.now() - t0, last, ok: true };
    if (Date.now() - t0 > timeoutMs) return { ms: Date.now() - t0, last, ok: false };
    await sleep(50);
  }
}

const vkUsage = (id) => async (n) => entity(await usage(n.port, ADMIN), 'virtual_keys', id);

/** The Redis hash of a virtual key's budget window: {prefix}b:{entity key hex}:{window start}. */
function budgetKey(prefix, vkId, windowStart) {
  return `${prefix}b:${entKey(KIND.virtual_key, vkId).toString(16).padStart(16, '0')}:${windowStart}`;
}

/** Sum of the NODE:suffix fields of a hash (and the fields by node). */
function fieldSum(h, suffix) {
  let sum = 0;
  const by = {};
  for (const [f, v] of Object.entries(h)) {
    if (!f.endsWith(`:${suffix}`)) continue;
    by[f.slice(0, -suffix.length - 1)] = Number(v);
    sum += Number(v);
  }
  return { sum, by };
}

/**
 * Sequential requests round-robin over the nodes until each has refused once in a row.
 * Returns { ok (200s), per node 200s, refusals }.
 */
async function topUp(nodes, key, maxEach = 60) {
  const per = Object.fromEntries(nodes.map((n) => [n.id, 0]));
  const refusals = [];
  let ok = 0, waits = 0;
  for (let round = 0; round < maxEach; round++) {
    let refusedAll = true, transient = false;
    for (const n of nodes) {
      const r = await send(n, key);
      if (r.status === 200) { ok++; per[n.id]++; refusedAll = false; continue; }
      assert.ok(r.status === 402 || r.status === 429, `top-up on ${n.id}: ${show(r)}`);
      const msg = errorBody(r).message;
      refusals.push({ node: n.id, status: r.status, msg });
      transient ||= r.status === 429;
    }
    // A 429 can be transient: a node writes its own count into Redis with the requests it is
    // still waiting on the cluster for, so right after a burst another node's field can hold
    // requests refused elsewhere until that node's next push (<= 100 ms; every field again each
    // second). The top-up waits and asks again a few times before it concludes (known defect,
    // see README "Several nodes": such a refusal can carry a window-long Retry-After).
    if (refusedAll && transient && waits++ < 5) { await sleep(300); round--; continue; }
    if (refusedAll) return { ok, per, refusals };
  }
  assert.fail(`the budget never ran out after ${maxEach} rounds: ${JSON.stringify(per)}`);
}

// ---------------------------------------------------------------------------------------------
// 1. a budget held across nodes

async function budgetBurst(nodes, key, total) {
  m.reset();
  m.behave({ delayMs: 40, usage: USAGE });
  const all = [];
  for (let i = 0; i < total; i++) {
    all.push(send(nodes[i % nodes.length], key, { timeout: 20000 }));
    if (i % 25 === 24) await sleep(20);
  }
  const rs = await Promise.all(all);
  for (const r of rs) {
    assert.ok([200, 402, 429].includes(r.status), `unexpected answer: ${show(r)}`);
    if (r.status !== 200) errorBody(r);
    if (r.status === 429) retryAfter(r, 86400);
  }
  return rs;
}

test('1. a budget of K requests on one key holds across 3 nodes: 100 parallel requests → ≤ K + 3 admitted, the upstream saw exactly those, every node shows the cluster total; without "cluster" the same load spends ~3 K', { skip: SKIP, timeout: 120000 }, async (t) => {
  await awayFromBoundary(86400);
  const K = 20;
  const LIMIT = K * C;
  const gov = { enforce: true, virtual_keys: [{ id: 'k1', value: 'sk-bf-cluster-k1', budget: { max_limit: usd(LIMIT), reset_duration: '1d' } }] };
  const prefix = newPrefix();

  // --- the cluster
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  const rs = await budgetBurst(nodes, 'sk-bf-cluster-k1', 100);
  const burstOk = countOf(rs, 200);
  t.diagnostic(`cluster, 100 parallel: ${histogram(rs)} (limit ${K} requests = ${LIMIT} µ$, ${C} µ$ each)`);
  assert.ok(burstOk <= K + 3, `the cluster admitted ${burstOk} requests against a budget of ${K} (bound K + 3 = ${K + 3}): ${histogram(rs)}`);
  assert.ok(burstOk > 0, `nothing admitted: ${histogram(rs)}`);
  assert.equal(m.requests.length, burstOk, 'the upstream saw a request the client was refused (or missed one it was answered)');

  // the budget is usable up to the limit (under-admission in the burst is made up), not beyond the bound
  await sleep(300);
  const up = await topUp(nodes, 'sk-bf-cluster-k1');
  const admitted = burstOk + up.ok;
  t.diagnostic(`after a sequential top-up: ${up.ok} more (${JSON.stringify(up.per)}), ${admitted} admitted in all`);
  assert.ok(admitted >= K, `the cluster refused below the limit: ${admitted} of ${K} requests admitted; refusals ${JSON.stringify(up.refusals.slice(0, 3))}`);
  assert.ok(admitted <= K + 3, `the cluster admitted ${admitted} requests against a budget of ${K} (bound ${K + 3})`);
  assert.equal(m.requests.length, admitted, 'upstream requests ≠ requests answered 200');

  // the nodes' own log lines: what each charged
  const perNode = [];
  for (const n of nodes) perNode.push(await logSpend(n, countOf(rs.filter((_, i) => i % 3 === nodes.indexOf(n)), 200) + up.per[n.id]));
  const logTotal = perNode.reduce((a, b) => a + b, 0);
  t.diagnostic(`spend by node (log lines): ${perNode.join(' + ')} = ${logTotal} µ$ of ${LIMIT}`);
  assert.equal(logTotal, admitted * C, 'log lines: spend ≠ admitted × cost');
  assert.ok(logTotal <= LIMIT + 3 * C, `overspend: ${logTotal} µ$ > limit ${LIMIT} + 3 × ${C}`);

  // every node's /api/usage shows the cluster's total (others' counters are read every second)
  const seen = await pollNodes(nodes, vkUsage('k1'), (e) => e?.spend_micros === logTotal && e?.reserved_micros === 0, 4000);
  t.diagnostic(`/api/usage showed the cluster total on every node after ${seen.ms} ms`);
  assert.ok(seen.ok, `/api/usage spend per node ${JSON.stringify(Object.fromEntries(Object.entries(seen.last).map(([k, v]) => [k, v?.spend_micros ?? v])))} ≠ cluster total ${logTotal}: ${JSON.stringify(seen.last)}`);
  for (const n of nodes) assert.equal(seen.last[n.id].requests, admitted, `node ${n.id} requests: ${JSON.stringify(seen.last[n.id])}`);
  // a rolling 1d budget in a cluster: windows aligned to the epoch, the same on every node
  for (const n of nodes) {
    assert.equal(seen.last[n.id].window_start % 86400, 0, `node ${n.id}: window_start ${seen.last[n.id].window_start} is not aligned to the epoch`);
    assert.equal(seen.last[n.id].window_start, seen.last.n1.window_start);
  }

  // Redis holds each node's own counters (absolute, one field per node)
  const h = await redis.hgetall(budgetKey(prefix, 'k1', seen.last.n1.window_start));
  const s = fieldSum(h, 's');
  assert.deepEqual(s.by, { n1: perNode[0], n2: perNode[1], n3: perNode[2] }, `Redis hash: ${JSON.stringify(h)}`);
  assert.equal(fieldSum(h, 'q').sum, admitted, `Redis hash: ${JSON.stringify(h)}`);

  // and every node now says 402 (the settled spend reached the limit)
  for (const n of nodes) {
    const r = await send(n, 'sk-bf-cluster-k1');
    assert.equal(r.status, 402, `node ${n.id} after the budget was spent: ${show(r)}`);
    assert.match(errorBody(r).message, /virtual[ _]key k1\b/);
  }
  await finish(nodes);

  // --- control: the same three nodes without "cluster"
  const solo = await startNodes(sharedConfig(gov), null);
  const rs2 = await budgetBurst(solo, 'sk-bf-cluster-k1', 100);
  const soloOk = countOf(rs2, 200);
  t.diagnostic(`control without "cluster", 100 parallel: ${histogram(rs2)}: ${soloOk} admitted against ${K} (${(soloOk / K).toFixed(2)}×)`);
  assert.ok(soloOk > K + 3, `control: 3 independent nodes admitted only ${soloOk} (≤ K + 3): the test above cannot tell a cluster from none`);
  assert.ok(soloOk >= 2.5 * K, `control: expected ~3 K = ${3 * K} admitted, got ${soloOk}`);
  await finish(solo);
});

test('1b. a provider\'s own budget (no virtual key) holds across 3 nodes: 60 parallel unkeyed requests → ≤ K + 3 admitted', { skip: SKIP, timeout: 60000 }, async (t) => {
  await awayFromBoundary(86400);
  const K = 10;
  const prefix = newPrefix();
  const shared = sharedConfig({ enforce: false });
  shared.providers[0].budget = { max_limit: usd(K * C), reset_duration: '1d' };
  const nodes = await startNodes(shared, { redis: redis.url, key_prefix: prefix });
  const rs = await budgetBurst(nodes, null, 60);
  const ok = countOf(rs, 200);
  t.diagnostic(`provider budget of ${K} requests, 60 parallel unkeyed requests over 3 nodes: ${histogram(rs)}`);
  assert.ok(ok <= K + 3, `${ok} admitted against a provider budget of ${K} (bound ${K + 3})`);
  assert.equal(m.requests.length, ok);
  const up = await topUp(nodes, null);
  assert.ok(ok + up.ok >= K && ok + up.ok <= K + 3, `${ok} + ${up.ok} admitted against ${K}`);
  const seen = await pollNodes(nodes, async (n) => entity(await usage(n.port, ADMIN), 'providers', 'mock'), (e) => e?.spend_micros === (ok + up.ok) * C, 4000);
  assert.ok(seen.ok, `/api/usage providers/mock: ${JSON.stringify(seen.last)}`);
  await finish(nodes);
});

// ---------------------------------------------------------------------------------------------
// 2. a request window held across nodes

test('2. 9 requests an hour on one key across 3 nodes: 27 parallel attempts → ≤ 9 + 2 pass, the rest 429 with Retry-After; without "cluster" all 27 pass', { skip: SKIP, timeout: 90000 }, async (t) => {
  await awayFromBoundary(3600);
  const gov = { enforce: true, virtual_keys: [{ id: 'k2', value: 'sk-bf-cluster-k2', rate_limit: { request_max_limit: 9, request_reset_duration: '1h' } }] };
  const prefix = newPrefix();
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  m.reset();
  m.behave({ delayMs: 30, usage: USAGE });
  const rs = await Promise.all(Array.from({ length: 27 }, (_, i) => send(nodes[i % 3], 'sk-bf-cluster-k2')));
  const ok = countOf(rs, 200);
  t.diagnostic(`cluster, 27 parallel attempts against 9/h: ${histogram(rs)}`);
  assert.equal(ok + countOf(rs, 429), 27, `answers other than 200/429: ${histogram(rs)}`);
  assert.ok(ok <= 9 + 2, `${ok} requests passed a 9-per-hour window held by the cluster (bound 11)`);
  assert.ok(ok >= 1, histogram(rs));
  for (const r of rs.filter((x) => x.status === 429)) {
    assert.match(errorBody(r).message, /request rate limit reached for virtual_key k2/, show(r));
    retryAfter(r, 3600);
  }
  assert.equal(m.requests.length, ok, 'the upstream saw a refused request');
  // the window is usable up to its limit, and no further
  const up = await topUp(nodes, 'sk-bf-cluster-k2');
  t.diagnostic(`then sequentially: ${up.ok} more (${JSON.stringify(up.per)})`);
  assert.ok(ok + up.ok >= 9, `only ${ok + up.ok} of 9 requests could be made`);
  assert.ok(ok + up.ok <= 11, `${ok + up.ok} requests passed a 9-per-hour window`);
  for (const f of up.refusals) assert.equal(f.status, 429, JSON.stringify(f));
  // Redis's hash for the window holds every node's count (a refused request's count may stay in
  // its node's field until that node's next full push, every second)
  await sleep(1300);
  const win = Math.floor(Date.now() / 1000 / 3600) * 3600;
  const h = await redis.hgetall(`${prefix}r:${entKey(KIND.virtual_key, 'k2').toString(16).padStart(16, '0')}:${win}`);
  assert.equal(fieldSum(h, 'r').sum, ok + up.ok, `Redis request-window hash ${JSON.stringify(h)}`);
  await finish(nodes);

  // control: no cluster, each node has its own 9
  const solo = await startNodes(sharedConfig(gov), null);
  m.reset();
  m.behave({ delayMs: 30, usage: USAGE });
  const rs2 = await Promise.all(Array.from({ length: 27 }, (_, i) => send(solo[i % 3], 'sk-bf-cluster-k2')));
  t.diagnostic(`control without "cluster": ${histogram(rs2)}`);
  assert.equal(countOf(rs2, 200), 27, `control: ${histogram(rs2)}`);
  await finish(solo);
});

test('2b. a token window held across nodes: 10 requests\' worth of tokens an hour, 30 parallel requests over 3 nodes → ≤ 10 + 3 admitted; tokens used ≤ limit + 3 estimates', { skip: SKIP, timeout: 60000 }, async (t) => {
  await awayFromBoundary(3600);
  const T = IN + OUT; // tokens per request: the estimate (body bytes / 4 + max_tokens) and the real count
  const gov = { enforce: true, virtual_keys: [{ id: 'k2b', value: 'sk-bf-cluster-k2b', rate_limit: { token_max_limit: 10 * T, token_reset_duration: '1h' } }] };
  const prefix = newPrefix();
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  m.reset();
  m.behave({ delayMs: 40, usage: USAGE });
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 30 }, (_, i) => send(nodes[i % 3], 'sk-bf-cluster-k2b').then((r) => { r.ms = Date.now() - t0; r.node = i % 3; return r; })));
  const ok = countOf(rs, 200);
  t.diagnostic(`token window of ${10 * T} (${T} per request), 30 parallel: ${histogram(rs)}`);
  assert.equal(ok + countOf(rs, 429), 30, histogram(rs));
  assert.ok(ok <= 13, `${ok} requests admitted against a token window of 10 requests' worth; answers (node:status:ms) ${rs.map((r) => `${r.node}:${r.status}:${r.ms}`).join(' ')}`);
  const ras = rs.filter((x) => x.status === 429).map((r) => retryAfter(r, 3600));
  t.diagnostic(`Retry-After of the 429s: min ${Math.min(...ras)} s, max ${Math.max(...ras)} s`);
  // the window is usable up to its limit (a refusal in the burst was not the window being full)
  const up = await topUp(nodes, 'sk-bf-cluster-k2b');
  t.diagnostic(`then sequentially: ${up.ok} more (${JSON.stringify(up.per)}): ${ok + up.ok} of 10 in all`);
  assert.ok(ok + up.ok >= 10 && ok + up.ok <= 13, `${ok} + ${up.ok} requests admitted against a window of 10 requests' worth of tokens`);
  await sleep(1300); // (a refused request's reservation may stay in its node's field until the next full push)
  const win = Math.floor(Date.now() / 1000 / 3600) * 3600;
  const h = await redis.hgetall(`${prefix}k:${entKey(KIND.virtual_key, 'k2b').toString(16).padStart(16, '0')}:${win}`);
  assert.equal(fieldSum(h, 'k').sum, (ok + up.ok) * T, `Redis token-window hash: ${JSON.stringify(h)}`);
  await finish(nodes);
});

// ---------------------------------------------------------------------------------------------
// 3. Redis killed mid-run, then restarted with its data

test('3. Redis SIGKILLed mid-run: nodes keep serving on 1/3 of what was left each, redis_up 0, one "unreachable" line; restarted on the same port: redis_up 1 within ~3 s, Redis and /api/usage on every node show the spend made meanwhile, the budget holds', { skip: SKIP, timeout: 120000 }, async (t) => {
  await awayFromBoundary(86400, 60);
  const K = 30;
  const LIMIT = K * C;
  const r3 = await startRedis({ persist: true });
  redises.push(r3);
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'k3', value: 'sk-bf-cluster-k3', budget: { max_limit: usd(LIMIT), reset_duration: '1d' } }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: r3.url, key_prefix: prefix, on_redis_down: 'local_share' });
  m.reset();
  m.behave({ usage: USAGE });
  // 6 requests (2 per node), through Redis
  for (let i = 0; i < 6; i++) assert.equal((await send(nodes[i % 3], 'sk-bf-cluster-k3')).status, 200);
  for (const n of nodes) assert.equal(await metric(n, 'bifrost_cluster_redis_up'), 1, `node ${n.id} redis_up before the kill`);
  // three slow requests upstream (one per node) while Redis dies
  m.behave({ usage: USAGE, delayMs: 2500 });
  const slow = nodes.map((n) => send(n, 'sk-bf-cluster-k3', { timeout: 20000 }));
  await m.waitForRequests(9, 5000);
  await sleep(1400); // a full round (every second) pushed their reservations and read the others'
  for (const n of nodes) assert.equal(await metric(n, 'bifrost_cluster_nodes'), 3, `node ${n.id} sees 3 nodes`);
  await r3.kill();
  const down = await pollNodes(nodes, (n) => metric(n, 'bifrost_cluster_redis_up'), (v) => v === 0, 3000);
  assert.ok(down.ok, `redis_up after the kill: ${JSON.stringify(down.last)}`);
  t.diagnostic(`redis_up 0 on every node ${down.ms} ms after the kill`);
  const slowRs = await Promise.all(slow);
  for (const r of slowRs) assert.equal(r.status, 200, `a request upstream when Redis died: ${show(r)}`);
  m.behave({ usage: USAGE });

  // every node keeps serving, each on its share: (limit − spent at the last look) / 3
  const left = LIMIT - 9 * C;
  const per = {};
  const refusals = [];
  for (const n of nodes) {
    per[n.id] = 0;
    for (let i = 0; i < K; i++) {
      const r = await send(n, 'sk-bf-cluster-k3');
      if (r.status === 200) { per[n.id]++; continue; }
      assert.ok(r.status === 402 || r.status === 429, `node ${n.id} with Redis away: ${show(r)}`);
      if (r.status === 429) retryAfter(r, 86400);
      refusals.push(`${n.id}: ${r.status} ${errorBody(r).message} (Retry-After ${r.headers['retry-after']})`);
      break;
    }
  }
  const share = left / C / 3;
  const downOk = Object.values(per).reduce((a, b) => a + b, 0);
  t.diagnostic(`Redis away: admitted per node ${JSON.stringify(per)} (share ${share} each of ${left / C} left); refusals: ${refusals.join(' | ')}`);
  for (const n of nodes) {
    assert.ok(per[n.id] >= Math.floor(share) - 1 && per[n.id] <= Math.ceil(share) + 1,
      `node ${n.id} admitted ${per[n.id]} requests with Redis away, its share is ≈ ${share}`);
  }
  assert.ok(9 + downOk <= K + 3, `overspend with Redis away: ${9 + downOk} requests against ${K}`);
  assert.equal(m.requests.length, 9 + downOk);
  for (const n of nodes) {
    const lines = n.stderr.filter((l) => /cluster: Redis at 127\.0\.0\.1:\d+ unreachable/.test(l));
    assert.equal(lines.length, 1, `node ${n.id}: "unreachable" lines: ${JSON.stringify(lines)}\n${n.stderr.slice(-10).join('\n')}`);
    assert.ok(await metric(n, 'bifrost_cluster_redis_failures_total') >= 1, `node ${n.id} failures_total`);
  }
  const spent = [];
  for (const n of nodes) spent.push(await logSpend(n, 3 + per[n.id]));

  // Redis back on the same port, with what it held before the outage (appendonly)
  await r3.restart();
  const backAt = Date.now();
  const back = await pollNodes(nodes, (n) => metric(n, 'bifrost_cluster_redis_up'), (v) => v === 1, 5000);
  t.diagnostic(`Redis restarted: redis_up 1 on every node after ${back.ms} ms`);
  assert.ok(back.ok && back.ms <= 3500, `redis_up after the restart (${back.ms} ms): ${JSON.stringify(back.last)}`);
  for (const n of nodes) {
    assert.ok(n.stderr.some((l) => /cluster: Redis at .* is back/.test(l)), `node ${n.id}: no "is back" line:\n${n.stderr.slice(-10).join('\n')}`);
  }
  // Redis's hash holds every node's spend, the spend made while it was away included
  const winStart = (await vkUsage('k3')(nodes[0])).window_start;
  const key = budgetKey(prefix, 'k3', winStart);
  let h;
  const until = Date.now() + 3000;
  do { h = await r3.hgetall(key); if (fieldSum(h, 's').sum === spent.reduce((a, b) => a + b, 0)) break; await sleep(50); } while (Date.now() < until);
  t.diagnostic(`Redis reconciled ${Date.now() - backAt} ms after the restart: ${JSON.stringify(h)}`);
  assert.deepEqual(fieldSum(h, 's').by, { n1: spent[0], n2: spent[1], n3: spent[2] }, `Redis ${key}: ${JSON.stringify(h)}`);
  assert.equal(fieldSum(h, 'q').sum, 9 + downOk, `Redis request counts: ${JSON.stringify(h)}`);
  const total = spent.reduce((a, b) => a + b, 0);
  const seen = await pollNodes(nodes, vkUsage('k3'), (e) => e?.spend_micros === total, 4000);
  assert.ok(seen.ok, `/api/usage after the restart ≠ ${total}: ${JSON.stringify(seen.last)}`);
  t.diagnostic(`/api/usage showed ${total} µ$ on every node ${Date.now() - backAt} ms after the restart`);
  // the budget holds again: what is left is what the cluster left, at most one request per node
  const after = await topUp(nodes, 'sk-bf-cluster-k3', 20);
  t.diagnostic(`after the restart: ${after.ok} more admitted (${JSON.stringify(after.per)}); total ${9 + downOk + after.ok} of ${K}`);
  assert.ok(9 + downOk + after.ok <= K + 3, `${9 + downOk + after.ok} requests against a budget of ${K} after Redis came back`);
  await sleep(1500);
  for (const n of nodes) assert.equal((await send(n, 'sk-bf-cluster-k3')).status, 402, `node ${n.id} once the spend is known everywhere`);
  await finish(nodes);
});

test('3b. a node restarted with its data_dir and node_id is counted once (its journal\'s counters overwrite its own field); under a new node_id its spend is counted twice (measured)', { skip: SKIP, timeout: 90000 }, async (t) => {
  await awayFromBoundary(86400, 60);
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'k3b', value: 'sk-bf-cluster-k3b', budget: { max_limit: 10, reset_duration: '1d' } }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  m.reset();
  m.behave({ usage: USAGE });
  for (let i = 0; i < 6; i++) assert.equal((await send(nodes[i % 3], 'sk-bf-cluster-k3b')).status, 200);
  const total = 6 * C;
  const all = (n) => pollNodes(n, vkUsage('k3b'), (e) => e?.spend_micros === total, 4000);
  assert.ok((await all(nodes)).ok, 'the cluster total before the restart');
  await restartNode(nodes[1]);
  const once = await all(nodes);
  assert.ok(once.ok, `after node 2 restarted (same node_id, same data_dir): /api/usage ${JSON.stringify(once.last)} (want ${total})`);
  await sleep(1200);
  const h = await redis.hgetall(budgetKey(prefix, 'k3b', once.last.n1.window_start));
  assert.deepEqual(fieldSum(h, 's').by, { n1: 2 * C, n2: 2 * C, n3: 2 * C }, `Redis after the restart: ${JSON.stringify(h)}`);
  // the same node under another id: its old field stays
  const doc = JSON.parse(readFileSync(nodes[1].cfgPath, 'utf8'));
  doc.cluster.node_id = 'n2-renamed';
  writeFileSync(nodes[1].cfgPath, JSON.stringify(doc, null, 2));
  await restartNode(nodes[1]);
  await sleep(2500);
  const u = await vkUsage('k3b')(nodes[0]);
  const h2 = await redis.hgetall(budgetKey(prefix, 'k3b', once.last.n1.window_start));
  t.diagnostic(`node 2 restarted as "n2-renamed": /api/usage on n1 says ${u.spend_micros} µ$ for ${total} µ$ spent; Redis ${JSON.stringify(fieldSum(h2, 's').by)}`);
  await finish(nodes);
});

// ---------------------------------------------------------------------------------------------
// 4. Redis emptied

test('4. Redis emptied (FLUSHALL, then an empty server on the same port): the nodes reseed every counter within ~2 s and the spent budget stays spent', { skip: SKIP, timeout: 120000 }, async (t) => {
  await awayFromBoundary(86400, 60);
  const K = 12;
  const LIMIT = K * C;
  const r4 = await startRedis();
  redises.push(r4);
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'k4', value: 'sk-bf-cluster-k4', budget: { max_limit: usd(LIMIT), reset_duration: '1d' } }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: r4.url, key_prefix: prefix });
  m.reset();
  m.behave({ usage: USAGE });
  const up = await topUp(nodes, 'sk-bf-cluster-k4');
  t.diagnostic(`spent: ${up.ok} requests (${JSON.stringify(up.per)}) against ${K}`);
  assert.ok(up.ok >= K && up.ok <= K + 3, `${up.ok} admitted against ${K}`);
  const spent = [];
  for (const n of nodes) spent.push(await logSpend(n, up.per[n.id]));
  const total = spent.reduce((a, b) => a + b, 0);
  const winStart = (await vkUsage('k4')(nodes[0])).window_start;
  const key = budgetKey(prefix, 'k4', winStart);
  const want = { n1: spent[0], n2: spent[1], n3: spent[2] };
  const reseeded = async (what) => {
    const t0 = Date.now();
    let h;
    const same = (a, b) => JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());
    do { h = await r4.hgetall(key); if (same(fieldSum(h, 's').by, want)) break; await sleep(50); } while (Date.now() - t0 < 4000);
    const ms = Date.now() - t0;
    t.diagnostic(`${what}: reseeded in ${ms} ms: ${JSON.stringify(h)}`);
    assert.deepEqual(fieldSum(h, 's').by, want, `${what}: Redis ${key} after ${ms} ms: ${JSON.stringify(h)}`);
    assert.ok(ms <= 2500, `${what}: reseeding took ${ms} ms`);
    assert.equal(fieldSum(h, 'q').sum, up.ok, JSON.stringify(h));
    const nodesHash = await r4.hgetall(`${prefix}nodes`);
    assert.deepEqual(Object.keys(nodesHash).sort(), ['n1', 'n2', 'n3'], `${what}: node heartbeats ${JSON.stringify(nodesHash)}`);
  };
  await sleep(1200);
  assert.deepEqual(fieldSum(await r4.hgetall(key), 's').by, want, 'Redis before it was emptied');

  // a) FLUSHALL under the nodes' feet (their connections stay up)
  assert.equal(await r4.cmd('FLUSHALL'), 'OK');
  await reseeded('FLUSHALL');
  await sleep(1200);
  for (const n of nodes) {
    const r = await send(n, 'sk-bf-cluster-k4');
    assert.equal(r.status, 402, `node ${n.id} after FLUSHALL and the reseed: ${show(r)}`);
  }
  // the config is back in Redis too
  assert.ok(await r4.cmd('GET', `${prefix}config_rev`), 'config_rev not rewritten after FLUSHALL');

  // b) a new, empty server on the same port
  await r4.restart({ fresh: true });
  assert.deepEqual(await r4.keys(`${prefix}*`).then((ks) => ks.filter((k) => k.includes(':b:'))), [], 'the new server is not empty');
  await reseeded('empty restart');
  await sleep(1200);
  for (const n of nodes) {
    const r = await send(n, 'sk-bf-cluster-k4');
    assert.equal(r.status, 402, `node ${n.id} after an empty Redis was reseeded: ${show(r)}`);
  }
  assert.equal(m.requests.length, up.ok, 'a request went upstream after the budget was spent');
  const u = await pollNodes(nodes, vkUsage('k4'), (e) => e?.spend_micros === total, 3000);
  assert.ok(u.ok, `/api/usage: ${JSON.stringify(u.last)}`);

  // c) (measured, not asserted: the design re-pushes every counter once a second, so right after
  // a FLUSHALL the others' fields are missing for up to ~1 s)
  await r4.cmd('FLUSHALL');
  const gap = await Promise.all(nodes.map((n) => send(n, 'sk-bf-cluster-k4')));
  t.diagnostic(`requests sent right after a second FLUSHALL: ${gap.map((r) => r.status).join(', ')} (200 = admitted before the reseed)`);
  await finish(nodes);
});

test('4b. right after a FLUSHALL (before the nodes\' next full push), a spent budget is not granted again: at most one request per node', { skip: SKIP, timeout: 60000 }, async (t) => {
  await awayFromBoundary(86400, 40);
  const K = 6;
  const r4 = await startRedis();
  redises.push(r4);
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'k4b', value: 'sk-bf-cluster-k4b', budget: { max_limit: usd(K * C), reset_duration: '1d' } }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: r4.url, key_prefix: prefix });
  m.reset();
  m.behave({ usage: USAGE });
  const up = await topUp(nodes, 'sk-bf-cluster-k4b');
  assert.ok(up.ok >= K && up.ok <= K + 3, `${up.ok} admitted against ${K}`);
  await sleep(1500); // every node knows every other's spend
  for (const n of nodes) assert.equal((await send(n, 'sk-bf-cluster-k4b')).status, 402, `node ${n.id} before the FLUSHALL`);
  const before = m.requests.length;
  await r4.cmd('FLUSHALL');
  const t0 = Date.now();
  const rs = await Promise.all(nodes.flatMap((n) => [0, 1, 2, 3].map(() => send(n, 'sk-bf-cluster-k4b'))));
  const ok = countOf(rs, 200);
  t.diagnostic(`12 requests (4 per node) sent within ${Date.now() - t0} ms of a FLUSHALL, budget of ${K} already spent (${up.ok}): ${histogram(rs)}; by node ${nodes.map((n, i) => `${n.id}:${rs.slice(i * 4, i * 4 + 4).map((r) => r.status).join('/')}`).join(' ')}`);
  assert.equal(m.requests.length - before, ok);
  assert.ok(ok <= 3, `${ok} requests admitted on a spent budget right after Redis was emptied (bound: one per node); ${histogram(rs)}`);
  await finish(nodes);
});

// ---------------------------------------------------------------------------------------------
// 5. on_redis_down deny and allow

test('5. on_redis_down "deny": governed requests 503 + Retry-After while Redis is away (ungoverned ones pass), and pass again once it is back; "allow": each node on its own limits', { skip: SKIP, timeout: 120000 }, async (t) => {
  await awayFromBoundary(86400, 40);
  const r5 = await startRedis();
  redises.push(r5);
  m.reset();
  m.behave({ usage: USAGE });
  {
    const prefix = newPrefix();
    const gov = { enforce: false, virtual_keys: [{ id: 'k5', value: 'sk-bf-cluster-k5', budget: { max_limit: 10, reset_duration: '1d' } }] };
    const nodes = await startNodes(sharedConfig(gov), { redis: r5.url, key_prefix: prefix, on_redis_down: 'deny' });
    for (const n of nodes) assert.equal((await send(n, 'sk-bf-cluster-k5')).status, 200, `node ${n.id} with Redis up`);
    await r5.kill();
    const down = await pollNodes(nodes, (n) => metric(n, 'bifrost_cluster_redis_up'), (v) => v === 0, 3000);
    assert.ok(down.ok, `redis_up: ${JSON.stringify(down.last)}`);
    const before = m.requests.length;
    for (const n of nodes) {
      const r = await send(n, 'sk-bf-cluster-k5');
      assert.equal(r.status, 503, `node ${n.id}, deny, Redis away: ${show(r)}`);
      retryAfter(r, 60);
      t.diagnostic(`deny: ${n.id} → ${r.status} ${errorBody(r).message}`);
      const un = await send(n, null);
      assert.equal(un.status, 200, `node ${n.id}: an ungoverned request with Redis away: ${show(un)}`);
    }
    assert.equal(m.requests.length, before + 3, 'a denied request went upstream (or an ungoverned one did not)');
    await r5.restart();
    const back = await pollNodes(nodes, async (n) => (await send(n, 'sk-bf-cluster-k5')).status, (s) => s === 200, 5000);
    t.diagnostic(`deny: governed requests pass again ${back.ms} ms after the restart`);
    assert.ok(back.ok, `after Redis came back: ${JSON.stringify(back.last)}`);
    await finish(nodes);
  }
  {
    const prefix = newPrefix();
    const LIMIT = 3 * C;
    const gov = { enforce: true, virtual_keys: [{ id: 'k5a', value: 'sk-bf-cluster-k5a', budget: { max_limit: usd(LIMIT), reset_duration: '1d' } }] };
    const nodes = await startNodes(sharedConfig(gov), { redis: r5.url, key_prefix: prefix, on_redis_down: 'allow' });
    await r5.kill();
    const down = await pollNodes(nodes, (n) => metric(n, 'bifrost_cluster_redis_up'), (v) => v === 0, 3000);
    assert.ok(down.ok, `redis_up: ${JSON.stringify(down.last)}`);
    m.reset();
    m.behave({ usage: USAGE });
    for (const n of nodes) {
      const st = [];
      for (let i = 0; i < 4; i++) st.push((await send(n, 'sk-bf-cluster-k5a')).status);
      t.diagnostic(`allow, Redis away: ${n.id} → ${st.join(', ')}`);
      assert.deepEqual(st, [200, 200, 200, 402], `node ${n.id}, allow: its own 3-request budget`);
    }
    assert.equal(m.requests.length, 9);
    await finish(nodes);
  }
});

// ---------------------------------------------------------------------------------------------
// 6. the config kept in step

test('6. a virtual key created through node 1\'s admin API works on node 3 within ~2 s; every file keeps its own listen, workers, data_dir and cluster block; a SIGHUP edit on node 2 reaches the others', { skip: SKIP, timeout: 90000 }, async (t) => {
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'base', value: 'sk-bf-cluster-base' }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  m.reset();
  m.behave({ usage: USAGE });
  const NEW = 'sk-bf-cluster-made-on-n1';
  assert.equal((await send(nodes[2], NEW)).status, 401, 'the key works before it exists');
  const post = await request(nodes[0].port, {
    method: 'POST', path: '/api/governance/virtual-keys', headers: { authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ id: 'made', value: NEW, budget: { max_limit: 1, reset_duration: '1d' } }),
  });
  assert.equal(post.status, 201, `POST on node 1: ${show(post)}`);
  const t0 = Date.now();
  const seen = await pollNodes([nodes[2], nodes[1]], async (n) => (await send(n, NEW)).status, (s) => s === 200, 5000);
  t.diagnostic(`the key made on n1 answered 200 on n3 and n2 after ${Date.now() - t0} ms`);
  assert.ok(seen.ok && seen.ms <= 2500, `node 3/2 with the key made on node 1 (${seen.ms} ms): ${JSON.stringify(seen.last)}\n${nodes[2].stderr.slice(-10).join('\n')}`);
  assert.ok(nodes[2].stderr.some((l) => /cluster: config revision [0-9a-f]{16} installed from Redis/.test(l)),
    `node 3 did not say it installed the config:\n${nodes[2].stderr.slice(-10).join('\n')}`);

  // the files on disk: the new key, and each node's own members unchanged
  for (const n of nodes) {
    const doc = JSON.parse(readFileSync(n.cfgPath, 'utf8'));
    assert.equal(doc.listen, n.cfg.listen, `node ${n.id}: listen in its file`);
    assert.equal(doc.workers, n.cfg.workers, `node ${n.id}: workers in its file`);
    assert.equal(doc.data_dir, n.cfg.data_dir, `node ${n.id}: data_dir in its file`);
    assert.deepEqual(doc.cluster, n.cfg.cluster, `node ${n.id}: cluster block in its file`);
    const k = doc.governance?.virtual_keys?.find((x) => x.id === 'made');
    assert.ok(k, `node ${n.id}: the new key is not in its file: ${JSON.stringify(doc.governance)}`);
    assert.equal(k.value, undefined, `node ${n.id}: the key's value is in the file`);
    assert.match(k.value_sha256 ?? '', /^[0-9a-f]{64}$/, `node ${n.id}: ${JSON.stringify(k)}`);
    assert.equal(doc.admin?.token, ADMIN, `node ${n.id}: the admin token in its file`);
  }
  // the shared config in Redis holds none of a node's own members
  const inRedis = JSON.parse(await redis.cmd('GET', `${prefix}config`));
  for (const own of ['listen', 'workers', 'data_dir', 'cluster', 'tls']) assert.ok(!(own in inRedis), `${prefix}config holds "${own}"`);

  // spend on node 3 with the new key shows on node 1
  const u = await pollNodes([nodes[0]], vkUsage('made'), (e) => e?.spend_micros >= C, 3000);
  assert.ok(u.ok, `node 1's /api/usage for the key used on node 3: ${JSON.stringify(u.last)}`);

  // a file edited on node 2 + SIGHUP: another key, usable on nodes 1 and 3
  const doc2 = JSON.parse(readFileSync(nodes[1].cfgPath, 'utf8'));
  doc2.governance.virtual_keys.push({ id: 'hup', value: 'sk-bf-cluster-hup' });
  writeFileSync(nodes[1].cfgPath, JSON.stringify(doc2, null, 2));
  nodes[1].proc.child.kill('SIGHUP');
  const hup = await pollNodes([nodes[0], nodes[2]], async (n) => (await send(n, 'sk-bf-cluster-hup')).status, (s) => s === 200, 5000);
  t.diagnostic(`the key added by SIGHUP on n2 answered 200 on n1 and n3 after ${hup.ms} ms`);
  assert.ok(hup.ok, `a key added on node 2 by SIGHUP, on nodes 1 and 3: ${JSON.stringify(hup.last)}`);
  for (const n of [nodes[0], nodes[2]]) {
    const doc = JSON.parse(readFileSync(n.cfgPath, 'utf8'));
    assert.equal(doc.listen, n.cfg.listen);
    assert.deepEqual(doc.cluster, n.cfg.cluster);
    assert.ok(doc.governance.virtual_keys.some((x) => x.id === 'made') && doc.governance.virtual_keys.some((x) => x.id === 'hup'),
      `node ${n.id}: ${JSON.stringify(doc.governance.virtual_keys.map((x) => x.id))}`);
  }
  await finish(nodes);
});

test('6b. a node that cannot install the cluster\'s config (a relative pricing_file its directory lacks) says so once, keeps its own, and does not overwrite the cluster\'s config with it', { skip: SKIP, timeout: 60000 }, async (t) => {
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'base', value: 'sk-bf-cluster-base' }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  const prices = JSON.stringify({ 'gpt-4o': { litellm_provider: 'openai', input_cost_per_token: 0.000001, output_cost_per_token: 0.00001 } });
  writeFileSync(join(nodes[0].dir, 'prices.json'), prices);
  writeFileSync(join(nodes[1].dir, 'prices.json'), prices); // node 3's directory has none
  await sleep(600);
  const get = await request(nodes[0].port, { path: '/api/config', headers: { authorization: `Bearer ${ADMIN}` } });
  assert.equal(get.status, 200, show(get));
  const doc = get.json();
  doc.pricing_file = 'prices.json';
  const put = await request(nodes[0].port, { method: 'PUT', path: '/api/config', headers: { authorization: `Bearer ${ADMIN}` }, body: JSON.stringify(doc) });
  assert.equal(put.status, 200, `PUT /api/config on node 1: ${show(put)}`);
  // for 2.5 s: the cluster's config stays node 1's edit once it is there
  const samples = [];
  const t0 = Date.now();
  while (Date.now() - t0 < 2500) {
    const c = await redis.cmd('GET', `${prefix}config`);
    samples.push({ ms: Date.now() - t0, has: typeof c === 'string' && c.includes('"pricing_file"') });
    await sleep(50);
  }
  const first = samples.findIndex((x) => x.has);
  const lost = samples.slice(Math.max(first, 0)).filter((x) => !x.has);
  t.diagnostic(`${prefix}config held node 1's edit from ${first >= 0 ? samples[first].ms : 'never'} ms; reverted in ${lost.length} of ${samples.length - Math.max(first, 0)} samples after that (first at ${lost[0]?.ms ?? '-'} ms)`);
  t.diagnostic(`node 3 stderr: ${JSON.stringify(nodes[2].stderr.filter((l) => /cluster/.test(l)).slice(-6))}`);
  assert.ok(first >= 0, `node 1's edit never reached ${prefix}config`);
  assert.equal(lost.length, 0, `the cluster's config was overwritten by a node that could not install it (${lost.length} samples without node 1's edit, from ${lost[0]?.ms} ms)`);
  // node 2 installed it; node 3 said why it could not, once, and still serves with its own config
  const d2 = JSON.parse(readFileSync(nodes[1].cfgPath, 'utf8'));
  assert.equal(d2.pricing_file, 'prices.json', `node 2 did not install node 1's edit:\n${nodes[1].stderr.slice(-6).join('\n')}`);
  const complaints = nodes[2].stderr.filter((l) => /cluster: the config in Redis \(revision [0-9a-f]{16}\) is not valid here/.test(l));
  assert.equal(complaints.length, 1, `node 3's complaints: ${JSON.stringify(complaints)}`);
  assert.ok(nodes[2].stderr.some((l) => /pricing_file/.test(l)), `node 3 does not say what is wrong:\n${nodes[2].stderr.slice(-6).join('\n')}`);
  assert.equal(JSON.parse(readFileSync(nodes[2].cfgPath, 'utf8')).pricing_file, undefined, 'node 3 changed its file');
  m.reset();
  m.behave({ usage: USAGE });
  assert.equal((await send(nodes[2], 'sk-bf-cluster-base')).status, 200, 'node 3 stopped serving');
  await finish(nodes);
});

test('6c. a node restarted with a stale file takes the cluster\'s config (clu_config: at start the cluster\'s wins): a key made through node 1 while node 2 was down survives, on every node, and is written to node 2\'s file', { skip: SKIP, timeout: 60000 }, async (t) => {
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'base', value: 'sk-bf-cluster-base' }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  m.reset();
  m.behave({ usage: USAGE });
  // node 2 goes away; meanwhile a key is made through node 1's admin API
  nodes[1].proc.child.kill('SIGTERM');
  assert.equal((await nodes[1].proc.wait(10000)).code, 0);
  const post = await request(nodes[0].port, {
    method: 'POST', path: '/api/governance/virtual-keys', headers: { authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ id: 'while-down', value: 'sk-bf-cluster-while-down' }),
  });
  assert.equal(post.status, 201, show(post));
  const on3 = await pollNodes([nodes[2]], async (n) => (await send(n, 'sk-bf-cluster-while-down')).status, (s) => s === 200, 5000);
  assert.ok(on3.ok, `node 3 never took the key made on node 1: ${JSON.stringify(on3.last)}`);
  // node 2 comes back with its old file, plus a key of its own that the cluster never saw
  const stale = sharedConfig({ ...gov, virtual_keys: [...gov.virtual_keys, { id: 'stale-only', value: 'sk-bf-cluster-stale-only' }] });
  const n2 = await startNode('n2', stale, { redis: redis.url, key_prefix: prefix });
  const took = await pollNodes([n2], async (n) => (await send(n, 'sk-bf-cluster-while-down')).status, (s) => s === 200, 5000);
  t.diagnostic(`node 2 restarted with a stale file: the key made while it was down works on it after ${took.ms} ms`);
  assert.ok(took.ok, `node 2 did not take the cluster's config at its start: ${JSON.stringify(took.last)}\n${n2.stderr.slice(-6).join('\n')}`);
  await sleep(1000);
  for (const n of [nodes[0], n2, nodes[2]]) {
    assert.equal((await send(n, 'sk-bf-cluster-while-down')).status, 200, `node ${n.id}: the key made through node 1 while node 2 was down`);
    assert.equal((await send(n, 'sk-bf-cluster-stale-only')).status, 401, `node ${n.id}: the key only node 2's stale file had`);
  }
  const doc = JSON.parse(readFileSync(n2.cfgPath, 'utf8'));
  assert.ok(doc.governance.virtual_keys.some((k) => k.id === 'while-down'), `node 2's file: ${JSON.stringify(doc.governance.virtual_keys.map((k) => k.id))}`);
  assert.equal(doc.listen, n2.cfg.listen, 'node 2 kept its own listen');
  assert.deepEqual(doc.cluster, n2.cfg.cluster, 'node 2 kept its own cluster block');
  // after its start, a SIGHUP on node 2 is a local change again: it becomes the cluster's
  doc.governance.virtual_keys.push({ id: 'after-start', value: 'sk-bf-cluster-after-start' });
  writeFileSync(n2.cfgPath, JSON.stringify(doc, null, 2));
  n2.proc.child.kill('SIGHUP');
  const hup = await pollNodes([nodes[0], nodes[2]], async (n) => (await send(n, 'sk-bf-cluster-after-start')).status, (s) => s === 200, 5000);
  assert.ok(hup.ok, `a SIGHUP edit on the restarted node 2 did not reach nodes 1 and 3: ${JSON.stringify(hup.last)}`);
  await finish([nodes[0], n2, nodes[2]]);
});

// ---------------------------------------------------------------------------------------------
// 7. max_concurrent across nodes

test('7. max_concurrent 2 on one key across 3 nodes: 6 parallel slow requests → 2 admitted, 4 × 429; without "cluster" 6', { skip: SKIP, timeout: 90000 }, async (t) => {
  const gov = { enforce: true, virtual_keys: [{ id: 'k7', value: 'sk-bf-cluster-k7', rate_limit: { max_concurrent: 2 } }] };
  const prefix = newPrefix();
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix });
  m.reset();
  m.behave({ usage: USAGE, delayMs: 1200 });
  const t0 = Date.now();
  const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => send(nodes[i % 3], 'sk-bf-cluster-k7').then((r) => Object.assign(r, { ms: Date.now() - t0, node: nodes[i % 3].id }))));
  const detail = rs.map((r) => `${r.node}:${r.status}:${r.ms}ms`).join(' ');
  t.diagnostic(`cluster: ${histogram(rs)} (${detail})`);
  assert.equal(countOf(rs, 200), 2, `6 parallel requests under max_concurrent 2: ${histogram(rs)} (node:status:time ${detail})`);
  for (const r of rs.filter((x) => x.status === 429)) { assert.match(errorBody(r).message, /concurrency/, show(r)); retryAfter(r, 60); }
  assert.equal(m.requests.length, 2);
  // released: once they are done (and pushed), two more pass
  m.reset();
  m.behave({ usage: USAGE, delayMs: 300 });
  await sleep(300);
  const rs2 = await Promise.all([send(nodes[1], 'sk-bf-cluster-k7'), send(nodes[2], 'sk-bf-cluster-k7')]);
  assert.deepEqual(rs2.map((r) => r.status), [200, 200], `after the first ones finished: ${histogram(rs2)}`);
  await finish(nodes);

  const solo = await startNodes(sharedConfig(gov), null);
  m.reset();
  m.behave({ usage: USAGE, delayMs: 1200 });
  const rs3 = await Promise.all(Array.from({ length: 6 }, (_, i) => send(solo[i % 3], 'sk-bf-cluster-k7')));
  t.diagnostic(`control without "cluster": ${histogram(rs3)}`);
  assert.equal(countOf(rs3, 200), 6, `control: ${histogram(rs3)}`);
  await finish(solo);
});

// ---------------------------------------------------------------------------------------------
// 8. a Redis that does not answer

test('8. Redis stopped (SIGSTOP, connections open, no answers): a governed request waits at most ~cluster.timeout_ms and is decided by on_redis_down; SIGCONT: back to Redis', { skip: SKIP, timeout: 90000 }, async (t) => {
  const r8 = await startRedis();
  redises.push(r8);
  const prefix = newPrefix();
  const gov = { enforce: true, virtual_keys: [{ id: 'k8', value: 'sk-bf-cluster-k8', budget: { max_limit: 10, reset_duration: '1d' } }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: r8.url, key_prefix: prefix, on_redis_down: 'deny', timeout_ms: 300 });
  m.reset();
  m.behave({ usage: USAGE });
  assert.equal((await send(nodes[0], 'sk-bf-cluster-k8')).status, 200);
  r8.pause();
  try {
    const times = [];
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const r = await send(nodes[i], 'sk-bf-cluster-k8', { timeout: 10000 });
      times.push(Date.now() - t0);
      assert.equal(r.status, 503, `node ${nodes[i].id}, Redis stopped, deny: ${show(r)}`);
      retryAfter(r, 60);
    }
    t.diagnostic(`Redis stopped: 503 after ${times.join(', ')} ms (timeout_ms 300)`);
    for (const ms of times) assert.ok(ms < 1200, `a request waited ${ms} ms for a Redis that does not answer (timeout_ms 300)`);
  } finally {
    r8.resume();
  }
  const back = await pollNodes(nodes, async (n) => (await send(n, 'sk-bf-cluster-k8')).status, (s) => s === 200, 8000);
  t.diagnostic(`SIGCONT: governed requests pass on every node after ${back.ms} ms`);
  assert.ok(back.ok, `after SIGCONT: ${JSON.stringify(back.last)}`);
  await finish(nodes);
});

test('8b. Redis stopped, on_redis_down local_share: a 9-per-hour request window over 3 nodes still admits ≤ 9 + 3 of 27 parallel requests (each node its third); token windows fall back to each node\'s own limit (measured)', { skip: SKIP, timeout: 90000 }, async (t) => {
  await awayFromBoundary(3600);
  const r8 = await startRedis();
  redises.push(r8);
  const prefix = newPrefix();
  const T = IN + OUT;
  const gov = { enforce: true, virtual_keys: [
    { id: 'rq8', value: 'sk-bf-cluster-rq8', rate_limit: { request_max_limit: 9, request_reset_duration: '1h' } },
    { id: 'tk8', value: 'sk-bf-cluster-tk8', rate_limit: { token_max_limit: 10 * T, token_reset_duration: '1h' } },
  ] };
  const nodes = await startNodes(sharedConfig(gov), { redis: r8.url, key_prefix: prefix, on_redis_down: 'local_share', timeout_ms: 200 });
  m.reset();
  m.behave({ usage: USAGE, delayMs: 40 });
  await sleep(1300); // every node has looked at Redis: 3 nodes alive
  for (const n of nodes) assert.equal(await metric(n, 'bifrost_cluster_nodes'), 3, `node ${n.id} sees 3 nodes`);
  r8.pause();
  try {
    const rs = await Promise.all(Array.from({ length: 27 }, (_, i) => send(nodes[i % 3], 'sk-bf-cluster-rq8')));
    const per = nodes.map((_, k) => countOf(rs.filter((_, i) => i % 3 === k), 200));
    t.diagnostic(`request window 9/h, Redis stopped: ${histogram(rs)}, per node ${per.join('/')}`);
    assert.ok(countOf(rs, 200) <= 12, `${countOf(rs, 200)} requests passed a 9-per-hour window with Redis stopped (local_share bound 9 + 3)`);
    for (const r of rs.filter((x) => x.status === 429)) retryAfter(r, 3600);
    const rt = await Promise.all(Array.from({ length: 30 }, (_, i) => send(nodes[i % 3], 'sk-bf-cluster-tk8')));
    t.diagnostic(`token window of 10 requests' worth, Redis stopped: ${histogram(rt)} (by design each node keeps only its own token limit)`);
  } finally {
    r8.resume();
  }
  await finish(nodes);
});

test('8c. SCRIPT FLUSH under the nodes\' feet: the admission script is loaded again and admissions go on through Redis (on_redis_down deny: at most the requests of one round see a 503)', { skip: SKIP, timeout: 60000 }, async (t) => {
  const prefix = newPrefix();
  const K = 6;
  const gov = { enforce: true, virtual_keys: [{ id: 'k12', value: 'sk-bf-cluster-k12', budget: { max_limit: usd(K * C), reset_duration: '1d' } }] };
  const nodes = await startNodes(sharedConfig(gov), { redis: redis.url, key_prefix: prefix, on_redis_down: 'deny' });
  m.reset();
  m.behave({ usage: USAGE });
  assert.equal((await send(nodes[0], 'sk-bf-cluster-k12')).status, 200);
  assert.equal(await redis.cmd('SCRIPT', 'FLUSH'), 'OK');
  const st = [];
  const times = [];
  for (let i = 0; i < 9; i++) {
    const t0 = Date.now();
    st.push((await send(nodes[i % 3], 'sk-bf-cluster-k12')).status);
    times.push(Date.now() - t0);
  }
  const fails = [];
  for (const n of nodes) fails.push(await metric(n, 'bifrost_cluster_redis_failures_total'));
  t.diagnostic(`after SCRIPT FLUSH: ${st.map((s, i) => `${nodes[i % 3].id}:${s}:${times[i]}ms`).join(' ')}; failures_total ${fails.join('/')}`);
  const errs = st.filter((s) => s === 503).length;
  assert.ok(errs <= 3, `${errs} requests got 503 after SCRIPT FLUSH (the script is never reloaded?): ${st}`);
  // the budget is still held by Redis: K in all, the rest refused
  const ok = 1 + st.filter((s) => s === 200).length;
  assert.ok(ok <= K + 3, `${ok} admitted against ${K}: ${st}`);
  const up = await topUp(nodes, 'sk-bf-cluster-k12');
  assert.ok(ok + up.ok >= K && ok + up.ok <= K + 3, `${ok} + ${up.ok} admitted against ${K} after SCRIPT FLUSH`);
  await finish(nodes);
});

// ---------------------------------------------------------------------------------------------
// 9. Redis with a password, a database, an ACL user

test('9. Redis with a password and a database number (redis://:pw@host:port/3) and with an ACL user (redis://user:pw@...): admissions go through it; a wrong password is "Redis down"', { skip: SKIP, timeout: 90000 }, async (t) => {
  const r11 = await startRedis({ args: ['--requirepass', 'pw-cluster-11', '--user', 'gw', 'on', '>pw-user-11', '~*', '&*', '+@all'], password: 'pw-cluster-11' });
  redises.push(r11);
  const c = await r11.client();
  const gov = { enforce: true, virtual_keys: [{ id: 'k11', value: 'sk-bf-cluster-k11', budget: { max_limit: usd(2 * C), reset_duration: '1d' } }] };
  m.reset();
  m.behave({ usage: USAGE });
  for (const [what, url] of [['password, db 3', `redis://:pw-cluster-11@127.0.0.1:${r11.port}/3`], ['ACL user, db 4', `redis://gw:pw-user-11@127.0.0.1:${r11.port}/4`]]) {
    const prefix = newPrefix();
    const nodes = [await startNode('a1', sharedConfig(gov), { redis: url, key_prefix: prefix, on_redis_down: 'deny' }),
      await startNode('a2', sharedConfig(gov), { redis: url, key_prefix: prefix, on_redis_down: 'deny' })];
    const st = [];
    for (let i = 0; i < 4; i++) st.push((await send(nodes[i % 2], 'sk-bf-cluster-k11')).status);
    t.diagnostic(`${what}: ${st.join(', ')}`);
    assert.deepEqual(st.slice(0, 2), [200, 200], `${what}: ${st}`);
    assert.ok(st[2] === 402 || st[2] === 429, `${what}: a 2-request budget over 2 nodes admitted a third: ${st}`);
    const db = url.endsWith('/3') ? '3' : '4';
    await c.cmd('SELECT', db);
    const keys = await c.keys(`${prefix}*`);
    assert.ok(keys.some((k) => k.startsWith(`${prefix}b:`)), `${what}: no budget hash in db ${db}: ${JSON.stringify(keys)}`);
    await c.cmd('SELECT', '0');
    assert.deepEqual(await c.keys(`${prefix}*`), [], `${what}: keys written to db 0`);
    for (const n of nodes) assert.equal(await metric(n, 'bifrost_cluster_redis_up'), 1);
    await finish(nodes);
  }
  // a wrong password: Redis counts as down (deny → 503), said once on stderr
  const bad = await startNode('b1', sharedConfig(gov), { redis: `redis://:wrong@127.0.0.1:${r11.port}`, key_prefix: newPrefix(), on_redis_down: 'deny' }, { waitRedis: false });
  await sleep(500);
  const r = await send(bad, 'sk-bf-cluster-k11');
  assert.equal(r.status, 503, `wrong password, deny: ${show(r)}`);
  assert.equal(await metric(bad, 'bifrost_cluster_redis_up'), 0);
  const lines = bad.stderr.filter((l) => /cluster: Redis at 127\.0\.0\.1:\d+ unreachable/.test(l));
  assert.equal(lines.length, 1, `stderr: ${JSON.stringify(bad.stderr.slice(-5))}`);
  assert.match(lines[0], /unreachable \(Redis answered WRONGPASS /, `the line says why: ${lines[0]}`);
  assert.ok(!bad.stderr.join('\n').includes('wrong'), 'the password is printed on stderr');
  await finish([bad]);
});

test('9b. rediss:// (TLS to Redis, its certificate checked against cluster.tls.ca_file): budgets held across two nodes through it; a node without that CA cannot connect (deny → 503)', { skip: SKIP, timeout: 90000 }, async (t) => {
  const dir = tempDir('bifrost-redis-tls-');
  const ca = makeCA(dir, 'Cluster Test CA', { keyType: 'ec' });
  const leaf = makeServerCert(dir, ca, { name: 'redis', keyType: 'ec' });
  const tlsPort = await freePort();
  const rt = await startRedis({ args: ['--tls-port', String(tlsPort), '--tls-cert-file', leaf.certFile, '--tls-key-file', leaf.keyFile, '--tls-auth-clients', 'no'] });
  redises.push(rt);
  const gov = { enforce: true, virtual_keys: [{ id: 'k9b', value: 'sk-bf-cluster-k9b', budget: { max_limit: usd(2 * C), reset_duration: '1d' } }] };
  m.reset();
  m.behave({ usage: USAGE });
  const prefix = newPrefix();
  // (BearSSL matches DNS names only: the URL names "localhost", which the certificate lists)
  const cluster = { redis: `rediss://localhost:${tlsPort}`, key_prefix: prefix, on_redis_down: 'deny', tls: { ca_file: ca.certFile } };
  const nodes = [await startNode('t1', sharedConfig(gov), cluster), await startNode('t2', sharedConfig(gov), cluster)];
  const st = [];
  for (let i = 0; i < 4; i++) st.push((await send(nodes[i % 2], 'sk-bf-cluster-k9b')).status);
  t.diagnostic(`rediss: ${st.join(', ')}`);
  assert.deepEqual(st.slice(0, 2), [200, 200], `rediss: ${st}`);
  assert.ok(st[2] === 402 || st[2] === 429, `rediss: a 2-request budget over 2 nodes admitted a third: ${st}`);
  const c = await rt.client(); /* (over the plain port the same server also listens on) */
  assert.ok((await c.keys(`${prefix}*`)).some((k) => k.startsWith(`${prefix}b:`)), 'no budget hash written through TLS');
  // the server's certificate is not trusted without the CA: Redis counts as down
  const bad = await startNode('t3', sharedConfig(gov), { ...cluster, tls: undefined }, { waitRedis: false });
  await sleep(600);
  const r = await send(bad, 'sk-bf-cluster-k9b');
  assert.equal(r.status, 503, `untrusted certificate, deny: ${show(r)}`);
  assert.equal(await metric(bad, 'bifrost_cluster_redis_up'), 0);
  await finish([...nodes, bad]);
});

// ---------------------------------------------------------------------------------------------
// 10. the example in dist/cluster

test('10. dist/cluster: the three node configs pass `bifrost check` and differ only in their own members', async () => { // (needs no Redis)
  const dir = join(REPO, 'dist', 'cluster');
  const files = ['node1.json', 'node2.json', 'node3.json'].map((f) => join(dir, f));
  for (const f of files) assert.ok(existsSync(f), `${f} is missing`);
  assert.ok(existsSync(join(dir, 'README.md')), 'dist/cluster/README.md is missing');
  const env = { OPENAI_API_KEY: 'sk-test', ANTHROPIC_API_KEY: 'sk-ant-test', BIFROST_ADMIN_TOKEN: 'adm', BIFROST_REDIS_URL: 'redis://:pw@redis:6379/0' };
  const docs = [];
  for (const f of files) {
    const r = await runBifrost(['check', '-c', f], { env });
    assert.equal(r.code, 0, `bifrost check -c ${f}:\n${r.stdout}\n${r.stderr}`);
    docs.push(JSON.parse(readFileSync(f, 'utf8')));
  }
  const own = new Set(['listen', 'workers', 'data_dir', 'tls', 'cluster']);
  const shared = (d) => JSON.stringify(Object.fromEntries(Object.entries(d).filter(([k]) => !own.has(k))));
  assert.equal(shared(docs[1]), shared(docs[0]), 'node2.json shares a different config from node1.json');
  assert.equal(shared(docs[2]), shared(docs[0]), 'node3.json shares a different config from node1.json');
  const ids = docs.map((d) => d.cluster?.node_id);
  assert.deepEqual(ids, ['node1', 'node2', 'node3']);
  for (const d of docs) assert.ok(d.cluster?.redis, 'a node config without cluster.redis');
  const compose = readFileSync(join(dir, 'docker-compose.yml'), 'utf8');
  assert.match(compose, /appendonly\s+yes/, 'docker-compose.yml: Redis without appendonly yes');
  assert.match(compose, /maxmemory-policy\s+noeviction/, 'docker-compose.yml: Redis without maxmemory-policy noeviction');
});

test('a "cluster" block added by a reload to a node started without one: the node says it takes effect at the next start, and keeps answering on its own limits', { skip: SKIP, timeout: 60000 }, async () => {
  const gov = { enforce: true, virtual_keys: [{ id: 'k-reload', value: 'sk-bf-cluster-reload', budget: { max_limit: 1, reset_duration: '1d' } }] };
  const node = await startNode('r1', sharedConfig(gov), null);
  m.reset();
  m.behave({ usage: USAGE });
  writeFileSync(node.cfgPath, JSON.stringify({ ...node.cfg, cluster: { node_id: 'r1', redis: redis.url, key_prefix: newPrefix() } }, null, 2));
  node.proc.child.kill('SIGHUP');
  const t0 = Date.now();
  while (!node.stderr.some((l) => /config reloaded/.test(l)) && Date.now() - t0 < 5000) await sleep(50);
  assert.ok(node.stderr.some((l) => /^bifrost: cluster: a block added by a reload takes effect at the next start/.test(l)), `stderr: ${node.stderr.slice(-5).join('\n')}`);
  const r = await send(node, 'sk-bf-cluster-reload', { timeout: 5000 });
  assert.equal(r.status, 200, show(r));
  await finish([node]);
});
