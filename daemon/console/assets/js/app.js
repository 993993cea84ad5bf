// The console's shell: sign-in, the token's scope (GET /v1/session), hash routes to pages, the nav.
import * as api from './api.js';
import {h, clear, notice} from './dom.js';

// Each page module exports render(root, ctx) -> optional cleanup function.
const routes = [
  [/^\/$/, () => import('./home.js')],
  [/^\/calls$/, () => import('./calls.js')],
  [/^\/calls\/([^/]+)$/, () => import('./call.js')],
  [/^\/chat$/, () => import('./chat.js')],
  [/^\/chat\/([^/]+)$/, () => import('./chat_session.js')],
  [/^\/campaigns$/, () => import('./campaigns.js')],
  [/^\/campaigns\/(\d+)$/, () => import('./campaign.js')],
  [/^\/dnd$/, () => import('./dnd.js')],
  [/^\/agents$/, () => import('./agents.js')],
  [/^\/agents\/([^/]+)$/, () => import('./agent.js')],
  [/^\/box$/, () => import('./box.js')],
];

const page = document.getElementById('page');
let session = null;   // {admin, agents}
let cleanup = null;
let controller = null;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, qs] = raw.split('?');
  return {path, query: new URLSearchParams(qs || '')};
}

function showSignIn(message) {
  session = null;
  document.getElementById('nav').hidden = true;
  document.getElementById('signout').hidden = true;
  clear(page);
  const err = document.getElementById('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  document.getElementById('signin').hidden = false;
  document.getElementById('token').focus();
}

async function loadSession() {
  const res = await api.get('/v1/session');
  session = res.data;
  document.getElementById('signin').hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('signout').hidden = false;
  for (const li of document.querySelectorAll('#nav [data-admin]')) li.hidden = !session.admin;
}

async function route() {
  if (cleanup) { try { cleanup(); } catch { /* a page's cleanup failing must not block the next one */ } }
  cleanup = null;
  if (controller) controller.abort();
  controller = new AbortController();
  if (!session) return;
  const {path, query} = parseHash();
  for (const a of document.querySelectorAll('#nav a')) {
    const href = a.getAttribute('href').slice(1);
    const current = href === '/' ? path === '/' : path === href || path.startsWith(href + '/');
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  window.__osviLastRendered = null;
  window.__osviRenderError = null;
  clear(page);
  const found = routes.find(([re]) => re.test(path));
  if (!found) {
    page.append(h('h1', {}, 'Not found'), h('p', {}, h('a', {href: '#/'}, 'Back to Home')));
    return;
  }
  const params = found[0].exec(path).slice(1).map(decodeURIComponent);
  const ctx = {
    session, params, query, signal: controller.signal,
    // Writes are for admin tokens: a token limited to some agents is a branch system's, read here only.
    canWrite: session.admin,
    navigate: (hash) => { location.hash = hash; },
  };
  try {
    const mod = await found[1]();
    if (ctx.signal.aborted) return;
    const root = h('div', {class: 'page'});
    page.append(root);
    cleanup = (await mod.render(root, ctx)) || null;
    // For tests and tools: the route whose page has finished rendering, and when (User Timing, read by
    // bench/console_load_bench.py as the time to interactive).
    window.__osviLastRendered = path;
    performance.mark(`osvi:rendered:${path}`);
    document.dispatchEvent(new CustomEvent('osvi:rendered', {detail: path}));
  } catch (e) {
    // A page left before it finished: its failure belongs to no page on screen.
    if (e.name === 'AbortError' || ctx.signal.aborted) return;
    if (e instanceof api.ApiError && e.status === 401) { api.setToken(null); showSignIn('The token was refused.'); return; }
    window.__osviRenderError = `${path}: ${e.message || e}`;
    page.append(notice(e.message || String(e)));
  }
}

document.getElementById('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const value = document.getElementById('token').value.trim();
  api.setToken(value);
  try {
    await loadSession();
    document.getElementById('token').value = '';
    await route();
    document.getElementById('main').focus();
  } catch (e) {
    api.setToken(null);
    showSignIn(e instanceof api.ApiError && e.status === 401 ? 'That token is not one of this box\'s.' : e.message);
  }
});

document.getElementById('signout').addEventListener('click', () => {
  api.setToken(null);
  if (controller) controller.abort();
  showSignIn();
});

// After a navigation the keyboard continues from the top of the new page, as after a full page load.
window.addEventListener('hashchange', async () => {
  await route();
  document.getElementById('main').focus({preventScroll: true});
});

(async () => {
  if (!api.token()) {
    showSignIn();
    performance.mark('osvi:rendered:signin');
    return;
  }
  try {
    await loadSession();
    await route();
  } catch (e) {
    api.setToken(null);
    showSignIn(e instanceof api.ApiError && e.status === 401 ? 'The token was refused.' : e.message);
  }
})();
