// Chat inbox: GET /v1/chat/sessions with its filters (help requested first, as the API orders them), its
// stat cards (meta.stats), refreshed on the inbox's event stream GET /v1/chat/events.
import {get, readEvents} from './api.js';
import {h, table, badge, fmtTime, append, replace} from './dom.js';
import {pager} from './calls.js';

const FILTERS = ['status', 'mode', 'help_requested', 'agent_uuid', 'customer_id'];

function select(id, label, options, value) {
  return h('div', {class: 'field'}, h('label', {for: id}, label),
    h('select', {id, name: id}, options.map(([v, t]) => h('option', {value: v, selected: v === value}, t))));
}

export async function render(root, ctx) {
  const q = ctx.query;
  const query = {page: q.get('page') || 1, per_page: 25};
  for (const f of FILTERS) if (q.get(f)) query[f] = q.get(f);
  const list = h('div', {id: 'sessions'});
  const cards = h('div', {class: 'cards cards-small'});
  const load = async () => {
    const res = await get('/v1/chat/sessions', query, {signal: ctx.signal});
    const st = res.meta.stats || {};
    replace(cards, ...['total', 'active', 'dormant', 'closed', 'help_requested'].map(k =>
      h('div', {class: 'card'}, h('span', {class: 'card-label'}, k.replace('_', ' ')), h('span', {class: 'card-value'}, st[k] ?? '—'))));
    const hrefFor = (page) => { const p = new URLSearchParams(q); p.set('page', page); return `#/chat?${p}`; };
    replace(list, table([
      {label: 'Customer', value: x => h('a', {href: `#/chat/${encodeURIComponent(x.id)}`, class: 'session-link'}, x.customer_id || x.id)},
      {label: 'Agent', value: x => x.agent_uuid},
      {label: 'Status', value: x => badge(x.status)},
      {label: 'Mode', value: x => badge(x.mode)},
      {label: 'Help', value: x => x.help_requested ? badge('help requested', 'help') : ''},
      {label: 'Last message', value: x => fmtTime(x.last_message_at)},
    ], res.data, {empty: 'No chat sessions match.'}), pager(res.meta, hrefFor) || '');
  };
  const form = h('form', {class: 'filters', 'aria-label': 'Filter sessions'},
    select('status', 'Status', [['', 'Any'], ['active', 'Active'], ['dormant', 'Dormant'], ['closed', 'Closed']], q.get('status') || ''),
    select('mode', 'Mode', [['', 'Any'], ['ai', 'AI'], ['support', 'Support']], q.get('mode') || ''),
    select('help_requested', 'Help requested', [['', 'Any'], ['true', 'Yes'], ['false', 'No']], q.get('help_requested') || ''),
    h('div', {class: 'field field-actions'}, h('button', {type: 'submit'}, 'Apply')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const f of FILTERS) { const el = form.elements.namedItem(f); if (el && el.value) p.set(f, el.value); }
    ctx.navigate(`#/chat?${p}`);
  });
  append(root, h('h1', {}, 'Chat inbox'), cards, form, list);
  await load();
  // Live: any session event reloads the page of the list (debounced), so new and escalated chats appear.
  let timer = null;
  const follow = async () => {
    let lastId = null;
    while (!ctx.signal.aborted) {
      try {
        lastId = await readEvents('/v1/chat/events', {signal: ctx.signal, lastEventId: lastId, onEvent: (e) => {
          if (e.event === 'dropped') return;
          clearTimeout(timer);
          timer = setTimeout(() => load().catch(() => {}), 300);
        }});
      } catch {
        if (ctx.signal.aborted) return;
      }
      // The stream ended (osvid restarted or reloaded, a slow-reader drop): reconnect after a pause.
      await new Promise(r => setTimeout(r, 3000));
    }
  };
  follow();
  return () => clearTimeout(timer);
}
