// Logs: a filterable, paged table of requests; live tail; a detail panel per request.

import {
  html, useState, useEffect, useId, api, useLoad, useInterval, ErrorBox, Dialog, PageHead, Loading,
  fmtInt, fmtUSD, fmtMs, fmtTime,
} from './lib.js';

const RANGES = [
  { v: '15m', label: 'Last 15 minutes', s: 900 },
  { v: '1h', label: 'Last hour', s: 3600 },
  { v: '24h', label: 'Last 24 hours', s: 86400 },
  { v: '7d', label: 'Last 7 days', s: 604800 },
  { v: 'all', label: 'All time', s: 0 },
  { v: 'custom', label: 'Custom…', s: 0 },
];
const STATUSES = ['error', '200', '400', '401', '402', '403', '404', '408', '413', '429', '500', '502', '503', '504'];
const SIZES = [25, 50, 100, 200];
const EMPTY = { provider: '', model: '', status: '', key: '', min_latency: '', range: '24h', from: '', to: '' };

export function statusClass(s) {
  if (s >= 500) return 'bad';
  if (s >= 400) return 'warn';
  if (s >= 200 && s < 300) return 'ok';
  return 'off';
}

/** datetime-local value ↔ unix ms */
const fromLocal = (s) => (s ? new Date(s).getTime() : NaN);
function toLocal(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function query(f, limit, offset) {
  const q = new URLSearchParams();
  const r = RANGES.find((x) => x.v === f.range);
  if (r && r.s) q.set('since', String(Date.now() - r.s * 1000));
  if (f.range === 'custom') {
    const a = fromLocal(f.from), b = fromLocal(f.to);
    if (Number.isFinite(a)) q.set('since', String(a));
    if (Number.isFinite(b)) q.set('until', String(b));
  }
  if (f.provider.trim()) q.set('provider', f.provider.trim());
  if (f.model.trim()) q.set('model', f.model.trim());
  if (f.status.trim()) q.set('status', f.status.trim());
  if (f.key.trim()) q.set('virtual_key_id', f.key.trim());
  if (f.min_latency.trim()) q.set('min_latency_ms', f.min_latency.trim());
  q.set('limit', String(limit));
  q.set('offset', String(offset));
  return q.toString();
}

const FIELDS = [
  ['id', 'ID'], ['ts', 'Time'], ['request_id', 'Request ID'], ['method', 'Method'], ['path', 'Path'], ['status', 'Status'],
  ['provider', 'Provider'], ['model', 'Model'], ['virtual_key_id', 'Virtual key'], ['team_id', 'Team'], ['customer_id', 'Customer'],
  ['attempts', 'Attempts'], ['failed', 'Failed attempts'], ['error', 'Error'], ['latency_ms', 'Latency'], ['ttfb_ms', 'Time to first byte'],
  ['stream', 'Stream'], ['in_tokens', 'Input tokens'], ['out_tokens', 'Output tokens'], ['cache_read_tokens', 'Cache read tokens'],
  ['cache_write_tokens', 'Cache write tokens'], ['cost', 'Cost'], ['client', 'Client'], ['user_agent', 'User agent'],
];

function show(k, v) {
  if (v === null || v === undefined || v === '') return html`<span class="muted">—</span>`;
  if (k === 'ts') return `${fmtTime(v)} (${v})`;
  if (k === 'latency_ms' || k === 'ttfb_ms') return fmtMs(v);
  if (k === 'cost') return fmtUSD(v);
  if (k === 'status') return html`<span class=${`badge ${statusClass(v)}`}>${v}</span>`;
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

function pretty(body) {
  if (body === null || body === undefined) return null;
  if (typeof body !== 'string') return JSON.stringify(body, null, 2);
  try { return JSON.stringify(JSON.parse(body), null, 2); } catch { return body; }
}

function Detail({ row, onClose }) {
  const { data, error } = useLoad(() => api(`/api/logs/${encodeURIComponent(row.id)}`), [row.id]);
  const log = data?.log || row;
  const known = new Set([...FIELDS.map(([k]) => k), 'request_body', 'response_body']);
  const extra = Object.keys(log).filter((k) => !known.has(k));
  // the bodies (logs.content on): next to "log" or inside it
  const req = pretty(data?.request_body ?? data?.log?.request_body);
  const res = pretty(data?.response_body ?? data?.log?.response_body);
  return html`<${Dialog} title=${`Request ${log.id}`} onClose=${onClose} side>
    <${ErrorBox} error=${error} />
    <dl class="kv detail" data-testid="log-detail">
      ${FIELDS.map(([k, label]) => html`<dt>${label}</dt><dd class=${k === 'error' || k === 'failed' || k === 'user_agent' ? 'wrap' : 'mono'}>${show(k, log[k])}</dd>`)}
      ${extra.map((k) => html`<dt class="mono">${k}</dt><dd class="mono wrap">${show(k, log[k])}</dd>`)}
    </dl>
    ${req !== null && html`<h3>Request body</h3><pre class="body">${req}</pre>`}
    ${res !== null && html`<h3>Response body</h3><pre class="body">${res}</pre>`}
    ${data && req === null && res === null && html`<p class="muted small">Bodies are not stored (logs.content is off).</p>`}
  <//>`;
}

function Filters({ value, onApply, providers, keys }) {
  const [f, setF] = useState(value);
  useEffect(() => setF(value), [value]);
  const set = (k) => (e) => setF((s) => ({ ...s, [k]: e.target.value }));
  const id = useId();
  const submit = (e) => {
    e.preventDefault();
    let next = f;
    if (f.range === 'custom' && !f.from && !f.to) next = { ...f, from: toLocal(Date.now() - 3600000), to: toLocal(Date.now()) };
    onApply(next);
  };
  const reset = () => { setF(EMPTY); onApply(EMPTY); };
  const F = (k, label, extra = {}) => html`<div class="field">
    <label for=${`${id}-${k}`}>${label}</label>
    <input id=${`${id}-${k}`} value=${f[k]} onInput=${set(k)} spellcheck="false" autocomplete="off" ...${extra} />
  </div>`;
  return html`<form class="filters card" onSubmit=${submit} aria-label="Log filters">
    ${F('provider', 'Provider', { list: `${id}-pl`, placeholder: 'any' })}
    <datalist id=${`${id}-pl`}>${providers.map((p) => html`<option value=${p} />`)}</datalist>
    ${F('model', 'Model', { placeholder: 'any' })}
    ${F('status', 'Status', { list: `${id}-sl`, placeholder: 'any', size: 6 })}
    <datalist id=${`${id}-sl`}>${STATUSES.map((s) => html`<option value=${s}>${s === 'error' ? 'any error (≥ 400)' : s}</option>`)}</datalist>
    ${F('key', 'Virtual key', { list: `${id}-kl`, placeholder: 'any' })}
    <datalist id=${`${id}-kl`}>${keys.map((k) => html`<option value=${k} />`)}</datalist>
    ${F('min_latency', 'Min latency (ms)', { inputmode: 'numeric', placeholder: '0', size: 6 })}
    <div class="field">
      <label for=${`${id}-range`}>Time</label>
      <select id=${`${id}-range`} value=${f.range} onChange=${set('range')}>
        ${RANGES.map((r) => html`<option value=${r.v}>${r.label}</option>`)}
      </select>
    </div>
    ${f.range === 'custom' && html`
      ${F('from', 'From', { type: 'datetime-local' })}
      ${F('to', 'To', { type: 'datetime-local' })}`}
    <div class="filter-actions">
      <button type="submit" class="btn primary">Apply</button>
      <button type="button" class="btn" onClick=${reset}>Reset</button>
    </div>
  </form>`;
}

export function Logs() {
  const [filters, setFilters] = useState(EMPTY);
  const [limit, setLimit] = useState(50);
  const [offset, setOffset] = useState(0);
  const [live, setLive] = useState(false);
  const [open, setOpen] = useState(null);
  const { data, error, loading, reload } = useLoad(() => api(`/api/logs?${query(filters, limit, offset)}`), [filters, limit, offset]);
  const lists = useLoad(async () => {
    const [p, k] = await Promise.all([
      api('/api/providers').catch(() => ({ providers: [] })),
      api('/api/governance/virtual-keys').catch(() => ({ virtual_keys: [] })),
    ]);
    return { providers: (p.providers || []).map((x) => x.name), keys: (k.virtual_keys || []).map((x) => x.id) };
  });
  useInterval(reload, 2000, live);
  useEffect(() => { if (live) setOffset(0); }, [live]);

  const logs = data?.logs || [];
  const total = Number(data?.total ?? logs.length);
  const first = total ? offset + 1 : 0;
  const last = offset + logs.length;

  return html`<div class="page">
    <${PageHead} title="Logs">
      <label class="inline check-inline live-toggle">
        <input type="checkbox" checked=${live} onChange=${(e) => setLive(e.target.checked)} />
        Live tail${live && html` <span class="live-dot" aria-hidden="true"></span>`}
      </label>
      <button type="button" class="btn" onClick=${reload} disabled=${loading}>Refresh</button>
    <//>
    <${Filters} value=${filters} onApply=${(f) => { setFilters(f); setOffset(0); }}
      providers=${lists.data?.providers || []} keys=${lists.data?.keys || []} />
    <${ErrorBox} error=${error} />
    ${!data && !error && html`<${Loading} what="logs" />`}
    ${data && html`<div class="table-wrap card flush">
      <table class="data logs" data-testid="logs">
        <thead><tr>
          <th scope="col">Time</th><th scope="col">Status</th><th scope="col">Provider</th><th scope="col">Model</th>
          <th scope="col">Key</th><th scope="col" class="num">Latency</th><th scope="col" class="num">Tokens in / out</th>
          <th scope="col" class="num">Cost</th><th scope="col">Error</th>
        </tr></thead>
        <tbody>
          ${logs.length === 0 && html`<tr><td colspan="9" class="muted empty">No requests match.</td></tr>`}
          ${logs.map((l) => html`<tr key=${l.id} class="clickable" data-log-id=${l.id} onClick=${() => setOpen(l)}>
            <td class="nowrap"><button type="button" class="link" onClick=${(e) => { e.stopPropagation(); setOpen(l); }}
              aria-label=${`Details of request ${l.id}`}>${fmtTime(l.ts)}</button></td>
            <td><span class=${`badge ${statusClass(l.status)}`}>${l.status}</span></td>
            <td class="mono">${l.provider ?? '—'}</td>
            <td class="mono">${l.model ?? '—'}</td>
            <td class="mono">${l.virtual_key_id ?? '—'}</td>
            <td class="num">${fmtMs(l.latency_ms)}</td>
            <td class="num">${fmtInt(l.in_tokens)} / ${fmtInt(l.out_tokens)}</td>
            <td class="num">${fmtUSD(l.cost)}</td>
            <td class="err-cell" title=${l.error || ''}>${l.error || ''}</td>
          </tr>`)}
        </tbody>
      </table>
    </div>
    <nav class="pager" aria-label="Pages">
      <span class="muted" role="status">${first}–${last} of ${fmtInt(total)}</span>
      <label class="inline">Rows
        <select value=${limit} onChange=${(e) => { setLimit(Number(e.target.value)); setOffset(0); }}>
          ${SIZES.map((s) => html`<option value=${s}>${s}</option>`)}
        </select>
      </label>
      <button type="button" class="btn small" disabled=${offset === 0} onClick=${() => setOffset(Math.max(0, offset - limit))}>Previous</button>
      <button type="button" class="btn small" disabled=${last >= total || logs.length < limit} onClick=${() => { setLive(false); setOffset(offset + limit); }}>Next</button>
    </nav>`}
    ${open && html`<${Detail} row=${open} onClose=${() => setOpen(null)} />`}
  </div>`;
}
