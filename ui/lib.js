// Shared pieces of the Bifrost console: the API client, formatting, and small components.
// Every value reaches the page as a text node or an attribute set by Preact — never as markup.

import { h, render, Fragment } from 'preact';
import { useState, useEffect, useRef, useCallback, useMemo, useId } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);
export { h, render, Fragment, useState, useEffect, useRef, useCallback, useMemo, useId };

// ---------------------------------------------------------------------------------------------
// API client

export class ApiError extends Error {
  constructor(status, message, problems = [], type = '') {
    super(message);
    this.status = status;
    this.problems = problems;
    this.type = type;
  }
}

// The config revision (ETag of GET /api/config, then of every write) sent as If-Match.
let revision = null;
export const getRevision = () => revision;

// Set by the app: called when any API call answers 401 (the session ended).
let unauthorized = () => {};
export function onUnauthorized(fn) { unauthorized = fn; }

/**
 * fetch + JSON. opts: { method, body (object), headers, auth (default true: a 401 shows the
 * login page) }. Resolves to the parsed body; rejects with ApiError.
 */
export async function api(path, { method = 'GET', body, headers = {}, auth = true } = {}) {
  const write = method !== 'GET' && method !== 'HEAD';
  const hdrs = { accept: 'application/json', ...headers };
  if (body !== undefined) hdrs['content-type'] = 'application/json';
  if (write && revision && !path.startsWith('/api/session')) hdrs['if-match'] = revision;
  let res;
  try {
    res = await fetch(path, {
      method, headers: hdrs, credentials: 'same-origin', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, `The gateway did not answer (${e.message}).`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (res.ok) {
    const tag = res.headers.get('etag');
    if (tag && (write || path === '/api/config')) revision = tag;
    return data ?? {};
  }
  const e = data && typeof data.error === 'object' && data.error ? data.error : {};
  const problems = Array.isArray(e.problems) ? e.problems.map(String) : [];
  let message = typeof e.message === 'string' && e.message ? e.message : `${res.status} ${res.statusText || 'error'}`;
  if (res.status === 412) {
    message = 'The configuration was changed elsewhere since this page loaded. Reload the page to see the current version, then make your change again.';
  } else if (res.status === 401 && auth) {
    unauthorized();
  }
  throw new ApiError(res.status, message, problems, typeof e.type === 'string' ? e.type : '');
}

/** GET /api/config: the redacted config, and the revision for later writes. */
export const loadConfig = () => api('/api/config');

export const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------
// hooks

/** Run an async loader; { data, error, loading, reload }. Keeps the last data while reloading. */
export function useLoad(fn, deps = []) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const seq = useRef(0);
  const run = useCallback(async () => {
    const my = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    try {
      const data = await fn();
      if (my === seq.current) setState({ data, error: null, loading: false });
    } catch (error) {
      if (my === seq.current) setState((s) => ({ data: s.data, error, loading: false }));
    }
  }, deps);
  useEffect(() => { run(); }, [run]);
  return { ...state, reload: run };
}

/** Call fn every ms while `on`; paused while the tab is hidden. */
export function useInterval(fn, ms, on = true) {
  const saved = useRef(fn);
  saved.current = fn;
  useEffect(() => {
    if (!on) return undefined;
    const t = setInterval(() => { if (!document.hidden) saved.current(); }, ms);
    return () => clearInterval(t);
  }, [ms, on]);
}

// ---------------------------------------------------------------------------------------------
// formatting

const nf = new Intl.NumberFormat('en-US');
export function fmtInt(n) {
  if (n === null || n === undefined || Number.isNaN(Number(n))) return '—';
  return nf.format(Math.round(Number(n)));
}

/** Dollars: cents for ordinary amounts, micro-dollars for the tiny ones a single request costs. */
export function fmtUSD(v) {
  if (v === null || v === undefined || v === '' || Number.isNaN(Number(v))) return '—';
  const x = Number(v);
  if (x === 0) return '$0';
  const a = Math.abs(x);
  if (a >= 0.01) return `${x < 0 ? '-' : ''}$${a.toLocaleString('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 })}`;
  const s = a.toFixed(6).replace(/0+$/, '');
  return `${x < 0 ? '-' : ''}$${s === '0.' ? a.toExponential(1) : s}`;
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return '—';
  const x = Number(ms);
  if (x < 1000) return `${x < 10 ? Math.round(x * 10) / 10 : Math.round(x)} ms`;
  return `${(x / 1000).toFixed(x < 10000 ? 2 : 1)} s`;
}

export function fmtPct(x) {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  const p = x * 100;
  return `${p === 0 ? 0 : p < 1 ? p.toFixed(2) : p < 10 ? p.toFixed(1) : Math.round(p)}%`;
}

const pad = (n) => String(n).padStart(2, '0');
/** unix ms → local "YYYY-MM-DD HH:MM:SS" */
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** seconds → "3d 4h", "12m 5s" */
export function fmtSpan(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '—';
  s = Math.max(0, Math.round(s));
  const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${sec}s`;
  return `${sec}s`;
}

/** A credential as the list shows it: env references as they are, anything else masked. */
export function maskKey(v) {
  if (v === null || v === undefined || v === '') return '—';
  const s = String(v);
  if (s.startsWith('env.')) return s;
  if (/redacted/i.test(s)) return s;
  return s.length > 10 ? `${s.slice(0, 3)}…${s.slice(-4)}` : '••••';
}

export const DURATIONS = ['30s', '1m', '5m', '1h', '1d', '1w', '1M', '1Y'];
export const KINDS = ['openai', 'anthropic', 'azure', 'gemini', 'groq', 'mistral', 'ollama', 'openrouter',
  'deepseek', 'xai', 'together', 'fireworks', 'vllm', 'bedrock'];

/** "a, b  c" → ["a","b","c"] */
export const splitList = (s) => String(s || '').split(/[\s,]+/).map((x) => x.trim()).filter(Boolean);
export const joinList = (a) => (Array.isArray(a) ? a.join(', ') : '');

/** a form's number field → number | undefined (empty) | NaN (not a number) */
export function num(s) {
  const t = String(s ?? '').trim();
  if (t === '') return undefined;
  const n = Number(t);
  return Number.isFinite(n) ? n : NaN;
}

// ---------------------------------------------------------------------------------------------
// components

/** An API error, with the problems list of a 400, next to the form that caused it. */
export function ErrorBox({ error }) {
  if (!error) return null;
  const msg = typeof error === 'string' ? error : error.message;
  const problems = error.problems || [];
  const stale = error.status === 412;
  return html`<div class="error" role="alert">
    <p>${msg}</p>
    ${problems.length > 0 && html`<ul>${problems.map((p) => html`<li>${p}</li>`)}</ul>`}
    ${stale && html`<p><button type="button" class="btn small" onClick=${() => location.reload()}>Reload page</button></p>`}
  </div>`;
}

/** A modal <dialog>: focus stays inside, Escape closes it (native), × closes it. */
export function Dialog({ title, onClose, children, wide = false, side = false }) {
  const ref = useRef(null);
  const titleId = useId();
  const closed = useRef(false);
  const close = () => {
    if (closed.current) return;
    closed.current = true;
    onClose();
  };
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
    return () => { closed.current = true; if (d && d.open) d.close(); };
  }, []);
  const onCancel = (e) => { e.preventDefault(); close(); };
  return html`<dialog ref=${ref} class=${`dlg${wide ? ' wide' : ''}${side ? ' side' : ''}`} aria-labelledby=${titleId}
      onCancel=${onCancel} onClose=${close}>
    <div class="dlg-head">
      <h2 id=${titleId}>${title}</h2>
      <button type="button" class="icon-btn" aria-label="Close" onClick=${close}>×</button>
    </div>
    <div class="dlg-body">${children}</div>
  </dialog>`;
}

/** "Delete X?" with a destructive confirm button. */
export function Confirm({ title, message, action = 'Delete', onConfirm, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const go = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<${Dialog} title=${title} onClose=${onClose}>
    <form onSubmit=${go}>
      <p>${message}</p>
      <${ErrorBox} error=${error} />
      <div class="form-actions">
        <button type="button" class="btn" onClick=${onClose}>Cancel</button>
        <button type="submit" class="btn danger" disabled=${busy} autofocus>${busy ? 'Working…' : action}</button>
      </div>
    </form>
  <//>`;
}

/** Spend against a limit: a bar when there is a limit, the spend alone otherwise. */
export function SpendBar({ u, label }) {
  if (!u) return html`<span class="muted">—</span>`;
  const spend = Number(u.spend) || 0;
  const reserved = (Number(u.reserved_micros) || 0) / 1e6;
  const limit = u.limit === null || u.limit === undefined ? null : Number(u.limit);
  const now = Date.now() / 1000;
  const reset = u.reset_at ? `resets in ${fmtSpan(u.reset_at - now)}` : '';
  if (limit === null) {
    return html`<div class="spend nolimit">
      ${label && html`<span class="spend-label">${label}</span>`}
      <span>${fmtUSD(spend)} <span class="muted">spent · no limit</span></span>
    </div>`;
  }
  const ratio = limit > 0 ? spend / limit : spend > 0 ? Infinity : 0;
  const width = Math.min(100, Math.max(0, ratio * 100));
  const resW = limit > 0 ? Math.min(100 - width, (reserved / limit) * 100) : 0;
  const cls = ratio >= 1 ? 'over' : ratio >= 0.8 ? 'warn' : '';
  const text = `${fmtUSD(spend)} of ${fmtUSD(limit)}`;
  return html`<div class=${`spend ${cls}`}>
    ${label && html`<span class="spend-label">${label}</span>`}
    <div class="bar" role="meter" aria-valuemin="0" aria-valuemax=${limit} aria-valuenow=${Math.min(spend, limit)}
        aria-valuetext=${`${text}${ratio >= 1 ? ', limit reached' : ''}`} title=${reserved > 0 ? `${fmtUSD(reserved)} held by requests in flight` : ''}>
      <span class="fill" style=${{ width: `${width}%` }}></span>
      ${resW > 0 && html`<span class="fill reserved" style=${{ width: `${resW}%` }}></span>`}
    </div>
    <span class="spend-text">${text}${Number.isFinite(ratio) ? ` (${fmtPct(ratio)})` : ''}${ratio >= 1 ? ' · limit reached' : ''}${reset ? html` <span class="muted">· ${reset}</span>` : ''}</span>
  </div>`;
}

/** Requests / tokens of a usage window, in one short line. */
export function usageLine(u) {
  if (!u) return '';
  const parts = [`${fmtInt(u.requests)} req`, `${fmtInt(u.tokens)} tok`];
  if (u.in_flight) parts.push(`${fmtInt(u.in_flight)} in flight`);
  return parts.join(' · ');
}

/** Index a usage list by id. */
export function byId(list) {
  const m = new Map();
  for (const u of list || []) m.set(String(u.id), u);
  return m;
}

/** A readonly secret with a Copy button (clipboard API, else select + execCommand). */
export function CopyValue({ value, label = 'Value' }) {
  const [state, setState] = useState('');
  const ref = useRef(null);
  const id = useId();
  const copy = async () => {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard');
      await navigator.clipboard.writeText(value);
      setState('Copied');
    } catch {
      const el = ref.current;
      el.focus();
      el.select();
      let ok = false;
      try { ok = document.execCommand('copy'); } catch { ok = false; }
      setState(ok ? 'Copied' : 'Selected: press Ctrl+C to copy');
    }
  };
  return html`<div class="copy">
    <label for=${id}>${label}</label>
    <div class="copy-row">
      <input id=${id} ref=${ref} class="mono" readonly value=${value} onFocus=${(e) => e.target.select()} />
      <button type="button" class="btn primary" onClick=${copy}>Copy</button>
    </div>
    <p class="muted small" role="status">${state}</p>
  </div>`;
}

/** A labelled input. Extra props go to the <input>. */
export function Field({ label, hint, value, onInput, type = 'text', ...rest }) {
  const id = useId();
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <input id=${id} type=${type} value=${value ?? ''} onInput=${(e) => onInput(e.target.value)}
      aria-describedby=${hint ? `${id}-h` : undefined} ...${rest} />
    ${hint && html`<small id=${`${id}-h`} class="hint">${hint}</small>`}
  </div>`;
}

export function Select({ label, value, onChange, options, hint, ...rest }) {
  const id = useId();
  return html`<div class="field">
    <label for=${id}>${label}</label>
    <select id=${id} value=${value ?? ''} onChange=${(e) => onChange(e.target.value)} ...${rest}>
      ${options.map((o) => (typeof o === 'string'
        ? html`<option value=${o}>${o}</option>`
        : html`<option value=${o.value}>${o.label}</option>`))}
    </select>
    ${hint && html`<small class="hint">${hint}</small>`}
  </div>`;
}

export function Check({ label, checked, onChange }) {
  const id = useId();
  return html`<div class="field check">
    <input id=${id} type="checkbox" checked=${!!checked} onChange=${(e) => onChange(e.target.checked)} />
    <label for=${id}>${label}</label>
  </div>`;
}

// ---------------------------------------------------------------------------------------------
// budget and rate-limit fields, shared by keys, teams and customers

export function budgetToForm(b) {
  return {
    max_limit: b && b.max_limit !== undefined && b.max_limit !== null ? String(b.max_limit) : '',
    reset_duration: (b && b.reset_duration) || '1M',
    calendar_aligned: !!(b && b.calendar_aligned),
  };
}

/** form → budget object | null (no budget); problems pushed into `problems`. */
export function formToBudget(f, orig, problems) {
  const lim = num(f.max_limit);
  if (lim === undefined) return null;
  if (Number.isNaN(lim) || lim < 0) { problems.push('Budget: the limit must be a number of dollars, 0 or more.'); return null; }
  const b = { ...(orig || {}), max_limit: lim, reset_duration: f.reset_duration.trim() };
  if (f.calendar_aligned) b.calendar_aligned = true; else delete b.calendar_aligned;
  return b;
}

export function BudgetFields({ value, onChange }) {
  const set = (k) => (v) => onChange({ ...value, [k]: v });
  return html`<fieldset class="grid3">
    <legend>Budget</legend>
    <${Field} label="Limit (US$)" type="text" inputmode="decimal" value=${value.max_limit} onInput=${set('max_limit')}
      placeholder="none" hint="Empty: no budget" />
    <div class="field">
      <${DurationInput} label="Resets every" value=${value.reset_duration} onInput=${set('reset_duration')} />
    </div>
    <${Check} label="Align to calendar (UTC)" checked=${value.calendar_aligned} onChange=${set('calendar_aligned')} />
  </fieldset>`;
}

export function DurationInput({ label, value, onInput }) {
  const id = useId();
  const listId = `${id}-l`;
  return html`<label for=${id}>${label}</label>
    <input id=${id} list=${listId} value=${value ?? ''} onInput=${(e) => onInput(e.target.value)} placeholder="1d"
      pattern="[0-9]+(s|m|h|d|w|M|Y)" title="a number and a unit: s, m, h, d, w, M (month), Y" />
    <datalist id=${listId}>${DURATIONS.map((d) => html`<option value=${d} />`)}</datalist>`;
}

const RL_FIELDS = ['request_max_limit', 'request_reset_duration', 'token_max_limit', 'token_reset_duration', 'max_concurrent'];

export function rlToForm(r) {
  const f = {};
  for (const k of RL_FIELDS) f[k] = r && r[k] !== undefined && r[k] !== null ? String(r[k]) : '';
  if (!f.request_reset_duration) f.request_reset_duration = '1m';
  if (!f.token_reset_duration) f.token_reset_duration = '1h';
  return f;
}

export function formToRl(f, orig, problems) {
  const r = { ...(orig || {}) };
  const numField = (k, name) => {
    const n = num(f[k]);
    if (n === undefined) { delete r[k]; return false; }
    if (Number.isNaN(n) || n < 0 || !Number.isInteger(n)) { problems.push(`${name} must be a whole number.`); return false; }
    r[k] = n;
    return true;
  };
  if (numField('request_max_limit', 'Requests')) r.request_reset_duration = f.request_reset_duration.trim();
  else delete r.request_reset_duration;
  if (numField('token_max_limit', 'Tokens')) r.token_reset_duration = f.token_reset_duration.trim();
  else delete r.token_reset_duration;
  numField('max_concurrent', 'Concurrent requests');
  return Object.keys(r).length ? r : null;
}

export function RateLimitFields({ value, onChange, concurrent = true }) {
  const set = (k) => (v) => onChange({ ...value, [k]: v });
  return html`<fieldset class="grid3">
    <legend>Rate limits</legend>
    <${Field} label="Requests" inputmode="numeric" value=${value.request_max_limit} onInput=${set('request_max_limit')} placeholder="no limit" />
    <div class="field"><${DurationInput} label="per" value=${value.request_reset_duration} onInput=${set('request_reset_duration')} /></div>
    ${concurrent ? html`<${Field} label="Concurrent requests" inputmode="numeric" value=${value.max_concurrent} onInput=${set('max_concurrent')} placeholder="no limit" />` : html`<span></span>`}
    <${Field} label="Tokens" inputmode="numeric" value=${value.token_max_limit} onInput=${set('token_max_limit')} placeholder="no limit" />
    <div class="field"><${DurationInput} label="per" value=${value.token_reset_duration} onInput=${set('token_reset_duration')} /></div>
  </fieldset>`;
}

/** "60 req / 1m · 200,000 tok / 1h · 8 concurrent" */
export function rlText(r) {
  if (!r) return '—';
  const p = [];
  if (r.request_max_limit !== undefined) p.push(`${fmtInt(r.request_max_limit)} req / ${r.request_reset_duration || '?'}`);
  if (r.token_max_limit !== undefined) p.push(`${fmtInt(r.token_max_limit)} tok / ${r.token_reset_duration || '?'}`);
  if (r.max_concurrent !== undefined) p.push(`${fmtInt(r.max_concurrent)} concurrent`);
  return p.length ? p.join(' · ') : '—';
}

/** Page header: a title and actions. */
export function PageHead({ title, children }) {
  return html`<div class="page-head"><h1>${title}</h1><div class="actions">${children}</div></div>`;
}

export function Loading({ what = '' }) {
  return html`<p class="muted" role="status">Loading${what ? ` ${what}` : ''}…</p>`;
}
