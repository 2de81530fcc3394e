// The UMS console's script: it reads the management API (/api) and the
// notification API (/api/v1) with the session the server keeps, fills the
// server-rendered pages and refreshes them. It keeps nothing in the
// browser's storage.
'use strict';

const page = document.body.dataset;
const pollMillis = Number(page.poll) || 5000;
const canChange = page.canChange === 'true';

// ---- helpers

// el builds an element: el('a', {href: '/x'}, 'text', child...).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// api calls an API and returns its JSON (null for an empty answer). A 401
// means the session ended: back to the login page.
async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers), credentials: 'same-origin' };
  if (path.startsWith('/api/v1/')) opts.headers['X-UMS-Vhost'] = page.vhost || '/';
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch (e) { data = text; }
  }
  if (res.status === 401 && path !== '/api/whoami' && !(await sessionAlive())) {
    location.href = '/login?next=' + encodeURIComponent(location.pathname + location.search);
    throw new APIError(401, 'session ended');
  }
  if (!res.ok) {
    let msg = res.status + ' ' + res.statusText;
    if (data && typeof data === 'object') {
      msg = data.reason || data.error || msg;
      if (data.field) msg += ' (field ' + data.field + ')';
    }
    throw new APIError(res.status, msg);
  }
  return data;
}

// sessionAlive tells a refused action (401, as RabbitMQ answers a missing
// permission) from an ended session.
async function sessionAlive() {
  const res = await fetch('/api/whoami', { credentials: 'same-origin' });
  return res.ok;
}

// flash shows a short message: what an action did or why it failed.
let flashTimer;
function flash(text, isError) {
  const f = document.getElementById('flash');
  f.textContent = text;
  f.className = isError ? 'error' : '';
  f.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(() => { f.hidden = true; }, isError ? 8000 : 4000);
}

// act runs an action, reports its outcome and refreshes the page's data.
async function act(what, fn, refresh) {
  try {
    const out = await fn();
    if (what) flash(what);
    if (refresh) await refresh();
    return out;
  } catch (e) {
    flash(e.message, true);
    return undefined;
  }
}

// poll calls fn now and then every pollMillis while the page is visible.
function poll(fn) {
  let busy = false;
  const run = async () => {
    if (busy || document.hidden) return;
    busy = true;
    try { await fn(); } catch (e) { if (e.status !== 401) flash(e.message, true); }
    busy = false;
  };
  run();
  setInterval(run, pollMillis);
  document.addEventListener('visibilitychange', run);
  return run;
}

const enc = encodeURIComponent;
const fmt = (n) => (n === undefined || n === null) ? '–' : Number(n).toLocaleString('en-US');
const fmtRate = (n) => (n === undefined || n === null || isNaN(n)) ? '–' : (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const fmtTime = (t) => t ? new Date(t).toLocaleString() : '–';
const yesNo = (b) => b ? 'yes' : 'no';
function formJSON(text, field) {
  if (!text || !text.trim()) return {};
  try { return JSON.parse(text); } catch (e) { throw new Error(field + ' is not valid JSON: ' + e.message); }
}
function confirmed(question) { return window.confirm(question); }

// Table renders rows with a search box and pages of 25.
class Table {
  constructor(container, columns, opts) {
    this.container = container;
    this.columns = columns;
    this.opts = Object.assign({ pageSize: 25, empty: 'Nothing here yet.' }, opts);
    this.rows = [];
    this.page = 0;
    this.filter = '';
    if (this.opts.search) {
      this.opts.search.addEventListener('input', () => { this.filter = this.opts.search.value.toLowerCase(); this.page = 0; this.render(); });
    }
  }
  // set shows rows; unchanged rows are not drawn again, so a refresh does
  // not replace what the user is about to click.
  set(rows) {
    const sig = JSON.stringify(rows);
    if (sig === this.sig) return;
    this.sig = sig;
    this.rows = rows;
    this.render();
  }
  render() {
    const keys = this.opts.searchKeys || this.columns.map((c) => c.key).filter(Boolean);
    const rows = this.filter ? this.rows.filter((r) => keys.some((k) => String(r[k] ?? '').toLowerCase().includes(this.filter))) : this.rows;
    const pages = Math.max(1, Math.ceil(rows.length / this.opts.pageSize));
    if (this.page >= pages) this.page = pages - 1;
    const shown = rows.slice(this.page * this.opts.pageSize, (this.page + 1) * this.opts.pageSize);
    const head = el('tr', {}, this.columns.map((c) => el('th', { class: c.num ? 'num' : null }, c.label)));
    const body = shown.length ? shown.map((r) => el('tr', { 'data-key': this.opts.rowKey ? this.opts.rowKey(r) : null },
      this.columns.map((c) => el('td', { class: c.num ? 'num' : null }, c.render ? c.render(r) : (c.num ? fmt(r[c.key]) : (r[c.key] ?? '')))))) :
      [el('tr', {}, el('td', { colspan: this.columns.length, class: 'hint' }, this.filter ? 'Nothing matches the filter.' : this.opts.empty))];
    const table = el('table', {}, el('thead', {}, head), el('tbody', {}, body));
    const pager = el('div', { class: 'pager' },
      el('button', { class: 'secondary small', disabled: this.page === 0, onclick: () => { this.page--; this.render(); } }, '‹ Previous'),
      `Page ${this.page + 1} of ${pages} · ${rows.length} of ${this.rows.length}`,
      el('button', { class: 'secondary small', disabled: this.page >= pages - 1, onclick: () => { this.page++; this.render(); } }, 'Next ›'));
    this.container.replaceChildren(table, pager);
  }
}

// fillVhosts fills the page's vhost selects once.
async function fillVhosts() {
  const selects = document.querySelectorAll('select.vhost-select');
  if (!selects.length) return;
  const vhosts = await api('GET', '/api/vhosts');
  for (const s of selects) s.replaceChildren(...vhosts.map((v) => el('option', { value: v.name }, v.name)));
}

// submitForm calls fn with the form's values when it is submitted.
function submitForm(id, fn) {
  const form = document.getElementById(id);
  if (!form) return;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    fn(Object.fromEntries(new FormData(form).entries()), form);
  });
}

const objectPath = (kind, vhost, name) => `/${kind === 'queues' ? 'queue' : 'exchange'}?vhost=${enc(vhost)}&name=${enc(name)}`;
const apiPath = (kind, vhost, name) => `/api/${kind}/${enc(vhost)}/${enc(name)}`;
const link = (href, text) => el('a', { href }, text);

// ---- pages

const pages = {};

pages.overview = () => {
  const series = [
    // Colours come from the style sheet (classes s-<key>): the page's
    // Content-Security-Policy allows no inline styles.
    { key: 'publish', label: 'Published' },
    { key: 'deliver_get', label: 'Delivered' },
    { key: 'ack', label: 'Acknowledged' },
    { key: 'redeliver', label: 'Redelivered' },
  ];
  const maxSamples = Math.ceil(600000 / pollMillis);
  const samples = [];
  let last = null;
  const legend = document.getElementById('rates-legend');
  const legendValues = {};
  legend.replaceChildren(...series.map((s) => {
    legendValues[s.key] = el('b', { id: 'r-' + s.key }, '–');
    return el('li', {}, el('i', { class: 's-' + s.key }), s.label + ': ', legendValues[s.key], '/s');
  }));
  const draw = () => {
    const svg = document.getElementById('rates-chart');
    const w = 640, h = 200;
    const max = Math.max(1, ...samples.flatMap((s) => series.map((x) => s[x.key])));
    const nodes = [];
    for (let i = 0; i <= 4; i++) {
      const y = (h * i) / 4;
      const line = document.createElementNS('http://www.w3.org/2000/svg', 'line');
      Object.entries({ x1: 0, x2: w, y1: y, y2: y, class: 'grid' }).forEach(([k, v]) => line.setAttribute(k, v));
      nodes.push(line);
      const label = document.createElementNS('http://www.w3.org/2000/svg', 'text');
      label.setAttribute('x', 2); label.setAttribute('y', Math.max(10, y - 2));
      label.textContent = fmtRate(max * (1 - i / 4));
      nodes.push(label);
    }
    for (const s of series) {
      const pl = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
      pl.setAttribute('class', 's-' + s.key);
      // The samples span the width: from the page's first reading (at
      // most 10 minutes back) to now.
      pl.setAttribute('points', samples.map((p, i) =>
        `${(w * i) / Math.max(1, samples.length - 1)},${h - (h * p[s.key]) / max}`).join(' '));
      pl.dataset.series = s.key;
      nodes.push(pl);
    }
    svg.replaceChildren(...nodes);
  };
  poll(async () => {
    const o = await api('GET', '/api/overview');
    const t = o.object_totals || {}, q = o.queue_totals || {};
    for (const k of ['connections', 'channels', 'exchanges', 'queues', 'consumers']) document.getElementById('t-' + k).textContent = fmt(t[k]);
    document.getElementById('t-ready').textContent = fmt(q.messages_ready);
    document.getElementById('t-unacked').textContent = fmt(q.messages_unacknowledged);
    const now = Date.now(), ms = o.message_stats || {};
    if (last) {
      const dt = (now - last.at) / 1000, sample = {};
      for (const s of series) sample[s.key] = Math.max(0, ((ms[s.key] || 0) - (last.stats[s.key] || 0)) / dt);
      samples.push(sample);
      if (samples.length > maxSamples) samples.shift();
      for (const s of series) legendValues[s.key].textContent = fmtRate(sample[s.key]);
      draw();
    }
    last = { at: now, stats: ms };
    const bp = o.connections_by_protocol || {};
    const rows = Object.keys(bp).sort().map((p) => el('tr', {}, el('td', {}, p), el('td', { class: 'num' }, fmt(bp[p]))));
    document.querySelector('#by-protocol tbody').replaceChildren(...(rows.length ? rows : [el('tr', {}, el('td', { colspan: 2, class: 'hint' }, 'No connections.'))]));
    const alarms = o.alarms || [];
    document.getElementById('alarms').replaceChildren(...(alarms.length ? alarms.map((a) =>
      el('li', { class: 'status-failed' }, `${a.resource}: ${a.reason}${a.blocks_publishers ? ' (publishers blocked)' : ''}`)) : [el('li', {}, 'No alarm.')]));
    const n = o.notifications;
    document.getElementById('notify-info').textContent = n ?
      `Channels: ${(n.channels || []).join(', ') || 'none configured'}. Guards: ${n.guards_ok ? 'ok' : 'failing'}${n.guards ? ' (' + n.guards + ')' : ''}.` : 'Not enabled.';
  });
};

pages.connections = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'name', label: 'Name' },
    { key: 'protocol', label: 'Protocol' },
    { key: 'user', label: 'User' },
    { key: 'vhost', label: 'Virtual host' },
    { key: 'client', label: 'Client', render: (c) => {
      const p = c.client_properties || {};
      return [p.product, p.version, p.client_id].filter(Boolean).join(' ') || '';
    } },
    { key: 'channels', label: 'Channels', num: true },
    { key: 'in_rate', label: 'Published/s', num: true, render: (c) => fmtRate(c.in_rate) },
    { key: 'out_rate', label: 'Delivered/s', num: true, render: (c) => fmtRate(c.out_rate) },
    { key: 'connected_at', label: 'Connected', render: (c) => fmtTime(c.connected_at) },
    canChange ? { label: '', render: (c) => c.protocol === 'internal' ? '' : el('button', { class: 'danger small', 'data-close': c.name, onclick: () => {
      if (!confirmed('Close connection ' + c.name + '?')) return;
      act('Connection closed.', () => api('DELETE', '/api/connections/' + enc(c.name), undefined, { 'X-Reason': 'Closed from the UMS console' }), refresh);
    } }, 'Close') } : null,
  ].filter(Boolean), { search: document.getElementById('search'), rowKey: (c) => c.name, searchKeys: ['name', 'protocol', 'user', 'vhost'] });
  let last = null;
  const refresh = poll(async () => {
    const cs = await api('GET', '/api/connections'), now = Date.now();
    const prev = new Map((last ? last.cs : []).map((c) => [c.name, c]));
    for (const c of cs) {
      const p = prev.get(c.name), a = c.message_stats || {}, b = p && p.message_stats;
      const dt = last ? (now - last.at) / 1000 : 0;
      const r = (k) => b && dt > 0 ? Math.max(0, (a[k] - b[k]) / dt) : NaN;
      c.in_rate = r('publish'); c.out_rate = r('deliver_get');
    }
    last = { at: now, cs };
    table.set(cs);
  });
};

pages.channels = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'name', label: 'Channel' },
    { key: 'protocol', label: 'Protocol' },
    { key: 'user', label: 'User' },
    { key: 'vhost', label: 'Virtual host' },
    { key: 'consumer_count', label: 'Consumers', num: true },
    { key: 'messages_unacknowledged', label: 'Unacked', num: true },
    { key: 'prefetch_count', label: 'Prefetch', num: true },
    { key: 'state', label: 'State' },
  ], { search: document.getElementById('search'), rowKey: (c) => c.name, searchKeys: ['name', 'protocol', 'user', 'vhost'] });
  poll(async () => table.set(await api('GET', '/api/channels')));
};

pages.exchanges = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'vhost', label: 'Virtual host' },
    { key: 'name', label: 'Name', render: (x) => link(objectPath('exchanges', x.vhost, x.name || 'amq.default'), x.name || '(AMQP default)') },
    { key: 'type', label: 'Type' },
    { key: 'durable', label: 'Durable', render: (x) => yesNo(x.durable) },
    { key: 'internal', label: 'Internal', render: (x) => yesNo(x.internal) },
    { key: 'messages_delayed', label: 'Delayed', num: true, render: (x) => x.messages_delayed === undefined ? '' : fmt(x.messages_delayed) },
  ], { search: document.getElementById('search'), rowKey: (x) => x.vhost + '/' + x.name, searchKeys: ['vhost', 'name', 'type'] });
  const refresh = poll(async () => table.set(await api('GET', '/api/exchanges')));
  fillVhosts();
  submitForm('declare', (f, form) => act('Exchange ' + f.name + ' added.', async () => {
    await api('PUT', apiPath('exchanges', f.vhost, f.name), { type: f.type, durable: f.durable === 'true', arguments: formJSON(f.arguments, 'Arguments') });
    form.reset();
  }, refresh));
};

pages.exchange = () => {
  const vhost = page.paramVhost, name = page.paramName === 'amq.default' ? '' : page.paramName;
  document.getElementById('x-name').textContent = name || '(AMQP default)';
  document.getElementById('x-vhost').textContent = vhost;
  const bindings = new Table(document.getElementById('bindings'), [
    { key: 'destination', label: 'To', render: (b) => b.destination_type === 'queue' ? link(objectPath('queues', b.vhost, b.destination), b.destination) : link(objectPath('exchanges', b.vhost, b.destination), b.destination) },
    { key: 'destination_type', label: 'Kind' },
    { key: 'routing_key', label: 'Routing key' },
    { key: 'arguments', label: 'Arguments', render: (b) => Object.keys(b.arguments || {}).length ? JSON.stringify(b.arguments) : '' },
  ], { empty: 'No bindings.' });
  const path = apiPath('exchanges', vhost, name || 'amq.default');
  const refresh = poll(async () => {
    const x = await api('GET', path);
    const info = document.getElementById('info');
    const rows = [['Type', x.type], ['Durable', yesNo(x.durable)], ['Auto-delete', yesNo(x.auto_delete)], ['Internal', yesNo(x.internal)],
      ['Arguments', JSON.stringify(x.arguments || {})]];
    if (x.messages_delayed !== undefined) rows.push(['Messages waiting', fmt(x.messages_delayed)]);
    info.replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    bindings.set(name ? await api('GET', path + '/bindings/source') : []);
  });
  submitForm('publish', (f) => act(null, async () => {
    const props = { delivery_mode: Number(f.delivery_mode), headers: formJSON(f.headers, 'Headers') };
    const r = await api('POST', path + '/publish', { routing_key: f.routing_key, payload: f.payload, payload_encoding: 'string', properties: props });
    flash(r.routed ? 'Message published.' : 'Message published, but no queue was bound to take it.', !r.routed);
  }, refresh));
  const del = document.getElementById('delete');
  if (del) del.addEventListener('click', () => {
    if (!confirmed('Delete exchange ' + name + '?')) return;
    act('Exchange deleted.', () => api('DELETE', path)).then(() => { location.href = '/exchanges'; });
  });
};

pages.queues = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'vhost', label: 'Virtual host' },
    { key: 'name', label: 'Name', render: (q) => link(objectPath('queues', q.vhost, q.name), q.name) },
    { key: 'features', label: 'Features', render: (q) => [q.durable ? 'durable' : 'transient', q.auto_delete ? 'auto-delete' : '', q.exclusive ? 'exclusive' : '',
      ...Object.keys(q.arguments || {})].filter(Boolean).join(' ') },
    { key: 'messages_ready', label: 'Ready', num: true },
    { key: 'messages_unacknowledged', label: 'Unacked', num: true },
    { key: 'messages', label: 'Total', num: true },
    { key: 'consumers', label: 'Consumers', num: true },
    { key: 'in_rate', label: 'In/s', num: true, render: (q) => fmtRate(q.in_rate) },
    { key: 'deliver_rate', label: 'Delivered/s', num: true, render: (q) => fmtRate(q.deliver_rate) },
    { key: 'ack_rate', label: 'Acked/s', num: true, render: (q) => fmtRate(q.ack_rate) },
  ], { search: document.getElementById('search'), rowKey: (q) => q.vhost + '/' + q.name, searchKeys: ['vhost', 'name'] });
  // Rates are the change of each queue's counters between two readings.
  let last = null;
  const refresh = poll(async () => {
    const qs = await api('GET', '/api/queues'), now = Date.now(), prev = new Map();
    if (last) for (const q of last.qs) prev.set(q.vhost + '/' + q.name, q);
    for (const q of qs) {
      const p = prev.get(q.vhost + '/' + q.name), a = q.message_stats || {}, b = (p && p.message_stats) || null;
      const dt = last ? (now - last.at) / 1000 : 0;
      const r = (k) => b && dt > 0 ? Math.max(0, (a[k] - b[k]) / dt) : NaN;
      q.in_rate = r('publish'); q.deliver_rate = r('deliver_get'); q.ack_rate = r('ack');
    }
    last = { at: now, qs };
    table.set(qs);
  });
  fillVhosts();
  submitForm('declare', (f, form) => act('Queue ' + f.name + ' added.', async () => {
    await api('PUT', apiPath('queues', f.vhost, f.name), { durable: f.durable === 'true', arguments: formJSON(f.arguments, 'Arguments') });
    form.reset();
  }, refresh));
};

pages.queue = () => {
  const vhost = page.paramVhost, name = page.paramName;
  const path = apiPath('queues', vhost, name);
  document.getElementById('q-name').textContent = name;
  document.getElementById('q-vhost').textContent = vhost;
  let last = null;
  const bindings = new Table(document.getElementById('bindings'), [
    { key: 'source', label: 'From', render: (b) => b.source ? link(objectPath('exchanges', b.vhost, b.source), b.source) : '(AMQP default)' },
    { key: 'routing_key', label: 'Routing key' },
    { key: 'arguments', label: 'Arguments', render: (b) => Object.keys(b.arguments || {}).length ? JSON.stringify(b.arguments) : '' },
    canChange ? { label: '', render: (b) => b.source ? el('button', { class: 'secondary small', onclick: () => act('Binding removed.',
      () => api('DELETE', `/api/bindings/${enc(vhost)}/e/${enc(b.source)}/q/${enc(name)}/${enc(b.properties_key)}`), refresh) }, 'Unbind') : '' } : null,
  ].filter(Boolean), { empty: 'No bindings.' });
  const refresh = poll(async () => {
    const q = await api('GET', path);
    document.getElementById('q-ready').textContent = fmt(q.messages_ready);
    document.getElementById('q-unacked').textContent = fmt(q.messages_unacknowledged);
    document.getElementById('q-total').textContent = fmt(q.messages);
    document.getElementById('q-consumers').textContent = fmt(q.consumers);
    const now = Date.now();
    if (last) document.getElementById('q-rate').textContent = fmtRate((q.messages - last.n) / ((now - last.at) / 1000)) + '/s';
    last = { at: now, n: q.messages };
    document.getElementById('info').replaceChildren(...[['Durable', yesNo(q.durable)], ['Auto-delete', yesNo(q.auto_delete)],
      ['Exclusive', yesNo(q.exclusive)], ['Arguments', JSON.stringify(q.arguments || {})], ['State', q.state]]
      .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    bindings.set(await api('GET', path + '/bindings'));
  });
  submitForm('bind', (f, form) => act('Binding added.', async () => {
    await api('POST', `/api/bindings/${enc(vhost)}/e/${enc(f.source)}/q/${enc(name)}`, { routing_key: f.routing_key, arguments: {} });
    form.reset();
  }, refresh));
  submitForm('publish', (f) => act(null, async () => {
    const r = await api('POST', apiPath('exchanges', vhost, 'amq.default') + '/publish', { routing_key: name, payload: f.payload,
      payload_encoding: 'string', properties: { delivery_mode: Number(f.delivery_mode) } });
    flash(r.routed ? 'Message published.' : 'Message not routed.', !r.routed);
  }, refresh));
  submitForm('get', (f) => act(null, async () => {
    const msgs = await api('POST', path + '/get', { count: Number(f.count), ackmode: f.ackmode, encoding: f.encoding, truncate: 50000 });
    const out = document.getElementById('messages');
    out.replaceChildren(...(msgs.length ? msgs.map((m, i) => el('div', { class: 'msg' },
      el('div', {}, el('b', {}, `Message ${i + 1}`), ` · exchange ${m.exchange || '(AMQP default)'} · routing key ${m.routing_key}` +
        ` · ${m.redelivered ? 'redelivered' : 'first delivery'} · ${fmt(m.payload_bytes)} bytes · ${fmt(m.message_count)} left`),
      Object.keys(m.properties || {}).length ? el('div', { class: 'hint' }, 'Properties: ' + JSON.stringify(m.properties)) : null,
      el('pre', { class: 'payload' }, m.payload))) : [el('p', { class: 'hint' }, 'The queue is empty.')]));
  }, refresh));
  const purge = document.getElementById('purge');
  if (purge) purge.addEventListener('click', () => {
    if (confirmed('Purge every ready message of ' + name + '?')) act('Queue purged.', () => api('DELETE', path + '/contents'), refresh);
  });
  const del = document.getElementById('delete');
  if (del) del.addEventListener('click', () => {
    if (!confirmed('Delete queue ' + name + ' and its messages?')) return;
    act('Queue deleted.', () => api('DELETE', path)).then(() => { location.href = '/queues'; });
  });
};

pages.bindings = () => {
  const dest = (b) => b.destination_type === 'queue' ? link(objectPath('queues', b.vhost, b.destination), b.destination) :
    link(objectPath('exchanges', b.vhost, b.destination), b.destination);
  const table = new Table(document.getElementById('table'), [
    { key: 'vhost', label: 'Virtual host' },
    { key: 'source', label: 'From', render: (b) => b.source ? link(objectPath('exchanges', b.vhost, b.source), b.source) : '(AMQP default)' },
    { key: 'destination', label: 'To', render: dest },
    { key: 'destination_type', label: 'Kind' },
    { key: 'routing_key', label: 'Routing key' },
    { key: 'arguments', label: 'Arguments', render: (b) => Object.keys(b.arguments || {}).length ? JSON.stringify(b.arguments) : '' },
  ], { search: document.getElementById('search'), searchKeys: ['vhost', 'source', 'destination', 'routing_key'] });
  poll(async () => table.set(await api('GET', '/api/bindings')));
};

pages.users = () => {
  if (page.admin !== 'true') return;
  const users = new Table(document.getElementById('users'), [
    { key: 'name', label: 'Name' },
    { key: 'tags', label: 'Tags', render: (u) => Array.isArray(u.tags) ? u.tags.join(', ') : (u.tags || '') },
    { label: '', render: (u) => el('button', { class: 'danger small', onclick: () => {
      if (confirmed('Delete user ' + u.name + '?')) act('User deleted.', () => api('DELETE', '/api/users/' + enc(u.name)), refresh);
    } }, 'Delete') },
  ], { rowKey: (u) => u.name });
  const perms = new Table(document.getElementById('permissions'), [
    { key: 'user', label: 'User' }, { key: 'vhost', label: 'Virtual host' },
    { key: 'configure', label: 'Configure' }, { key: 'write', label: 'Write' }, { key: 'read', label: 'Read' },
    { label: '', render: (p) => el('button', { class: 'secondary small', onclick: () => act('Permissions cleared.',
      () => api('DELETE', `/api/permissions/${enc(p.vhost)}/${enc(p.user)}`), refresh) }, 'Clear') },
  ]);
  const topics = new Table(document.getElementById('topic-permissions'), [
    { key: 'user', label: 'User' }, { key: 'vhost', label: 'Virtual host' }, { key: 'exchange', label: 'Exchange' },
    { key: 'write', label: 'Write' }, { key: 'read', label: 'Read' },
    { label: '', render: (p) => el('button', { class: 'secondary small', onclick: () => act('Topic permissions cleared.',
      () => api('DELETE', `/api/topic-permissions/${enc(p.vhost)}/${enc(p.user)}`), refresh) }, 'Clear') },
  ], { empty: 'No topic permissions: every routing key is allowed.' });
  const refresh = poll(async () => {
    const [u, p, t] = await Promise.all([api('GET', '/api/users'), api('GET', '/api/permissions'), api('GET', '/api/topic-permissions')]);
    users.set(u); perms.set(p); topics.set(t);
  });
  fillVhosts();
  submitForm('user-form', (f, form) => act('User ' + f.name + ' saved.', async () => {
    const body = { tags: f.tags.split(',').map((s) => s.trim()).filter(Boolean).join(',') };
    if (f.password) {
      body.password = f.password;
    } else {
      // An update without a password keeps the user's password.
      const u = await api('GET', '/api/users/' + enc(f.name)).catch((e) => { if (e.status === 404) return null; throw e; });
      if (u) { body.password_hash = u.password_hash; body.hashing_algorithm = u.hashing_algorithm; }
    }
    await api('PUT', '/api/users/' + enc(f.name), body);
    form.reset();
  }, refresh));
  submitForm('perm-form', (f) => act('Permissions set.', () => api('PUT', `/api/permissions/${enc(f.vhost)}/${enc(f.user)}`,
    { configure: f.configure, write: f.write, read: f.read }), refresh));
  submitForm('topic-form', (f) => act('Topic permissions set.', () => api('PUT', `/api/topic-permissions/${enc(f.vhost)}/${enc(f.user)}`,
    { exchange: f.exchange, write: f.write, read: f.read }), refresh));
};

pages.vhosts = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'name', label: 'Name' },
    { key: 'queues', label: 'Queues', num: true },
    { key: 'messages', label: 'Messages', num: true },
    { key: 'connections', label: 'Connections', num: true },
    page.admin === 'true' ? { label: '', render: (v) => el('button', { class: 'danger small', 'data-delete': v.name, onclick: () => {
      if (!confirmed('Delete virtual host ' + v.name + ' with all its queues, messages and exchanges? Its clients are disconnected.')) return;
      act('Virtual host ' + v.name + ' deleted.', () => api('DELETE', '/api/vhosts/' + enc(v.name)), refresh);
    } }, 'Delete') } : null,
  ].filter(Boolean));
  submitForm('vhost-form', (f, form) => act('Virtual host ' + f.name + ' added.', async () => {
    await api('PUT', '/api/vhosts/' + enc(f.name));
    form.reset();
  }, refresh));
  const refresh = poll(async () => {
    const [vs, qs, cs] = await Promise.all([api('GET', '/api/vhosts'), api('GET', '/api/queues'), api('GET', '/api/connections')]);
    table.set(vs.map((v) => ({
      name: v.name,
      queues: qs.filter((q) => q.vhost === v.name).length,
      messages: qs.filter((q) => q.vhost === v.name).reduce((n, q) => n + q.messages, 0),
      connections: cs.filter((c) => c.vhost === v.name).length,
    })));
  });
};

const statusCell = (s) => el('span', { class: 'status-' + s }, s);

pages.notifications = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'id', label: 'Id', render: (n) => link('/notification?id=' + enc(n.id) + '&vhost=' + enc(page.vhost), n.id) },
    { key: 'status', label: 'Status', render: (n) => statusCell(n.status) },
    { key: 'channel', label: 'Channel' },
    { key: 'tenant', label: 'Tenant' },
    { key: 'class', label: 'Class' },
    { key: 'priority', label: 'Priority', num: true },
    { key: 'updated_at', label: 'Updated', render: (n) => fmtTime(n.updated_at) },
    { key: 'error', label: 'Error' },
  ], { empty: 'No notification matches.' });
  const filters = document.getElementById('filters');
  let last = null;
  const rate = (now, prev, key, dt) => prev ? Math.max(0, ((now[key] || 0) - (prev[key] || 0)) / dt) : NaN;
  const refresh = poll(async () => {
    const f = new FormData(filters), qs = new URLSearchParams({ limit: '500' });
    for (const k of ['status', 'channel', 'tenant']) if (f.get(k)) qs.set(k, f.get(k));
    if (f.get('since')) qs.set('since', new Date(f.get('since')).toISOString().replace(/\.\d+Z$/, 'Z'));
    const [list, st] = await Promise.all([api('GET', '/api/v1/notifications?' + qs), api('GET', '/api/v1/stats')]);
    table.set(list.notifications || []);
    const now = Date.now(), dt = last ? (now - last.at) / 1000 : 0;
    const counts = {};
    for (const e of st.events) counts[e.channel + '\u0000' + e.status] = e.count;
    const channels = [...new Set([...(st.channels || []), ...st.events.map((e) => e.channel)])].filter(Boolean).sort();
    document.querySelector('#channel-rates tbody').replaceChildren(...(channels.length ? channels.map((c) => {
      const g = (s) => counts[c + '\u0000' + s] || 0;
      const prev = last && last.counts;
      const r = (s) => fmtRate(prev ? Math.max(0, (g(s) - (prev[c + '\u0000' + s] || 0)) / dt) : NaN);
      return el('tr', { 'data-channel': c }, el('td', {}, c), el('td', { class: 'num' }, r('queued')), el('td', { class: 'num' }, r('sent')),
        el('td', { class: 'num' }, r('delivered')), el('td', { class: 'num' }, r('retrying')), el('td', { class: 'num' }, r('failed')),
        el('td', { class: 'num' }, fmt(g('sent'))), el('td', { class: 'num' }, fmt(g('failed'))));
    }) : [el('tr', {}, el('td', { colspan: 8, class: 'hint' }, 'No channel is configured.'))]));
    const provs = {};
    for (const p of st.providers) provs[p.channel + '\u0000' + p.provider] = p;
    document.querySelector('#provider-rates tbody').replaceChildren(...(st.providers.length ? st.providers.map((p) => {
      const prev = last && last.provs[p.channel + '\u0000' + p.provider];
      const calls = p.ok + p.failed;
      return el('tr', {}, el('td', {}, p.channel), el('td', {}, p.provider || '(default)'),
        el('td', { class: 'num' }, fmtRate(rate({ n: calls }, prev && { n: prev.ok + prev.failed }, 'n', dt))),
        el('td', { class: 'num' }, fmt(p.ok)), el('td', { class: 'num' }, fmt(p.failed)),
        el('td', { class: 'num' }, calls ? (1000 * p.seconds / calls).toFixed(1) + ' ms' : '–'));
    }) : [el('tr', {}, el('td', { colspan: 6, class: 'hint' }, 'No send yet.'))]));
    last = { at: now, counts, provs };
  });
  filters.addEventListener('submit', (ev) => { ev.preventDefault(); refresh(); });
};

pages.notification = () => {
  const id = page.paramId;
  document.getElementById('n-id').textContent = id;
  const attempts = new Table(document.getElementById('attempts'), [
    { key: 'at', label: 'At', render: (a) => fmtTime(a.at) },
    { key: 'channel', label: 'Channel' },
    { key: 'attempt', label: 'Attempt', num: true },
    { key: 'status', label: 'Status', render: (a) => statusCell(a.status) },
    { key: 'provider', label: 'Provider' },
    { key: 'provider_id', label: 'Provider id' },
    { key: 'answer', label: 'Answer' },
    { key: 'error', label: 'Error' },
  ], { empty: 'No attempt yet.', pageSize: 64 });
  const retry = document.getElementById('retry');
  const refresh = poll(async () => {
    const n = await api('GET', '/api/v1/notifications/' + enc(id));
    document.getElementById('info').replaceChildren(...[['Status', statusCell(n.status)], ['Channel', n.channel], ['Channels', (n.channels || []).join(' → ')],
      ['Class', n.class], ['Priority', n.priority], ['Tenant', n.tenant || '–'], ['Tags', (n.tags || []).join(', ') || '–'],
      ['Virtual host', n.vhost], ['Created', fmtTime(n.created_at)], ['Updated', fmtTime(n.updated_at)], ['Error', n.error || '–']]
      .flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
    attempts.set(n.attempts || []);
    if (retry) retry.hidden = n.status !== 'dead_lettered';
  });
  if (retry) retry.addEventListener('click', () => act('Sent again.', () => api('POST', '/api/v1/notifications/' + enc(id) + '/retry'), refresh));
};

pages.deadletters = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'id', label: 'Id', render: (n) => link('/notification?id=' + enc(n.id) + '&vhost=' + enc(page.vhost), n.id) },
    { key: 'channels', label: 'Channels', render: (n) => (n.channels || []).join(' → ') },
    { key: 'tenant', label: 'Tenant' },
    { key: 'updated_at', label: 'Failed at', render: (n) => fmtTime(n.updated_at) },
    { key: 'error', label: 'Error' },
    canChange ? { label: '', render: (n) => el('button', { class: 'small', 'data-retry': n.id, onclick: () =>
      act('Notification ' + n.id + ' sent again.', () => api('POST', '/api/v1/notifications/' + enc(n.id) + '/retry'), refresh) }, 'Retry') } : null,
  ].filter(Boolean), { empty: 'The dead-letter queue is empty.', rowKey: (n) => n.id });
  const refresh = poll(async () => {
    const d = await api('GET', '/api/v1/dead-letters');
    const known = new Set((d.notifications || []).map((n) => n.id));
    table.set([...(d.notifications || []), ...d.ids.filter((id) => !known.has(id)).map((id) => ({ id, error: '(details kept until a restart)' }))]);
  });
  const all = document.getElementById('retry-all');
  if (all) all.addEventListener('click', () => {
    if (!confirmed('Send every dead-lettered notification again?')) return;
    act(null, async () => { const r = await api('POST', '/api/v1/dead-letters/retry'); flash(r.retried + ' notifications sent again.'); }, refresh);
  });
};

pages.templates = () => {
  const form = document.getElementById('template-form');
  const table = new Table(document.getElementById('table'), [
    { key: 'id', label: 'Id' },
    { key: 'locales', label: 'Locales', render: (t) => Object.keys(t.locales || {}).sort().join(', ') },
    { key: 'default_locale', label: 'Default locale' },
    canChange ? { label: '', render: (t) => [
      el('button', { class: 'secondary small', onclick: () => {
        form.elements.id.value = t.id;
        form.elements.body.value = JSON.stringify({ default_locale: t.default_locale, locales: t.locales }, null, 2);
        document.getElementById('editor').open = true;
      } }, 'Edit'), ' ',
      el('button', { class: 'danger small', onclick: () => {
        if (confirmed('Delete template ' + t.id + '?')) act('Template deleted.', () => api('DELETE', '/api/v1/templates/' + enc(t.id)), refresh);
      } }, 'Delete')] } : null,
  ].filter(Boolean), { empty: 'No template yet.' });
  const select = document.getElementById('preview-id');
  const refresh = poll(async () => {
    const r = await api('GET', '/api/v1/templates');
    const list = Object.entries(r.templates || {}).map(([id, t]) => Object.assign({ id }, t)).sort((a, b) => a.id.localeCompare(b.id));
    table.set(list);
    const chosen = select.value;
    select.replaceChildren(...list.map((t) => el('option', { value: t.id }, t.id)));
    if (chosen) select.value = chosen;
  });
  submitForm('template-form', (f) => act('Template ' + f.id + ' saved.', () => api('PUT', '/api/v1/templates/' + enc(f.id), formJSON(f.body, 'Template')), refresh));
  submitForm('preview-form', (f) => act(null, async () => {
    const c = await api('POST', '/api/v1/templates/' + enc(f.id) + '/preview', { locale: f.locale, data: formJSON(f.data, 'Sample data') });
    document.getElementById('preview-subject').textContent = c.subject || '';
    document.getElementById('preview-text').textContent = c.text || '';
    document.getElementById('preview-html').srcdoc = c.html || '';
    document.getElementById('preview').hidden = false;
  }));
};

pages.tenants = () => {
  const table = new Table(document.getElementById('table'), [
    { key: 'name', label: 'Tenant' },
    { key: 'quiet', label: 'Quiet hours', render: (t) => t.quiet_hours ? `${t.quiet_hours.start}–${t.quiet_hours.end} (${t.quiet_hours.time_zone})` : 'none' },
    canChange ? { label: '', render: (t) => el('button', { class: 'danger small', onclick: () => {
      if (confirmed('Remove tenant ' + t.name + "'s settings?")) act('Tenant removed.', () => api('DELETE', '/api/v1/tenants/' + enc(t.name)), refresh);
    } }, 'Remove') } : null,
  ].filter(Boolean), { empty: 'No tenant has settings.' });
  const refresh = poll(async () => {
    const r = await api('GET', '/api/v1/tenants');
    table.set(Object.entries(r.tenants || {}).map(([name, t]) => Object.assign({ name }, t)).sort((a, b) => a.name.localeCompare(b.name)));
  });
  submitForm('tenant-form', (f, form) => act('Tenant ' + f.tenant + ' saved.', async () => {
    await api('PUT', '/api/v1/tenants/' + enc(f.tenant), { quiet_hours: { start: f.start, end: f.end, time_zone: f.time_zone } });
    form.reset();
  }, refresh));
};

if (pages[page.page]) pages[page.page]();
