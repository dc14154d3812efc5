// groups.js: the /ui/groups page, every mismatch group in one table, most
// severe first as the API lists them. The groups are fetched once and
// filtered and sorted here, with the state in the query string (endpoint,
// severity, status, q, sort, dir) so a filtered view is a link. Keys: "/" focuses the path filter, j and k move between rows,
// Enter opens the focused one.

import { api, h, fmtCount, timeEl, seg } from './api.js';

const STATUSES = ['open', 'expected', 'bug', 'fixed'];
// Severity classes, most severe first; a group stored before classes has none.
export const SEVERITIES = ['status', 'structure', 'membership', 'value', 'headers'];
// A class's place, groups of none after every class.
const severityRank = (g) => (SEVERITIES.includes(g.severity) ? SEVERITIES.indexOf(g.severity) : SEVERITIES.length);
// Sortable columns and how to compare two groups by each.
const SORTS = {
  endpoint: (a, b) => cmp(a.endpoint, b.endpoint),
  severity: (a, b) => severityRank(a) - severityRank(b),
  status: (a, b) => STATUSES.indexOf(a.status) - STATUSES.indexOf(b.status),
  count: (a, b) => a.count - b.count,
  first_seen: (a, b) => cmp(a.first_seen, b.first_seen),
  last_seen: (a, b) => cmp(a.last_seen, b.last_seen),
};
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** What a group differs in, as one line. */
export function differsIn(g) {
  const parts = [];
  if (g.statuses) parts.push(`status ${g.statuses.primary} → ${g.statuses.candidate}`);
  for (const name of g.headers || []) parts.push(`header ${name}`);
  for (const path of g.paths || []) parts.push(path === '' ? 'whole body' : path);
  return parts.join(', ');
}

/** The groups a filter keeps, in the order a sort gives (the API's when none). */
export function view(all, { endpoint, severity, status, q, sort, dir }) {
  const text = (q || '').toLowerCase();
  const kept = all.filter((g) => (!endpoint || g.endpoint === endpoint)
    && (!severity || g.severity === severity)
    && (!status || g.status === status)
    && (!text || (g.paths || []).some((p) => p.toLowerCase().includes(text))));
  if (!SORTS[sort]) return kept;
  const sign = dir === 'desc' ? -1 : 1;
  // Array.prototype.sort is stable: equal keys keep the API's order.
  return kept.slice().sort((a, b) => sign * SORTS[sort](a, b));
}

export async function render(ctx) {
  const { main, query, signal } = ctx;
  ctx.setTitle('Groups');
  const all = await api.get('/groups', null, signal);
  if (signal.aborted) return;
  const state = {
    endpoint: query.get('endpoint') || '',
    severity: SEVERITIES.includes(query.get('severity')) ? query.get('severity') : '',
    status: STATUSES.includes(query.get('status')) ? query.get('status') : '',
    q: query.get('q') || '',
    sort: SORTS[query.get('sort')] ? query.get('sort') : '',
    dir: query.get('dir') === 'desc' ? 'desc' : 'asc',
  };
  const endpoints = [...new Set(all.map((g) => g.endpoint))].sort();
  if (state.endpoint && !endpoints.includes(state.endpoint)) endpoints.push(state.endpoint);

  const filter = h('input', {
    id: 'filter', type: 'search', value: state.q, placeholder: 'a path, e.g. /items',
    'aria-keyshortcuts': '/', autocomplete: 'off',
  });
  const endpointSelect = h('select', { id: 'endpoint-filter' },
    h('option', { value: '' }, 'all endpoints'),
    endpoints.map((e) => h('option', { value: e, selected: e === state.endpoint }, e)));
  const severitySelect = h('select', { id: 'severity-filter' },
    h('option', { value: '' }, 'any severity'),
    SEVERITIES.map((s) => h('option', { value: s, selected: s === state.severity }, s)));
  const statusSelect = h('select', { id: 'status-filter' },
    h('option', { value: '' }, 'any status'),
    STATUSES.map((s) => h('option', { value: s, selected: s === state.status }, s)));
  const shown = h('p', { class: 'muted', role: 'status', id: 'groups-count' });
  const tbody = h('tbody');
  const headRow = h('tr');
  const table = h('table', { class: 'data groups', 'data-testid': 'groups', 'aria-describedby': 'groups-help' },
    h('caption', { class: 'sr-only' }, 'Mismatch groups'),
    h('thead', null, headRow), tbody);

  const columns = [
    ['fingerprint', 'Group', false],
    ['endpoint', 'Endpoint', true],
    ['severity', 'Severity', true],
    ['status', 'Status', true],
    ['count', 'Count', true],
    ['first_seen', 'First seen', true],
    ['last_seen', 'Last seen', true],
    ['differs', 'Differs in', false],
    ['note', 'Note', false],
  ];

  const save = () => ctx.setQuery({
    endpoint: state.endpoint, severity: state.severity, status: state.status, q: state.q,
    sort: state.sort, dir: state.sort ? state.dir : '',
  });

  const drawHead = () => {
    headRow.replaceChildren(...columns.map(([key, label, sortable]) => {
      if (!sortable) return h('th', { scope: 'col' }, label);
      const active = state.sort === key;
      const sortText = active ? (state.dir === 'asc' ? 'ascending' : 'descending') : null;
      const button = h('button', {
        type: 'button', class: 'sort', 'data-sort': key,
        onclick: () => {
          if (state.sort === key) state.dir = state.dir === 'asc' ? 'desc' : 'asc';
          else {
            state.sort = key;
            // Counts and times read best largest or newest first, classes
            // most severe first.
            state.dir = ['endpoint', 'severity', 'status'].includes(key) ? 'asc' : 'desc';
          }
          save();
          draw();
          headRow.querySelector(`button[data-sort="${key}"]`).focus();
        },
      }, label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (state.dir === 'asc' ? ' ▲' : ' ▼') : ''));
      return h('th', { scope: 'col', 'aria-sort': sortText || 'none' }, button);
    }));
  };

  const open = (g) => ctx.navigate(`/ui/groups/${seg(g.fingerprint)}`);

  const drawBody = () => {
    const rows = view(all, state);
    shown.textContent = `${rows.length} of ${all.length} groups`;
    if (!rows.length) {
      tbody.replaceChildren(h('tr', null, h('td', { colspan: String(columns.length), class: 'muted' },
        all.length ? 'No group matches the filter.' : 'No mismatch groups: every compared response matched (or nothing was compared yet).')));
      return;
    }
    tbody.replaceChildren(...rows.map((g) => {
      const row = h('tr', { 'data-fingerprint': g.fingerprint, tabindex: '0', class: 'clickable' },
        h('td', { 'data-col': 'fingerprint' },
          h('a', { href: `/ui/groups/${seg(g.fingerprint)}`, class: 'mono', tabindex: '-1' }, g.fingerprint.slice(0, 12))),
        h('td', { 'data-col': 'endpoint' }, g.endpoint),
        h('td', { 'data-col': 'severity' }, g.severity
          ? h('span', { class: `badge severity-${SEVERITIES.indexOf(g.severity) < 2 ? 'high' : 'low'}` }, g.severity)
          : h('span', { class: 'muted', title: 'stored before severity classes were kept' }, '–')),
        h('td', { 'data-col': 'status' }, h('span', { class: `badge ${g.status}` }, g.status)),
        h('td', { 'data-col': 'count', class: 'num' }, fmtCount(g.count)),
        h('td', { 'data-col': 'first_seen' }, timeEl(g.first_seen)),
        h('td', { 'data-col': 'last_seen' }, timeEl(g.last_seen)),
        h('td', { 'data-col': 'differs', class: 'differs' }, differsIn(g)),
        h('td', { 'data-col': 'note', class: 'note' }, g.note || ''));
      row.setAttribute('aria-label', `Group ${g.fingerprint.slice(0, 12)}, ${g.endpoint}, ${g.severity || 'no'} severity, ${g.status}, ${g.count} mismatches: press Enter to open`);
      row.addEventListener('keydown', (event) => {
        if (event.key === 'Enter' && event.target === row) {
          event.preventDefault();
          open(g);
        }
      });
      row.addEventListener('click', (event) => {
        // A click on the link is the router's; one elsewhere on the row opens it too.
        if (event.target.closest('a')) return;
        if (window.getSelection && String(window.getSelection())) return;
        open(g);
      });
      return row;
    }));
  };

  const draw = () => {
    drawHead();
    drawBody();
  };

  filter.addEventListener('input', () => {
    state.q = filter.value;
    save();
    drawBody();
  });
  endpointSelect.addEventListener('change', () => {
    state.endpoint = endpointSelect.value;
    save();
    drawBody();
  });
  severitySelect.addEventListener('change', () => {
    state.severity = severitySelect.value;
    save();
    drawBody();
  });
  statusSelect.addEventListener('change', () => {
    state.status = statusSelect.value;
    save();
    drawBody();
  });

  // Page keys, except while typing in a field.
  const onKey = (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const typing = event.target.closest && event.target.closest('input, textarea, select');
    if (event.key === '/' && !typing) {
      event.preventDefault();
      filter.focus();
      filter.select();
      return;
    }
    if (typing) {
      if (event.key === 'Escape' && event.target === filter) filter.blur();
      return;
    }
    if (event.key !== 'j' && event.key !== 'k') return;
    const rows = [...tbody.querySelectorAll('tr[data-fingerprint]')];
    if (!rows.length) return;
    event.preventDefault();
    const at = rows.indexOf(document.activeElement);
    const next = at < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, at + (event.key === 'j' ? 1 : -1)));
    rows[next].focus();
  };
  document.addEventListener('keydown', onKey);
  ctx.onCleanup(() => document.removeEventListener('keydown', onKey));

  draw();
  main.replaceChildren(
    h('div', { class: 'page-head' }, h('h1', null, 'Mismatch groups')),
    h('div', { class: 'filters', role: 'search', 'aria-label': 'Filter groups' },
      h('span', { class: 'field' }, h('label', { for: 'filter' }, 'Path contains'), filter),
      h('span', { class: 'field' }, h('label', { for: 'endpoint-filter' }, 'Endpoint'), endpointSelect),
      h('span', { class: 'field' }, h('label', { for: 'severity-filter' }, 'Severity'), severitySelect),
      h('span', { class: 'field' }, h('label', { for: 'status-filter' }, 'Status'), statusSelect),
      shown),
    h('p', { id: 'groups-help', class: 'muted small' },
      'Press / to filter, j and k to move between rows, Enter to open one. Column titles sort.'),
    h('div', { class: 'table-wrap' }, table));
}
