// The stats dashboard: picks a metric, a granularity, a range and a value path, and draws the
// series from GET /v1/values as an SVG bar chart and a table. Plain JavaScript, no build step.
//
// The page's state lives in its URL (?key=&granularity=&range=&from=&to=&path=), so a view can
// be bookmarked. A token given as #token=... is moved into sessionStorage (and out of the URL);
// it is sent as `Authorization: Bearer <token>`.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const TOKEN = 'stats-token';
const $ = (id) => document.getElementById(id);

function reportError(text) {
  const box = $('errors');
  box.hidden = false;
  box.textContent += text + '\n';
}
window.addEventListener('error', (e) => reportError('error: ' + e.message));
window.addEventListener('unhandledrejection', (e) => reportError('unhandled: ' + e.reason));

function token() {
  return sessionStorage.getItem(TOKEN) || '';
}

if (location.hash.startsWith('#token=')) {
  sessionStorage.setItem(TOKEN, decodeURIComponent(location.hash.slice('#token='.length)));
  history.replaceState(null, '', location.pathname + location.search);
}

async function api(path) {
  const headers = { Accept: 'application/json' };
  if (token()) headers.Authorization = 'Bearer ' + token();
  const response = await fetch(path, { headers });
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = (body && body.error) || response.status + ' ' + response.statusText;
    const error = new Error(message);
    error.status = response.status;
    throw error;
  }
  return body;
}

function setState(state, text) {
  document.body.dataset.state = state;
  $('status').textContent = text;
}

function failed(error) {
  // Also in the console, for whoever debugs the page (a healthy page logs nothing).
  console.error('stats dashboard: ' + (error.status || '') + ' ' + error.message);
  if (error.status === 401) {
    setState('error', 'This server needs a token: enter it above. (' + error.message + ')');
  } else {
    setState('error', error.message);
  }
}

function fill(select, items, chosen) {
  select.replaceChildren();
  for (const [value, label] of items) {
    const option = document.createElement('option');
    option.value = value;
    option.textContent = label;
    select.append(option);
  }
  if (items.some(([value]) => value === chosen)) select.value = chosen;
}

// The range asked for: a preset reads from the bucket holding (now - range) to the one holding
// now (25 hourly buckets for the last 24 hours), as GET /v1/values reads any from/to.
function bounds() {
  const range = $('range').value;
  if (range === 'custom') return { from: $('from').value.trim(), to: $('to').value.trim() };
  return { from: '-' + range, to: 'now' };
}

function query(pairs) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(pairs)) if (value) q.set(name, value);
  return q.toString();
}

// The leaves of nested value maps, as dotted paths (the CLI's value paths).
function leaves(docs) {
  const found = new Set();
  const walk = (doc, prefix) => {
    for (const [name, value] of Object.entries(doc)) {
      const path = prefix ? prefix + '.' + name : name;
      if (value !== null && typeof value === 'object') walk(value, path);
      else if (typeof value === 'number') found.add(path);
    }
  };
  docs.forEach((doc) => walk(doc, ''));
  return [...found].sort();
}

function valueAt(doc, path) {
  let current = doc;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object' || !(part in current)) return null;
    current = current[part];
  }
  return typeof current === 'number' ? current : null;
}

function svg(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
  parent.append(node);
  return node;
}

function short(at, granularity) {
  // "2026-12-07T10:00:00+01:00" -> "12-07 10:00" (or the date alone for days and longer).
  const date = at.slice(5, 10);
  const time = at.slice(11, 16);
  return /^[0-9]+(s|m|h)$/.test(granularity) ? date + ' ' + time : at.slice(0, 10);
}

function number(value) {
  return Number.isInteger(value) ? String(value) : String(Math.round(value * 1000) / 1000);
}

function draw(doc, path) {
  const chart = $('chart');
  chart.replaceChildren();
  const width = 800, height = 320, left = 60, right = 10, top = 10, bottom = 40;
  const values = doc.values.map((v) => valueAt(v, path));
  const numbers = values.filter((v) => v !== null);
  const max = Math.max(0, ...numbers), min = Math.min(0, ...numbers);
  const span = max - min || 1;
  const y = (v) => top + (height - top - bottom) * (max - v) / span;
  const step = (width - left - right) / Math.max(1, values.length);
  for (const tick of [max, (max + min) / 2, min]) {
    svg('line', { class: 'grid', x1: left, x2: width - right, y1: y(tick), y2: y(tick) }, chart);
    const label = svg('text', { x: left - 6, y: y(tick) + 4, 'text-anchor': 'end' }, chart);
    label.textContent = number(tick);
  }
  values.forEach((value, i) => {
    const v = value === null ? 0 : value;
    const bar = svg('rect', {
      class: 'point',
      x: left + i * step + step * 0.1,
      y: Math.min(y(v), y(0)),
      width: Math.max(1, step * 0.8),
      height: Math.abs(y(0) - y(v)),
      'data-index': i,
      'data-at': doc.at[i],
      'data-value': value === null ? '' : value,
    }, chart);
    const tip = svg('title', {}, bar);
    tip.textContent = doc.at[i] + ': ' + (value === null ? 'none' : number(value));
  });
  svg('line', { class: 'axis', x1: left, x2: width - right, y1: y(0), y2: y(0) }, chart);
  const every = Math.max(1, Math.ceil(values.length / 8));
  doc.at.forEach((at, i) => {
    if (i % every !== 0) return;
    // A label near the right edge ends at its bar's right side instead of being cut off.
    const middle = left + i * step + step / 2;
    const nearEdge = middle + 40 > width;
    const label = svg('text', {
      x: nearEdge ? middle + step / 2 : middle, y: height - bottom + 16,
      'text-anchor': nearEdge ? 'end' : 'middle',
    }, chart);
    label.textContent = short(at, doc.granularity);
  });
  $('caption').textContent = doc.key + ' ' + path + ' per ' + doc.granularity;
}

function table(doc, path) {
  $('path-head').textContent = path;
  const rows = doc.at.map((at, i) => {
    const row = document.createElement('tr');
    const value = valueAt(doc.values[i], path);
    row.dataset.at = at;
    row.dataset.value = value === null ? '' : String(value);
    const when = document.createElement('td');
    when.textContent = at;
    const cell = document.createElement('td');
    cell.textContent = value === null ? '' : number(value);
    row.append(when, cell);
    return row;
  });
  $('table').tBodies[0].replaceChildren(...rows);
}

function remember() {
  const { from, to } = bounds();
  const range = $('range').value;
  const state = {
    key: $('key').value,
    granularity: $('granularity').value,
    range: range === 'custom' ? '' : range,
    from: range === 'custom' ? from : '',
    to: range === 'custom' ? to : '',
    path: $('path').value,
  };
  history.replaceState(null, '', location.pathname + '?' + query(state));
}

let wantedPath = '';

async function loadMetrics(wantedKey) {
  const { from, to } = bounds();
  const listed = await api('/v1/metrics?' + query({ from, to }));
  const keys = Object.entries(listed.metrics).map(([key, n]) => [key, key + ' (' + n + ')']);
  if (wantedKey && !(wantedKey in listed.metrics)) keys.unshift([wantedKey, wantedKey]);
  fill($('key'), keys, wantedKey || $('key').value);
}

async function show() {
  const key = $('key').value;
  if (!key) {
    $('chart').replaceChildren();
    $('table').tBodies[0].replaceChildren();
    setState('ready', 'No metric tracked in this range yet: POST /v1/track, or pick a wider range.');
    return;
  }
  setState('loading', 'loading ' + key + '…');
  const { from, to } = bounds();
  const doc = await api('/v1/values?' + query({ key, granularity: $('granularity').value, from, to }));
  const paths = leaves(doc.values);
  const chosen = [wantedPath, $('path').value, 'count'].find((p) => paths.includes(p)) || paths[0] || '';
  wantedPath = '';
  fill($('path'), paths.map((p) => [p, p]), chosen);
  const path = $('path').value;
  draw(doc, path);
  table(doc, path);
  remember();
  const total = doc.values.map((v) => valueAt(v, path)).reduce((sum, v) => sum + (v || 0), 0);
  setState('ready', doc.at.length + ' buckets of ' + doc.granularity + ' from ' +
    (doc.at[0] || '') + ', ' + (path || 'no values') + ' total ' + number(total));
}

function run(task) {
  task().catch(failed);
}

async function start() {
  const params = new URLSearchParams(location.search);
  $('token').value = token();
  const config = await api('/v1/config');
  $('zone').textContent = 'zone ' + config.time_zone;
  const granularities = config.granularities.map((g) => [g, g]);
  fill($('granularity'), granularities, params.get('granularity') || '1h');
  const custom = params.has('from') || params.has('to');
  $('range').value = custom ? 'custom' : (params.get('range') || '24h');
  if (!$('range').value) $('range').value = '24h';
  $('from').value = params.get('from') || '';
  $('to').value = params.get('to') || '';
  document.body.classList.toggle('custom-range', $('range').value === 'custom');
  wantedPath = params.get('path') || '';
  await loadMetrics(params.get('key') || '');
  await show();
}

$('controls').addEventListener('submit', (e) => {
  e.preventDefault();
  run(async () => {
    await loadMetrics($('key').value);
    await show();
  });
});
for (const id of ['key', 'granularity', 'path']) $(id).addEventListener('change', () => run(show));
$('range').addEventListener('change', () => {
  document.body.classList.toggle('custom-range', $('range').value === 'custom');
  if ($('range').value !== 'custom') run(async () => { await loadMetrics($('key').value); await show(); });
});
$('auth').addEventListener('submit', (e) => {
  e.preventDefault();
  const given = $('token').value.trim();
  if (given) sessionStorage.setItem(TOKEN, given);
  else sessionStorage.removeItem(TOKEN);
  run(start);
});

run(start);
