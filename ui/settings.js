// Settings: server facts, the pricing table, the config download.

import {
  html, useState, useEffect, api, useLoad, ErrorBox, PageHead, Loading, num, useId,
} from './lib.js';

const COLS = [['input', 'Input'], ['output', 'Output'], ['cache_read', 'Cache read'], ['cache_write', 'Cache write']];

function rowsOf(pricing) {
  return Object.entries(pricing || {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, p]) => ({
      key,
      orig: p,
      ...Object.fromEntries(COLS.map(([c]) => [c, p && p[c] !== undefined && p[c] !== null ? String(p[c]) : ''])),
    }));
}

function Pricing() {
  const { data, error, reload } = useLoad(() => api('/api/pricing'));
  const [rows, setRows] = useState(null);
  const [saveError, setSaveError] = useState(null);
  const [saved, setSaved] = useState('');
  const [busy, setBusy] = useState(false);
  const id = useId();
  useEffect(() => { if (data) setRows(rowsOf(data.pricing)); }, [data]);
  const set = (i, k, v) => { setSaved(''); setRows((rs) => rs.map((r, j) => (j === i ? { ...r, [k]: v } : r))); };
  const save = async (e) => {
    e.preventDefault();
    const problems = [];
    const pricing = {};
    rows.forEach((r, i) => {
      const key = r.key.trim();
      if (!key && COLS.every(([c]) => !r[c].trim())) return; // an empty new row
      if (!/^[^/\s]+\/\S+$/.test(key)) problems.push(`Row ${i + 1}: the model must be written provider/model.`);
      if (pricing[key]) problems.push(`Row ${i + 1}: ${key} appears twice.`);
      const p = {};
      for (const [c, label] of COLS) {
        const n = num(r[c]);
        if (n === undefined) continue;
        if (Number.isNaN(n) || n < 0) problems.push(`Row ${i + 1}: ${label} must be a number of dollars per million tokens.`);
        else p[c] = n;
      }
      pricing[key] = p;
    });
    if (problems.length) { setSaveError({ message: 'Please fix these rows:', problems }); return; }
    setBusy(true);
    setSaveError(null);
    try {
      await api('/api/pricing', { method: 'PUT', body: { pricing } });
      setSaved('Saved.');
      reload();
    } catch (err) {
      setSaveError(err);
    }
    setBusy(false);
  };
  return html`<section class="card">
    <h2>Pricing</h2>
    <p class="muted small">US dollars per million tokens, keyed <span class="mono">provider/model</span> (the upstream model).
      These entries override the built-in price list.</p>
    <${ErrorBox} error=${error} />
    ${!rows && !error && html`<${Loading} what="prices" />`}
    ${rows && html`<form onSubmit=${save}>
      <div class="table-wrap"><table class="data pricing" data-testid="pricing">
        <thead><tr><th scope="col">Model</th>${COLS.map(([, l]) => html`<th scope="col" class="num">${l}</th>`)}<th scope="col"><span class="sr-only">Remove</span></th></tr></thead>
        <tbody>
          ${rows.length === 0 && html`<tr><td colspan="6" class="muted">No prices configured: the built-in table applies.</td></tr>`}
          ${rows.map((r, i) => html`<tr>
            <td><input aria-label=${`Row ${i + 1} model`} class="mono" value=${r.key} placeholder="provider/model" spellcheck="false"
              onInput=${(e) => set(i, 'key', e.target.value)} /></td>
            ${COLS.map(([c, l]) => html`<td class="num"><input aria-label=${`${r.key || `Row ${i + 1}`} ${l}`} class="num-input" inputmode="decimal"
              value=${r[c]} placeholder="—" onInput=${(e) => set(i, c, e.target.value)} /></td>`)}
            <td><button type="button" class="btn small danger-text" aria-label=${`Remove ${r.key || `row ${i + 1}`}`}
              onClick=${() => { setSaved(''); setRows((rs) => rs.filter((_, j) => j !== i)); }}>Remove</button></td>
          </tr>`)}
        </tbody>
      </table></div>
      <div data-testid="pricing-error"><${ErrorBox} error=${saveError} /></div>
      <div class="form-actions left">
        <button type="button" class="btn" onClick=${() => setRows((rs) => [...rs, { key: '', input: '', output: '', cache_read: '', cache_write: '' }])}>Add row</button>
        <button type="submit" class="btn primary" disabled=${busy}>${busy ? 'Saving…' : 'Save prices'}</button>
        <span class="muted" role="status" id=${id} data-testid="pricing-status">${saved}</span>
      </div>
    </form>`}
  </section>`;
}

function Download() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      const cfg = await api('/api/config');
      const blob = new Blob([`${JSON.stringify(cfg, null, 2)}\n`], { type: 'application/json' });
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = 'bifrost-config.json';
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      setError(e);
    }
    setBusy(false);
  };
  return html`<section class="card">
    <h2>Configuration</h2>
    <p class="muted small">The running config.json, with secrets redacted.</p>
    <button type="button" class="btn" onClick=${go} disabled=${busy}>Download config.json</button>
    <${ErrorBox} error=${error} />
  </section>`;
}

export function Settings() {
  const health = useLoad(() => api('/health'));
  const session = useLoad(() => api('/api/session', { auth: false }));
  const h = health.data;
  return html`<div class="page">
    <${PageHead} title="Settings" />
    <div class="two">
      <section class="card">
        <h2>Gateway</h2>
        <${ErrorBox} error=${health.error} />
        ${!h && !health.error && html`<${Loading} />`}
        ${h && html`<dl class="kv" data-testid="server">
          <dt>Version</dt><dd class="mono">${h.version ?? '—'}</dd>
          <dt>Workers</dt><dd>${h.workers ?? '—'}</dd>
          <dt>Status</dt><dd>${h.status ?? '—'}</dd>
          <dt>Providers</dt><dd>${(h.providers || []).length}</dd>
          <dt>Signed in as</dt><dd>${session.data?.user || (session.data?.login_required === false ? 'no login configured (local access)' : '—')}</dd>
        </dl>`}
      </section>
      <${Download} />
    </div>
    <${Pricing} />
  </div>`;
}
