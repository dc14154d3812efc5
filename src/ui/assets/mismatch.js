// mismatch.js: the /ui/mismatches/<id> page, one stored mismatch side by
// side. The request as the client sent it (and as the candidate got it,
// where a rewrite changed it); both statuses and latencies; headers aligned
// by name; the bodies as an aligned JSON tree (tree.js) or, for other
// kinds, as text with the verdict's diff; the raw bytes on demand; the curl
// commands; and a "forgive this" panel (forgive.js) on every difference.
// Everything stored is hostile: it only ever reaches the page as text.

import { api, h, fmtMs, fmtBytes, timeEl, seg, errorBox, isAbort, copyButton } from './api.js';
import { renderTree, diffSets, ABSENT } from './tree.js';
import { openForgive } from './forgive.js';

// Text shown whole up to this many characters; past it, on request.
const TEXT_CAP = 256 * 1024;
const RAW_CAP = 1024 * 1024;
const HEX_CAP = 64 * 1024;

export async function render(ctx) {
  const { main, params, signal } = ctx;
  const id = params.id;
  ctx.setTitle(`Mismatch #${id}`);
  const m = await api.get(`/mismatches/${seg(id)}`, null, signal);
  if (signal.aborted) return;
  const verdict = m.verdict || {};

  let forgiving = null;
  const load = () => {
    if (!forgiving) {
      forgiving = api.get(`/mismatches/${seg(id)}/forgive`, null, signal);
      forgiving.catch(() => { forgiving = null; });
    }
    return forgiving;
  };
  const panel = h('aside', {
    class: 'forgive-panel', hidden: true, role: 'dialog', 'aria-modal': 'false',
    'aria-labelledby': 'forgive-title', 'data-testid': 'forgive-panel',
  });
  const forgive = (pointer, opener) => openForgive({ host: panel, pointer, opener, load, signal });

  const bodySection = h('section', { 'aria-labelledby': 'body-title' }, h('h2', { id: 'body-title' }, 'Body'));
  const curlBox = h('div', null, h('p', { class: 'muted' }, 'Loading…'));
  main.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' },
      h('a', { href: '/ui/groups' }, 'Groups'), ' / ',
      h('a', { href: `/ui/groups/${seg(m.fingerprint)}`, class: 'mono' }, String(m.fingerprint).slice(0, 12)), ' / ',
      `#${m.id}`),
    h('div', { class: 'page-head' },
      h('h1', null, `Mismatch #${m.id}`),
      h('span', { class: 'mono' }, m.endpoint)),
    facts(m, verdict),
    requestSection(m),
    responsesSection(m, verdict, forgive),
    bodySection,
    h('section', { 'aria-labelledby': 'curl-title' }, h('h2', { id: 'curl-title' }, 'Send it again'), curlBox),
    panel);

  drawBody(bodySection, m, verdict, forgive);
  // The marker comes once the page has been laid out and painted, so a
  // test timing it measures what a reviewer waits for.
  requestAnimationFrame(() => setTimeout(() => {
    if (!signal.aborted) bodySection.append(h('span', { 'data-testid': 'body-ready', hidden: true }));
  }, 0));

  try {
    const curl = await api.get(`/mismatches/${seg(id)}/curl`, null, signal);
    if (signal.aborted) return;
    curlBox.replaceChildren(curlView(curl));
  } catch (e) {
    if (isAbort(e)) return;
    curlBox.replaceChildren(errorBox(e, 'No curl commands'));
  }
}

function facts(m, verdict) {
  const reasons = verdict.reasons || [];
  return h('dl', { class: 'facts' },
    h('dt', null, 'When'), h('dd', null, timeEl(m.at), m.instance ? ` on ${m.instance}` : ''),
    h('dt', null, 'Group'), h('dd', null, h('a', { href: `/ui/groups/${seg(m.fingerprint)}`, class: 'mono' }, m.fingerprint)),
    h('dt', null, 'Served by'), h('dd', null, m.served_by === 'candidate'
      ? 'the candidate (a cutover; the primary was called in the background)'
      : 'the primary'),
    h('dt', null, 'Compared as'), h('dd', null, `${verdict.body_kind || 'unknown'}${verdict.byte_equal ? ', bodies byte-equal' : ''}`),
    reasons.length ? [h('dt', null, 'Reasons'), h('dd', null, h('ul', { class: 'plain' }, reasons.map((r) => h('li', null, r))))] : null);
}

function headerTable(headers, caption) {
  if (!headers || !headers.length) return h('p', { class: 'muted' }, 'No headers.');
  return h('table', { class: 'data kv' },
    h('caption', { class: 'sr-only' }, caption),
    h('tbody', null, headers.map(([name, value]) => h('tr', null,
      h('th', { scope: 'row', class: 'mono' }, name), h('td', { class: 'mono wrap' }, value)))));
}

function requestSection(m) {
  const req = m.request || {};
  const target = `${m.path}${m.query ? `?${m.query}` : ''}`;
  const body = decode(req.body);
  const sent = m.candidate_request;
  return h('section', { 'aria-labelledby': 'request-title' },
    h('h2', { id: 'request-title' }, 'Request'),
    h('p', { class: 'request-line mono', 'data-testid': 'request-line' }, h('strong', null, m.method), ' ', target),
    h('details', { class: 'request-details', open: body.size === 0 ? null : true },
      h('summary', null, `Headers (${(req.headers || []).length}) and body (${fmtBytes(body.size)})`),
      headerTable(req.headers, 'Request headers'),
      body.size ? textBlock(prettyRequestBody(body), 'Request body') : h('p', { class: 'muted' }, 'No body.')),
    sent ? h('details', { class: 'request-details' },
      h('summary', null, 'As the candidate received it (rewritten)'),
      h('p', { class: 'mono' }, `${sent.path}${sent.query ? `?${sent.query}` : ''}`),
      headerTable(sent.headers, 'Headers the candidate received')) : null);
}

function prettyRequestBody(body) {
  if (body.text === null) return hexDump(body.bytes, HEX_CAP);
  try {
    return JSON.stringify(JSON.parse(body.text), null, 2);
  } catch (_) {
    return body.text;
  }
}

/** Headers by lower-cased name, values in order, names in first-seen order. */
function byName(headers) {
  const map = new Map();
  for (const [name, value] of headers || []) {
    const key = name.toLowerCase();
    if (!map.has(key)) map.set(key, []);
    map.get(key).push(value);
  }
  return map;
}

function responsesSection(m, verdict, forgive) {
  const p = m.primary || {};
  const c = m.candidate || {};
  const statusDiffers = p.status !== c.status;
  const ph = byName(p.headers);
  const ch = byName(c.headers);
  const names = [...new Set([...ph.keys(), ...ch.keys()])];
  const differing = new Set((verdict.headers || []).map((x) => x.name.toLowerCase()));
  const cell = (values, testid) => (values
    ? h('td', { class: 'mono wrap', 'data-testid': testid }, values.join('\n'))
    : h('td', { class: 'tabsent', 'data-testid': testid }, 'absent'));
  const rows = names.map((name) => {
    const differs = differing.has(name);
    return h('tr', { 'data-header': name, class: differs ? 'diff' : null },
      h('th', { scope: 'row', class: 'mono' }, name,
        differs ? h('span', { class: 'sr-only' }, ' (differs)') : null,
        differs ? h('button', {
          type: 'button', class: 'forgive small', 'data-forgive': `header:${name}`,
          'aria-label': `Forgive the difference in the ${name} header`,
          onclick: (event) => forgive(`header:${name}`, event.currentTarget),
        }, 'forgive this') : null),
      cell(ph.get(name), 'header-primary'), cell(ch.get(name), 'header-candidate'));
  });
  // A header the verdict names but neither side lists (dropped as it was
  // stored): still shown, from the verdict's own values.
  for (const d of verdict.headers || []) {
    if (names.includes(d.name.toLowerCase())) continue;
    rows.push(h('tr', { 'data-header': d.name.toLowerCase(), class: 'diff' },
      h('th', { scope: 'row', class: 'mono' }, d.name),
      cell(d.primary === null ? null : [d.primary], 'header-primary'),
      cell(d.candidate === null ? null : [d.candidate], 'header-candidate')));
  }
  return h('section', { 'aria-labelledby': 'responses-title' },
    h('h2', { id: 'responses-title' }, 'Responses'),
    h('div', { class: 'table-wrap' }, h('table', { class: 'data sides' },
      h('caption', { class: 'sr-only' }, 'Both responses side by side: status, latency and headers'),
      h('colgroup', null, h('col', { class: 'name-col' }), h('col'), h('col')),
      h('thead', null, h('tr', null, h('th', { scope: 'col' }, ''), h('th', { scope: 'col' }, 'Primary'), h('th', { scope: 'col' }, 'Candidate'))),
      h('tbody', null,
        h('tr', { class: statusDiffers ? 'diff' : null, 'data-testid': 'status-row' },
          h('th', { scope: 'row' }, 'Status', statusDiffers ? h('span', { class: 'sr-only' }, ' (differs)') : null),
          h('td', { 'data-testid': 'status-primary', class: 'num-left' }, String(p.status)),
          h('td', { 'data-testid': 'status-candidate', class: 'num-left' }, String(c.status))),
        h('tr', null,
          h('th', { scope: 'row' }, 'Latency'),
          h('td', { 'data-testid': 'latency-primary' }, fmtMs(p.latency_ms)),
          h('td', { 'data-testid': 'latency-candidate' }, fmtMs(c.latency_ms)))),
      h('tbody', { class: 'headers' }, rows))));
}

/** A stored body: its text when it is UTF-8, else its bytes. */
function decode(body) {
  if (!body || !body.data) return { text: body && body.encoding === 'base64' ? null : '', bytes: new Uint8Array(0), size: 0, truncated: !!(body && body.truncated) };
  if (body.encoding === 'base64') {
    const raw = atob(body.data);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i += 1) bytes[i] = raw.charCodeAt(i);
    return { text: null, bytes, size: bytes.length, truncated: !!body.truncated };
  }
  return { text: body.data, bytes: null, size: new Blob([body.data]).size, truncated: !!body.truncated };
}

/** A body as a tree value: parsed JSON (lines as an array), ABSENT when empty, undefined when not JSON. */
function parsed(body, kind) {
  if (body.text === null) return undefined;
  if (body.text.trim() === '') return ABSENT;
  try {
    if (kind === 'json_lines') {
      return body.text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
    }
    return JSON.parse(body.text);
  } catch (_) {
    return undefined;
  }
}

function drawBody(section, m, verdict, forgive) {
  const kind = verdict.body_kind;
  const pb = decode(m.primary && m.primary.body);
  const cb = decode(m.candidate && m.candidate.body);
  const info = h('p', { class: 'muted small' },
    `Primary ${fmtBytes(pb.size)}${pb.truncated ? ' (cut at the store\'s limit)' : ''}, `
    + `candidate ${fmtBytes(cb.size)}${cb.truncated ? ' (cut at the store\'s limit)' : ''}. `,
    verdict.byte_equal ? 'The decoded bodies are byte-equal.' : '');
  const view = h('div', { class: 'body-view' });
  const raw = h('div', { class: 'body-raw', hidden: true });
  const toggle = h('button', { type: 'button', class: 'small', 'aria-pressed': 'false', 'data-testid': 'raw-toggle' }, 'Show raw bytes');
  toggle.addEventListener('click', () => {
    const on = toggle.getAttribute('aria-pressed') !== 'true';
    toggle.setAttribute('aria-pressed', String(on));
    toggle.textContent = on ? 'Show the comparison' : 'Show raw bytes';
    if (on && !raw.firstChild) raw.append(rawView(pb, cb));
    raw.hidden = !on;
    view.hidden = on;
  });
  section.append(h('div', { class: 'section-tools' }, toggle, info), view, raw);

  const pv = parsed(pb, kind);
  const cv = parsed(cb, kind);
  const jsonish = kind === 'json' || kind === 'json_lines' || kind === 'empty';
  const treeable = jsonish && pv !== undefined && cv !== undefined && !(pv === ABSENT && cv === ABSENT);
  if (treeable) {
    const diff = diffSets(verdict);
    view.append(h('p', { class: 'muted small legend' },
      h('span', { class: 'swatch diff-p' }), ' differs in the primary ',
      h('span', { class: 'swatch diff-c' }), ' differs in the candidate. ',
      'Rows follow JSON Pointers; ▸ opens a subtree (Enter or →).'));
    const host = h('div');
    const tools = h('p', { class: 'diff-nav' });
    view.append(tools, host);
    const tree = renderTree(host, { primary: pv, candidate: cv, diff, onForgive: forgive });
    tools.append(...diffNavigation(tree));
  } else {
    if (jsonish && (pb.truncated || cb.truncated)) {
      view.append(h('p', { class: 'muted' }, 'A body was cut at the store\'s limit, so it cannot be read as JSON: shown as text.'));
    }
    view.append(textSides(pb, cb));
  }
  if (verdict.text_diff) {
    view.append(h('details', { class: 'udiff-box', open: treeable ? null : true },
      h('summary', null, 'Line diff of the normalised bodies'), unifiedDiff(verdict.text_diff)));
  }
  if (Array.isArray(verdict.patch) && verdict.patch.length) {
    view.append(h('details', { class: 'patch-box' },
      h('summary', null, `JSON Patch, primary to candidate (${verdict.patch.length} operations)`),
      h('table', { class: 'data' },
        h('thead', null, h('tr', null, ['op', 'path', 'value'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, verdict.patch.slice(0, 500).map((op) => h('tr', null,
          h('td', null, op.op), h('td', { class: 'mono' }, op.path),
          h('td', { class: 'mono wrap' }, op.value === undefined ? '' : clip(JSON.stringify(op.value), 300))))))));
  }
}

/**
 * "Previous/next difference": in a big body the differing rows are far
 * apart, so these scroll the tree from one to the next and focus it.
 */
function diffNavigation(tree) {
  let at = -1;
  const where = h('span', { class: 'muted small', role: 'status' });
  const rows = () => {
    // One stop per pointer, in the order they appear down the tree.
    const seen = new Set();
    return [...tree.querySelectorAll('.trow.diff')]
      .sort((a, b) => a.offsetTop - b.offsetTop)
      .filter((row) => !seen.has(row.dataset.pointer) && seen.add(row.dataset.pointer));
  };
  const go = (step) => {
    const list = rows();
    if (!list.length) {
      where.textContent = 'no differing row in the body';
      return;
    }
    at = (at + step + list.length) % list.length;
    const row = list[at];
    row.scrollIntoView({ block: 'center' });
    row.focus({ preventScroll: true });
    where.textContent = `difference ${at + 1} of ${list.length}: ${row.dataset.pointer || '(the whole body)'}`;
  };
  const count = rows().length;
  return [
    h('button', { type: 'button', class: 'small', onclick: () => go(-1), disabled: count === 0 }, '↑ Previous difference'), ' ',
    h('button', { type: 'button', class: 'small', 'data-testid': 'next-diff', onclick: () => go(1), disabled: count === 0 }, '↓ Next difference'), ' ',
    where,
  ];
}

const clip = (text, n) => (text.length > n ? `${text.slice(0, n)}…` : text);

/** A long text in a <pre>, the rest on request. */
function textBlock(text, label, cap = TEXT_CAP) {
  const pre = h('pre', { class: 'text-block', tabindex: '0', 'aria-label': label });
  if (text.length <= cap) {
    pre.textContent = text;
    return pre;
  }
  pre.textContent = text.slice(0, cap);
  const more = h('button', {
    type: 'button', class: 'small',
    onclick: () => {
      pre.textContent = text;
      more.remove();
      pre.focus();
    },
  }, `show all ${fmtBytes(text.length)} (shown: the first ${fmtBytes(cap)})`);
  return h('div', null, pre, more);
}

function textSides(pb, cb) {
  const side = (b, name) => h('div', { class: 'side', 'data-side': name },
    h('div', { class: 'tree-head' }, name === 'primary' ? 'Primary' : 'Candidate'),
    b.size === 0 ? h('p', { class: 'muted' }, 'empty body')
      : textBlock(b.text === null ? hexDump(b.bytes, HEX_CAP) : b.text, `${name} body`));
  return h('div', { class: 'text-sides' }, side(pb, 'primary'), side(cb, 'candidate'));
}

function rawView(pb, cb) {
  const side = (b, name) => h('div', { class: 'side', 'data-raw': name },
    h('div', { class: 'tree-head' }, `${name === 'primary' ? 'Primary' : 'Candidate'}, as stored${b.text === null ? ' (not UTF-8: hex)' : ''}`),
    b.size === 0 ? h('p', { class: 'muted' }, 'empty body')
      : textBlock(b.text === null ? hexDump(b.bytes, HEX_CAP) : escapeControls(b.text), `${name} raw body`, RAW_CAP));
  return h('div', { class: 'text-sides' }, side(pb, 'primary'), side(cb, 'candidate'));
}

// Control characters (other than newline and tab) are invisible in a <pre>,
// so the raw view shows them as escapes.
function escapeControls(text) {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

function hexDump(bytes, cap) {
  const n = Math.min(bytes.length, cap);
  const lines = [];
  for (let at = 0; at < n; at += 16) {
    const chunk = bytes.subarray(at, Math.min(at + 16, n));
    const hex = [...chunk].map((b) => b.toString(16).padStart(2, '0')).join(' ');
    const ascii = [...chunk].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${at.toString(16).padStart(8, '0')}  ${hex.padEnd(47)}  |${ascii}|`);
  }
  if (bytes.length > n) lines.push(`… ${bytes.length - n} more bytes`);
  return lines.join('\n');
}

function unifiedDiff(text) {
  const pre = h('pre', { class: 'udiff', tabindex: '0', 'aria-label': 'Line diff' });
  const lines = text.length > TEXT_CAP ? `${text.slice(0, TEXT_CAP)}\n…`.split('\n') : text.split('\n');
  for (const line of lines) {
    const cls = line.startsWith('@@') ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : null;
    pre.append(h('span', { class: cls }, line), '\n');
  }
  return pre;
}

function curlView(curl) {
  const block = (label, text, testid) => {
    const pre = h('pre', { class: 'snippet', 'data-testid': testid, tabindex: '0', 'aria-label': `curl for the ${label}` }, text || '');
    return h('div', { class: 'curl' }, h('div', { class: 'snippet-head' }, h('strong', null, `To the ${label}`), copyButton(`Copy the ${label}'s command`, () => text || '', pre)), pre);
  };
  return h('div', null,
    block('primary', curl.primary, 'curl-primary'),
    block('candidate', curl.candidate, 'curl-candidate'),
    curl.note ? h('p', { class: 'muted small' }, curl.note) : null);
}
