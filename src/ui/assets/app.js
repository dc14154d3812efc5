// app.js: the review UI's entry point. It asks the server whether a sign-in
// is needed, shows the login form or the page the path names, keeps the
// header (navigation, reviewer name, sign out), and routes with the History
// API so every page has a real, shareable path under /ui/.

import { h, session, ApiError, errorBox, isAbort } from './api.js';
import * as overview from './overview.js';
import * as groups from './groups.js';
import * as group from './group.js';
import * as mismatch from './mismatch.js';

// The reviewer's name is no secret and is asked for once per browser; the
// token, by contrast, lives only in the server's HttpOnly cookie.
const REVIEWER_KEY = 'shadowdiff.reviewer';

const main = document.getElementById('main');
const top = document.getElementById('top');

const state = {
  tokenRequired: false,
  signedIn: false,
  // The page being drawn: aborted when the reader goes elsewhere, so a slow
  // answer never draws over the next page (or over the login form).
  controller: null,
  cleanup: null,
};

// Where storage is refused (some private modes), the name lasts this visit.
let reviewerHere = '';

function reviewer() {
  try {
    return (localStorage.getItem(REVIEWER_KEY) || reviewerHere).trim();
  } catch (_) {
    return reviewerHere;
  }
}

function routeOf(pathname) {
  const path = pathname.replace(/\/+$/, '') || '/';
  let m;
  if (path === '/ui' || path === '/') return { page: overview, params: {} };
  if (path === '/ui/groups') return { page: groups, params: {} };
  if ((m = path.match(/^\/ui\/groups\/([^/]+)$/))) {
    return { page: group, params: { fingerprint: safeDecode(m[1]) } };
  }
  if ((m = path.match(/^\/ui\/mismatches\/([^/]+)$/))) {
    return { page: mismatch, params: { id: safeDecode(m[1]) } };
  }
  return null;
}

function safeDecode(text) {
  try {
    return decodeURIComponent(text);
  } catch (_) {
    return text;
  }
}

/** Goes to a path under /ui/ without reloading. */
function navigate(url, { replace = false } = {}) {
  const target = new URL(url, location.href);
  if (replace) {
    // The same page with other settings (a window chosen): the control
    // used keeps the focus rather than sending it back to the heading.
    history.replaceState(null, '', target);
    render({ refocus: document.activeElement && document.activeElement.id });
  } else {
    history.pushState(null, '', target);
    render({ focus: true });
  }
}

/** Changes the query string of the current page without drawing it again. */
function setQuery(params) {
  const url = new URL(location.href);
  url.search = '';
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(name, value);
  }
  history.replaceState(null, '', url);
}

function stopPage() {
  if (state.controller) state.controller.abort();
  state.controller = null;
  if (state.cleanup) {
    try { state.cleanup(); } catch (_) { /* a page's own tidy-up failing must not block the next */ }
  }
  state.cleanup = null;
}

function drawHeader() {
  top.replaceChildren(h('span', { class: 'brand' }, 'shadowdiff'));
  if (state.tokenRequired && !state.signedIn) return;
  const here = location.pathname;
  const link = (href, label, active) => h('a', {
    href, 'aria-current': active ? 'page' : null,
  }, label);
  const nav = h('nav', { 'aria-label': 'Main' },
    link('/ui/', 'Overview', here === '/ui/' || here === '/ui'),
    link('/ui/groups', 'Groups', here.startsWith('/ui/groups')));
  const input = h('input', {
    id: 'reviewer', type: 'text', autocomplete: 'name', maxlength: '100',
    placeholder: 'your name', value: reviewer(),
  });
  input.addEventListener('change', () => {
    reviewerHere = input.value.trim();
    try {
      localStorage.setItem(REVIEWER_KEY, reviewerHere);
    } catch (_) {
      // Storage refused: reviewerHere keeps it for this visit.
    }
  });
  const who = h('span', { class: 'reviewer' }, h('label', { for: 'reviewer' }, 'Reviewer'), input);
  const parts = [nav, h('span', { class: 'spacer' }), who];
  if (state.tokenRequired) {
    parts.push(h('button', { type: 'button', class: 'small', id: 'sign-out', onclick: signOut }, 'Sign out'));
  }
  top.append(...parts);
}

async function signOut() {
  stopPage();
  try {
    await session.logout();
  } catch (e) {
    // Signed out or not, the page must forget what it showed.
  }
  state.signedIn = false;
  showLogin('Signed out.');
}

/** The login form alone: nothing else, so no data shows before sign-in. */
function showLogin(message) {
  stopPage();
  state.signedIn = false;
  drawHeader();
  document.title = 'Sign in · shadowdiff';
  const token = h('input', {
    id: 'token', type: 'password', autocomplete: 'current-password', required: true,
    spellcheck: 'false', 'aria-describedby': 'login-message',
  });
  const note = h('p', { id: 'login-message', class: 'login-message', role: 'status' }, message || '');
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  // No method, no action and no name on the field: even submitted without
  // this script the token could not land in a URL; with it, it goes only in
  // the POST body below.
  const form = h('form', { id: 'login', class: 'login', 'aria-labelledby': 'login-title', novalidate: true },
    h('h1', { id: 'login-title' }, 'Sign in'),
    h('p', null, 'This report is protected. Enter the report token to review mismatches.'),
    h('label', { for: 'token' }, 'Report token'),
    token, button, note);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = token.value;
    if (!value) {
      note.textContent = 'Enter the token.';
      note.className = 'login-message error';
      token.focus();
      return;
    }
    button.disabled = true;
    note.textContent = 'Signing in…';
    note.className = 'login-message';
    try {
      await session.login(value);
      token.value = '';
      state.signedIn = true;
      render({ focus: true });
    } catch (e) {
      const wrong = e instanceof ApiError && e.status === 401;
      note.textContent = wrong ? 'Wrong token.' : `Could not sign in: ${e.message}`;
      note.className = 'login-message error';
      token.select();
      token.focus();
    } finally {
      button.disabled = false;
    }
  });
  main.replaceChildren(form);
  token.focus();
}

function notFound() {
  document.title = 'Not found · shadowdiff';
  main.replaceChildren(
    h('h1', { tabindex: '-1' }, 'Not found'),
    h('p', null, 'No page at this address. ', h('a', { href: '/ui/' }, 'Go to the overview.')));
}

/** Draws the page the current path names. */
function render({ focus = false, refocus = '' } = {}) {
  stopPage();
  if (state.tokenRequired && !state.signedIn) {
    showLogin();
    return;
  }
  drawHeader();
  const route = routeOf(location.pathname);
  if (!route) {
    notFound();
    return;
  }
  const controller = new AbortController();
  state.controller = controller;
  const ctx = {
    main,
    params: route.params,
    query: new URLSearchParams(location.search),
    signal: controller.signal,
    setTitle: (title) => { document.title = `${title} · shadowdiff`; },
    onCleanup: (fn) => { state.cleanup = fn; },
    // Passed down rather than imported, so no page imports this module.
    navigate,
    setQuery,
    reviewer,
  };
  main.replaceChildren(h('p', { class: 'loading', role: 'status' }, 'Loading…'));
  Promise.resolve()
    .then(() => route.page.render(ctx))
    .then(() => {
      if (controller.signal.aborted) return;
      const again = refocus && document.getElementById(refocus);
      if (again) {
        again.focus();
        return;
      }
      // Screen readers hear the new page; keyboard users start at its top.
      if (focus) {
        const heading = main.querySelector('h1');
        if (heading) {
          heading.setAttribute('tabindex', '-1');
          heading.focus({ preventScroll: true });
        }
      }
    })
    .catch((e) => {
      if (isAbort(e) || controller.signal.aborted) return;
      main.replaceChildren(errorBox(e, 'This page could not be shown'));
    });
}

// Links within /ui/ are followed without a reload; everything else (other
// origins, new tabs, downloads) is left to the browser.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target.closest && event.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !url.pathname.startsWith('/ui')) return;
  if (url.pathname.startsWith('/ui/assets/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url);
});

window.addEventListener('popstate', () => render({ focus: true }));
window.addEventListener('shadowdiff:unauthorized', () => {
  // The server wants a token it did not, or no longer, takes from us.
  state.tokenRequired = true;
  const message = 'Your session has ended. Sign in again.';
  const shown = document.getElementById('login-message');
  // Several calls of one page may fail at once: one form, not one each.
  if (shown && !state.signedIn) {
    shown.textContent = message;
    return;
  }
  showLogin(message);
});

async function boot() {
  try {
    const s = await session.state();
    state.tokenRequired = !!(s && s.token_required);
    state.signedIn = !!(s && s.signed_in);
  } catch (e) {
    if (e && e.name === 'AuthError') return; // the login form is already up
    main.replaceChildren(errorBox(e, 'The server did not answer'));
    return;
  }
  render();
}

boot();
