// group.js: the /ui/groups/<fingerprint> page, one mismatch group. What it
// differs in (body paths, headers, statuses), its triage form (status, note,
// and the reviewer named in the header, sent as `by`), who triaged it when,
// and its most recent stored mismatches, each linking to its own page.

import { api, h, fmtCount, timeEl, seg, errorBox, isAbort, ApiError } from './api.js';
import { differsIn } from './groups.js';

const STATUSES = [
  ['open', 'Open: not looked at yet, or looked at and undecided'],
  ['expected', 'Expected: a harmless difference (the gate can leave it out)'],
  ['bug', 'Bug: the candidate is wrong and must be fixed'],
  ['fixed', 'Fixed: the candidate was fixed; new samples should match'],
];
const RECENT = 20;

export async function render(ctx) {
  const { main, params, signal } = ctx;
  const fp = params.fingerprint;
  ctx.setTitle(`Group ${fp.slice(0, 12)}`);
  let group;
  try {
    group = await api.get(`/groups/${seg(fp)}`, null, signal);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) {
      main.replaceChildren(h('h1', null, 'No such group'),
        h('p', null, `No mismatch group has the fingerprint ${fp}. `, h('a', { href: '/ui/groups' }, 'All groups.')));
      return;
    }
    throw e;
  }
  if (signal.aborted) return;

  const summary = h('div', { class: 'group-summary' });
  const historyBox = h('div', { 'data-testid': 'history' });
  const mismatchesBox = h('div', { class: 'recent' }, h('p', { class: 'muted' }, 'Loading…'));
  const drawGroup = (g) => {
    summary.replaceChildren(groupFacts(g));
    historyBox.replaceChildren(historyTable(g.history || []));
  };
  drawGroup(group);

  main.replaceChildren(
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '/ui/groups' }, 'Groups'), ' / ', fp.slice(0, 12)),
    h('div', { class: 'page-head' }, h('h1', null, 'Group ', h('span', { class: 'mono' }, fp.slice(0, 12)))),
    summary,
    h('div', { class: 'columns' },
      h('section', { 'aria-labelledby': 'triage-title', class: 'card' },
        h('h2', { id: 'triage-title' }, 'Triage'),
        triageForm(ctx, group, (updated) => drawGroup(updated))),
      h('section', { 'aria-labelledby': 'history-title', class: 'card' },
        h('h2', { id: 'history-title' }, 'History'),
        historyBox)),
    h('section', { 'aria-labelledby': 'recent-title' },
      h('h2', { id: 'recent-title' }, 'Recent mismatches'),
      mismatchesBox));

  try {
    const page = await api.get('/mismatches', { fingerprint: fp, limit: RECENT }, signal);
    if (signal.aborted) return;
    mismatchesBox.replaceChildren(recentTable(page.items || [], page.next_cursor));
  } catch (e) {
    if (isAbort(e)) return;
    mismatchesBox.replaceChildren(errorBox(e, 'The mismatches could not be loaded'));
  }
}

function fact(term, testid, ...value) {
  return [h('dt', null, term), h('dd', { 'data-testid': testid }, ...value)];
}

function groupFacts(g) {
  const list = (items, empty) => (items && items.length
    ? h('ul', { class: 'plain mono' }, items.map((p) => h('li', null, p === '' ? '(the whole body)' : p)))
    : h('span', { class: 'muted' }, empty));
  return h('dl', { class: 'facts' },
    fact('Endpoint', 'group-endpoint', g.endpoint),
    fact('Status', 'group-status', h('span', { class: `badge ${g.status}` }, g.status)),
    fact('Note', 'group-note', g.note || h('span', { class: 'muted' }, 'none')),
    fact('Mismatches', 'group-count', fmtCount(g.count)),
    fact('First seen', 'group-first-seen', timeEl(g.first_seen)),
    fact('Last seen', 'group-last-seen', timeEl(g.last_seen)),
    fact('Statuses', 'group-statuses', g.statuses
      ? `primary ${g.statuses.primary}, candidate ${g.statuses.candidate}`
      : h('span', { class: 'muted' }, 'equal')),
    fact('Headers', 'group-headers', list(g.headers, 'none differ')),
    fact('Body paths', 'group-paths', list(g.paths, 'none differ')),
    fact('In short', 'group-differs', differsIn(g) || '—'));
}

function triageForm(ctx, group, onSaved) {
  const fp = group.fingerprint;
  const radios = STATUSES.map(([value, label]) => h('label', { class: 'radio' },
    h('input', { type: 'radio', name: 'triage-status', value, checked: value === group.status }),
    ' ', h('strong', null, value), h('span', { class: 'muted' }, ` ${label.slice(label.indexOf(':'))}`)));
  const note = h('textarea', { id: 'triage-note', rows: '3', maxlength: '2000' });
  note.value = group.note || '';
  const message = h('p', { role: 'status', class: 'form-message', 'data-testid': 'triage-message' });
  const who = h('p', { class: 'muted small' });
  const showWho = () => {
    const name = ctx.reviewer();
    who.textContent = name ? `Saved as ${name}.` : 'Set your name in the Reviewer field at the top so the history says who.';
  };
  showWho();
  const button = h('button', { type: 'submit', class: 'primary' }, 'Save triage');
  const form = h('form', { class: 'triage', 'data-testid': 'triage-form' },
    h('fieldset', null, h('legend', null, 'Status'), radios),
    h('label', { for: 'triage-note' }, 'Note'), note, who, button, message);
  form.addEventListener('focusin', showWho);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const chosen = form.querySelector('input[name="triage-status"]:checked');
    if (!chosen) {
      message.textContent = 'Choose a status.';
      return;
    }
    button.disabled = true;
    message.textContent = 'Saving…';
    message.className = 'form-message';
    try {
      const body = { status: chosen.value, note: note.value };
      const by = ctx.reviewer();
      if (by) body.by = by;
      await api.send('PATCH', `/groups/${seg(fp)}`, body, ctx.signal);
      // The PATCH answers the group alone; its history comes with GET.
      const updated = await api.get(`/groups/${seg(fp)}`, null, ctx.signal);
      if (ctx.signal.aborted) return;
      onSaved(updated);
      message.textContent = `Saved: ${chosen.value}.`;
    } catch (e) {
      if (isAbort(e)) return;
      message.textContent = `Not saved: ${e.message}`;
      message.className = 'form-message error';
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function historyTable(history) {
  if (!history.length) return h('p', { class: 'muted' }, 'Never triaged.');
  return h('table', { class: 'data history' },
    h('caption', { class: 'sr-only' }, 'Triage history, newest first'),
    h('thead', null, h('tr', null, ['When', 'Status', 'By', 'Note'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', null, history.map((entry) => h('tr', { 'data-testid': 'history-entry' },
      h('td', { 'data-col': 'at' }, timeEl(entry.at)),
      h('td', { 'data-col': 'status' }, h('span', { class: `badge ${entry.status}` }, entry.status)),
      h('td', { 'data-col': 'by' }, entry.by || h('span', { class: 'muted' }, 'unnamed')),
      h('td', { 'data-col': 'note', class: 'note' }, entry.note || '')))));
}

function recentTable(items, more) {
  if (!items.length) {
    return h('p', { class: 'muted' }, 'No stored mismatch (exemplars are kept up to 20 per group and hour, and pruned with the retention).');
  }
  return h('div', null,
    h('table', { class: 'data', 'data-testid': 'recent-mismatches' },
      h('caption', { class: 'sr-only' }, 'The newest stored mismatches of this group'),
      h('thead', null, h('tr', null, ['Mismatch', 'When', 'Request', 'Status P / C', 'Differs at'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', null, items.map((m) => h('tr', { 'data-mismatch': String(m.id) },
        h('td', null, h('a', { href: `/ui/mismatches/${seg(m.id)}` }, `#${m.id}`)),
        h('td', null, timeEl(m.at)),
        h('td', { class: 'mono' }, `${m.method} ${m.path}`),
        h('td', { class: m.primary_status !== m.candidate_status ? 'num differs-cell' : 'num' }, `${m.primary_status} / ${m.candidate_status}`),
        h('td', { class: 'mono small' }, (m.paths || []).slice(0, 5).join(', ') + ((m.paths || []).length > 5 ? ', …' : '')))))),
    more ? h('p', { class: 'muted small' }, `Showing the newest ${items.length}.`) : null);
}
