// api.js: how the review UI talks to the server (one fetch wrapper for the
// report API and the /ui session routes), plus the few helpers every page
// uses to show what comes back: an element builder that only ever writes
// text (stored bodies and headers are hostile), and the number and time
// formats. The formats are a contract: tests/ui/browser.mjs computes the
// same text from the API's JSON, so change both together.

// Every call carries this header: the server refuses unsafe methods from a
// cookie session without it, which a cross-site form cannot add.
const UI_HEADER = { 'x-shadowdiff-ui': '1' };

/** The server said the session is gone or was never there (HTTP 401). */
export class AuthError extends Error {
  constructor(message) {
    super(message || 'sign in needed');
    this.name = 'AuthError';
  }
}

/** Any other refusal, with the API's error shape when it sent one. */
export class ApiError extends Error {
  constructor(status, code, message, parameter) {
    super(message || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = code || '';
    this.parameter = parameter || '';
  }
}

/**
 * One request. `body` is sent as JSON; `accept` picks the answer's type.
 * A 401 anywhere means the cookie is missing or stale: the app listens for
 * the event and shows the login form, whatever page asked.
 */
export async function request(method, url, { body, signal, accept = 'application/json' } = {}) {
  const headers = { ...UI_HEADER, accept };
  const init = { method, credentials: 'same-origin', headers, signal, cache: 'no-store' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (response.status === 401 && !url.startsWith('/ui/login')) {
    window.dispatchEvent(new CustomEvent('shadowdiff:unauthorized'));
    throw new AuthError();
  }
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  if (!response.ok) {
    let code = '';
    let message = `HTTP ${response.status}`;
    let parameter = '';
    if (type.includes('json')) {
      try {
        const shape = await response.json();
        if (shape && shape.error) {
          code = shape.error.code || '';
          message = shape.error.message || message;
          parameter = shape.error.parameter || '';
        }
      } catch (_) {
        // A body that is not the error shape: the status says enough.
      }
    }
    throw new ApiError(response.status, code, message, parameter);
  }
  if (type.includes('json')) return response.json();
  return response.text();
}

/** `/api/v1` + path, with the parameters that have a value. */
export function apiUrl(path, params) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== '') query.set(name, String(value));
  }
  const text = query.toString();
  return `/api/v1${path}${text ? `?${text}` : ''}`;
}

export const api = {
  get: (path, params, signal) => request('GET', apiUrl(path, params), { signal }),
  send: (method, path, body, signal) => request(method, apiUrl(path), { body, signal }),
};

// The session routes live beside the UI, not under /api, and never carry
// the token in their URL: it goes once, in a POST body.
export const session = {
  state: () => request('GET', '/ui/session'),
  login: (token) => request('POST', '/ui/login', { body: { token } }),
  logout: () => request('POST', '/ui/logout'),
};

/** Path segments are escaped so a fingerprint can never leave its segment. */
export const seg = (text) => encodeURIComponent(String(text));

/**
 * Builds an element. Attributes are set with setAttribute (or as event
 * handlers for `on…` functions); children are nodes or text, and text is
 * always a Text node: nothing here parses HTML.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      el.className = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

// Formats. Each is plain and locale-free so the test can compute the same
// text from the API's numbers:
// - counts: the integer's decimal digits, no grouping (1234);
// - a fraction (parity, byte parity): times 100, 2 decimals, then "%"
//   (0.98765 -> "98.77%"), using Number.prototype.toFixed;
// - a value already in percent (the gate's bounds): 2 decimals, then "%";
// - milliseconds: 2 decimals, then " ms" (0.5 -> "0.50 ms");
// - a ratio: 2 decimals, then "×" (1.2345 -> "1.23×");
// - a weight: its number as JSON writes it, then "%" (5 -> "5%");
// - missing values (null, undefined): an em dash, "—".
export const DASH = '—';
const missing = (v) => v === null || v === undefined || Number.isNaN(v);
export const fmtCount = (n) => (missing(n) ? DASH : String(n));
export const fmtFraction = (f) => (missing(f) ? DASH : `${(f * 100).toFixed(2)}%`);
export const fmtPercent = (p) => (missing(p) ? DASH : `${p.toFixed(2)}%`);
export const fmtMs = (ms) => (missing(ms) ? DASH : `${ms.toFixed(2)} ms`);
export const fmtRatio = (r) => (missing(r) ? DASH : `${r.toFixed(2)}×`);
export const fmtWeight = (w) => (missing(w) ? DASH : `${w}%`);

/** An RFC 3339 time as a <time>, shown in UTC without fractions. */
export function timeEl(iso) {
  if (!iso) return document.createTextNode(DASH);
  return h('time', { datetime: iso }, String(iso).replace('T', ' ').replace(/\.\d+/, ''));
}

/** Bytes as "1.2 MB": for sizes only, never for numbers a test compares. */
export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** A short, readable error line for a failed load. */
export function errorBox(error, what) {
  const text = error instanceof ApiError
    ? `${what}: ${error.message}${error.code ? ` (${error.code})` : ''}`
    : `${what}: ${error && error.message ? error.message : error}`;
  return h('p', { class: 'error', role: 'alert' }, text);
}

/**
 * Copies text to the clipboard. The async clipboard needs a secure context,
 * which a plain-HTTP deployment off localhost is not; selecting the text and
 * the older copy command covers that case.
 */
export async function copyText(text, fallbackNode) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) {
    // Fall through to the selection below.
  }
  if (!fallbackNode) return false;
  const range = document.createRange();
  range.selectNodeContents(fallbackNode);
  const selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
  try {
    return document.execCommand('copy');
  } catch (_) {
    return false;
  }
}

/** A copy button for the text of `target`, saying whether it worked. */
export function copyButton(label, getText, target) {
  const status = h('span', { class: 'copy-status', role: 'status' });
  const button = h('button', {
    type: 'button',
    class: 'small',
    onclick: async () => {
      const ok = await copyText(getText(), target);
      status.textContent = ok ? 'copied' : 'selected: press Ctrl+C';
      setTimeout(() => { status.textContent = ''; }, 2500);
    },
  }, label);
  return h('span', { class: 'copy' }, button, status);
}

/** Whether a load was abandoned because the reader went elsewhere. */
export const isAbort = (e) => e && (e.name === 'AbortError' || e instanceof AuthError);
