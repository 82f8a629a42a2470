// The web UI in headless Chromium against the real gateway: login, providers, virtual keys
// (value shown once, budgets, 402, deactivation), logs, dashboard, teams, settings (pricing,
// config download, If-Match → 412), logout; markup in ids shows as text; screenshots of every
// page into tests/build/screenshots/. Chromium missing = failure, not a skip.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startGateway, request, show, sleep, tempDir, BIN, requireBinary } from '../lib/gateway.mjs';
import { startMock, DEFAULT_USAGE } from '../lib/mock.mjs';
import { openaiCost } from '../lib/usage.mjs';
import {
  openBrowser, screenshot, fill, clickButton, waitText, waitNoDialog, waitDialog, pageFetch, SCREENSHOTS,
} from '../lib/browser.mjs';

const USER = 'admin';
const PASSWORD = 'correct horse battery staple';
const UPSTREAM_KEY = 'sk-up-very-secret-4242';
const XSS_ID = '<img src=x onerror=window.__xss=1>';
const XSS_MODEL = '<img src=x onerror=window.__xss=2>';
const MINI = { input: 0.15, output: 0.6 }; // the built-in price of gpt-4o-mini
const COST = openaiCost(DEFAULT_USAGE, MINI); // µ$ of one default mock answer

let m; // mock OpenAI upstream
let gw;
let browser;
let page;
let problems;
let keyValue; // the value shown once after creating "ui-key"

const chatWith = (body, headers = {}) => request(gw.port, {
  method: 'POST', path: '/v1/chat/completions', timeout: 10000, headers,
  body: JSON.stringify({ messages: [{ role: 'user', content: 'hello from the UI test' }], ...body }),
});

async function go(route) {
  await page.evaluate((r) => { location.hash = r; }, `#/${route}`);
  await page.waitForFunction((r) => document.querySelector(`nav a[href="#/${r}"]`)?.getAttribute('aria-current') === 'page', {}, route);
}

/** Text of every cell of the table row whose first cell's text is `first`. */
function rowCells(table, first) {
  return page.evaluate((table, first) => {
    const tr = [...document.querySelectorAll(`table[data-testid="${table}"] tbody tr`)]
      .find((r) => r.cells[0]?.textContent.trim().startsWith(first));
    return tr ? [...tr.cells].map((c) => c.textContent.trim()) : null;
  }, table, first);
}

/** Click the button with aria-label `label` (row actions are labelled "Edit ui-key" and so on). */
async function clickLabelled(label) {
  const el = await page.waitForFunction((label) => [...document.querySelectorAll('button')].find((b) => b.getAttribute('aria-label') === label && !b.disabled) || null, {}, label);
  await el.asElement().click();
}

// The browser steps build on each other (a provider, then a key, then requests with it): once
// one fails the later ones fail at once, naming it, instead of each waiting out its timeouts.
let broken = null;
function step(name, fn) {
  test(name, async (t) => {
    if (broken) assert.fail(`not run: the earlier step "${broken}" failed`);
    try {
      await fn(t);
    } catch (e) {
      broken = name;
      if (page) await screenshot(page, `failed-${name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40)}`).catch(() => {});
      throw e;
    }
  });
}

before(async () => {
  requireBinary();
  m = await startMock({ name: 'up' });
  // `bifrost hash-password` reads the password on stdin (as `echo "$PW" | bifrost hash-password`)
  let hash;
  try {
    hash = execFileSync(BIN, ['hash-password'], { input: `${PASSWORD}\n`, encoding: 'utf8', timeout: 20000 }).trim().split('\n').pop().trim();
  } catch (e) {
    throw new Error(`\`${BIN} hash-password\` failed: ${e.message}\n${e.stderr || ''}`);
  }
  assert.ok(hash.length >= 20 && !hash.includes(PASSWORD), `hash-password printed ${JSON.stringify(hash)}`);
  gw = await startGateway({
    config: {
      admin: { username: USER, password_hash: hash },
      providers: [],
      governance: { enforce: false },
      logs: { content: true },
    },
  });
  ({ browser, page, problems } = await openBrowser(gw.url));
  mkdirSync(SCREENSHOTS, { recursive: true });
});

after(async () => {
  await browser?.close();
  await gw?.stop('SIGKILL');
  await m?.close();
});

test('GET / and HEAD / answer 200 text/html; the UI files and vendor modules are served', async () => {
  const r = await request(gw.port, { path: '/' });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'] || '', /^text\/html/, `content-type ${r.headers['content-type']}`);
  assert.match(r.text, /<script type="importmap">/, 'index.html with its import map');
  const h = await request(gw.port, { method: 'HEAD', path: '/' });
  assert.equal(h.status, 200, show(h));
  assert.match(h.headers['content-type'] || '', /^text\/html/, `HEAD content-type ${h.headers['content-type']}`);
  assert.equal(h.body.length, 0, 'HEAD has no body');

  const want = [
    ['/ui/app.js', /javascript/], ['/ui/lib.js', /javascript/], ['/ui/style.css', /^text\/css/],
    ['/ui/vendor/preact.mjs', /javascript/], ['/ui/vendor/preact-hooks.mjs', /javascript/],
    ['/ui/vendor/htm.mjs', /javascript/], ['/ui/vendor/uplot.mjs', /javascript/], ['/ui/vendor/uplot.css', /^text\/css/],
  ];
  for (const [path, ct] of want) {
    const f = await request(gw.port, { path });
    assert.equal(f.status, 200, `${path}: ${show(f)}`);
    assert.match(f.headers['content-type'] || '', ct, `${path}: content-type ${f.headers['content-type']}`);
  }
});

test('with credentials configured, the admin API needs a login', async () => {
  const r = await request(gw.port, { path: '/api/providers' });
  assert.equal(r.status, 401, show(r));
  const s = await request(gw.port, { path: '/api/session' });
  assert.equal(s.status, 200, show(s));
  const j = s.json();
  assert.equal(j.authenticated, false, show(s));
  assert.equal(j.login_required, true, show(s));
  assert.equal(j.user ?? null, null, show(s));
});

step('login page: a wrong password is refused, the right one opens the dashboard', async () => {
  await page.goto(`${gw.url}/`, { waitUntil: 'networkidle0' });
  await page.waitForSelector('form.login-card');
  await screenshot(page, 'login');
  await fill(page, 'Username', USER);
  await fill(page, 'Password', 'not the password');
  await page.keyboard.press('Enter');
  await waitText(page, '[role=alert]', 'Wrong username or password');
  await fill(page, 'Password', PASSWORD);
  await page.keyboard.press('Enter');
  await page.waitForSelector('nav#nav a[aria-current="page"]');
  assert.equal(await page.$eval('nav#nav a[aria-current="page"]', (a) => a.textContent), 'Dashboard');
  const s = await pageFetch(page, '/api/session');
  assert.equal(s.status, 200);
  assert.equal(s.body.authenticated, true, JSON.stringify(s.body));
  assert.equal(s.body.user, USER, JSON.stringify(s.body));
});

step('providers: add one pointing at the mock (key masked, circuit shown), test it, Escape closes', async () => {
  await go('providers');
  await clickButton(page, 'Add provider');
  await waitDialog(page, 'Add provider');
  await fill(page, 'Name', 'mock');
  await page.evaluate(() => { const s = [...document.querySelectorAll('dialog[open] label')].find((l) => l.textContent === 'Kind'); return s.htmlFor; })
    .then((id) => page.select(`[id="${id}"]`, 'openai'));
  await fill(page, 'Base URL', m.baseUrl);
  await fill(page, 'Key 1', UPSTREAM_KEY);
  await fill(page, 'Models', 'gpt-4o-mini, gpt-4o*');
  await page.keyboard.press('Enter'); // forms submit on Enter
  await waitNoDialog(page);
  await waitText(page, 'table[data-testid=providers]', 'mock');
  const cells = await rowCells('providers', 'mock');
  assert.ok(cells, 'a row for mock');
  assert.equal(cells[1], 'openai');
  assert.match(cells[2], /closed/, `circuit state in ${JSON.stringify(cells)}`);
  assert.ok(cells[5].includes(m.baseUrl), `base_url in ${JSON.stringify(cells)}`);
  const html = await page.content();
  assert.ok(!html.includes(UPSTREAM_KEY), 'the upstream key is never on the page');

  const api = await pageFetch(page, '/api/providers');
  assert.equal(api.status, 200, JSON.stringify(api.body));
  const p = api.body.providers.find((x) => x.name === 'mock');
  assert.ok(p, JSON.stringify(api.body));
  assert.equal(p.base_url, m.baseUrl);
  assert.ok(!JSON.stringify(api.body).includes(UPSTREAM_KEY), `GET /api/providers redacts the key: ${JSON.stringify(api.body)}`);
  await screenshot(page, 'providers');

  // Test: one-token request through the gateway to mock/gpt-4o-mini
  const before = m.requests.length;
  await clickLabelled('Test mock');
  await waitDialog(page, 'Test mock');
  await waitText(page, '[data-testid=test-status]', '200');
  assert.match(await page.$eval('[data-testid=test-latency]', (e) => e.textContent), /\d+(\.\d+)? (ms|s)$/);
  assert.equal(m.requests.length, before + 1, 'one request reached the upstream');
  const sent = m.requests.at(-1).json;
  assert.equal(sent.model, 'gpt-4o-mini');
  assert.equal(sent.max_tokens ?? sent.max_completion_tokens, 1);
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UPSTREAM_KEY}`, 'the stored key went upstream');
  await screenshot(page, 'providers-test');
  await page.keyboard.press('Escape');
  await waitNoDialog(page);

  // edit keeps the stored key when the redacted value is left alone
  await clickLabelled('Edit mock');
  await waitDialog(page, 'Edit provider mock');
  await fill(page, 'Weight', '3');
  await page.keyboard.press('Enter');
  await waitNoDialog(page);
  await page.waitForFunction(() => [...document.querySelectorAll('table[data-testid=providers] tbody tr')]
    .some((r) => r.cells[0].textContent === 'mock' && r.cells[3].textContent === '3'));
  const r = await chatWith({ model: 'mock/gpt-4o-mini' });
  assert.equal(r.status, 200, show(r));
  assert.equal(m.requests.at(-1).headers.authorization, `Bearer ${UPSTREAM_KEY}`, 'the key survived an edit through the UI');
});

step('virtual keys: create with a $ budget, the value is shown once and copies', async () => {
  await go('keys');
  await clickButton(page, 'Create key');
  await waitDialog(page, 'Create virtual key');
  await fill(page, 'ID', 'ui-key');
  await fill(page, 'Limit (US$)', '5');
  await page.keyboard.press('Enter');
  await waitDialog(page, 'Key ui-key created');
  const ctx = browser.defaultBrowserContext();
  await ctx.overridePermissions(gw.url, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
  keyValue = await page.$eval('dialog[open] .copy input', (i) => i.value);
  assert.match(keyValue, /^sk-bf-\S{32}$/, `the shown value ${JSON.stringify(keyValue)}`);
  await clickButton(page, 'Copy');
  await waitText(page, 'dialog[open] .copy [role=status]', /Copied|Selected/);
  const status = await page.$eval('dialog[open] .copy [role=status]', (e) => e.textContent);
  if (status === 'Copied') assert.equal(await page.evaluate(() => navigator.clipboard.readText()), keyValue, 'the clipboard holds the value');
  await screenshot(page, 'keys-created');
  await clickButton(page, 'Done');
  await waitNoDialog(page);
  await waitText(page, 'table[data-testid=keys]', 'ui-key');
  const cells = await rowCells('keys', 'ui-key');
  assert.match(cells[1], /active/);
  assert.match(cells[3], /\$0 of \$5\.00/, `budget bar ${JSON.stringify(cells)}`);
  assert.ok(!(await page.content()).includes(keyValue), 'the value is not on the page once the dialog is closed');
  const list = await pageFetch(page, '/api/governance/virtual-keys');
  assert.ok(!JSON.stringify(list.body).includes(keyValue), `GET virtual-keys never shows the value: ${JSON.stringify(list.body)}`);
});

step('logs: the request made with the key shows provider, model, status and cost; detail panel; live tail', async () => {
  const r = await chatWith({ model: 'mock/gpt-4o-mini' }, { authorization: `Bearer ${keyValue}` });
  assert.equal(r.status, 200, show(r));
  await go('logs');
  await page.waitForSelector('table[data-testid=logs]');
  await page.waitForFunction(() => [...document.querySelectorAll('table[data-testid=logs] tbody tr')]
    .some((tr) => tr.cells[4]?.textContent === 'ui-key'), { timeout: 10000 }).catch(async () => {
    await clickButton(page, 'Refresh');
    await page.waitForFunction(() => [...document.querySelectorAll('table[data-testid=logs] tbody tr')].some((tr) => tr.cells[4]?.textContent === 'ui-key'));
  });
  const row = await page.evaluate(() => {
    const tr = [...document.querySelectorAll('table[data-testid=logs] tbody tr')].find((t) => t.cells[4]?.textContent === 'ui-key');
    return { id: tr.dataset.logId, cells: [...tr.cells].map((c) => c.textContent.trim()) };
  });
  assert.equal(row.cells[1], '200', JSON.stringify(row));
  assert.equal(row.cells[2], 'mock', JSON.stringify(row));
  assert.match(row.cells[3], /^(mock\/)?gpt-4o-mini$/, JSON.stringify(row));
  assert.equal(row.cells[6], `${DEFAULT_USAGE.prompt_tokens} / ${DEFAULT_USAGE.completion_tokens}`, JSON.stringify(row));
  assert.equal(row.cells[7], `$${(COST / 1e6).toFixed(6).replace(/0+$/, '')}`, `cost of ${COST} µ$: ${JSON.stringify(row)}`);
  await screenshot(page, 'logs');

  // the filter narrows to the key
  await fill(page, 'Virtual key', 'ui-key', { scope: 'form.filters' });
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('table[data-testid=logs] tbody tr')];
    return rows.length >= 1 && rows.every((tr) => tr.cells[4]?.textContent === 'ui-key');
  });
  await waitText(page, '.pager [role=status]', /^1–1 of 1$/);

  // detail panel: every field, keyboard-opened, Escape closes
  await page.focus(`tr[data-log-id="${row.id}"] button.link`);
  await page.keyboard.press('Enter');
  await waitDialog(page, `Request ${row.id}`);
  const detail = await waitText(page, '[data-testid=log-detail]', 'Request ID');
  for (const label of ['Virtual key', 'Provider', 'Model', 'Status', 'Latency', 'Input tokens', 'Output tokens', 'Cost', 'Client', 'Attempts']) {
    assert.ok(detail.includes(label), `detail shows ${label}: ${detail}`);
  }
  assert.ok(detail.includes('ui-key'), detail);
  // logs.content is on: the request body is shown (as text)
  const bodies = await waitText(page, 'dialog[open] .dlg-body', 'Request body');
  assert.ok(bodies.includes('hello from the UI test'), `the request body in the panel: ${bodies.slice(-600)}`);
  await screenshot(page, 'logs-detail');
  await page.keyboard.press('Escape');
  await waitNoDialog(page);

  // live tail: a new request appears without a click (polling every 2 s)
  await clickButton(page, 'Reset');
  await page.waitForFunction(() => document.querySelectorAll('table[data-testid=logs] tbody tr[data-log-id]').length >= 3);
  const live = await page.waitForFunction(() => [...document.querySelectorAll('label')].find((l) => l.textContent.includes('Live tail'))?.querySelector('input'));
  await live.asElement().click();
  const r2 = await chatWith({ model: `mock/${XSS_MODEL}` });
  assert.equal(r2.status, 200, `a model name with markup goes upstream as it is: ${show(r2)}`);
  await page.waitForFunction((mdl) => [...document.querySelectorAll('table[data-testid=logs] tbody tr')]
    .some((tr) => tr.cells[3]?.textContent.endsWith(mdl)), { timeout: 6000 }, XSS_MODEL);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'no markup from a model name ran');
  assert.equal(await page.evaluate(() => document.querySelectorAll('img').length), 0, 'no <img> element was made');
  await live.asElement().click();
});

step('dashboard: totals count the requests; charts render; phone width collapses the nav', async () => {
  await go('dashboard');
  const totals = await waitText(page, '[data-testid=totals]', /Requests\s*[1-9]/);
  assert.match(totals, /Spend/);
  await page.waitForSelector('.charts .uplot canvas');
  const n = await page.$$eval('.charts .uplot', (els) => els.length);
  assert.ok(n >= 5, `${n} charts`);
  const groups = await page.$$eval('.two table tbody th', (ths) => ths.map((t) => t.textContent));
  assert.ok(groups.some((g) => g.startsWith('mock')), `by provider: ${JSON.stringify(groups)}`);
  assert.ok(groups.some((g) => g.startsWith('ui-key')), `by key: ${JSON.stringify(groups)}`);
  await sleep(300);
  await screenshot(page, 'dashboard');

  await page.setViewport({ width: 390, height: 844 });
  await sleep(300);
  assert.equal(await page.$eval('.menu-btn', (b) => getComputedStyle(b).display !== 'none'), true, 'a Menu button on a phone');
  assert.equal(await page.$eval('nav#nav', (n) => getComputedStyle(n).display), 'none', 'the nav is collapsed');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `the page does not scroll sideways at 390 px (overflow ${overflow}px)`);
  await screenshot(page, 'dashboard-390');
  await clickButton(page, 'Menu');
  assert.equal(await page.$eval('nav#nav', (n) => getComputedStyle(n).display), 'flex', 'Menu opens the nav');
  await screenshot(page, 'nav-390');
  await page.keyboard.press('Escape');
  assert.equal(await page.$eval('nav#nav', (n) => getComputedStyle(n).display), 'none', 'Escape closes the menu');
  for (const [route, table] of [['providers', 'providers'], ['keys', 'keys'], ['teams', null], ['logs', 'logs'], ['settings', 'pricing']]) {
    await go(route);
    if (table) await page.waitForSelector(`table[data-testid=${table}] tbody tr`);
    await sleep(200);
    const side = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(side <= 1, `#/${route} does not scroll sideways at 390 px (overflow ${side}px)`);
    if (table) {
      const ox = await page.$eval(`table[data-testid=${table}]`, (t) => getComputedStyle(t.parentElement).overflowX);
      assert.equal(ox, 'auto', `the ${table} table scrolls inside its wrapper`);
    }
  }
  await screenshot(page, 'settings-390');
  await go('logs');
  await screenshot(page, 'logs-390');
  await page.setViewport({ width: 1280, height: 800 });
});

step('a budget changed to less than already spent refuses the next request with 402', async () => {
  await go('keys');
  await clickLabelled('Edit ui-key');
  await waitDialog(page, 'Edit key ui-key');
  await fill(page, 'Limit (US$)', '0.000001');
  await page.keyboard.press('Enter');
  await waitNoDialog(page);
  await waitText(page, 'table[data-testid=keys]', 'limit reached');
  const cells = await rowCells('keys', 'ui-key');
  assert.match(cells[3], /of \$0\.000001/, JSON.stringify(cells));
  const r = await chatWith({ model: 'mock/gpt-4o-mini' }, { authorization: `Bearer ${keyValue}` });
  assert.equal(r.status, 402, show(r));
  await screenshot(page, 'keys');
});

step('a key id with markup renders as text and runs nothing', async () => {
  await clickButton(page, 'Create key');
  await waitDialog(page, 'Create virtual key');
  await fill(page, 'ID', XSS_ID);
  await page.keyboard.press('Enter');
  await waitDialog(page, 'created');
  assert.equal(await page.$eval('dialog[open] h2', (h) => h.textContent), `Key ${XSS_ID} created`);
  await clickButton(page, 'Done');
  await waitNoDialog(page);
  await page.waitForFunction((id) => [...document.querySelectorAll('table[data-testid=keys] .key-id')].some((e) => e.textContent === id), {}, XSS_ID);
  assert.equal(await page.evaluate(() => window.__xss), undefined, 'onerror never ran');
  assert.equal(await page.evaluate(() => document.querySelectorAll('img').length), 0, 'no <img> element was made');
  await screenshot(page, 'keys-markup-id');
  // the logs filter list and the dashboard show it as text too
  await go('dashboard');
  await page.waitForSelector('[data-testid=totals]');
  await go('keys');
  await page.waitForSelector('table[data-testid=keys]');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  // delete it through the confirm dialog
  await clickLabelled(`Delete ${XSS_ID}`);
  await waitDialog(page, 'Delete key');
  await page.keyboard.press('Enter'); // the confirm button has the focus
  await waitNoDialog(page);
  await page.waitForFunction((id) => ![...document.querySelectorAll('table[data-testid=keys] .key-id')].some((e) => e.textContent === id), {}, XSS_ID);
});

step('deactivating a key (PUT active:false) refuses it with 403', async () => {
  await clickLabelled('Deactivate ui-key');
  await page.waitForFunction(() => [...document.querySelectorAll('table[data-testid=keys] tbody tr')]
    .some((tr) => tr.cells[0].textContent.startsWith('ui-key') && tr.cells[1].textContent === 'inactive'));
  const k = await pageFetch(page, `/api/governance/virtual-keys/${encodeURIComponent('ui-key')}`);
  assert.equal(k.status, 200, JSON.stringify(k.body));
  assert.equal(k.body.virtual_key.active, false, JSON.stringify(k.body));
  assert.equal(k.body.virtual_key.budget.max_limit, 0.000001, 'the PUT kept the other fields');
  const r = await chatWith({ model: 'mock/gpt-4o-mini' }, { authorization: `Bearer ${keyValue}` });
  assert.equal(r.status, 403, show(r));
});

step('teams & customers: create a customer and a team under it; API problems show next to the form', async () => {
  await go('teams');
  await clickButton(page, 'Add customer');
  await waitDialog(page, 'Add customer');
  await fill(page, 'ID', 'acme');
  await fill(page, 'Limit (US$)', '100');
  await page.keyboard.press('Enter');
  await waitNoDialog(page);
  await waitText(page, 'table[data-testid=customers]', 'acme');

  await clickButton(page, 'Add team');
  await waitDialog(page, 'Add team');
  await fill(page, 'ID', 'platform');
  const sel = await page.evaluate(() => [...document.querySelectorAll('dialog[open] label')].find((l) => l.textContent === 'Customer').htmlFor);
  await page.select(`[id="${sel}"]`, 'acme');
  await fill(page, 'Limit (US$)', '40');
  await fill(page, 'Requests', '100');
  await page.keyboard.press('Enter');
  await waitNoDialog(page);
  await waitText(page, 'table[data-testid=teams]', 'platform');
  const cells = await rowCells('teams', 'platform');
  assert.equal(cells[1], 'acme', JSON.stringify(cells));
  assert.match(cells[2], /\$0 of \$40\.00/, JSON.stringify(cells));
  assert.match(cells[3], /100 req \/ 1m/, JSON.stringify(cells));

  // a bad value the server refuses: its problems list is shown in the dialog
  await clickLabelled('Edit team platform');
  await waitDialog(page, 'Edit team platform');
  const dur = await page.evaluate(() => [...document.querySelectorAll('dialog[open] label')].find((l) => l.textContent === 'Resets every').htmlFor);
  await page.focus(`[id="${dur}"]`);
  await page.evaluate((s) => document.querySelector(s).select(), `[id="${dur}"]`);
  await page.keyboard.type('fortnight');
  await page.keyboard.press('Enter');
  const alert = await waitText(page, 'dialog[open] [role=alert]', /\S/);
  const lis = await page.$$eval('dialog[open] [role=alert] li', (l) => l.map((x) => x.textContent));
  assert.equal(await page.evaluate(() => !!document.querySelector('dialog[open]')), true, `the dialog stays open: ${alert}`);
  assert.ok(lis.length >= 1, `a 400 answer's problems are listed: ${alert}`);
  await screenshot(page, 'teams-problems');
  await page.keyboard.press('Escape');
  await waitNoDialog(page);
  await screenshot(page, 'teams');
});

step('settings: version and workers from /health, pricing saved, config downloaded, a stale write gets 412', async () => {
  await go('settings');
  const health = (await request(gw.port, { path: '/health' })).json();
  const server = await waitText(page, '[data-testid=server]', 'Version');
  assert.ok(server.includes(String(health.version)), `${server} has version ${health.version}`);
  assert.match(server, new RegExp(`Workers${health.workers}`));

  await page.waitForSelector('table[data-testid=pricing]');
  await clickButton(page, 'Add row');
  const n = await page.$$eval('table[data-testid=pricing] tbody tr', (trs) => trs.length);
  await fill(page, `Row ${n} model`, 'mock/gpt-4o-mini', { scope: 'table[data-testid=pricing]' });
  const inputs = await page.$$('table[data-testid=pricing] tbody tr:last-child input');
  await inputs[1].click({ clickCount: 3 });
  await page.keyboard.type('1');
  await inputs[2].click({ clickCount: 3 });
  await page.keyboard.type('2');
  await page.keyboard.press('Enter');
  await waitText(page, '[data-testid=pricing-status]', 'Saved.');
  const pr = await pageFetch(page, '/api/pricing');
  assert.equal(pr.status, 200, JSON.stringify(pr.body));
  assert.deepEqual(pr.body.pricing['mock/gpt-4o-mini'], { input: 1, output: 2 }, JSON.stringify(pr.body));
  await screenshot(page, 'settings');

  // download config: a file with the provider, secrets redacted
  const dir = tempDir('bifrost-ui-dl-');
  const cdp = await page.createCDPSession();
  await cdp.send('Browser.setDownloadBehavior', { behavior: 'allow', downloadPath: dir });
  await clickButton(page, 'Download config.json');
  const file = join(dir, 'bifrost-config.json');
  for (let i = 0; i < 100 && !existsSync(file); i++) await sleep(50);
  assert.ok(existsSync(file), `downloaded ${readdirSync(dir)}`);
  const text = readFileSync(file, 'utf8');
  const cfg = JSON.parse(text);
  assert.ok(cfg.providers.some((p) => p.name === 'mock'), text.slice(0, 400));
  assert.ok(!text.includes(UPSTREAM_KEY), 'the upstream key is redacted in the download');
  assert.ok(!text.includes(keyValue), 'the virtual key value is not in the download');

  // someone else writes (a new revision); the page's next write is stale: 412 → "reload"
  const cur = await pageFetch(page, '/api/pricing');
  const other = await pageFetch(page, '/api/pricing', {
    method: 'PUT', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ pricing: { ...cur.body.pricing, 'mock/gpt-4o': { input: 2.5, output: 10 } } }),
  });
  assert.equal(other.status, 200, JSON.stringify(other.body));
  const inputs2 = await page.$$('table[data-testid=pricing] tbody tr:last-child input');
  await inputs2[1].click({ clickCount: 3 });
  await page.keyboard.type('1.5');
  await page.keyboard.press('Enter');
  await waitText(page, '[data-testid=pricing-error]', 'Reload the page');
  await screenshot(page, 'settings-412');
  await clickButton(page, 'Reload page');
  await page.waitForNavigation({ waitUntil: 'networkidle0' }).catch(() => {});
  await page.waitForSelector('table[data-testid=pricing]');
  const after = await pageFetch(page, '/api/pricing');
  assert.ok(after.body.pricing['mock/gpt-4o'], 'the other write is what the page shows after reloading');
});

step('logout returns to the login page and ends the session', async () => {
  await clickButton(page, 'Log out');
  await page.waitForSelector('form.login-card');
  const s = await pageFetch(page, '/api/session');
  assert.equal(s.body.authenticated, false, JSON.stringify(s.body));
  const p = await pageFetch(page, '/api/providers');
  assert.equal(p.status, 401, JSON.stringify(p.body));
  assert.deepEqual(problems(), [], 'no page errors, console errors or outside requests');
});
