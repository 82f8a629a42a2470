// Providers: list with circuit state, add / edit / remove, one-token test requests.

import {
  html, useState, useRef, useEffect, api, enc, useLoad, ErrorBox, Dialog, Confirm, PageHead, Loading, Field, Select,
  SpendBar, byId, maskKey, splitList, joinList, num, KINDS, budgetToForm, formToBudget, BudgetFields, fmtMs, useId,
} from './lib.js';

const isGlob = (m) => /[*?[\]]/.test(m);

/** The model a test request names: the first concrete `models` entry, else a model_map target. */
export function testModel(p) {
  const m = (p.models || []).find((x) => typeof x === 'string' && x && !isGlob(x));
  if (m) return m;
  const mapped = Object.values(p.model_map || {}).find((x) => typeof x === 'string' && x);
  return mapped || '';
}

function keysOf(p) {
  if (Array.isArray(p.keys) && p.keys.length) return p.keys.map((k) => ({ value: k.value, weight: k.weight }));
  if (p.apiKey !== undefined && p.apiKey !== null && p.apiKey !== '') return [{ value: p.apiKey, weight: undefined }];
  return [];
}

function Circuit({ state, failures }) {
  if (!state) return null;
  const cls = state === 'closed' ? 'ok' : state === 'open' ? 'bad' : 'warn';
  const text = state === 'half_open' ? 'half-open' : state;
  return html`<span class=${`badge ${cls}`} title=${`${failures || 0} consecutive failures`}>${text}</span>`;
}

function toForm(p) {
  const keys = keysOf(p || {});
  return {
    name: p?.name || '',
    provider: p?.provider || 'openai',
    base_url: p?.base_url || '',
    keys: keys.length ? keys.map((k) => ({ value: k.value ?? '', weight: k.weight === undefined ? '' : String(k.weight) })) : [{ value: '', weight: '' }],
    weight: p?.weight === undefined ? '' : String(p.weight),
    models: joinList(p?.models),
    model_map: Object.entries(p?.model_map || {}).map(([k, v]) => `${k} = ${v}`).join('\n'),
    timeout_ms: p?.timeout_ms === undefined ? '' : String(p.timeout_ms),
    max_retries: p?.max_retries === undefined ? '' : String(p.max_retries),
    budget: budgetToForm(p?.budget),
  };
}

/** The form over the original entry: fields the form does not show (headers, tls, ...) are kept. */
function fromForm(f, orig) {
  const problems = [];
  const p = { ...(orig || {}) };
  p.name = f.name.trim();
  p.provider = f.provider;
  if (!p.name) problems.push('Name is required.');
  if (f.base_url.trim()) p.base_url = f.base_url.trim(); else delete p.base_url;
  const keys = f.keys.filter((k) => k.value.trim() !== '');
  const hadKeys = Array.isArray(orig?.keys) && orig.keys.length > 0;
  delete p.keys;
  delete p.apiKey;
  if (keys.length === 1 && !hadKeys && keys[0].weight.trim() === '') {
    p.apiKey = keys[0].value.trim();
  } else if (keys.length) {
    p.keys = keys.map((k, i) => {
      const o = { ...(orig?.keys?.[i] || {}), value: k.value.trim() };
      const w = num(k.weight);
      if (Number.isNaN(w) || (w !== undefined && w < 0)) problems.push(`Key ${i + 1}: the weight must be a number.`);
      if (w === undefined) delete o.weight; else o.weight = w;
      return o;
    });
  }
  const numOpt = (k, label, int) => {
    const n = num(f[k]);
    if (n === undefined) { delete p[k]; return; }
    if (Number.isNaN(n) || n < 0 || (int && !Number.isInteger(n))) problems.push(`${label} must be ${int ? 'a whole number' : 'a number'}, 0 or more.`);
    p[k] = n;
  };
  numOpt('weight', 'Weight', false);
  numOpt('timeout_ms', 'Timeout', true);
  numOpt('max_retries', 'Max retries', true);
  const models = splitList(f.models);
  if (models.length) p.models = models; else delete p.models;
  const map = {};
  for (const line of f.model_map.split('\n')) {
    const t = line.trim();
    if (!t) continue;
    const m = /^(.*?)\s*(?:=|→|->)\s*(.*)$/.exec(t);
    if (!m || !m[1] || !m[2]) { problems.push(`Model map: "${t}" is not "glob = model".`); continue; }
    map[m[1]] = m[2];
  }
  if (Object.keys(map).length) p.model_map = map; else delete p.model_map;
  const b = formToBudget(f.budget, orig?.budget, problems);
  if (b) p.budget = b; else delete p.budget;
  return { entry: p, problems };
}

function ProviderForm({ orig, onClose, onSaved }) {
  const editing = !!orig;
  const [f, setF] = useState(() => toForm(orig));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (v) => setF((s) => ({ ...s, [k]: v }));
  const setKey = (i, k, v) => setF((s) => ({ ...s, keys: s.keys.map((x, j) => (j === i ? { ...x, [k]: v } : x)) }));
  const mapId = useId();
  const submit = async (e) => {
    e.preventDefault();
    const { entry, problems } = fromForm(f, orig);
    if (problems.length) { setError({ message: 'Please fix these fields:', problems }); return; }
    setBusy(true);
    setError(null);
    try {
      if (editing) await api(`/api/providers/${enc(orig.name)}`, { method: 'PUT', body: entry });
      else await api('/api/providers', { method: 'POST', body: entry });
      onSaved();
      onClose();
    } catch (err) {
      setError(err.status === 409 ? { message: `A provider named "${entry.name}" already exists.` } : err);
      setBusy(false);
    }
  };
  return html`<${Dialog} title=${editing ? `Edit provider ${orig.name}` : 'Add provider'} onClose=${onClose} wide>
    <form onSubmit=${submit} class="form" novalidate>
      <div class="grid2">
        <${Field} label="Name" value=${f.name} onInput=${set('name')} required disabled=${editing} autofocus=${!editing}
          hint="The routing prefix: name/model" autocomplete="off" spellcheck="false" />
        <${Select} label="Kind" value=${f.provider} onChange=${set('provider')} options=${KINDS} />
      </div>
      <${Field} label="Base URL" value=${f.base_url} onInput=${set('base_url')} placeholder="the provider's public URL"
        hint="e.g. http://127.0.0.1:11434/v1 for a local server" autocomplete="off" spellcheck="false" />
      <fieldset>
        <legend>API keys</legend>
        ${editing && html`<p class="hint">Stored keys are shown redacted; leave one as it is to keep it. <span class="mono">env.NAME</span> reads an environment variable.</p>`}
        ${f.keys.map((k, i) => html`<div class="key-row">
          <${Field} label=${`Key ${i + 1}`} type=${/^env\.|redacted/.test(k.value) ? 'text' : 'password'} value=${k.value}
            onInput=${(v) => setKey(i, 'value', v)} autocomplete="off" spellcheck="false" />
          <${Field} label=${html`<span class="sr-only">Key ${i + 1} </span>Weight`} value=${k.weight} onInput=${(v) => setKey(i, 'weight', v)} inputmode="decimal" placeholder="1" />
          <button type="button" class="btn small" aria-label=${`Remove key ${i + 1}`} disabled=${f.keys.length === 1}
            onClick=${() => setF((s) => ({ ...s, keys: s.keys.filter((_, j) => j !== i) }))}>Remove</button>
        </div>`)}
        <button type="button" class="btn small" onClick=${() => setF((s) => ({ ...s, keys: [...s.keys, { value: '', weight: '' }] }))}>Add key</button>
      </fieldset>
      <div class="grid3">
        <${Field} label="Weight" value=${f.weight} onInput=${set('weight')} inputmode="decimal" placeholder="1" hint="Share among providers of a model" />
        <${Field} label="Timeout (ms)" value=${f.timeout_ms} onInput=${set('timeout_ms')} inputmode="numeric" placeholder="default" />
        <${Field} label="Max retries" value=${f.max_retries} onInput=${set('max_retries')} inputmode="numeric" placeholder="default" />
      </div>
      <${Field} label="Models" value=${f.models} onInput=${set('models')} placeholder="all (*)" hint="Globs of model names, separated by commas: gpt-4o*, o3" spellcheck="false" />
      <div class="field">
        <label for=${mapId}>Model map</label>
        <textarea id=${mapId} rows="2" value=${f.model_map} onInput=${(e) => set('model_map')(e.target.value)} placeholder="claude-* = gpt-4o" spellcheck="false"></textarea>
        <small class="hint">One "glob = upstream model" per line</small>
      </div>
      <${BudgetFields} value=${f.budget} onChange=${set('budget')} />
      <${ErrorBox} error=${error} />
      <div class="form-actions">
        <button type="button" class="btn" onClick=${onClose}>Cancel</button>
        <button type="submit" class="btn primary" disabled=${busy}>${busy ? 'Saving…' : editing ? 'Save' : 'Add provider'}</button>
      </div>
    </form>
  <//>`;
}

/** One-token request through the gateway: status and latency. */
function TestDialog({ provider, onClose }) {
  const [model, setModel] = useState(() => testModel(provider));
  const [vk, setVk] = useState('');
  const [result, setResult] = useState(null);
  const [busy, setBusy] = useState(false);
  const started = useRef(false);
  const run = async () => {
    if (!model.trim()) { setResult({ error: 'Type a model name to test.' }); return; }
    setBusy(true);
    setResult(null);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 60000);
    const t0 = performance.now();
    const headers = { 'content-type': 'application/json' };
    if (vk.trim()) headers.authorization = `Bearer ${vk.trim()}`;
    try {
      const res = await fetch('/v1/chat/completions', {
        method: 'POST', headers, credentials: 'same-origin', signal: ctl.signal,
        body: JSON.stringify({ model: `${provider.name}/${model.trim()}`, max_tokens: 1, messages: [{ role: 'user', content: 'ping' }] }),
      });
      const text = await res.text();
      const ms = performance.now() - t0;
      let j = null;
      try { j = JSON.parse(text); } catch { /* not JSON */ }
      const msg = j?.error?.message || (res.ok ? j?.choices?.[0]?.message?.content ?? '' : text.slice(0, 300));
      setResult({ status: res.status, ok: res.ok, ms, servedBy: res.headers.get('x-bifrost-provider'), message: msg });
    } catch (e) {
      setResult({ error: e.name === 'AbortError' ? 'No answer within 60 s.' : `Request failed: ${e.message}` });
    } finally {
      clearTimeout(timer);
      setBusy(false);
    }
  };
  useEffect(() => {
    if (!started.current && model) { started.current = true; run(); }
  }, []);
  const submit = (e) => { e.preventDefault(); run(); };
  return html`<${Dialog} title=${`Test ${provider.name}`} onClose=${onClose}>
    <form onSubmit=${submit} class="form">
      <p class="hint">Sends <span class="mono">max_tokens: 1</span> to <span class="mono">/v1/chat/completions</span> as <span class="mono">${provider.name}/model</span>.</p>
      <${Field} label="Model" value=${model} onInput=${setModel} required autofocus=${!model} spellcheck="false" />
      <${Field} label="Virtual key (optional)" type="password" value=${vk} onInput=${setVk} autocomplete="off"
        hint="Needed when governance is enforced" />
      <div class="test-result" role="status" aria-live="polite">
        ${busy && html`<p class="muted">Sending…</p>`}
        ${result && result.error && html`<p class="error-text">${result.error}</p>`}
        ${result && !result.error && html`<dl class="kv">
          <dt>Status</dt><dd><span class=${`badge ${result.ok ? 'ok' : 'bad'}`} data-testid="test-status">${result.status}</span></dd>
          <dt>Latency</dt><dd data-testid="test-latency">${fmtMs(result.ms)}</dd>
          ${result.servedBy && html`<dt>Served by</dt><dd class="mono">${result.servedBy}</dd>`}
          ${result.message && html`<dt>${result.ok ? 'Reply' : 'Error'}</dt><dd class="wrap">${result.message}</dd>`}
        </dl>`}
      </div>
      <div class="form-actions">
        <button type="button" class="btn" onClick=${onClose}>Close</button>
        <button type="submit" class="btn primary" disabled=${busy}>${result ? 'Send again' : 'Send'}</button>
      </div>
    </form>
  <//>`;
}

export function Providers() {
  const { data, error, loading, reload } = useLoad(async () => {
    const [p, health, usage] = await Promise.all([
      api('/api/providers'),
      api('/health').catch(() => null),
      api('/api/usage').catch(() => null),
    ]);
    return { providers: p.providers || [], health, usage };
  });
  const [dialog, setDialog] = useState(null);
  const close = () => setDialog(null);

  const healthOf = new Map((data?.health?.providers || []).map((p) => [p.name, p]));
  const usage = byId(data?.usage?.providers);
  const providers = data?.providers || [];

  return html`<div class="page">
    <${PageHead} title="Providers">
      <button type="button" class="btn" onClick=${reload} disabled=${loading}>Refresh</button>
      <button type="button" class="btn primary" onClick=${() => setDialog({ kind: 'add' })}>Add provider</button>
    <//>
    <${ErrorBox} error=${error} />
    ${!data && !error && html`<${Loading} what="providers" />`}
    ${data && providers.length === 0 && html`<p class="card muted empty">No providers yet. Add one to start routing requests.</p>`}
    ${providers.length > 0 && html`<div class="table-wrap card flush"><table class="data" data-testid="providers">
      <thead><tr>
        <th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Keys (weight · circuit)</th><th scope="col" class="num">Weight</th>
        <th scope="col">Models</th><th scope="col">Base URL</th><th scope="col">Budget</th><th scope="col"><span class="sr-only">Actions</span></th>
      </tr></thead>
      <tbody>${providers.map((p) => {
        const hk = healthOf.get(p.name)?.keys || [];
        const keys = keysOf(p);
        const rows = keys.length ? keys : hk.length ? [{ value: null }] : [];
        return html`<tr key=${p.name}>
          <th scope="row" class="mono">${p.name}</th>
          <td>${p.provider}</td>
          <td><ul class="plain">${rows.map((k, i) => html`<li>
            <span class="mono">${k.value === null ? 'no key' : maskKey(k.value)}</span>
            ${k.weight !== undefined && html` <span class="muted">· ${k.weight}</span>`}
            ${' '}<${Circuit} state=${hk[i]?.circuit} failures=${hk[i]?.failures} />
          </li>`)}</ul></td>
          <td class="num">${p.weight ?? 1}</td>
          <td class="mono small">${(p.models || ['*']).join(', ')}${p.model_map ? html`<div class="muted">map: ${Object.entries(p.model_map).map(([a, b]) => `${a} → ${b}`).join(', ')}</div>` : ''}</td>
          <td class="mono small">${p.base_url || html`<span class="muted">default</span>`}</td>
          <td class="budget-cell">${p.budget || usage.get(p.name)?.limit != null ? html`<${SpendBar} u=${usage.get(p.name)} />` : html`<span class="muted">—</span>`}</td>
          <td class="actions-cell">
            <button type="button" class="btn small" onClick=${() => setDialog({ kind: 'test', p })} aria-label=${`Test ${p.name}`}>Test</button>
            <button type="button" class="btn small" onClick=${() => setDialog({ kind: 'edit', p })} aria-label=${`Edit ${p.name}`}>Edit</button>
            <button type="button" class="btn small danger-text" onClick=${() => setDialog({ kind: 'delete', p })} aria-label=${`Remove ${p.name}`}>Remove</button>
          </td>
        </tr>`;
      })}</tbody>
    </table></div>`}
    ${dialog?.kind === 'add' && html`<${ProviderForm} onClose=${close} onSaved=${reload} />`}
    ${dialog?.kind === 'edit' && html`<${ProviderForm} orig=${dialog.p} onClose=${close} onSaved=${reload} />`}
    ${dialog?.kind === 'test' && html`<${TestDialog} provider=${dialog.p} onClose=${close} />`}
    ${dialog?.kind === 'delete' && html`<${Confirm} title=${`Remove ${dialog.p.name}?`} action="Remove"
      message=${`Requests routed to "${dialog.p.name}" will fail over to other providers or fail.`}
      onConfirm=${async () => { await api(`/api/providers/${enc(dialog.p.name)}`, { method: 'DELETE' }); reload(); }} onClose=${close} />`}
  </div>`;
}
