// Teams & customers: CRUD with budgets, rate limits and spend bars.

import {
  html, useState, api, enc, useLoad, ErrorBox, Dialog, Confirm, PageHead, Loading, Field, Select,
  SpendBar, byId, budgetToForm, formToBudget, BudgetFields, rlToForm, formToRl, RateLimitFields, rlText, usageLine,
} from './lib.js';

const KIND = {
  teams: { path: '/api/governance/teams', one: 'team', title: 'team' },
  customers: { path: '/api/governance/customers', one: 'customer', title: 'customer' },
};

function EntityForm({ kind, orig, customers, onClose, onSaved }) {
  const K = KIND[kind];
  const editing = !!orig;
  const [f, setF] = useState(() => ({
    id: orig?.id || '', customer_id: orig?.customer_id || '', budget: budgetToForm(orig?.budget), rate: rlToForm(orig?.rate_limit),
  }));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const set = (k) => (v) => setF((s) => ({ ...s, [k]: v }));
  const submit = async (e) => {
    e.preventDefault();
    const problems = [];
    const entry = { ...(orig || {}), id: f.id.trim() };
    if (!entry.id) problems.push('ID is required.');
    if (kind === 'teams') { if (f.customer_id) entry.customer_id = f.customer_id; else delete entry.customer_id; }
    const b = formToBudget(f.budget, orig?.budget, problems);
    if (b) entry.budget = b; else delete entry.budget;
    const r = formToRl(f.rate, orig?.rate_limit, problems);
    if (r) entry.rate_limit = r; else delete entry.rate_limit;
    if (problems.length) { setError({ message: 'Please fix these fields:', problems }); return; }
    setBusy(true);
    setError(null);
    try {
      if (editing) await api(`${K.path}/${enc(orig.id)}`, { method: 'PUT', body: entry });
      else await api(K.path, { method: 'POST', body: entry });
      onSaved();
      onClose();
    } catch (err) {
      setError(err.status === 409 ? { message: `A ${K.title} with the ID "${entry.id}" already exists.` } : err);
      setBusy(false);
    }
  };
  const custOpts = [{ value: '', label: '(none)' }, ...customers.map((c) => ({ value: c.id, label: c.id }))];
  if (f.customer_id && !customers.some((c) => c.id === f.customer_id)) custOpts.push({ value: f.customer_id, label: f.customer_id });
  return html`<${Dialog} title=${editing ? `Edit ${K.title} ${orig.id}` : `Add ${K.title}`} onClose=${onClose} wide>
    <form onSubmit=${submit} class="form" novalidate>
      <div class="grid2">
        <${Field} label="ID" value=${f.id} onInput=${set('id')} required disabled=${editing} autofocus=${!editing} autocomplete="off" spellcheck="false" />
        ${kind === 'teams' && html`<${Select} label="Customer" value=${f.customer_id} onChange=${set('customer_id')} options=${custOpts} />`}
      </div>
      <${BudgetFields} value=${f.budget} onChange=${set('budget')} />
      <${RateLimitFields} value=${f.rate} onChange=${set('rate')} />
      <${ErrorBox} error=${error} />
      <div class="form-actions">
        <button type="button" class="btn" onClick=${onClose}>Cancel</button>
        <button type="submit" class="btn primary" disabled=${busy}>${busy ? 'Saving…' : editing ? 'Save' : `Add ${K.title}`}</button>
      </div>
    </form>
  <//>`;
}

function Section({ kind, list, usage, counts, onAdd, onEdit, onDelete }) {
  const K = KIND[kind];
  const title = kind === 'teams' ? 'Teams' : 'Customers';
  return html`<section class="section">
    <div class="section-head">
      <h2>${title}</h2>
      <button type="button" class="btn primary" onClick=${onAdd}>Add ${K.title}</button>
    </div>
    ${list.length === 0
      ? html`<p class="card muted empty">No ${title.toLowerCase()} yet.</p>`
      : html`<div class="table-wrap card flush"><table class="data" data-testid=${kind}>
        <thead><tr>
          <th scope="col">ID</th>${kind === 'teams' && html`<th scope="col">Customer</th>`}
          <th scope="col">Budget</th><th scope="col">Rate limits</th><th scope="col" class="num">${kind === 'teams' ? 'Keys' : 'Teams'}</th>
          <th scope="col"><span class="sr-only">Actions</span></th>
        </tr></thead>
        <tbody>${list.map((e) => {
          const u = usage.get(String(e.id));
          return html`<tr key=${e.id}>
            <th scope="row"><span class="mono">${e.id}</span>${u && html`<div class="muted small">${usageLine(u)}</div>`}</th>
            ${kind === 'teams' && html`<td class="mono">${e.customer_id || html`<span class="muted">—</span>`}</td>`}
            <td class="budget-cell"><${SpendBar} u=${u || (e.budget ? { spend: 0, limit: e.budget.max_limit } : null)} /></td>
            <td class="small">${rlText(e.rate_limit)}</td>
            <td class="num">${counts.get(e.id) || 0}</td>
            <td class="actions-cell">
              <button type="button" class="btn small" onClick=${() => onEdit(e)} aria-label=${`Edit ${K.title} ${e.id}`}>Edit</button>
              <button type="button" class="btn small danger-text" onClick=${() => onDelete(e)} aria-label=${`Delete ${K.title} ${e.id}`}>Delete</button>
            </td>
          </tr>`;
        })}</tbody>
      </table></div>`}
  </section>`;
}

export function Teams() {
  const { data, error, loading, reload } = useLoad(async () => {
    const [t, c, usage, k] = await Promise.all([
      api(KIND.teams.path), api(KIND.customers.path), api('/api/usage').catch(() => null),
      api('/api/governance/virtual-keys').catch(() => ({ virtual_keys: [] })),
    ]);
    return { teams: t.teams || [], customers: c.customers || [], usage, keys: k.virtual_keys || [] };
  });
  const [dialog, setDialog] = useState(null);
  const close = () => setDialog(null);
  const teams = data?.teams || [];
  const customers = data?.customers || [];
  const count = (list, field) => {
    const m = new Map();
    for (const x of list) if (x[field]) m.set(x[field], (m.get(x[field]) || 0) + 1);
    return m;
  };

  return html`<div class="page">
    <${PageHead} title="Teams & customers">
      <button type="button" class="btn" onClick=${reload} disabled=${loading}>Refresh</button>
    <//>
    <${ErrorBox} error=${error} />
    ${!data && !error && html`<${Loading} />`}
    ${data && html`
      <${Section} kind="customers" list=${customers} usage=${byId(data.usage?.customers)} counts=${count(teams, 'customer_id')}
        onAdd=${() => setDialog({ kind: 'customers' })} onEdit=${(e) => setDialog({ kind: 'customers', e })}
        onDelete=${(e) => setDialog({ kind: 'customers', e, del: true })} />
      <${Section} kind="teams" list=${teams} usage=${byId(data.usage?.teams)} counts=${count(data.keys, 'team_id')}
        onAdd=${() => setDialog({ kind: 'teams' })} onEdit=${(e) => setDialog({ kind: 'teams', e })}
        onDelete=${(e) => setDialog({ kind: 'teams', e, del: true })} />`}
    ${dialog && !dialog.del && html`<${EntityForm} kind=${dialog.kind} orig=${dialog.e} customers=${customers} onClose=${close} onSaved=${reload} />`}
    ${dialog?.del && html`<${Confirm} title=${`Delete ${KIND[dialog.kind].title} ${dialog.e.id}?`}
      message=${dialog.kind === 'teams' ? 'Keys of this team lose the team budget and limits.' : 'Teams of this customer lose the customer budget and limits.'}
      onConfirm=${async () => { await api(`${KIND[dialog.kind].path}/${enc(dialog.e.id)}`, { method: 'DELETE' }); reload(); }} onClose=${close} />`}
  </div>`;
}
