// Virtual keys: create (value shown once), edit budgets and limits, deactivate, delete.

import {
  html, useState, api, enc, useLoad, ErrorBox, Dialog, Confirm, PageHead, Loading, Field, Select, Check,
  SpendBar, byId, splitList, joinList, budgetToForm, formToBudget, BudgetFields, rlToForm, formToRl,
  RateLimitFields, rlText, CopyValue, usageLine,
} from './lib.js';

const KEYS = '/api/governance/virtual-keys';

function toForm(k) {
  return {
    id: k?.id || '',
    team_id: k?.team_id || '',
    customer_id: k?.customer_id || '',
    active: k ? k.active !== false : true,
    budget: budgetToForm(k?.budget),
    rate: rlToForm(k?.rate_limit),
    allowed_models: joinList(k?.allowed_models),
    allowed_providers: joinList(k?.allowed_providers),
  };
}

function fromForm(f, orig) {
  const problems = [];
  const k = { ...(orig || {}) };
  k.id = f.id.trim();
  if (!k.id) problems.push('ID is required.');
  if (f.team_id) k.team_id = f.team_id; else delete k.team_id;
  if (f.customer_id) k.customer_id = f.customer_id; else delete k.customer_id;
  k.active = !!f.active;
  const b = formToBudget(f.budget, orig?.budget, problems);
  if (b) k.budget = b; else delete k.budget;
  const r = formToRl(f.rate, orig?.rate_limit, problems);
  if (r) k.rate_limit = r; else delete k.rate_limit;
  const am = splitList(f.allowed_models);
  if (am.length) k.allowed_models = am; else delete k.allowed_models;
  const ap = splitList(f.allowed_providers);
  if (ap.length) k.allowed_providers = ap; else delete k.allowed_providers;
  delete k.value; // write-only; absent on PUT keeps the stored value
  return { entry: k, problems };
}

function KeyForm({ orig, teams, customers, providers, onClose, onSaved, onCreated }) {
  const editing = !!orig;
  const [f, setF] = useState(() => toForm(orig));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (v) => setF((s) => ({ ...s, [k]: v }));
  const submit = async (e) => {
    e.preventDefault();
    const { entry, problems } = fromForm(f, orig);
    if (problems.length) { setError({ message: 'Please fix these fields:', problems }); return; }
    setBusy(true);
    setError(null);
    try {
      if (editing) {
        await api(`${KEYS}/${enc(orig.id)}`, { method: 'PUT', body: entry });
        onSaved();
        onClose();
      } else {
        const r = await api(KEYS, { method: 'POST', body: entry });
        onSaved();
        onCreated(r.virtual_key?.id ?? entry.id, r.value);
      }
    } catch (err) {
      setError(err.status === 409 ? { message: `A key with the ID "${entry.id}" already exists.` } : err);
      setBusy(false);
    }
  };
  const opt = (list) => [{ value: '', label: '(none)' }, ...list.map((x) => ({ value: x.id, label: x.id }))];
  // a team or customer the list no longer has still shows
  const teamOpts = opt(f.team_id && !teams.some((t) => t.id === f.team_id) ? [...teams, { id: f.team_id }] : teams);
  const custOpts = opt(f.customer_id && !customers.some((t) => t.id === f.customer_id) ? [...customers, { id: f.customer_id }] : customers);
  return html`<${Dialog} title=${editing ? `Edit key ${orig.id}` : 'Create virtual key'} onClose=${onClose} wide>
    <form onSubmit=${submit} class="form" novalidate>
      <div class="grid2">
        <${Field} label="ID" value=${f.id} onInput=${set('id')} required disabled=${editing} autofocus=${!editing}
          hint="A name for the key: logs and usage show it" autocomplete="off" spellcheck="false" />
        <${Check} label="Active" checked=${f.active} onChange=${set('active')} />
      </div>
      <div class="grid2">
        <${Select} label="Team" value=${f.team_id} onChange=${set('team_id')} options=${teamOpts} />
        <${Select} label="Customer" value=${f.customer_id} onChange=${set('customer_id')} options=${custOpts} hint="Usually through the team" />
      </div>
      <${BudgetFields} value=${f.budget} onChange=${set('budget')} />
      <${RateLimitFields} value=${f.rate} onChange=${set('rate')} />
      <div class="grid2">
        <${Field} label="Allowed models" value=${f.allowed_models} onInput=${set('allowed_models')} placeholder="all"
          hint="Globs, separated by commas: gpt-4o*, claude-*" spellcheck="false" />
        <${Field} label="Allowed providers" value=${f.allowed_providers} onInput=${set('allowed_providers')} placeholder="all"
          hint=${providers.length ? `Names, separated by commas: ${providers.map((p) => p.name).join(', ')}` : 'Provider names, separated by commas'} spellcheck="false" />
      </div>
      <${ErrorBox} error=${error} />
      <div class="form-actions">
        <button type="button" class="btn" onClick=${onClose}>Cancel</button>
        <button type="submit" class="btn primary" disabled=${busy}>${busy ? 'Saving…' : editing ? 'Save' : 'Create key'}</button>
      </div>
    </form>
  <//>`;
}

function Created({ id, value, onClose }) {
  return html`<${Dialog} title=${`Key ${id} created`} onClose=${onClose}>
    ${value
      ? html`<p>Copy the key now: <strong>it is shown only this once</strong>. Clients send it as <span class="mono">Authorization: Bearer …</span>.</p>
        <${CopyValue} value=${value} label="Key value" />`
      : html`<p class="muted">The gateway did not return a value for this key.</p>`}
    <div class="form-actions"><button type="button" class="btn primary" onClick=${onClose}>Done</button></div>
  <//>`;
}

export function Keys() {
  const { data, error, loading, reload } = useLoad(async () => {
    const [k, usage, teams, customers, providers] = await Promise.all([
      api(KEYS),
      api('/api/usage').catch(() => null),
      api('/api/governance/teams').catch(() => ({ teams: [] })),
      api('/api/governance/customers').catch(() => ({ customers: [] })),
      api('/api/providers').catch(() => ({ providers: [] })),
    ]);
    return {
      keys: k.virtual_keys || [],
      usage,
      teams: teams.teams || [],
      customers: customers.customers || [],
      providers: providers.providers || [],
    };
  });
  const [dialog, setDialog] = useState(null);
  const [actionError, setActionError] = useState(null);
  const close = () => setDialog(null);
  const keys = data?.keys || [];
  const usage = byId(data?.usage?.virtual_keys);
  const pcs = data?.usage?.provider_configs || [];
  const teamUsage = byId(data?.usage?.teams);
  const custUsage = byId(data?.usage?.customers);
  const teamOf = new Map((data?.teams || []).map((t) => [t.id, t]));
  /** The tiers above a key that have a limit: its team and its customer (direct or through the team). */
  const above = (k) => {
    const out = [];
    const t = k.team_id ? teamUsage.get(String(k.team_id)) : null;
    if (t && t.limit !== null && t.limit !== undefined) out.push({ u: t, label: `team ${k.team_id}` });
    const cid = k.customer_id || (k.team_id && teamOf.get(k.team_id)?.customer_id);
    const c = cid ? custUsage.get(String(cid)) : null;
    if (c && c.limit !== null && c.limit !== undefined) out.push({ u: c, label: `customer ${cid}` });
    return out;
  };

  const setActive = async (k, active) => {
    setActionError(null);
    try {
      const { value, ...rest } = k;
      await api(`${KEYS}/${enc(k.id)}`, { method: 'PUT', body: { ...rest, active } });
    } catch (e) {
      setActionError(e);
    }
    reload();
  };

  return html`<div class="page">
    <${PageHead} title="Virtual keys">
      <button type="button" class="btn" onClick=${reload} disabled=${loading}>Refresh</button>
      <button type="button" class="btn primary" onClick=${() => setDialog({ kind: 'add' })}>Create key</button>
    <//>
    <${ErrorBox} error=${error} />
    <${ErrorBox} error=${actionError} />
    ${!data && !error && html`<${Loading} what="keys" />`}
    ${data && keys.length === 0 && html`<p class="card muted empty">No virtual keys yet. Create one to give a client a budget and limits.</p>`}
    ${keys.length > 0 && html`<div class="table-wrap card flush"><table class="data" data-testid="keys">
      <thead><tr>
        <th scope="col">Key</th><th scope="col">Status</th><th scope="col">Team · customer</th><th scope="col">Budget</th>
        <th scope="col">Rate limits</th><th scope="col">Allowed</th><th scope="col"><span class="sr-only">Actions</span></th>
      </tr></thead>
      <tbody>${keys.map((k) => {
        const u = usage.get(String(k.id));
        const mine = pcs.filter((pc) => String(pc.id).startsWith(`${k.id}/`));
        const active = k.active !== false;
        return html`<tr key=${k.id} data-key-id=${k.id}>
          <th scope="row"><span class="mono key-id">${k.id}</span>${u && html`<div class="muted small">${usageLine(u)}</div>`}</th>
          <td><span class=${`badge ${active ? 'ok' : 'off'}`}>${active ? 'active' : 'inactive'}</span></td>
          <td>${k.team_id || k.customer_id ? html`<span class="mono">${[k.team_id, k.customer_id].filter(Boolean).join(' · ')}</span>` : html`<span class="muted">—</span>`}</td>
          <td class="budget-cell">
            <${SpendBar} u=${u || (k.budget ? { spend: 0, limit: k.budget.max_limit } : null)}
              label=${mine.length || above(k).length ? 'key' : ''} />
            ${mine.map((pc) => html`<${SpendBar} u=${pc} label=${`provider ${String(pc.id).slice(String(k.id).length + 1)}`} />`)}
            ${above(k).map((x) => html`<${SpendBar} u=${x.u} label=${x.label} />`)}
          </td>
          <td class="small">${rlText(k.rate_limit)}</td>
          <td class="small">
            <div><span class="muted">models:</span> <span class="mono">${joinList(k.allowed_models) || 'all'}</span></div>
            <div><span class="muted">providers:</span> <span class="mono">${joinList(k.allowed_providers) || 'all'}</span></div>
          </td>
          <td class="actions-cell">
            <button type="button" class="btn small" onClick=${() => setDialog({ kind: 'edit', k })} aria-label=${`Edit ${k.id}`}>Edit</button>
            <button type="button" class="btn small" onClick=${() => setActive(k, !active)} aria-label=${`${active ? 'Deactivate' : 'Activate'} ${k.id}`}>${active ? 'Deactivate' : 'Activate'}</button>
            <button type="button" class="btn small danger-text" onClick=${() => setDialog({ kind: 'delete', k })} aria-label=${`Delete ${k.id}`}>Delete</button>
          </td>
        </tr>`;
      })}</tbody>
    </table></div>`}
    ${(dialog?.kind === 'add' || dialog?.kind === 'edit') && html`<${KeyForm} orig=${dialog.k} teams=${data?.teams || []}
      customers=${data?.customers || []} providers=${data?.providers || []} onClose=${close} onSaved=${reload}
      onCreated=${(id, value) => setDialog({ kind: 'created', id, value })} />`}
    ${dialog?.kind === 'created' && html`<${Created} id=${dialog.id} value=${dialog.value} onClose=${close} />`}
    ${dialog?.kind === 'delete' && html`<${Confirm} title=${`Delete key ${dialog.k.id}?`}
      message="Requests carrying this key will be refused. Its usage history stays in the logs."
      onConfirm=${async () => { await api(`${KEYS}/${enc(dialog.k.id)}`, { method: 'DELETE' }); reload(); }} onClose=${close} />`}
  </div>`;
}
