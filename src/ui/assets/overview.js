// overview.js: the /ui/ page. Per endpoint: parity with its Wilson lower
// bound and the gate's verdict, counts by outcome, latency of both backends
// side by side, byte parity, cost and the serving weight; the totals; and
// parity over time. Every number a test compares carries a data-testid and
// is formatted by api.js's documented formats.

import {
  api, h, fmtCount, fmtFraction, fmtPercent, fmtMs, fmtRatio, fmtWeight, timeEl,
  errorBox, isAbort, ApiError, DASH,
} from './api.js';

const WINDOWS = [['1h', 'last hour'], ['24h', 'last 24 hours'], ['7d', 'last 7 days'], ['14d', 'last 14 days']];
const DEFAULT_WINDOW = '7d';
const SVG = 'http://www.w3.org/2000/svg';

/** A section that failed to load shows why, and the rest of the page stays. */
const settle = (promise) => promise.then((value) => ({ value }), (error) => ({ error }));

export async function render(ctx) {
  const { main, query, signal } = ctx;
  ctx.setTitle('Overview');
  const known = WINDOWS.map(([w]) => w);
  const since = known.includes(query.get('since')) ? query.get('since') : DEFAULT_WINDOW;
  const [summary, gate, rollout, trend, noise] = await Promise.all([
    settle(api.get('/summary', { since }, signal)),
    settle(api.get('/gate', { since, per_endpoint: 'true' }, signal)),
    settle(api.get('/rollout', null, signal)),
    settle(api.get('/trend', { since }, signal)),
    settle(api.get('/noise', null, signal)),
  ]);
  for (const part of [summary, gate, rollout, trend, noise]) {
    if (part.error && isAbort(part.error)) throw part.error;
  }
  if (signal.aborted) return;
  if (summary.error) throw summary.error;
  const s = summary.value;
  const gateByEndpoint = new Map();
  if (gate.value) for (const scope of gate.value.endpoints || []) gateByEndpoint.set(scope.endpoint, scope);
  const weights = new Map();
  if (rollout.value) for (const r of rollout.value.routes || []) weights.set(r.route, r.weight);

  const windowSelect = h('select', { id: 'window' },
    WINDOWS.map(([value, label]) => h('option', { value, selected: value === since }, label)));
  windowSelect.addEventListener('change', () => {
    ctx.navigate(`/ui/?since=${encodeURIComponent(windowSelect.value)}`, { replace: true });
  });

  // Sections that have nothing to say are null: left out, not written as text.
  main.replaceChildren(...[
    h('div', { class: 'page-head' },
      h('h1', null, 'Overview'),
      h('span', { class: 'window' }, h('label', { for: 'window' }, 'Window'), windowSelect,
        h('span', { class: 'muted' }, ' ', timeEl(s.window && s.window.since), ' to ', timeEl(s.window && s.window.until)))),
    gateBanner(gate),
    storeWarning(s),
    totalsSection(s, gate.value),
    trendSection(ctx, trend, since, s),
    endpointsSection(s, gateByEndpoint, weights),
    outcomesSection(s),
    rolloutSection(rollout),
    noiseSection(noise),
  ].filter(Boolean));
}

// What was learned about noise: per endpoint, the paths discounted (with a
// secondary) or proposed as volatile (without one), and the snippet.
function noiseSection(noise) {
  if (noise.error || !noise.value) return null;
  const endpoints = (noise.value.endpoints || []).filter((e) => (e.paths || []).length > 0);
  const head = h('h2', { id: 'noise-title' }, 'Learned noise');
  if (endpoints.length === 0) {
    return h('section', { 'aria-labelledby': 'noise-title' }, head,
      h('p', { class: 'muted', 'data-testid': 'noise-none' }, noise.value.secondary
        ? 'Nothing learned yet: each endpoint needs ' + noise.value.min_samples + ' paired samples.'
        : 'No secondary, and no value that looks volatile yet.'));
  }
  return h('section', { 'aria-labelledby': 'noise-title' }, head,
    endpoints.map((e) => h('div', { class: 'noise-endpoint', 'data-endpoint': e.endpoint },
      h('h3', null, e.endpoint, h('span', { class: 'muted' }, ` (${fmtCount(e.paired)} paired of ${fmtCount(e.compared)} compared)`)),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
        h('thead', null, h('tr', null, ['Path', 'Noise', 'Raw', 'Learned', 'Why'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', null, e.paths.map((p) => h('tr', { 'data-path': p.path },
          h('th', { scope: 'row' }, h('code', null, p.path)),
          h('td', { class: 'num' }, fmtFraction(p.noise_rate)),
          h('td', { class: 'num' }, fmtFraction(p.raw_rate)),
          h('td', null, p.noise ? 'noise' : `looks ${p.volatile}`),
          h('td', { class: 'muted' }, p.why)))))),
      e.suggestion ? h('pre', { class: 'snippet' }, e.suggestion) : null)));
}

function gateBanner(gate) {
  if (gate.error) {
    return h('section', { class: 'banner muted', 'aria-label': 'Gate' },
      errorBox(gate.error, 'The gate could not be decided'));
  }
  const g = gate.value;
  return h('section', { class: `banner verdict-${g.verdict}`, 'aria-label': 'Gate' },
    h('strong', null, 'Gate: ', h('span', { 'data-testid': 'gate-verdict', class: `badge ${g.verdict}` }, g.verdict)),
    ' ', h('span', { class: 'reason' }, g.reason || ''),
    h('span', { class: 'muted' }, ` (min parity ${fmtPercent(g.criteria && g.criteria.min_parity_percent)}, confidence ${g.criteria ? g.criteria.confidence : DASH}, per endpoint)`));
}

function storeWarning(s) {
  const store = s.store;
  if (!store || store.status !== 'failing') return null;
  return h('p', { class: 'error', role: 'alert' },
    `The store is failing (${store.last_error || 'unknown'}) since `, timeEl(store.failing_since),
    `: ${fmtCount(store.unwritten)} rows wait in memory; counts shown may be incomplete.`);
}

function stat(label, testid, value, hint) {
  return h('div', { class: 'stat' },
    h('div', { class: 'stat-label' }, label),
    h('div', { class: 'stat-value', 'data-testid': testid }, value),
    hint ? h('div', { class: 'stat-hint' }, hint) : null);
}

function totalsSection(s, gate) {
  const t = s.totals || {};
  const total = gate && gate.total;
  const l = s.latency_ms || {};
  const p = l.primary || {};
  const c = l.candidate || {};
  return h('section', { 'aria-labelledby': 'totals-title' },
    h('h2', { id: 'totals-title' }, 'Totals'),
    h('div', { class: 'stats' },
      stat('Parity', 'total-parity', fmtFraction(t.parity),
        h('span', null, 'lower bound ', h('span', { 'data-testid': 'total-lower-bound' }, fmtPercent(total && total.lower_bound_percent)))),
      stat('Compared', 'total-compared', fmtCount(t.compared)),
      stat('Matched', 'total-matched', fmtCount(t.matched)),
      stat('Mismatched', 'total-mismatched', fmtCount(t.mismatched)),
      stat('Candidate errors', 'total-candidate-errors', fmtCount(t.candidate_errors)),
      stat('Skipped', 'total-skipped', fmtCount(t.skipped)),
      stat('Dropped', 'total-dropped', fmtCount(t.dropped)),
      stat('Byte parity', 'total-byte-parity', fmtFraction(t.byte_parity)),
      stat('Lost records', 'total-lost-records', fmtCount(s.lost_records)),
      stat('Cost (time)', 'total-cost-ratio', fmtRatio(s.cost && s.cost.time_ratio),
        h('span', null, 'bytes ', h('span', { 'data-testid': 'total-bytes-ratio' }, fmtRatio(s.cost && s.cost.bytes_ratio))))),
    h('p', { class: 'latency-line' }, 'Latency, primary / candidate: ',
      ['p50', 'p95', 'p99'].map((q) => h('span', { class: 'pair' }, `${q} `,
        h('span', { 'data-testid': `total-latency-${q}-primary` }, fmtMs(p[q])), ' / ',
        h('span', { 'data-testid': `total-latency-${q}-candidate` }, fmtMs(c[q]))))));
}

// The trend: one bar per bucket, its height the bucket's parity on a scale
// starting just below the lowest parity seen, since parity near 100% on a
// 0–100 scale would show no difference at all.
function trendSection(ctx, trend, since, s) {
  const holder = h('div', { class: 'trend-holder' });
  const endpoints = (s.endpoints || []).map((e) => e.endpoint);
  const select = h('select', { id: 'trend-endpoint' },
    h('option', { value: '' }, 'all endpoints'),
    endpoints.map((e) => h('option', { value: e }, e)));
  const draw = (result) => {
    if (result.error) {
      const missingRoute = result.error instanceof ApiError && result.error.status === 404;
      holder.replaceChildren(missingRoute
        ? h('p', { class: 'muted' }, 'No trend: this server does not serve one.')
        : errorBox(result.error, 'The trend could not be loaded'));
      return;
    }
    holder.replaceChildren(trendChart(result.value, s.window));
  };
  select.addEventListener('change', async () => {
    holder.setAttribute('aria-busy', 'true');
    const result = await settle(api.get('/trend', { since, endpoint: select.value }, ctx.signal));
    holder.removeAttribute('aria-busy');
    if (ctx.signal.aborted) return;
    draw(result);
  });
  draw(trend);
  return h('section', { 'aria-labelledby': 'trend-title' },
    h('div', { class: 'section-head' },
      h('h2', { id: 'trend-title' }, 'Parity over time'),
      h('span', null, h('label', { for: 'trend-endpoint' }, 'Trend for'), select)),
    holder);
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

function trendChart(trend, window) {
  const points = (trend && trend.points) || [];
  if (!points.length) return h('p', { class: 'muted', 'data-testid': 'trend-empty' }, 'No samples in this window.');
  const judged = (p) => p.matched + p.mismatched + p.candidate_errors;
  const parities = points.filter((p) => judged(p) > 0).map((p) => p.matched / judged(p));
  const low = parities.length ? Math.min(...parities) : 1;
  const floor = Math.max(0, Math.floor(low * 10 - 1e-9) / 10 - (low === 1 ? 0.1 : 0));
  const W = 1000;
  const H = 120;
  const start = Date.parse(window && window.since) || Date.parse(points[0].at);
  const end = Date.parse(window && window.until) || Date.parse(points[points.length - 1].at);
  const span = Math.max(1, end - start);
  const stepMs = Math.max(1, (trend.step_minutes || 1) * 60000);
  // At least 3 of 1000 units (about 4 px), so a lone bucket stays visible.
  const barW = Math.max(3, (stepMs / span) * W - 1);
  const chart = svg('svg', {
    viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'trend', role: 'img',
    'data-testid': 'trend', 'data-points': points.length,
    'aria-label': `Parity per ${trend.step_minutes}-minute bucket, ${points.length} buckets, lowest ${fmtFraction(parities.length ? low : null)}`,
  });
  chart.append(svg('line', { x1: 0, x2: W, y1: 0.5, y2: 0.5, class: 'trend-top' }));
  for (const p of points) {
    const at = Date.parse(p.at);
    const x = Math.min(W - barW, Math.max(0, ((at - start) / span) * W));
    const n = judged(p);
    const parity = n > 0 ? p.matched / n : null;
    const height = parity === null ? 2 : Math.max(1.5, ((parity - floor) / (1 - floor)) * (H - 2));
    const cls = parity === null ? 'bar none' : parity >= 0.999 ? 'bar good' : parity >= 0.99 ? 'bar fair' : 'bar bad';
    const title = `${p.at}: parity ${fmtFraction(parity)}; matched ${p.matched}, mismatched ${p.mismatched}, `
      + `candidate errors ${p.candidate_errors}, skipped ${p.skipped}, dropped ${p.dropped}`;
    chart.append(svg('rect', { x: x.toFixed(1), y: (H - height).toFixed(1), width: barW.toFixed(1), height: height.toFixed(1), class: cls },
      svg('title', null, title)));
  }
  return h('figure', { class: 'trend-figure' }, chart,
    h('div', { class: 'trend-axis muted small', 'aria-hidden': 'true' },
      h('span', null, timeEl(window && window.since)), h('span', null, timeEl(window && window.until))),
    h('figcaption', { class: 'muted' },
      `Each bar: one ${trend.step_minutes}-minute bucket with samples; height from ${fmtFraction(floor)} (bottom) to 100.00% (top). Hover a bar for its counts.`));
}

function endpointsSection(s, gateByEndpoint, weights) {
  const cols = ['Endpoint', 'Gate', 'Parity', 'Compared', 'Matched', 'Mismatched', 'Cand. errors', 'Skipped', 'Dropped',
    'p50 P / C', 'p95 P / C', 'p99 P / C', 'Byte parity', 'Cost', 'Weight'];
  const rows = (s.endpoints || []).map((e) => endpointRow(e, gateByEndpoint.get(e.endpoint), weights.get(e.endpoint)));
  return h('section', { 'aria-labelledby': 'endpoints-title' },
    h('h2', { id: 'endpoints-title' }, 'Endpoints'),
    rows.length === 0
      ? h('p', { class: 'muted' }, 'No samples in this window.')
      : h('div', { class: 'table-wrap' },
        h('table', { class: 'data endpoints', 'data-testid': 'endpoints' },
          h('caption', { class: 'sr-only' }, 'Per endpoint: gate verdict, parity, counts by outcome, latency of primary (P) and candidate (C), byte parity, cost ratio and serving weight'),
          h('thead', null, h('tr', null, cols.map((c, i) => h('th', { scope: 'col', class: i >= 2 ? 'num' : null }, c)))),
          h('tbody', null, rows))),
    h('p', { class: 'muted small' },
      'Parity is matched / (matched + mismatched + candidate errors), with the Wilson lower bound the gate uses (95%). Cost is the candidate\'s mean time over the primary\'s. Latency is time to the response head.'));
}

function num(testid, text) {
  return h('td', { class: 'num', 'data-testid': testid }, text);
}

function endpointRow(e, scope, weight) {
  const l = e.latency_ms || {};
  const p = l.primary || {};
  const c = l.candidate || {};
  const lat = (q) => h('td', { class: 'num lat' },
    h('span', { 'data-testid': `latency-${q}-primary` }, fmtMs(p[q])), h('br'),
    h('span', { 'data-testid': `latency-${q}-candidate`, class: 'cand' }, fmtMs(c[q])));
  const verdict = scope ? scope.verdict : null;
  return h('tr', { 'data-endpoint': e.endpoint },
    h('th', { scope: 'row', class: 'endpoint' },
      h('a', { href: `/ui/groups?endpoint=${encodeURIComponent(e.endpoint)}`, 'data-testid': 'endpoint' }, e.endpoint),
      e.backends && e.backends.candidate === null ? h('span', { class: 'muted small' }, ' (not shadowed)') : null),
    h('td', null, verdict
      ? h('span', { class: `badge ${verdict}`, 'data-testid': 'gate', title: (scope.reasons || []).join('; ') }, verdict)
      : h('span', { 'data-testid': 'gate' }, DASH)),
    h('td', { class: 'num' },
      h('span', { 'data-testid': 'parity' }, fmtFraction(e.parity)), h('br'),
      h('span', { class: 'muted small' }, '≥ ', h('span', { 'data-testid': 'lower-bound' }, fmtPercent(scope && scope.lower_bound_percent)))),
    num('compared', fmtCount(e.compared)),
    num('matched', fmtCount(e.matched)),
    num('mismatched', fmtCount(e.mismatched)),
    num('candidate-errors', fmtCount(e.candidate_errors)),
    num('skipped', fmtCount(e.skipped)),
    num('dropped', fmtCount(e.dropped)),
    lat('p50'), lat('p95'), lat('p99'),
    num('byte-parity', fmtFraction(e.byte_parity)),
    num('cost-ratio', fmtRatio(e.cost && e.cost.time_ratio)),
    num('weight', weight === undefined ? DASH : fmtWeight(weight)));
}

function outcomesSection(s) {
  const endpoints = s.endpoints || [];
  if (!endpoints.length) return null;
  return h('details', { class: 'outcomes' },
    h('summary', null, 'Outcomes by reason'),
    h('div', { class: 'table-wrap' },
      h('table', { class: 'data' },
        h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Endpoint'), h('th', { scope: 'col' }, 'Outcome'), h('th', { scope: 'col' }, 'Count'))),
        h('tbody', null, endpoints.flatMap((e) => Object.entries(e.outcomes || {}).map(([name, n]) =>
          h('tr', null, h('td', null, e.endpoint), h('td', null, name), h('td', { class: 'num' }, fmtCount(n)))))))));
}

function rolloutSection(rollout) {
  const head = h('h2', { id: 'rollout-title' }, 'Cutover');
  if (rollout.error) {
    const e = rollout.error;
    const none = e instanceof ApiError && (e.status === 404 || e.status === 503);
    return h('section', { 'aria-labelledby': 'rollout-title' }, head,
      none ? h('p', { class: 'muted', 'data-testid': 'rollout-none' }, 'No cutover: the primary serves every client.')
        : errorBox(e, 'The cutover could not be loaded'));
  }
  const r = rollout.value;
  const routes = r.routes || [];
  return h('section', { 'aria-labelledby': 'rollout-title' }, head,
    r.killed_by_file ? h('p', { class: 'error' }, 'The kill file exists: every weight is 0 on this instance.') : null,
    h('p', { class: 'muted' }, `Served here since start: primary ${fmtCount(r.served && r.served.primary)}, candidate ${fmtCount(r.served && r.served.candidate)}, fallbacks ${fmtCount(r.served && r.served.fallbacks)}.`),
    routes.length === 0 ? h('p', { class: 'muted' }, 'No routes.') : h('div', { class: 'table-wrap' },
      h('table', { class: 'data' },
        h('thead', null, h('tr', null, ['Route', 'Weight now', 'Configured', 'Stored', 'Plan'].map((c, i) => h('th', { scope: 'col', class: i === 1 || i === 2 ? 'num' : null }, c)))),
        h('tbody', null, routes.map((route) => h('tr', { 'data-route': route.route },
          h('th', { scope: 'row' }, route.route),
          h('td', { class: 'num', 'data-testid': 'route-weight' }, fmtWeight(route.weight)),
          h('td', { class: 'num' }, fmtWeight(route.configured)),
          h('td', null, route.stored
            ? `${fmtWeight(route.stored.weight)}${route.stored.paused ? ', paused' : ''}${route.stored.step !== null ? `, step ${route.stored.step}` : ''}`
            : DASH),
          h('td', null, route.plan
            ? `${route.plan.steps.map(fmtWeight).join(' → ')} (hold ${route.plan.hold_seconds} s, ${route.plan.advance})`
            : DASH)))))));
}
