// forgive.js: the "forgive this" panel of the mismatch page. For one
// differing path (or header) it lists the rules the server suggests,
// narrowest first, lets the reviewer pick one and its scope (this endpoint
// or every endpoint), shows the TOML to paste into the config, and asks the
// server to re-judge the stored mismatches under it before anyone adopts it:
// how many groups would vanish, and parity before and after.

import { api, h, fmtCount, fmtFraction, copyButton, errorBox, isAbort, seg } from './api.js';

const SINCE = '7d';

/**
 * Opens the panel in `host` for `pointer` ("" is the whole body,
 * "header:<name>" a header). `load` gives the mismatch's suggestions (one
 * request per page, shared). Focus returns to `opener` when it closes.
 */
export async function openForgive({ host, pointer, opener, load, signal }) {
  const title = pointer.startsWith('header:')
    ? `the ${pointer.slice('header:'.length)} header`
    : (pointer === '' ? 'the whole body' : pointer);
  const close = () => {
    host.replaceChildren();
    host.hidden = true;
    document.removeEventListener('keydown', onKey);
    if (opener && opener.isConnected) opener.focus();
  };
  const onKey = (event) => {
    if (event.key === 'Escape') {
      event.preventDefault();
      close();
    }
  };
  document.removeEventListener('keydown', host.onKeyForgive || (() => {}));
  host.onKeyForgive = onKey;
  document.addEventListener('keydown', onKey);

  const heading = h('h2', { id: 'forgive-title', tabindex: '-1' }, 'Forgive ', h('code', null, title));
  const body = h('div', { class: 'forgive-body' }, h('p', { class: 'muted', role: 'status' }, 'Loading suggestions…'));
  host.hidden = false;
  host.replaceChildren(
    h('div', { class: 'panel-head' }, heading,
      h('button', { type: 'button', class: 'small', onclick: close, 'aria-label': 'Close the forgive panel' }, 'Close')),
    body);
  heading.focus();

  let forgiving;
  try {
    forgiving = await load();
  } catch (e) {
    if (isAbort(e)) return;
    body.replaceChildren(errorBox(e, 'No suggestions'));
    return;
  }
  if (signal && signal.aborted) return;
  const mine = (forgiving.suggestions || []).filter((s) => s.path === pointer);
  if (!mine.length) {
    body.replaceChildren(h('p', null,
      'No rule is suggested for this difference. Suggestions need both bodies whole and parsed as JSON; ',
      'a difference the rules cannot forgive (a wrong value) is one to fix in the candidate.'));
    return;
  }
  body.replaceChildren(panel(forgiving.endpoint, mine, signal));
}

function panel(endpoint, suggestions, signal) {
  let chosen = 0;
  let scope = suggestions[0].endpoint_toml ? 'endpoint' : 'global';
  const snippet = h('pre', { class: 'snippet', 'data-testid': 'rule-snippet', tabindex: '0', 'aria-label': 'The rule as TOML' });
  const impact = h('div', { class: 'impact', role: 'status', 'aria-live': 'polite', 'data-testid': 'impact' });
  const text = () => {
    const s = suggestions[chosen];
    return scope === 'endpoint' && s.endpoint_toml ? s.endpoint_toml : s.global_toml;
  };
  const scopeNote = h('p', { class: 'muted small' });
  const update = () => {
    snippet.textContent = text();
    impact.replaceChildren();
    const s = suggestions[chosen];
    endpointRadio.disabled = !s.endpoint_toml;
    if (!s.endpoint_toml && scope === 'endpoint') {
      scope = 'global';
      globalRadio.checked = true;
      snippet.textContent = text();
    }
    scopeNote.textContent = scope === 'endpoint'
      ? 'Add it to the config file: a [[route]] for this endpoint (merge with an existing route of the same match).'
      : 'Add it under [compare] in the config file: it applies to every endpoint.';
  };

  const rules = h('fieldset', { class: 'rules' }, h('legend', null, 'Rule'),
    suggestions.map((s, i) => h('label', { class: 'radio rule-choice' },
      h('input', {
        type: 'radio', name: 'forgive-rule', value: String(i), checked: i === 0,
        onchange: () => { chosen = i; update(); },
      }),
      ' ', h('code', null, s.rule), ' ', h('code', { class: 'muted' }, s.pattern),
      h('span', { class: 'why' }, s.why))));
  const endpointRadio = h('input', {
    type: 'radio', name: 'forgive-scope', value: 'endpoint', checked: scope === 'endpoint',
    onchange: () => { scope = 'endpoint'; update(); },
  });
  const globalRadio = h('input', {
    type: 'radio', name: 'forgive-scope', value: 'global', checked: scope === 'global',
    onchange: () => { scope = 'global'; update(); },
  });
  const scopes = h('fieldset', { class: 'scopes' }, h('legend', null, 'Scope'),
    h('label', { class: 'radio' }, endpointRadio, ' this endpoint only (', h('code', null, endpoint), ')'),
    h('label', { class: 'radio' }, globalRadio, ' every endpoint'));

  const check = h('button', { type: 'button', class: 'primary', 'data-testid': 'check-impact' }, 'Check impact');
  check.addEventListener('click', async () => {
    const config = text();
    check.disabled = true;
    impact.replaceChildren(h('p', { class: 'muted' }, 'Comparing the stored mismatches again under this rule…'));
    try {
      const result = await api.send('POST', '/rejudge', { config, since: SINCE }, signal);
      if (signal && signal.aborted) return;
      // The answer is for the text sent: drop it if the choice changed since.
      if (config !== text()) return;
      impact.replaceChildren(impactView(result));
    } catch (e) {
      if (isAbort(e)) return;
      impact.replaceChildren(errorBox(e, 'The impact could not be checked'));
    } finally {
      check.disabled = false;
    }
  });

  update();
  return h('div', null, rules, scopes,
    h('div', { class: 'snippet-head' }, h('strong', null, 'TOML'), copyButton('Copy', text, snippet)),
    snippet, scopeNote,
    h('p', null, check, ' ', h('span', { class: 'muted small' }, `re-judges the stored exemplars of the last ${SINCE}; sends nothing to any backend`)),
    impact);
}

function impactView(r) {
  const groups = r.groups || [];
  const by = (fate) => groups.filter((g) => g.fate === fate);
  const vanish = by('vanishes');
  const changes = by('changes');
  const still = by('still_differs');
  return h('div', null,
    h('p', { class: 'impact-line' },
      'This rule would clear ', h('strong', { 'data-testid': 'impact-vanishes' }, fmtCount(vanish.length)),
      ` ${vanish.length === 1 ? 'group' : 'groups'} (parity `,
      h('span', { 'data-testid': 'impact-parity-before' }, fmtFraction(r.parity)), ' → ',
      h('span', { 'data-testid': 'impact-parity-after' }, fmtFraction(r.parity_after)), ').'),
    h('p', { class: 'muted small' },
      `${changes.length} would change (some exemplars match, or they group otherwise), ${still.length} still differ, over ${fmtCount(r.compared)} comparisons. Parity after is an estimate from the exemplars.`),
    vanish.length ? h('ul', { class: 'plain' }, vanish.map((g) => h('li', null,
      h('a', { href: `/ui/groups/${seg(g.fingerprint)}`, class: 'mono' }, g.fingerprint.slice(0, 12)),
      ` ${g.endpoint}, ${fmtCount(g.count)} mismatches`))) : null);
}
