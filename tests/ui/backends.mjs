// tests/ui/backends.mjs: the primary and the candidate the browser test
// puts behind shadowdiff, as real Node HTTP servers on 127.0.0.1 port 0,
// with known differences: a type change and a dropped field, a status
// difference, a header difference, markup that must stay text, and a 5 MB
// body differing in two deep leaves.

import http from 'node:http';

export const DISCOUNTED = { code: 'SPRING', percent: 10 };
// Identical on both sides, and hostile: the page must show it as text.
export const HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>';

export function user(id, side) {
  const items = [
    { sku: `A-${id}`, price: 12.5, discount: { ...DISCOUNTED } },
    { sku: `B-${id}`, price: 3 },
  ];
  if (side === 'candidate') {
    // A Go port's classic: decimals as strings, and an omitted nested field.
    for (const item of items) item.price = String(item.price);
    delete items[0].discount;
  }
  return { id, name: `user ${id}`, bio: HOSTILE, items, tags: ['a', 'b'] };
}

export function bigBody() {
  const records = [];
  for (let i = 0; i < 11500; i += 1) {
    records.push({
      id: i,
      name: `record-${i}`,
      owner: { name: `owner ${i % 97}`, email: `owner${i % 97}@example.test`, address: { street: `${i} Main Street`, city: 'Springfield', zip: String(10000 + i) } },
      attrs: { color: ['red', 'green', 'blue'][i % 3], size: i % 7, history: [0, 1, 2, 3, 4].map((k) => ({ at: `2026-01-0${k + 1}T00:00:00Z`, value: i * 3 + k })) },
      tags: ['t1', 't2'],
    });
  }
  const primary = { meta: { count: records.length, generated: '2026-01-01T00:00:00Z' }, data: { records } };
  const candidate = JSON.parse(JSON.stringify(primary));
  candidate.data.records[9876].attrs.history[3].value += 1;
  candidate.data.records[11001].owner.address.zip = 'changed';
  return { primary: JSON.stringify(primary), candidate: JSON.stringify(candidate) };
}

// One side's server; `onClose` is handed what stops it.
export function startBackend(side, big, onClose) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const json = (status, value, headers = {}) => {
      const body = typeof value === 'string' ? value : JSON.stringify(value);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers });
      res.end(body);
    };
    let m;
    if ((m = url.pathname.match(/^\/api\/users\/(\d+)$/))) return json(200, user(Number(m[1]), side));
    if ((m = url.pathname.match(/^\/api\/orders\/(\d+)$/))) {
      const id = Number(m[1]);
      if (side === 'candidate' && id % 2 === 1) return json(500, { error: 'internal error' });
      return json(200, { id, total: 10 * id, status: 'paid' });
    }
    if (url.pathname === '/api/catalog') {
      return json(200, { items: ['tea', 'coffee'] }, { 'cache-control': side === 'primary' ? 'max-age=60' : 'no-store' });
    }
    if (url.pathname === '/api/ping') return json(200, { ok: true });
    if (url.pathname === '/api/page') {
      // Not JSON, and markup that would run if the page ever parsed it.
      const body = `<html><body>\n<h1>Shop</h1>\n${HOSTILE}\n<p>${side === 'primary' ? 'Open 9 to 5' : 'Open 9 to 6'}</p>\n</body></html>\n`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      return res.end(body);
    }
    if (url.pathname === '/api/blob') {
      const body = Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80, side === 'primary' ? 0x02 : 0x03, 0x41, 0x42]);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
      return res.end(body);
    }
    if (url.pathname === '/api/big') return json(200, big[side]);
    return json(404, { error: 'not found' });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      onClose(() => new Promise((done) => { server.closeAllConnections(); server.close(() => done()); }));
      resolve(`http://127.0.0.1:${server.address().port}`);
    });
  });
}
