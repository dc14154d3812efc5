// tree.js: two JSON bodies as one aligned tree. Each row is one JSON Pointer
// of the union of both values: the primary's value in the left column, the
// candidate's in the right, "absent" where a side lacks it. The differing
// pointers (from the verdict's patch) are highlighted per side.
//
// Built for bodies of several megabytes: values are parsed once by the
// caller, and DOM exists only for expanded nodes. A container shows its
// first LIMIT children, plus any child on the way to a difference, with a
// "show more" row for each hidden run, so a 100,000-item array costs a few
// hundred rows, never one element per value.

import { h } from './api.js';

/** A side that has no value at a pointer. */
export const ABSENT = Symbol('absent');

const LIMIT = 200;
// Non-differing containers open by themselves only near the top and when
// small; everything on the way to a difference always opens.
const AUTO_DEPTH = 2;
const AUTO_SIZE = 50;
const SHOWN_CHARS = 300;

const escapeSegment = (s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1');
export const childPointer = (parent, key) => `${parent}/${escapeSegment(key)}`;

export function splitPointer(pointer) {
  if (pointer === '') return [];
  return pointer.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/**
 * The pointers to highlight on each side. From the patch (primary to
 * candidate): what a replace or remove names is in the primary, what a
 * replace or add names is in the candidate. Without a patch, the verdict's
 * differing paths, on both sides.
 */
export function diffSets(verdict) {
  const primary = new Set();
  const candidate = new Set();
  if (verdict && Array.isArray(verdict.patch)) {
    for (const op of verdict.patch) {
      if (op.op === 'replace' || op.op === 'remove') primary.add(op.path);
      if (op.op === 'replace' || op.op === 'add') candidate.add(op.path);
    }
  } else if (verdict) {
    for (const p of verdict.paths || []) {
      primary.add(p);
      candidate.add(p);
    }
  }
  return { primary, candidate };
}

const isObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const isContainer = (v) => v !== null && typeof v === 'object' && v !== ABSENT;
const own = Object.prototype.hasOwnProperty;

function sizeOf(v) {
  if (Array.isArray(v)) return v.length;
  if (isObject(v)) return Object.keys(v).length;
  return 0;
}

function childOf(v, key) {
  if (Array.isArray(v)) {
    if (!/^(0|[1-9][0-9]*)$/.test(key)) return ABSENT;
    const i = Number(key);
    return i < v.length ? v[i] : ABSENT;
  }
  if (isObject(v)) return own.call(v, key) ? v[key] : ABSENT;
  return ABSENT;
}

/** The union of both sides' child keys: by index for arrays, else in order. */
function childKeys(pv, cv) {
  const arrays = [pv, cv].filter(Array.isArray);
  const objects = [pv, cv].filter(isObject);
  if (!objects.length) {
    const n = Math.max(0, ...arrays.map((a) => a.length));
    return {
      n,
      at: (i) => String(i),
      indexOf: (k) => (/^(0|[1-9][0-9]*)$/.test(k) && Number(k) < n ? Number(k) : -1),
    };
  }
  const keys = [];
  const seen = new Set();
  for (const v of [pv, cv]) {
    const names = Array.isArray(v) ? v.map((_, i) => String(i)) : isObject(v) ? Object.keys(v) : [];
    for (const k of names) {
      if (!seen.has(k)) {
        seen.add(k);
        keys.push(k);
      }
    }
  }
  let index = null;
  return {
    n: keys.length,
    at: (i) => keys[i],
    indexOf: (k) => {
      if (!index) index = new Map(keys.map((key, i) => [key, i]));
      return index.has(k) ? index.get(k) : -1;
    },
  };
}

function scalarText(v) {
  const text = JSON.stringify(v);
  return text === undefined ? String(v) : text;
}

function typeClass(v) {
  if (v === null) return 't-null';
  return `t-${typeof v}`;
}

/**
 * Draws the tree into `host`. `primary`/`candidate` are parsed values or
 * ABSENT; `diff` is diffSets' result; `onForgive(pointer, button)` is
 * called by a highlighted row's "forgive this" button (none when absent).
 */
export function renderTree(host, { primary, candidate, diff, onForgive }) {
  const expanded = new Map();
  // For each pointer on the way to a difference, the child keys leading on.
  const leads = new Map();
  const ancestors = new Set();
  for (const p of [...diff.primary, ...diff.candidate]) {
    let at = '';
    for (const s of splitPointer(p)) {
      ancestors.add(at);
      if (!leads.has(at)) leads.set(at, new Set());
      leads.get(at).add(s);
      at = childPointer(at, s);
    }
  }

  const colP = h('div', { class: 'tree-col', 'data-side': 'primary', role: 'group', 'aria-label': 'Primary body' },
    h('div', { class: 'tree-head', 'aria-hidden': 'true' }, 'Primary'));
  const colC = h('div', { class: 'tree-col', 'data-side': 'candidate', role: 'group', 'aria-label': 'Candidate body' },
    h('div', { class: 'tree-head', 'aria-hidden': 'true' }, 'Candidate'));
  const tree = h('div', { class: 'tree', 'data-testid': 'body-tree' }, colP, colC);

  const isOpen = (node) => {
    if (expanded.has(node.pointer)) return expanded.get(node.pointer);
    if (node.depth === 0 || ancestors.has(node.pointer)) return true;
    return node.depth < AUTO_DEPTH && Math.max(sizeOf(node.pv), sizeOf(node.cv)) <= AUTO_SIZE;
  };

  function valueCell(v, parentHas) {
    if (v === ABSENT) {
      return parentHas ? h('span', { class: 'tabsent' }, 'absent') : null;
    }
    if (Array.isArray(v)) {
      return h('span', { class: 'tsum' }, `[ ${v.length} ${v.length === 1 ? 'item' : 'items'} ]`);
    }
    if (isObject(v)) {
      const n = sizeOf(v);
      return h('span', { class: 'tsum' }, `{ ${n} ${n === 1 ? 'key' : 'keys'} }`);
    }
    const text = scalarText(v);
    const shown = text.length > SHOWN_CHARS ? `${text.slice(0, SHOWN_CHARS)}…` : text;
    const span = h('span', { class: `tval ${typeClass(v)}` }, shown);
    if (shown !== text) span.title = text.length > 20000 ? `${text.slice(0, 20000)}…` : text;
    return span;
  }

  function row(side, node, v, parentHas) {
    const differs = diff[side].has(node.pointer);
    const blank = v === ABSENT && !parentHas;
    const el = h('div', {
      class: `trow${differs ? ' diff' : ''}${blank ? ' blank' : ''}${v === ABSENT ? ' is-absent' : ''}`,
      'data-pointer': node.pointer,
      tabindex: '-1',
    });
    el.style.paddingLeft = `${node.depth * 1.1 + 0.25}em`;
    if (node.expandable) {
      if (side === 'primary') {
        node.button = h('button', {
          type: 'button', class: 'ttoggle', 'aria-controls': node.kidsId,
          onclick: () => toggle(node),
          onkeydown: (event) => {
            if (event.key === 'ArrowRight' && !isOpen(node)) { event.preventDefault(); toggle(node); }
            if (event.key === 'ArrowLeft' && isOpen(node)) { event.preventDefault(); toggle(node); }
          },
        });
        el.append(node.button);
      } else {
        // The same toggle for the mouse (the keyboard has the left one),
        // drawn only where this side has something to open.
        const has = isContainer(v) && sizeOf(v) > 0;
        node.mark = h('span', { class: has ? 'ttoggle' : 'ttoggle none', 'aria-hidden': 'true', onclick: () => toggle(node) });
        el.append(node.mark);
      }
    } else {
      el.append(h('span', { class: 'tspacer', 'aria-hidden': 'true' }));
    }
    const content = h('span', { class: 'tcontent' });
    if (!blank) {
      if (node.key !== null) {
        content.append(node.index
          ? h('span', { class: 'tidx' }, node.key)
          : h('span', { class: 'tkey' }, JSON.stringify(node.key)),
        h('span', { class: 'tpunct' }, ': '));
      } else {
        content.append(h('span', { class: 'tkey root' }, side === 'primary' ? 'primary body' : 'candidate body'),
          h('span', { class: 'tpunct' }, ': '));
      }
      const value = valueCell(v, parentHas);
      if (value) content.append(value);
    }
    el.append(content);
    if (differs) {
      el.append(h('span', { class: 'sr-only' }, ` differs at ${node.pointer || '(root)'}`));
      const forgiveHere = side === 'candidate' || !diff.candidate.has(node.pointer);
      if (onForgive && forgiveHere) {
        const button = h('button', {
          type: 'button', class: 'forgive small', 'data-forgive': node.pointer,
          'aria-label': `Forgive the difference at ${node.pointer || 'the whole body'}`,
        }, 'forgive this');
        button.addEventListener('click', () => onForgive(node.pointer, button));
        el.append(button);
      }
    }
    return el;
  }

  let ids = 0;
  function makeNode(pointer, key, index, depth, pv, cv, pHas, cHas) {
    const node = {
      pointer, key, index, depth, pv, cv, pHas, cHas,
      expandable: (isContainer(pv) && sizeOf(pv) > 0) || (isContainer(cv) && sizeOf(cv) > 0),
      ranges: [[0, LIMIT - 1]],
      kidsId: `tk${++ids}`,
    };
    node.rowP = row('primary', node, pv, pHas);
    node.rowC = row('candidate', node, cv, cHas);
    node.kidsP = h('div', { class: 'tkids', id: node.kidsId });
    node.kidsC = h('div', { class: 'tkids' });
    node.wrapP = h('div', { class: 'tnode' }, node.rowP, node.kidsP);
    node.wrapC = h('div', { class: 'tnode' }, node.rowC, node.kidsC);
    if (node.expandable && isOpen(node)) fill(node);
    mark(node);
    return node;
  }

  function mark(node) {
    if (!node.expandable) return;
    const open = isOpen(node);
    const glyph = open ? '▾' : '▸';
    node.button.textContent = glyph;
    node.button.setAttribute('aria-expanded', String(open));
    node.button.setAttribute('aria-label', `${open ? 'Collapse' : 'Expand'} ${node.pointer || 'the whole body'}`);
    node.mark.textContent = glyph;
  }

  /** The visible child indexes: the ranges shown, and the ways to a difference. */
  function visible(node, keys) {
    const ranges = node.ranges.map(([a, b]) => [a, Math.min(b, keys.n - 1)]).filter(([a, b]) => a <= b);
    for (const k of leads.get(node.pointer) || []) {
      const i = keys.indexOf(k);
      if (i >= 0) ranges.push([i, i]);
    }
    ranges.sort((x, y) => x[0] - y[0]);
    const merged = [];
    for (const r of ranges) {
      const last = merged[merged.length - 1];
      if (last && r[0] <= last[1] + 1) last[1] = Math.max(last[1], r[1]);
      else merged.push([r[0], r[1]]);
    }
    return merged;
  }

  function gap(node, from, to, keys) {
    const count = to - from + 1;
    const label = `${count} more ${Array.isArray(node.pv) || Array.isArray(node.cv) ? (count === 1 ? 'item' : 'items') : (count === 1 ? 'key' : 'keys')}`;
    const pad = `${(node.depth + 1) * 1.1 + 0.25}em`;
    const button = h('button', {
      type: 'button', class: 'small more',
      onclick: () => {
        node.ranges.push([from, Math.min(to, from + LIMIT - 1)]);
        fill(node);
        // Keyboard users continue at the first row just shown.
        const first = node.kidsP.querySelector(`:scope > .tnode > .trow[data-pointer="${CSS.escape(childPointer(node.pointer, keys.at(from)))}"]`);
        if (first) first.focus();
      },
    }, `show ${Math.min(count, LIMIT)} more`);
    const left = h('div', { class: 'trow gap' }, h('span', { class: 'tcontent muted' }, `… ${label} `), button);
    const right = h('div', { class: 'trow gap', 'aria-hidden': 'true' }, h('span', { class: 'tcontent muted' }, `… ${label}`));
    left.style.paddingLeft = pad;
    right.style.paddingLeft = pad;
    return [left, right];
  }

  function fill(node) {
    const keys = childKeys(node.pv, node.cv);
    const fragP = document.createDocumentFragment();
    const fragC = document.createDocumentFragment();
    const index = !isObject(node.pv) && !isObject(node.cv);
    const pHas = isContainer(node.pv);
    const cHas = isContainer(node.cv);
    let next = 0;
    for (const [a, b] of visible(node, keys)) {
      if (a > next) {
        const [l, r] = gap(node, next, a - 1, keys);
        fragP.append(l);
        fragC.append(r);
      }
      for (let i = a; i <= b; i += 1) {
        const key = keys.at(i);
        const child = makeNode(childPointer(node.pointer, key), key, index, node.depth + 1,
          childOf(node.pv, key), childOf(node.cv, key), pHas, cHas);
        fragP.append(child.wrapP);
        fragC.append(child.wrapC);
      }
      next = b + 1;
    }
    if (next < keys.n) {
      const [l, r] = gap(node, next, keys.n - 1, keys);
      fragP.append(l);
      fragC.append(r);
    }
    node.kidsP.replaceChildren(fragP);
    node.kidsC.replaceChildren(fragC);
  }

  function toggle(node) {
    const open = !isOpen(node);
    expanded.set(node.pointer, open);
    if (open) fill(node);
    else {
      // Collapsed nodes hold no DOM: a big subtree costs nothing once closed.
      node.kidsP.replaceChildren();
      node.kidsC.replaceChildren();
    }
    mark(node);
  }

  const root = makeNode('', null, false, 0, primary, candidate, true, true);
  colP.append(root.wrapP);
  colC.append(root.wrapC);
  host.replaceChildren(tree);
  return tree;
}
