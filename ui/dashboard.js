// Dashboard: totals and charts from GET /api/logs/stats.

import {
  html, useState, useMemo, api, useLoad, useInterval, ErrorBox, PageHead, Loading,
  fmtInt, fmtUSD, fmtMs, fmtPct,
} from './lib.js';
import { TimeChart, BarChart, ACCENT, ACCENT_2, RED } from './chart.js';

const RANGES = [
  { v: '15m', label: 'Last 15 minutes', s: 900, bucket: 15 },
  { v: '1h', label: 'Last hour', s: 3600, bucket: 60 },
  { v: '6h', label: 'Last 6 hours', s: 21600, bucket: 300 },
  { v: '24h', label: 'Last 24 hours', s: 86400, bucket: 900 },
  { v: '7d', label: 'Last 7 days', s: 604800, bucket: 3600 },
];

/** Series on a regular grid: missing buckets are 0 requests (latency unknown). */
function grid(series, since, until, bucketS) {
  const step = bucketS * 1000;
  const rows = [...(series || [])].sort((a, b) => a.t - b.t);
  const aligned = rows.every((r) => r.t % step === 0);
  if (!aligned || rows.length > 5000) return rows;
  const at = new Map(rows.map((r) => [r.t, r]));
  const out = [];
  for (let t = Math.floor(since / step) * step; t <= until; t += step) {
    out.push(at.get(t) || { t, count: 0, errors: 0, in_tokens: 0, out_tokens: 0, cost: 0, p50_ms: null, p99_ms: null });
  }
  return out;
}

function Card({ label, value, sub }) {
  return html`<div class="stat card">
    <div class="stat-label">${label}</div>
    <div class="stat-value">${value}</div>
    ${sub && html`<div class="stat-sub muted">${sub}</div>`}
  </div>`;
}

function GroupTable({ title, groups, keyLabel, empty }) {
  const max = Math.max(0, ...groups.map((g) => Number(g.count) || 0));
  return html`<section class="card group">
    <h2>${title}</h2>
    ${groups.length === 0 ? html`<p class="muted">${empty}</p>` : html`<div class="table-wrap"><table class="data">
      <thead><tr><th scope="col">${keyLabel}</th><th scope="col" class="num">Requests</th><th scope="col" class="num">Errors</th>
        <th scope="col" class="num">Tokens in / out</th><th scope="col" class="num">Spend</th><th scope="col" class="num">p50 / p99</th></tr></thead>
      <tbody>${groups.map((g) => html`<tr>
        <th scope="row"><span class="mono">${g.key === null || g.key === undefined || g.key === '' ? '(none)' : String(g.key)}</span>
          <div class="minibar" aria-hidden="true"><span style=${{ width: `${max ? (100 * g.count) / max : 0}%` }}></span></div></th>
        <td class="num">${fmtInt(g.count)}</td>
        <td class="num">${fmtInt(g.errors)}${g.count ? html` <span class="muted">(${fmtPct(g.errors / g.count)})</span>` : ''}</td>
        <td class="num">${fmtInt(g.in_tokens)} / ${fmtInt(g.out_tokens)}</td>
        <td class="num">${fmtUSD(g.cost)}</td>
        <td class="num">${fmtMs(g.p50_ms)} / ${fmtMs(g.p99_ms)}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

const fmtCount = (v) => fmtInt(v);
const gname = (k) => (k === null || k === undefined || k === '' ? '(none)' : String(k));

export function Dashboard() {
  const [range, setRange] = useState('1h');
  const [auto, setAuto] = useState(true);
  const r = RANGES.find((x) => x.v === range);
  const { data, error, loading, reload } = useLoad(async () => {
    const until = Date.now();
    const since = until - r.s * 1000;
    const q = `since=${since}&until=${until}&bucket_s=${r.bucket}`;
    const [byProvider, byKey] = await Promise.all([
      api(`/api/logs/stats?${q}&group=provider`),
      api(`/api/logs/stats?${q}&group=virtual_key`),
    ]);
    return { since, until, byProvider, byKey };
  }, [range]);
  useInterval(reload, 10000, auto);

  const view = useMemo(() => {
    if (!data) return null;
    const t = data.byProvider.totals || {};
    const rows = grid(data.byProvider.series, data.since, data.until, r.bucket);
    const x = rows.map((s) => s.t / 1000);
    const b = r.bucket;
    const val = (f) => rows.map(f);
    const sortG = (gs) => [...(gs || [])].sort((a, c) => (c.count || 0) - (a.count || 0));
    const v = {
      t,
      x,
      rps: [
        { label: 'requests/s', values: val((s) => (s.count || 0) / b), color: ACCENT, fill: true },
        { label: 'errors/s', values: val((s) => (s.errors || 0) / b), color: RED },
      ],
      errRate: [{ label: 'error rate', values: val((s) => (s.count ? (s.errors || 0) / s.count : null)), color: RED, fill: true }],
      latency: [
        // a bucket without requests has no latency (the gateway reports 0 there)
        { label: 'p50', values: val((s) => (s.count ? s.p50_ms ?? null : null)), color: ACCENT },
        { label: 'p99', values: val((s) => (s.count ? s.p99_ms ?? null : null)), color: ACCENT_2, dash: [6, 4] },
      ],
      tokens: [
        { label: 'input', values: val((s) => s.in_tokens || 0), color: ACCENT, fill: true },
        { label: 'output', values: val((s) => s.out_tokens || 0), color: ACCENT_2, fill: true },
      ],
      spend: [{ label: 'spend', values: val((s) => s.cost || 0), color: ACCENT, fill: true }],
      providers: sortG(data.byProvider.groups),
      keys: sortG(data.byKey.groups),
    };
    v.provLabels = v.providers.map((g) => gname(g.key));
    v.provBars = [
      { label: 'requests', values: v.providers.map((g) => g.count || 0), color: ACCENT },
      { label: 'errors', values: v.providers.map((g) => g.errors || 0), color: RED },
    ];
    v.keyLabels = v.keys.map((g) => gname(g.key));
    v.keyBars = [{ label: 'spend', values: v.keys.map((g) => g.cost || 0), color: ACCENT }];
    return v;
  }, [data]);

  const seconds = r.s;
  return html`<div class="page">
    <${PageHead} title="Dashboard">
      <label class="inline">Range
        <select value=${range} onChange=${(e) => setRange(e.target.value)}>
          ${RANGES.map((x) => html`<option value=${x.v}>${x.label}</option>`)}
        </select>
      </label>
      <label class="inline check-inline"><input type="checkbox" checked=${auto} onChange=${(e) => setAuto(e.target.checked)} /> Auto-refresh</label>
      <button type="button" class="btn" onClick=${reload} disabled=${loading}>Refresh</button>
    <//>
    <${ErrorBox} error=${error} />
    ${!view ? (!error && html`<${Loading} what="statistics" />`) : html`
      <div class="stats" data-testid="totals">
        <${Card} label="Requests" value=${fmtInt(view.t.count)} sub=${`${((view.t.count || 0) / seconds).toFixed(3)} req/s average`} />
        <${Card} label="Error rate" value=${view.t.count ? fmtPct((view.t.errors || 0) / view.t.count) : '—'} sub=${`${fmtInt(view.t.errors)} errors`} />
        <${Card} label="Latency p50" value=${view.t.count ? fmtMs(view.t.p50_ms) : '—'} sub=${`p99 ${view.t.count ? fmtMs(view.t.p99_ms) : '—'}`} />
        <${Card} label="Tokens" value=${fmtInt((view.t.in_tokens || 0) + (view.t.out_tokens || 0))} sub=${`${fmtInt(view.t.in_tokens)} in · ${fmtInt(view.t.out_tokens)} out`} />
        <${Card} label="Spend" value=${fmtUSD(view.t.cost)} sub=${RANGES.find((x) => x.v === range).label.toLowerCase()} />
      </div>
      ${view.x.length === 0
        ? html`<p class="card muted empty">No requests in this range yet.</p>`
        : html`<div class="charts">
          <${TimeChart} title="Requests per second" x=${view.x} series=${view.rps} fmt=${(v) => (v >= 10 ? v.toFixed(0) : v.toFixed(2))} />
          <${TimeChart} title="Error rate" x=${view.x} series=${view.errRate} fmt=${(v) => fmtPct(v)} />
          <${TimeChart} title="Latency" x=${view.x} series=${view.latency} fmt=${(v) => fmtMs(v)} />
          <${TimeChart} title="Tokens" x=${view.x} series=${view.tokens} fmt=${(v) => fmtInt(v)} />
          <${TimeChart} title="Spend" x=${view.x} series=${view.spend} fmt=${(v) => fmtUSD(v)} />
          ${view.providers.length > 0 && html`<${BarChart} title="Requests and errors by provider" labels=${view.provLabels}
            series=${view.provBars} fmt=${fmtCount} />`}
          ${view.keys.length > 0 && html`<${BarChart} title="Spend by virtual key" labels=${view.keyLabels}
            series=${view.keyBars} fmt=${fmtUSD} />`}
        </div>`}
      <div class="two">
        <${GroupTable} title="By provider" keyLabel="Provider" groups=${view.providers} empty="No requests in this range." />
        <${GroupTable} title="By virtual key" keyLabel="Key" groups=${view.keys} empty="No requests in this range." />
      </div>
    `}
  </div>`;
}
