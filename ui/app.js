// Bifrost console: session, login page, navigation and the hash router.

import {
  html, render, useState, useEffect, useCallback, api, onUnauthorized, loadConfig, ErrorBox, useId,
} from './lib.js';
import { Dashboard } from './dashboard.js';
import { Providers } from './providers.js';
import { Keys } from './keys.js';
import { Teams } from './teams.js';
import { Logs } from './logs.js';
import { Settings } from './settings.js';

const PAGES = [
  { path: 'dashboard', title: 'Dashboard', C: Dashboard },
  { path: 'providers', title: 'Providers', C: Providers },
  { path: 'keys', title: 'Virtual keys', C: Keys },
  { path: 'teams', title: 'Teams & customers', C: Teams },
  { path: 'logs', title: 'Logs', C: Logs },
  { path: 'settings', title: 'Settings', C: Settings },
];

function currentRoute() {
  const m = /^#\/([a-z]+)/.exec(location.hash || '');
  const page = m && PAGES.find((p) => p.path === m[1]);
  return page ? page.path : 'dashboard';
}

function useRoute() {
  const [route, setRoute] = useState(currentRoute);
  useEffect(() => {
    const on = () => setRoute(currentRoute());
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}

function Login({ onDone, notice, passwordLogin }) {
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const uid = useId();
  const pid = useId();
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('/api/session/login', { method: 'POST', body: { username, password }, auth: false });
      await onDone();
    } catch (err) {
      if (err.status === 401) setError('Wrong username or password.');
      else if (err.status === 429) setError('Too many attempts. Wait a minute, then try again.');
      else setError(err);
      setBusy(false);
    }
  };
  if (passwordLogin === false) {
    return html`<main class="login"><div class="card login-card">
      <div class="brand big"><span class="logo" aria-hidden="true"></span>Bifrost</div>
      <h1>Sign-in is not set up</h1>
      <p>This gateway has an admin token but no password login. Set <span class="mono">admin.username</span> and
        <span class="mono">admin.password_hash</span> (from <span class="mono">bifrost hash-password</span>) in config.json
        to use the console, or call the admin API with the token.</p>
    </div></main>`;
  }
  return html`<main class="login">
    <form class="card login-card" onSubmit=${submit} aria-labelledby="login-title">
      <div class="brand big"><span class="logo" aria-hidden="true"></span>Bifrost</div>
      <h1 id="login-title">Sign in</h1>
      ${notice && html`<p class="muted">${notice}</p>`}
      <div class="field">
        <label for=${uid}>Username</label>
        <input id=${uid} name="username" autocomplete="username" required autofocus value=${username}
          onInput=${(e) => setUsername(e.target.value)} />
      </div>
      <div class="field">
        <label for=${pid}>Password</label>
        <input id=${pid} name="password" type="password" autocomplete="current-password" required value=${password}
          onInput=${(e) => setPassword(e.target.value)} />
      </div>
      <${ErrorBox} error=${error} />
      <button type="submit" class="btn primary wide" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
    </form>
  </main>`;
}

function Shell({ session, route, onLogout }) {
  const [menu, setMenu] = useState(false);
  const page = PAGES.find((p) => p.path === route);
  useEffect(() => { setMenu(false); document.title = `${page.title} · Bifrost`; }, [route]);
  useEffect(() => {
    if (!menu) return undefined;
    const esc = (e) => { if (e.key === 'Escape') setMenu(false); };
    document.addEventListener('keydown', esc);
    return () => document.removeEventListener('keydown', esc);
  }, [menu]);
  const Page = page.C;
  return html`<div class="shell">
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/dashboard"><span class="logo" aria-hidden="true"></span>Bifrost</a>
      <button type="button" class="btn menu-btn" aria-expanded=${menu ? 'true' : 'false'} aria-controls="nav"
        onClick=${() => setMenu(!menu)}>Menu</button>
      <nav id="nav" class=${menu ? 'open' : ''} aria-label="Main">
        ${PAGES.map((p) => html`<a href=${`#/${p.path}`} aria-current=${p.path === route ? 'page' : undefined}>${p.title}</a>`)}
      </nav>
      <div class="who">
        ${session.user && html`<span class="muted user">${session.user}</span>`}
        ${session.login_required && html`<button type="button" class="btn small" onClick=${onLogout}>Log out</button>`}
      </div>
    </header>
    <main id="main" tabindex="-1">
      <${Page} key=${route} />
    </main>
  </div>`;
}

function App() {
  const [session, setSession] = useState(null);
  const [error, setError] = useState(null);
  const [notice, setNotice] = useState('');
  const route = useRoute();

  const check = useCallback(async () => {
    try {
      const s = await api('/api/session', { auth: false });
      setError(null);
      setSession(s);
      if (s.authenticated || !s.login_required) {
        try { await loadConfig(); } catch { /* the revision is optional; pages show their own errors */ }
      }
    } catch (e) {
      setError(e);
    }
  }, []);

  useEffect(() => {
    onUnauthorized(() => {
      setNotice('Your session has ended. Sign in again.');
      setSession((s) => ({ ...(s || {}), authenticated: false, login_required: true, user: null }));
    });
    check();
  }, []);

  const logout = async () => {
    try { await api('/api/session/logout', { method: 'POST', auth: false }); } catch { /* gone anyway */ }
    setNotice('');
    await check();
  };

  if (error) {
    return html`<main class="login"><div class="card login-card">
      <h1>Bifrost</h1><${ErrorBox} error=${error} />
      <button type="button" class="btn primary" onClick=${check}>Try again</button>
    </div></main>`;
  }
  if (!session) return html`<p class="boot" role="status">Loading…</p>`;
  if (session.login_required && !session.authenticated) {
    return html`<${Login} notice=${notice} passwordLogin=${session.password_login}
      onDone=${async () => { setNotice(''); await check(); }} />`;
  }
  return html`<${Shell} session=${session} route=${route} onLogout=${logout} />`;
}

render(html`<${App} />`, document.getElementById('app'));
