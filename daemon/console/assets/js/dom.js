// DOM helpers: every element is built with createElement and textContent, never from HTML strings.

// h('a', {href: '#/calls', class: 'btn', onclick: fn}, 'text', childNode, [more]) -> HTMLElement.
// Attribute values and text are set as data (setAttribute / text nodes), so nothing from the API is parsed as markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

// Appends nodes and text; null, undefined and false are skipped (DOM append would write "null").
export function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// SVG elements need their namespace; same rules as h().
export function s(tag, attrs, ...children) {
  const el = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, ...children);
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

// A table from column definitions [{label, value: row => text|Node, class?}] and rows.
export function table(columns, rows, {caption, empty = 'Nothing to show.'} = {}) {
  if (!rows.length) return h('p', {class: 'empty'}, empty);
  return h('div', {class: 'table-wrap'},
    h('table', {},
      caption ? h('caption', {}, caption) : null,
      h('thead', {}, h('tr', {}, columns.map(c => h('th', {scope: 'col', class: c.class}, c.label)))),
      h('tbody', {}, rows.map(r => h('tr', {}, columns.map(c => {
        const v = c.value(r);
        return h('td', {class: c.class, 'data-label': c.label}, v === null || v === undefined ? '—' : v);
      }))))));
}

// Key/value pairs as a definition list; nested objects become nested lists.
export function facts(obj) {
  const dl = h('dl', {class: 'facts'});
  for (const [k, v] of Object.entries(obj || {})) {
    dl.append(h('dt', {}, k.replace(/_/g, ' ')));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) dl.append(h('dd', {}, facts(v)));
    else if (Array.isArray(v)) dl.append(h('dd', {}, v.length ? v.map(x => typeof x === 'object' ? JSON.stringify(x) : String(x)).join(', ') : '—'));
    else dl.append(h('dd', {}, v === null || v === '' ? '—' : String(v)));
  }
  return dl;
}

export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(Number(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m} min ${s % 60} s` : `${s} s`;
}

export function badge(text, kind) {
  return h('span', {class: `badge badge-${kind || String(text).replace(/[^a-z_]/gi, '')}`}, text);
}

// A status line for errors and confirmations, announced to screen readers.
export function notice(text, kind = 'error') {
  return h('p', {class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status'}, text);
}
