// Headless Chromium for the UI tests (puppeteer-core and the system's chromium).
//
//   const { browser, page, problems } = await openBrowser(gw.url);   // 1280×800, --no-sandbox
//   await fill(page, 'Name', 'mock');                                // the <input> a <label> names
//   await clickButton(page, 'Add provider');                         // a <button> by its text
//   await waitText(page, 'table[data-testid=keys]', 'ui-key');
//   problems()  → page errors, console errors and requests to any other origin, seen so far
//
// Chromium is found at $CHROMIUM_BIN, /usr/bin/chromium or /usr/bin/chromium-browser; when
// none exists the test fails with a message that says how to install it (never a skip).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { REPO } from './gateway.mjs';

export const SCREENSHOTS = join(REPO, 'tests', 'build', 'screenshots');

export function findChromium() {
  const candidates = [process.env.CHROMIUM_BIN, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean);
  const hit = candidates.find((p) => existsSync(p));
  if (!hit) {
    throw new Error(`no Chromium found (looked at ${candidates.join(', ')}): the UI test needs it; install Debian's `
      + 'package with `apt-get install -y chromium`, or set CHROMIUM_BIN to the executable');
  }
  return hit;
}

/**
 * Launch headless Chromium and open a page on `origin`'s domain.
 * Returns { browser, page, problems() }: problems lists uncaught page errors, console errors
 * other than "Failed to load resource" (an API call answered 4xx on purpose), and any request
 * that left the gateway's origin.
 */
export async function openBrowser(origin, { width = 1280, height = 800 } = {}) {
  const executablePath = findChromium();
  const browser = await puppeteer.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
    defaultViewport: { width, height },
  });
  const seen = [];
  const page = await browser.newPage();
  page.on('pageerror', (e) => seen.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) seen.push(`console error: ${m.text()}`);
  });
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(`${origin}/`) && u !== origin && !u.startsWith('blob:') && !u.startsWith('data:')) seen.push(`request outside the gateway: ${u}`);
  });
  page.setDefaultTimeout(10000);
  return { browser, page, problems: () => [...seen] };
}

/** Screenshot into tests/build/screenshots/NAME.png (the directory is made). */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}

/** Type into the input that the <label> (or aria-label) with this exact text names (inside an open dialog first). */
export async function fill(page, label, value, { scope } = {}) {
  const id = await page.evaluate((label, scopeSel) => {
    // the scope: the given element, else the topmost open dialog, else the page
    const root = scopeSel ? document.querySelector(scopeSel) : ([...document.querySelectorAll('dialog[open]')].pop() || document);
    const l = [...root.querySelectorAll('label')].find((x) => x.textContent.trim() === label);
    const el = l ? (l.htmlFor ? document.getElementById(l.htmlFor) : l.querySelector('input,select,textarea'))
      : [...root.querySelectorAll('input,select,textarea')].find((x) => x.getAttribute('aria-label') === label);
    if (!el) return null;
    if (!el.id) el.id = `t-${Math.random().toString(36).slice(2)}`;
    return el.id;
  }, label, scope || null);
  if (!id) throw new Error(`no field labelled ${JSON.stringify(label)} on the page (scope ${scope || 'open dialog or page'})`);
  const sel = `[id="${id}"]`;
  await page.focus(sel);
  await page.evaluate((s) => { const el = document.querySelector(s); el.select?.(); }, sel);
  if (value === '') await page.keyboard.press('Backspace');
  else await page.keyboard.type(String(value));
  return sel;
}

/** Click the first visible <button> (or link) whose text is exactly `text`, optionally inside `within`. */
export async function clickButton(page, text, { within, timeout = 10000, tag = 'button' } = {}) {
  const handle = await page.waitForFunction((text, within, tag) => {
    const root = within ? document.querySelector(within) : ([...document.querySelectorAll('dialog[open]')].pop() || document);
    if (!root) return null;
    return [...root.querySelectorAll(tag)].find((b) => (b.textContent.trim() === text || b.getAttribute('aria-label') === text)
      && !b.disabled && b.offsetParent !== null) || null;
  }, { timeout }, text, within || null, tag);
  const el = handle.asElement();
  await el.click();
  return el;
}

/** Wait until the text of `selector` contains `text` (string or RegExp source); returns that text. */
export async function waitText(page, selector, text, { timeout = 10000 } = {}) {
  const isRe = text instanceof RegExp;
  try {
    const h = await page.waitForFunction((sel, src, isRe) => {
      const el = document.querySelector(sel);
      if (!el) return false;
      const t = el.textContent;
      return (isRe ? new RegExp(src).test(t) : t.includes(src)) ? t : false;
    }, { timeout }, selector, isRe ? text.source : text, isRe);
    return h.jsonValue();
  } catch (e) {
    const now = await page.evaluate((sel) => document.querySelector(sel)?.textContent ?? '(no such element)', selector);
    throw new Error(`waited ${timeout} ms for ${selector} to contain ${isRe ? text : JSON.stringify(text)}; it has ${JSON.stringify(now.slice(0, 800))}`);
  }
}

/** Wait until no <dialog> is open; on timeout the error quotes the dialog (its error box first). */
export async function waitNoDialog(page, timeout = 5000) {
  try {
    await page.waitForFunction(() => !document.querySelector('dialog[open]'), { timeout });
  } catch {
    const what = await page.evaluate(() => {
      const d = document.querySelector('dialog[open]');
      if (!d) return '(closed meanwhile)';
      const alert = d.querySelector('[role=alert]');
      return `${d.querySelector('h2')?.textContent ?? ''}: ${alert ? `error shown: ${alert.textContent}` : d.textContent.slice(0, 400)}`;
    });
    throw new Error(`the dialog stayed open for ${timeout} ms: ${what}`);
  }
}

/** Wait for an open <dialog> whose heading contains `title`; returns its text. */
export async function waitDialog(page, title, timeout = 10000) {
  return waitText(page, 'dialog[open] h2', title, { timeout });
}

/** fetch() from inside the page (its session cookie); { status, headers, body }. */
export function pageFetch(page, path, init = {}) {
  return page.evaluate(async (path, init) => {
    const r = await fetch(path, { credentials: 'same-origin', ...init });
    const text = await r.text();
    let body = text;
    try { body = JSON.parse(text); } catch { /* text */ }
    return { status: r.status, etag: r.headers.get('etag'), body };
  }, path, init);
}
