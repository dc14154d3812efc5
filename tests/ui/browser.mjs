// tests/ui/browser.mjs: the review UI in a real browser against the real
// binary. Two Node backends with known differences (a type change and a
// dropped field, a status difference, a header difference, a 5 MB body
// differing in two deep leaves) sit behind `shadowdiff serve`; after known
// traffic, Chromium (driven by playwright-core) signs in, and every page is
// held to what the API answers: numbers, groups, highlighted pointers,
// triage history, rule snippets and their impact. Run by tests/ui.sh, which
// sets SHADOWDIFF_BIN, CHROMIUM and SHADOWDIFF_UI_SCREENSHOTS.

import { chromium } from 'playwright-core';
import { spawn, execFile } from 'node:child_process';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { bigBody, startBackend } from './backends.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');
const BIN = path.resolve(repo, process.env.SHADOWDIFF_BIN || 'target/debug/shadowdiff');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.resolve(repo, process.env.SHADOWDIFF_UI_SCREENSHOTS || 'target/ui-screenshots');
// The 5 MB mismatch must be on screen within this, from navigation to the
// tree's ready marker, on a slow 2-core CI machine with a debug binary; a
// node must open within EXPAND_BUDGET_MS.
const BIG_BUDGET_MS = 5000;
const EXPAND_BUDGET_MS = 1000;
const TOKEN = crypto.randomBytes(24).toString('hex');
const REVIEWER = 'Ada Reviewer';

const failures = [];
const notes = [];
const cleanups = [];
const log = (...args) => console.log('[ui]', ...args);

function assert(ok, message) {
  if (!ok) throw new Error(message);
}

function assertEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

/** Runs one named check; a failure is recorded and the next check still runs. */
async function step(name, fn) {
  const started = Date.now();
  try {
    await fn();
    log(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    failures.push(`${name}: ${e && e.stack ? e.stack : e}`);
    log(`FAIL ${name}: ${e && e.message ? e.message : e}`);
  }
}


// ------------------------------------------------------------------ binary

/** `shadowdiff serve` on port 0, its addresses read from its log. */
function startShadowdiff(primary, candidate, dir) {
  const args = [
    '--log', 'shadowdiff=trace,info', 'serve',
    '--listen', '127.0.0.1:0', '--report-listen', '127.0.0.1:0',
    '--primary', primary, '--candidate', candidate,
    '--database-url', `sqlite://${path.join(dir, 's.db')}`,
    '--sample-rate', '1', '--store-body-bytes', String(8 * 1024 * 1024),
    '--drain-timeout-ms', '3000',
  ];
  const env = { PATH: process.env.PATH, SHADOWDIFF_REPORT_TOKEN: TOKEN };
  const child = spawn(BIN, args, { cwd: dir, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const state = { child, log: '', exited: null };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { state.log += chunk; });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => { state.exited = { code, signal }; resolve(); }));
  state.stop = async () => {
    if (!state.exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15000);
      await exited;
      clearTimeout(timer);
    }
  };
  cleanups.push(state.stop);
  const plain = () => state.log.replace(/\x1b\[[0-9;]*m/g, '');
  const address = (message) => {
    const line = plain().split('\n').find((l) => l.includes(message));
    const m = line && line.match(/address=(\S+)/);
    return m ? m[1] : null;
  };
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30000;
    const poll = () => {
      const proxy = address('shadowdiff listening');
      const report = address('report API listening');
      if (proxy && report) return resolve({ ...state, proxy: `http://${proxy}`, report: `http://${report}`, plain });
      if (state.exited) return reject(new Error(`shadowdiff exited (${JSON.stringify(state.exited)}) before listening:\n${plain()}`));
      if (Date.now() > deadline) return reject(new Error(`shadowdiff did not say where it listens within 30 s:\n${plain()}`));
      setTimeout(poll, 50);
    };
    poll();
  });
}

function run(file, args) {
  return new Promise((resolve) => {
    execFile(file, args, { env: { PATH: process.env.PATH } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

// --------------------------------------------------------------- the API

let REPORT = '';
async function api(method, p, body) {
  const response = await fetch(`${REPORT}/api/v1${p}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${p}: ${response.status} ${text.slice(0, 500)}`);
  return JSON.parse(text);
}
const get = (p) => api('GET', p);

// The UI's formats (see the comment in src/ui/assets/api.js), computed
// independently here from the API's numbers.
const DASH = '—';
const missing = (v) => v === null || v === undefined;
const fmt = {
  count: (n) => (missing(n) ? DASH : String(n)),
  fraction: (f) => (missing(f) ? DASH : `${(f * 100).toFixed(2)}%`),
  percent: (p) => (missing(p) ? DASH : `${p.toFixed(2)}%`),
  ms: (v) => (missing(v) ? DASH : `${v.toFixed(2)} ms`),
  ratio: (r) => (missing(r) ? DASH : `${r.toFixed(2)}×`),
  weight: (w) => (missing(w) ? DASH : `${w}%`),
};

/** The pointers a side should highlight, from the verdict as the API serves it. */
function expectedHighlights(verdict) {
  const primary = new Set();
  const candidate = new Set();
  if (Array.isArray(verdict.patch)) {
    for (const op of verdict.patch) {
      if (op.op === 'replace' || op.op === 'remove') primary.add(op.path);
      if (op.op === 'replace' || op.op === 'add') candidate.add(op.path);
    }
  } else {
    for (const p of verdict.paths) { primary.add(p); candidate.add(p); }
  }
  return { primary: [...primary].sort(), candidate: [...candidate].sort() };
}

async function highlighted(page) {
  return page.evaluate(() => {
    const of = (side) => [...document.querySelectorAll(`[data-side="${side}"] .trow.diff`)]
      .map((el) => el.getAttribute('data-pointer')).sort();
    return { primary: of('primary'), candidate: of('candidate') };
  });
}

// ------------------------------------------------------------------- main

async function main() {
  assert(fs.existsSync(BIN), `no binary at ${BIN}: build it with cargo build --bin shadowdiff`);
  assert(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM}: install Debian's chromium or set CHROMIUM`);
  fs.mkdirSync(SHOTS, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'shadowdiff-ui-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));

  const big = bigBody();
  assert(big.primary.length >= 5_000_000, `the big body is only ${big.primary.length} bytes`);
  const primary = await startBackend('primary', big, (stop) => cleanups.push(stop));
  const candidate = await startBackend('candidate', big, (stop) => cleanups.push(stop));
  const sd = await startShadowdiff(primary, candidate, dir);
  REPORT = sd.report;
  log(`shadowdiff: proxy ${sd.proxy}, report ${sd.report}; big body ${(big.primary.length / 1e6).toFixed(1)} MB`);

  // Known traffic, one request at a time (the order does not matter).
  const targets = [];
  for (let id = 1; id <= 6; id += 1) targets.push(`/api/users/${id}`);
  for (let id = 1; id <= 8; id += 1) targets.push(`/api/orders/${id}`);
  for (let i = 0; i < 3; i += 1) targets.push('/api/catalog');
  for (let i = 0; i < 5; i += 1) targets.push('/api/ping');
  targets.push('/api/page', '/api/blob', '/api/big');
  for (const t of targets) {
    const r = await fetch(sd.proxy + t);
    await r.arrayBuffer();
    assert(r.status === 200, `the proxy answered ${r.status} to ${t}`);
  }

  // Until every sample is counted and every group has its exemplar.
  const deadline = Date.now() + 90000;
  let groups = [];
  for (;;) {
    const s = await get('/summary?since=7d');
    const t = s.totals;
    groups = await get('/groups');
    const settled = t.compared + t.candidate_errors + t.skipped + t.dropped === targets.length;
    const endpoints = new Set(groups.map((g) => g.endpoint));
    const all = ['GET /api/users/{id}', 'GET /api/orders/{id}', 'GET /api/catalog', 'GET /api/page', 'GET /api/blob', 'GET /api/big']
      .every((e) => endpoints.has(e));
    if (settled && all) {
      const pages = await Promise.all(groups.map((g) => get(`/mismatches?fingerprint=${encodeURIComponent(g.fingerprint)}&limit=1`)));
      if (pages.every((p) => p.items.length > 0)) break;
    }
    if (Date.now() > deadline) {
      throw new Error(`the store did not settle: totals ${JSON.stringify(t)}, groups ${JSON.stringify(groups.map((g) => g.endpoint))}`);
    }
    await new Promise((r) => setTimeout(r, 300));
  }
  const groupOf = (endpoint) => groups.find((g) => g.endpoint === endpoint);
  const firstMismatch = async (g) => (await get(`/mismatches?fingerprint=${encodeURIComponent(g.fingerprint)}&limit=1`)).items[0].id;
  const users = groupOf('GET /api/users/{id}');
  const orders = groupOf('GET /api/orders/{id}');
  const catalog = groupOf('GET /api/catalog');
  const bigGroup = groupOf('GET /api/big');
  const usersId = await firstMismatch(users);
  const ordersId = await firstMismatch(orders);
  const catalogId = await firstMismatch(catalog);
  const bigId = await firstMismatch(bigGroup);
  const pageId = await firstMismatch(groupOf('GET /api/page'));
  const blobId = await firstMismatch(groupOf('GET /api/blob'));
  log(`traffic stored: ${groups.length} groups`);

  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  cleanups.unshift(() => browser.close());
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  const requests = [];
  context.on('request', (r) => requests.push(r.url()));
  const page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content.Security.Policy|Refused to/i.test(m.text())) pageErrors.push(m.text());
  });
  page.on('dialog', (d) => { pageErrors.push(`a dialog opened: ${d.message()}`); d.dismiss(); });
  const base = sd.report;
  // Whole pages, but for those whose point is a scrolled part (the tree,
  // the forgive drawer): the 1366x768 screen as a reviewer sees it.
  const shot = (name, fullPage = true) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage });
  const text = (selector) => page.locator(selector).first().textContent();

  await step('1 login: no data before sign-in, a wrong token refused, the right one accepted', async () => {
    await page.goto(`${base}/ui/groups`);
    await page.waitForSelector('form#login');
    const shown = await page.locator('body').innerText();
    for (const word of ['/api/users', '/api/orders', '/api/catalog', 'Mismatch groups', users.fingerprint.slice(0, 12)]) {
      assert(!shown.includes(word), `the login page shows ${JSON.stringify(word)}`);
    }
    assertEqual(await page.locator('[data-testid]').count(), 0, 'elements with data before sign-in');
    assert(!requests.some((u) => u.includes('/api/v1/')), 'the page called the API before sign-in');
    assertEqual(await page.getAttribute('#token', 'type'), 'password', 'the token field type');
    await shot('login');
    await page.fill('#token', 'not-the-token');
    await page.click('form#login button[type="submit"]');
    await page.waitForFunction(() => /wrong token/i.test(document.getElementById('login-message').textContent));
    assertEqual(await page.locator('[data-testid]').count(), 0, 'elements with data after a wrong token');
    await page.fill('#token', TOKEN);
    await page.click('form#login button[type="submit"]');
    await page.waitForSelector('table[data-testid="groups"]');
    assert(new URL(page.url()).pathname === '/ui/groups', `after sign-in the page is ${page.url()}`);
    const cookies = await context.cookies();
    assert(cookies.length > 0 && cookies.every((c) => c.httpOnly), `cookies not all HttpOnly: ${JSON.stringify(cookies.map((c) => [c.name, c.httpOnly]))}`);
    assert(cookies.every((c) => !c.value.includes(TOKEN)), 'a cookie holds the token');
  });

  await step('2 overview: every marked number equals the API', async () => {
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('[data-testid="total-compared"]');
    await page.waitForSelector('[data-testid="trend"], [data-testid="trend-empty"]');
    const [s, gate, rollout, trend] = await Promise.all([
      get('/summary?since=7d'), get('/gate?since=7d&per_endpoint=true'),
      get('/rollout').catch(() => null), get('/trend?since=7d'),
    ]);
    const t = s.totals;
    const expected = {
      '|gate-verdict': gate.verdict,
      '|total-parity': fmt.fraction(t.parity),
      '|total-lower-bound': fmt.percent(gate.total.lower_bound_percent),
      '|total-compared': fmt.count(t.compared),
      '|total-matched': fmt.count(t.matched),
      '|total-mismatched': fmt.count(t.mismatched),
      '|total-candidate-errors': fmt.count(t.candidate_errors),
      '|total-skipped': fmt.count(t.skipped),
      '|total-dropped': fmt.count(t.dropped),
      '|total-byte-parity': fmt.fraction(t.byte_parity),
      '|total-lost-records': fmt.count(s.lost_records),
      '|total-cost-ratio': fmt.ratio(s.cost.time_ratio),
      '|total-bytes-ratio': fmt.ratio(s.cost.bytes_ratio),
    };
    for (const q of ['p50', 'p95', 'p99']) {
      expected[`|total-latency-${q}-primary`] = fmt.ms(s.latency_ms.primary && s.latency_ms.primary[q]);
      expected[`|total-latency-${q}-candidate`] = fmt.ms(s.latency_ms.candidate && s.latency_ms.candidate[q]);
    }
    const weights = new Map(((rollout && rollout.routes) || []).map((r) => [r.route, r.weight]));
    for (const e of s.endpoints) {
      const scope = gate.endpoints.find((g) => g.endpoint === e.endpoint);
      const k = (id) => `${e.endpoint}|${id}`;
      Object.assign(expected, {
        [k('endpoint')]: e.endpoint,
        [k('gate')]: scope ? scope.verdict : DASH,
        [k('parity')]: fmt.fraction(e.parity),
        [k('lower-bound')]: fmt.percent(scope && scope.lower_bound_percent),
        [k('compared')]: fmt.count(e.compared),
        [k('matched')]: fmt.count(e.matched),
        [k('mismatched')]: fmt.count(e.mismatched),
        [k('candidate-errors')]: fmt.count(e.candidate_errors),
        [k('skipped')]: fmt.count(e.skipped),
        [k('dropped')]: fmt.count(e.dropped),
        [k('byte-parity')]: fmt.fraction(e.byte_parity),
        [k('cost-ratio')]: fmt.ratio(e.cost && e.cost.time_ratio),
        [k('weight')]: weights.has(e.endpoint) ? fmt.weight(weights.get(e.endpoint)) : DASH,
      });
      for (const q of ['p50', 'p95', 'p99']) {
        expected[k(`latency-${q}-primary`)] = fmt.ms(e.latency_ms.primary && e.latency_ms.primary[q]);
        expected[k(`latency-${q}-candidate`)] = fmt.ms(e.latency_ms.candidate && e.latency_ms.candidate[q]);
      }
    }
    const shown = Object.fromEntries(await page.$$eval('[data-testid]', (els) => els
      .filter((el) => el.closest('[data-endpoint]') || el.closest('.stats, .latency-line, .banner'))
      .map((el) => [`${el.closest('[data-endpoint]') ? el.closest('[data-endpoint]').getAttribute('data-endpoint') : ''}|${el.getAttribute('data-testid')}`, el.textContent.trim()])));
    for (const [key, value] of Object.entries(expected)) assertEqual(shown[key], value, `overview ${key}`);
    const extra = Object.keys(shown).filter((key) => !(key in expected));
    assertEqual(extra, [], 'overview numbers the test does not check');
    assertEqual(await page.locator('[data-endpoint]').count(), s.endpoints.length, 'endpoint rows');
    // Buckets are aligned to the window's start, which moves with the clock:
    // if a boundary fell between the page's request and ours, ask again.
    let points = trend.points.length;
    if (Number(await page.getAttribute('[data-testid="trend"]', 'data-points')) !== points) {
      await page.reload();
      await page.waitForSelector('[data-testid="trend"]');
      points = (await get('/trend?since=7d')).points.length;
    }
    assertEqual(Number(await page.getAttribute('[data-testid="trend"]', 'data-points')), points, 'trend points');
    assertEqual(await page.locator('svg[data-testid="trend"] rect').count(), points, 'trend bars');
    notes.push(`overview checked ${Object.keys(expected).length} numbers`);
    await shot('overview');
  });

  await step('3 groups: rows equal the API, sort and filter work, a link opens the group', async () => {
    await page.goto(`${base}/ui/groups`);
    await page.waitForSelector('table[data-testid="groups"] tbody tr[data-fingerprint]');
    const all = await get('/groups');
    const rows = () => page.$$eval('table[data-testid="groups"] tbody tr[data-fingerprint]', (trs) => trs.map((tr) => ({
      fingerprint: tr.getAttribute('data-fingerprint'),
      endpoint: tr.querySelector('[data-col="endpoint"]').textContent,
      severity: tr.querySelector('[data-col="severity"]').textContent,
      status: tr.querySelector('[data-col="status"]').textContent,
      count: tr.querySelector('[data-col="count"]').textContent,
    })));
    const asRows = (list) => list.map((g) => ({
      fingerprint: g.fingerprint, endpoint: g.endpoint, severity: g.severity || '–', status: g.status, count: String(g.count),
    }));
    assertEqual(await rows(), asRows(all), 'groups in the API order');
    // The API lists the most severe first; a number turned string is structure.
    const SEVERITIES = ['status', 'structure', 'membership', 'value', 'headers'];
    const rank = (g) => (SEVERITIES.includes(g.severity) ? SEVERITIES.indexOf(g.severity) : SEVERITIES.length);
    assertEqual(all.map(rank), all.map(rank).sort((a, b) => a - b), 'the API lists groups most severe first');
    assertEqual([users.severity, orders.severity, catalog.severity], ['structure', 'status', 'headers'], 'classes');
    await shot('groups');
    await page.click('button[data-sort="count"]');
    const byCount = all.slice().sort((a, b) => b.count - a.count);
    assertEqual(await rows(), asRows(byCount), 'groups sorted by count, most first');
    await page.click('button[data-sort="count"]');
    assertEqual(await rows(), asRows(all.slice().sort((a, b) => a.count - b.count)), 'groups sorted by count, fewest first');
    assertEqual(await page.getAttribute('th:has(button[data-sort="count"])', 'aria-sort'), 'ascending', 'aria-sort');
    await page.click('button[data-sort="endpoint"]');
    const byEndpoint = all.slice().sort((a, b) => (a.endpoint < b.endpoint ? -1 : a.endpoint > b.endpoint ? 1 : 0));
    assertEqual(await rows(), asRows(byEndpoint), 'groups sorted by endpoint');
    await page.click('button[data-sort="severity"]');
    assertEqual(await rows(), asRows(all.slice().sort((a, b) => rank(a) - rank(b))), 'groups sorted by severity, most severe first');
    await page.click('button[data-sort="severity"]');
    assertEqual(await rows(), asRows(all.slice().sort((a, b) => rank(b) - rank(a))), 'groups sorted by severity, least severe first');
    await page.click('button[data-sort="endpoint"]');
    await page.selectOption('#severity-filter', 'structure');
    const kept = await page.$$eval('table[data-testid="groups"] tbody tr[data-fingerprint]', (trs) => trs.map((tr) => tr.getAttribute('data-fingerprint')).sort());
    assertEqual(kept, (await get('/groups?severity=structure')).map((g) => g.fingerprint).sort(), 'filtered by severity');
    assertEqual(new URL(page.url()).searchParams.get('severity'), 'structure', 'the severity filter in the query string');
    await page.selectOption('#severity-filter', '');
    await page.selectOption('#endpoint-filter', 'GET /api/orders/{id}');
    const fps = async () => (await rows()).map((r) => r.fingerprint).sort();
    assertEqual(await fps(), (await get(`/groups?endpoint=${encodeURIComponent('GET /api/orders/{id}')}`)).map((g) => g.fingerprint).sort(), 'filtered by endpoint');
    await page.selectOption('#endpoint-filter', '');
    await page.selectOption('#status-filter', 'open');
    assertEqual(await fps(), (await get('/groups?status=open')).map((g) => g.fingerprint).sort(), 'filtered by status');
    await page.selectOption('#status-filter', '');
    await page.fill('#filter', 'price');
    assertEqual(await fps(), all.filter((g) => g.paths.some((p) => p.includes('price'))).map((g) => g.fingerprint).sort(), 'filtered by path text');
    const url = new URL(page.url());
    assertEqual([url.searchParams.get('q'), url.searchParams.get('sort'), url.searchParams.get('dir')], ['price', 'endpoint', 'asc'], 'the state in the query string');
    await page.goto(url.href);
    await page.waitForSelector('table[data-testid="groups"] tbody tr[data-fingerprint]');
    assertEqual(await page.inputValue('#filter'), 'price', 'the filter after a reload');
    assertEqual(await fps(), [users.fingerprint], 'rows after a reload');
    await page.click(`tr[data-fingerprint="${users.fingerprint}"] a`);
    await page.waitForURL(`**/ui/groups/${users.fingerprint}`);
    await page.waitForSelector('[data-testid="group-count"]');
    assertEqual(await text('[data-testid="group-count"]'), String(users.count), 'the group page count');
    assertEqual(await text('[data-testid="group-endpoint"]'), users.endpoint, 'the group page endpoint');
    await page.waitForSelector(`[data-testid="recent-mismatches"] a[href="/ui/mismatches/${usersId}"]`);
  });

  await step('4 mismatch: the highlighted pointers per side are exactly the patch\'s', async () => {
    for (const [id, name] of [[usersId, 'users'], [ordersId, 'orders'], [catalogId, 'catalog']]) {
      const m = await get(`/mismatches/${id}`);
      await page.goto(`${base}/ui/mismatches/${id}`);
      await page.waitForSelector('[data-testid="body-ready"]', { state: 'attached' });
      assertEqual(await highlighted(page), expectedHighlights(m.verdict), `highlighted pointers of the ${name} mismatch`);
      const statusDiff = await page.locator('[data-testid="status-row"].diff').count();
      assertEqual(statusDiff === 1, m.primary.status !== m.candidate.status, `${name}: the status row highlighted`);
      assertEqual(await text('[data-testid="status-primary"]'), String(m.primary.status), `${name}: primary status`);
      assertEqual(await text('[data-testid="status-candidate"]'), String(m.candidate.status), `${name}: candidate status`);
      const headerRows = (await page.$$eval('tr[data-header].diff', (trs) => trs.map((tr) => tr.getAttribute('data-header')))).sort();
      assertEqual(headerRows, m.verdict.headers.map((x) => x.name.toLowerCase()).sort(), `${name}: highlighted headers`);
      if (name === 'users') {
        assert((await highlighted(page)).primary.includes('/items/0/discount'), 'the dropped field is highlighted');
        await shot('mismatch');
      }
      if (name === 'catalog') assert(headerRows.includes('cache-control'), 'cache-control is highlighted');
    }
    // A text body: side by side, with the verdict's line diff; its markup
    // stays text.
    await page.goto(`${base}/ui/mismatches/${pageId}`);
    await page.waitForSelector('[data-testid="body-ready"]', { state: 'attached' });
    const sides = await page.$$eval('.text-sides [data-side] pre', (pres) => pres.map((p) => p.textContent));
    const html = await get(`/mismatches/${pageId}`);
    assertEqual(sides, [html.primary.body.data, html.candidate.body.data], 'the text bodies side by side');
    assert(await page.locator('pre.udiff .del').count() > 0 && await page.locator('pre.udiff .add').count() > 0, 'the line diff shows no removed and added lines');
    await shot('mismatch-text');
    assertEqual(await page.evaluate(() => window.__pwned === undefined && !document.querySelector('main img, main script')), true, 'stored markup was not run');
    // Bytes that are not UTF-8: a hex dump.
    await page.goto(`${base}/ui/mismatches/${blobId}`);
    await page.waitForSelector('[data-testid="body-ready"]', { state: 'attached' });
    const hex = await page.$$eval('.text-sides [data-side] pre', (pres) => pres.map((p) => p.textContent.split('  ')[1]));
    assertEqual(hex, ['ff fe 00 01 80 02 41 42', 'ff fe 00 01 80 03 41 42'], 'the binary bodies as hex');
  });

  await step('5 triage: bug with a note, by the reviewer; the history and the API agree', async () => {
    await page.goto(`${base}/ui/groups/${encodeURIComponent(users.fingerprint)}`);
    await page.waitForSelector('form[data-testid="triage-form"]');
    await page.fill('#reviewer', REVIEWER);
    await page.press('#reviewer', 'Tab');
    assertEqual(await page.evaluate(() => localStorage.getItem('shadowdiff.reviewer')), REVIEWER, 'the reviewer kept');
    const note = 'prices are strings in the port; discount dropped';
    await page.check('input[name="triage-status"][value="bug"]');
    await page.fill('#triage-note', note);
    const before = Date.now();
    await page.click('form[data-testid="triage-form"] button[type="submit"]');
    await page.waitForFunction(() => /Saved/.test(document.querySelector('[data-testid="triage-message"]').textContent));
    const entry = page.locator('[data-testid="history-entry"]').first();
    assertEqual(await entry.locator('[data-col="by"]').textContent(), REVIEWER, 'history: by');
    assertEqual(await entry.locator('[data-col="status"]').textContent(), 'bug', 'history: status');
    assertEqual(await entry.locator('[data-col="note"]').textContent(), note, 'history: note');
    const at = await entry.locator('time').getAttribute('datetime');
    assert(Math.abs(Date.parse(at) - before) < 120000, `history: when (${at})`);
    assertEqual(await text('[data-testid="group-status"]'), 'bug', 'the status shown');
    const g = await get(`/groups/${encodeURIComponent(users.fingerprint)}`);
    assertEqual([g.status, g.note], ['bug', note], 'the API group');
    assertEqual([g.history[0].status, g.history[0].note, g.history[0].by, g.history[0].at], ['bug', note, REVIEWER, at], 'the API history');
    await shot('group');
  });

  await step('6 forgive: the snippet passes check-config and the impact equals /rejudge', async () => {
    await page.goto(`${base}/ui/mismatches/${usersId}`);
    await page.waitForSelector('[data-testid="body-ready"]', { state: 'attached' });
    const check = async (what) => {
      const snippet = await page.locator('[data-testid="rule-snippet"]').textContent();
      assert(snippet.trim().length > 0, `${what}: an empty snippet`);
      const file = path.join(dir, `rule-${what.replace(/\W+/g, '-')}.toml`);
      fs.writeFileSync(file, snippet);
      const result = await run(BIN, ['check-config', file]);
      assert(result.code === 0, `${what}: check-config exited ${result.code}: ${result.stdout}${result.stderr}\n--- snippet:\n${snippet}`);
      await page.click('[data-testid="check-impact"]');
      await page.waitForSelector('[data-testid="impact-vanishes"]', { timeout: 60000 });
      const shown = await text('[data-testid="impact-vanishes"]');
      const r = await api('POST', '/rejudge', { config: snippet, since: '7d' });
      const vanishes = r.groups.filter((x) => x.fate === 'vanishes').length;
      assertEqual(shown, String(vanishes), `${what}: groups that vanish`);
      assertEqual(await text('[data-testid="impact-parity-after"]'), fmt.fraction(r.parity_after), `${what}: parity after`);
      return vanishes;
    };
    await page.click('button[data-forgive="/items/0/price"]');
    await page.waitForSelector('[data-testid="rule-snippet"]');
    await check('price, this endpoint');
    await page.locator('button[data-forgive="/items/0/price"]').scrollIntoViewIfNeeded();
    await shot('forgive', false);
    await page.check('input[name="forgive-scope"][value="global"]');
    await check('price, every endpoint');
    await page.keyboard.press('Escape');
    assertEqual(await page.locator('[data-testid="forgive-panel"]').isHidden(), true, 'Escape closes the panel');
    await page.goto(`${base}/ui/mismatches/${catalogId}`);
    await page.waitForSelector('[data-testid="body-ready"]', { state: 'attached' });
    await page.click('button[data-forgive="header:cache-control"]');
    await page.waitForSelector('[data-testid="rule-snippet"]');
    const cleared = await check('cache-control header');
    notes.push(`forgiving cache-control clears ${cleared} group(s)`);
  });

  await step('7 the 5 MB mismatch opens within budget and stays responsive', async () => {
    const m = await get(`/mismatches/${bigId}`);
    assert(!m.primary.body.truncated && m.primary.body.data.length >= 5_000_000, `the stored big body is ${m.primary.body.data.length} bytes, truncated ${m.primary.body.truncated}`);
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('[data-testid="total-compared"]');
    const started = Date.now();
    await page.goto(`${base}/ui/mismatches/${bigId}`, { waitUntil: 'commit' });
    await page.waitForSelector('[data-testid="body-ready"]', { state: 'attached', timeout: 60000 });
    const opened = Date.now() - started;
    notes.push(`5 MB mismatch: tree ready ${opened} ms after navigation (budget ${BIG_BUDGET_MS} ms)`);
    log(`5 MB mismatch ready in ${opened} ms`);
    assertEqual(await highlighted(page), expectedHighlights(m.verdict), 'highlighted pointers of the big mismatch');
    assertEqual(expectedHighlights(m.verdict).primary, ['/data/records/11001/owner/address/zip', '/data/records/9876/attrs/history/3/value'], 'the big patch');
    const rows = await page.locator('.trow').count();
    assert(rows < 3000, `${rows} rows built for the big body: not lazy`);
    const tall = await page.evaluate(() => document.documentElement.scrollHeight);
    assert(tall < 3000, `the page is ${tall} px tall: the tree does not scroll in its own box`);
    const toggle = page.locator('[data-side="primary"] button.ttoggle[aria-label="Expand /data/records/7"]');
    await toggle.focus();
    const t0 = Date.now();
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-side="candidate"] .trow[data-pointer="/data/records/7/owner/address/zip"], [data-side="candidate"] .trow[data-pointer="/data/records/7/owner"]');
    const expandMs = Date.now() - t0;
    notes.push(`5 MB mismatch: a node opened in ${expandMs} ms (budget ${EXPAND_BUDGET_MS} ms)`);
    await page.click('[data-side="primary"] .trow.gap button >> nth=0');
    await page.waitForSelector('[data-side="primary"] .trow[data-pointer="/data/records/200"]');
    await page.click('[data-testid="next-diff"]');
    await page.click('[data-testid="next-diff"]');
    const focusedDiff = await page.evaluate(() => document.activeElement.matches('.trow.diff') && document.activeElement.getAttribute('data-pointer'));
    assertEqual(focusedDiff, '/data/records/11001/owner/address/zip', 'the second "next difference"');
    await shot('mismatch-5mb', false);
    assert(opened <= BIG_BUDGET_MS, `the 5 MB mismatch took ${opened} ms (budget ${BIG_BUDGET_MS} ms)`);
    assert(expandMs <= EXPAND_BUDGET_MS, `opening a node took ${expandMs} ms (budget ${EXPAND_BUDGET_MS} ms)`);
  });

  await step('8 keyboard: Tab reaches the groups table, j/k move, / filters, Enter opens', async () => {
    await page.goto(`${base}/ui/groups`);
    await page.waitForSelector('table[data-testid="groups"] tbody tr[data-fingerprint]');
    let reached = false;
    for (let i = 0; i < 60 && !reached; i += 1) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement.matches('tr[data-fingerprint]'));
    }
    assert(reached, 'Tab never reached a groups row');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert(outline !== 'none', 'the focused row shows no focus ring');
    const focused = () => page.evaluate(() => document.activeElement.getAttribute('data-fingerprint'));
    const order = await page.$$eval('tbody tr[data-fingerprint]', (trs) => trs.map((tr) => tr.getAttribute('data-fingerprint')));
    assertEqual(await focused(), order[0], 'the first row focused');
    await page.keyboard.press('j');
    assertEqual(await focused(), order[1], 'j moves down');
    await page.keyboard.press('k');
    assertEqual(await focused(), order[0], 'k moves up');
    await page.keyboard.press('/');
    assertEqual(await page.evaluate(() => document.activeElement.id), 'filter', '/ focuses the filter');
    await page.keyboard.press('Escape');
    await page.locator(`tr[data-fingerprint="${order[1]}"]`).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/ui/groups/${order[1]}`);
  });

  await step('9 a lost session returns to the login form; sign out; the token is in no URL, no storage and no log', async () => {
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('[data-testid="total-compared"]');
    const cookies = await context.cookies();
    await context.clearCookies();
    await page.click('nav a[href="/ui/groups"]');
    await page.waitForSelector('form#login');
    assert(/session has ended/i.test(await text('#login-message')), 'no word that the session ended');
    assertEqual(await page.locator('[data-testid]').count(), 0, 'data left after the session ended');
    await context.addCookies(cookies);
    await page.goto(`${base}/ui/`);
    await page.waitForSelector('#sign-out');
    const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
    assert(!stored.includes(TOKEN), 'the token is in web storage');
    await page.click('#sign-out');
    await page.waitForSelector('form#login');
    assertEqual(await page.locator('[data-testid]').count(), 0, 'data left after signing out');
    const status = await page.evaluate(async () => (await fetch('/api/v1/summary', { headers: { 'x-shadowdiff-ui': '1' } })).status);
    assertEqual(status, 401, 'the API after signing out');
    const leaked = requests.filter((u) => u.includes(TOKEN));
    assertEqual(leaked, [], 'request URLs with the token');
    notes.push(`${requests.length} request URLs checked for the token`);
    assertEqual(pageErrors, [], 'page errors, CSP reports or dialogs');
    await browser.close();
    await sd.stop();
    const logged = sd.plain();
    assert(logged.length > 0, 'nothing logged');
    assert(!logged.includes(TOKEN), 'the log holds the token');
    notes.push(`${logged.split('\n').length} log lines checked for the token`);
  });
}

async function cleanup() {
  for (const fn of cleanups.splice(0)) {
    try { await fn(); } catch (_) { /* best effort: the next one still runs */ }
  }
}

let code = 0;
try {
  await main();
} catch (e) {
  failures.push(`setup: ${e && e.stack ? e.stack : e}`);
}
await cleanup();
for (const n of notes) log(`note: ${n}`);
if (failures.length) {
  console.error(`\n[ui] ${failures.length} failure(s):`);
  for (const f of failures) console.error(`- ${f}\n`);
  code = 1;
} else {
  log(`all checks passed; screenshots in ${SHOTS}`);
}
process.exit(code);
