// Governance helpers for the integration tests: the gateway's cost formula re-done in exact
// integer arithmetic, /api/usage and /metrics readers, and the journal's record layout.
//
//   costMicros({ in, out, cacheRead, cacheWrite }, price)  → µ$ (price: $ per million tokens)
//   openaiCost(usage, price), anthropicCost(usage, price)  → µ$ of one upstream usage object
//   await usage(port, token)                               → parsed /api/usage body (throws unless 200)
//   entity(u, 'virtual_keys', 'alice')                     → one entry (throws when missing)
//   await quiet(port, token)                               → /api/usage once nothing is in flight or reserved
//   await metricSum(port, /unpriced/)                      → sum of the /metrics samples whose name matches
//   journalRecords(buf)                                    → decoded 64-byte journal records
//   entKey(kind, id)                                       → the journal's entity key (FNV-1a of kind, id)

import { request, sleep } from './gateway.mjs';

/** $ per million tokens → µ$ per million tokens, exactly (prices have at most 6 decimals). */
function perMTok(dollars) {
  const s = String(dollars ?? 0);
  const [int, frac = ''] = s.split('.');
  return BigInt(int) * 1000000n + BigInt((frac + '000000').slice(0, 6));
}

/**
 * Cost in µ$ as the gateway defines it (gov_cost_micros): Σ tokens × price per million,
 * summed exactly, rounded UP once to a whole micro-dollar.
 */
export function costMicros({ in: tin = 0, out = 0, cacheRead = 0, cacheWrite = 0 }, price) {
  if (!price) return 0;
  const s = BigInt(Math.max(0, tin)) * perMTok(price.input)
    + BigInt(Math.max(0, out)) * perMTok(price.output)
    + BigInt(Math.max(0, cacheRead)) * perMTok(price.cache_read)
    + BigInt(Math.max(0, cacheWrite)) * perMTok(price.cache_write);
  return Number((s + 999999n) / 1000000n);
}

/** OpenAI usage: input excludes the cached prompt tokens, which are billed as cache reads. */
export function openaiCost(u, price) {
  const cached = u.prompt_tokens_details?.cached_tokens ?? 0;
  return costMicros({ in: u.prompt_tokens - cached, out: u.completion_tokens, cacheRead: cached }, price);
}
export function openaiTokens(u) { return u.prompt_tokens + u.completion_tokens; }

/** Anthropic usage: input_tokens as reported, cache reads and writes at their own prices. */
export function anthropicCost(u, price) {
  return costMicros({ in: u.input_tokens, out: u.output_tokens, cacheRead: u.cache_read_input_tokens ?? 0, cacheWrite: u.cache_creation_input_tokens ?? 0 }, price);
}
export function anthropicTokens(u) {
  return u.input_tokens + (u.cache_read_input_tokens ?? 0) + (u.cache_creation_input_tokens ?? 0) + u.output_tokens;
}

/** GET /api/usage with the admin token; the parsed body. */
export async function usage(port, token) {
  const r = await request(port, { path: '/api/usage', headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`GET /api/usage: status ${r.status}, body ${JSON.stringify(r.text.slice(0, 400))}`);
  try { return r.json(); } catch { throw new Error(`GET /api/usage: not JSON: ${JSON.stringify(r.text.slice(0, 400))}`); }
}

/** One entry of a /api/usage list by id. */
export function entity(u, list, id) {
  const arr = u?.[list];
  if (!Array.isArray(arr)) throw new Error(`/api/usage has no "${list}" array: ${JSON.stringify(u).slice(0, 400)}`);
  const e = arr.find((x) => x.id === id);
  if (!e) throw new Error(`/api/usage ${list} has no entry "${id}"; ids: ${JSON.stringify(arr.map((x) => x.id))}`);
  return e;
}

/** Every entry of every list. */
export function allEntities(u) {
  return ['customers', 'teams', 'virtual_keys', 'provider_configs', 'providers'].flatMap((l) => (Array.isArray(u?.[l]) ? u[l] : []));
}

/**
 * /api/usage once no entity has requests in flight or money reserved (charges land when a
 * request completes, which for a cut stream may be after the client left), or the last one
 * read after timeoutMs. `extra(u)` may add a condition.
 */
export async function quiet(port, token, { timeoutMs = 4000, extra = () => true } = {}) {
  const until = Date.now() + timeoutMs;
  let u;
  for (;;) {
    u = await usage(port, token);
    const busy = allEntities(u).some((e) => e.in_flight !== 0 || e.reserved_micros !== 0);
    if (!busy && extra(u)) return u;
    if (Date.now() > until) return u;
    await sleep(25);
  }
}

/** Sum of the /metrics samples whose metric name matches re (comments skipped); also the lines. */
export async function metricSum(port, re) {
  const r = await request(port, { path: '/metrics' });
  if (r.status !== 200) throw new Error(`GET /metrics: status ${r.status}`);
  let sum = 0;
  const lines = [];
  for (const l of r.text.split('\n')) {
    if (!l || l.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(l);
    if (!m || !re.test(m[1])) continue;
    lines.push(l);
    sum += Number(m[3]);
  }
  return { sum, lines, text: r.text };
}

// ---------------------------------------------------------------------------------------------
// the journal (bifrost.c section 11): 64-byte little-endian records
//    0 u16 magic "BJ"  2 u8 version  3 u8 kind<<4 | type  4 u32 crc32c
//    8 u64 entity key  16 i64 window start  24 i64 spend µ$  32 i64 tokens in  40 i64 tokens out
//   48 u64 request id (TOTAL: requests)  56 i64 unix ns

export const KIND = { customer: 1, team: 2, virtual_key: 3, provider_config: 4, provider: 5 };

/** FNV-1a over (kind, id bytes): the entity key the journal stores. */
export function entKey(kind, id) {
  const P = 0x100000001b3n, M = (1n << 64n) - 1n;
  let h = 0xcbf29ce484222325n;
  h = ((h ^ BigInt(kind)) * P) & M;
  for (const b of Buffer.from(id, 'utf8')) h = ((h ^ BigInt(b)) * P) & M;
  return h === 0n ? 1n : h;
}

export function journalRecords(buf) {
  const out = [];
  for (let off = 0; off + 64 <= buf.length; off += 64) {
    const r = buf.subarray(off, off + 64);
    out.push({
      off,
      magic: r.readUInt16LE(0),
      version: r[2],
      kind: r[3] >> 4,
      type: r[3] & 15,
      ent: r.readBigUInt64LE(8),
      winStart: Number(r.readBigInt64LE(16)),
      spend: Number(r.readBigInt64LE(24)),
      tokIn: Number(r.readBigInt64LE(32)),
      tokOut: Number(r.readBigInt64LE(40)),
      req: r.readBigUInt64LE(48),
    });
  }
  return out;
}
