// Conversations: GET /v1/calls with the API's filters and paging; each row links to the call's page.
import {get} from './api.js';
import {h, table, badge, fmtTime, fmtDuration, append} from './dom.js';

const FILTERS = ['status', 'agent_uuid', 'call_type', 'phone_number', 'start_date', 'end_date', 'campaign_id'];
const STATUSES = ['', 'picked', 'not_picked', 'failed', 'busy', 'voicemail', 'in_progress'];

export function pager(meta, hrefFor) {
  if (!meta || meta.total_pages <= 1) return null;
  const p = meta.current_page;
  return h('nav', {class: 'pager', 'aria-label': 'Pages'},
    p > 1 ? h('a', {href: hrefFor(p - 1), rel: 'prev'}, 'Previous') : null,
    h('span', {}, `Page ${p} of ${meta.total_pages} (${meta.total_count})`),
    p < meta.total_pages ? h('a', {href: hrefFor(p + 1), rel: 'next'}, 'Next') : null);
}

function select(id, label, options, value) {
  return h('div', {class: 'field'}, h('label', {for: id}, label),
    h('select', {id, name: id}, options.map(([v, t]) => h('option', {value: v, selected: v === value}, t))));
}

function input(id, label, value, type = 'text', extra = {}) {
  return h('div', {class: 'field'}, h('label', {for: id}, label), h('input', {id, name: id, type, value: value || '', ...extra}));
}

export async function render(root, ctx) {
  const q = ctx.query;
  const query = {page: q.get('page') || 1, per_page: 25};
  for (const f of FILTERS) if (q.get(f)) query[f] = q.get(f);
  const [calls, agents] = await Promise.all([
    get('/v1/calls', query, {signal: ctx.signal}),
    get('/v1/active_agents', null, {signal: ctx.signal}),
  ]);
  const form = h('form', {class: 'filters', 'aria-label': 'Filter calls'},
    select('status', 'Status', STATUSES.map(v => [v, v ? v.replace('_', ' ') : 'Any']), q.get('status') || ''),
    select('agent_uuid', 'Agent', [['', 'Any'], ...agents.map(a => [a.agent_id, a.name])], q.get('agent_uuid') || ''),
    select('call_type', 'Direction', [['', 'Any'], ['inbound', 'Inbound'], ['outbound', 'Outbound']], q.get('call_type') || ''),
    input('phone_number', 'Number contains', q.get('phone_number'), 'search', {inputmode: 'tel', maxlength: 32}),
    input('start_date', 'From', q.get('start_date'), 'date'),
    input('end_date', 'To', q.get('end_date'), 'date'),
    h('div', {class: 'field field-actions'}, h('button', {type: 'submit'}, 'Apply')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of FILTERS) {
      const el = form.elements.namedItem(f);
      if (el && el.value) p.set(f, el.value);
    }
    ctx.navigate(`#/calls?${p}`);
  });
  const hrefFor = (page) => { const p = new URLSearchParams(q); p.set('page', page); return `#/calls?${p}`; };
  append(root, h('h1', {}, 'Conversations'), form,
    table([
      {label: 'When', value: c => h('a', {href: `#/calls/${encodeURIComponent(c.call_id)}`, class: 'call-link'}, fmtTime(c.created_at))},
      {label: 'Agent', value: c => c.agent_name || c.agent_uuid},
      {label: 'Number', value: c => c.phone_number},
      {label: 'Direction', value: c => c.call_type},
      {label: 'Status', value: c => badge(c.status)},
      {label: 'Duration', value: c => fmtDuration(c.duration_seconds), class: 'num'},
      {label: 'Tag', value: c => c.tag ? c.tag.name : null},
    ], calls.data, {empty: 'No calls match.'}),
    pager(calls.meta, hrefFor));
}
