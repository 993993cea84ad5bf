// Do-not-disturb lists: one agent's list (GET /v1/dnd_numbers, search and paging), add (POST) and remove (DELETE).
import {get, post, del} from './api.js';
import {h, table, fmtTime, notice, append, replace} from './dom.js';
import {pager} from './calls.js';

export async function render(root, ctx) {
  const agents = (await get('/v1/active_agents', null, {signal: ctx.signal}));
  const q = ctx.query;
  const agent = q.get('agent_uuid') || (agents[0] && agents[0].agent_id) || '';
  const search = q.get('search') || '';
  const out = h('div', {role: 'status'});
  const list = h('div', {});
  const href = (p) => `#/dnd?${new URLSearchParams({agent_uuid: agent, search, page: p})}`;
  const load = async () => {
    if (!agent) { replace(list, h('p', {class: 'empty'}, 'No agents.')); return; }
    const res = await get('/v1/dnd_numbers', {agent_uuid: agent, search, page: q.get('page') || 1, per_page: 25}, {signal: ctx.signal});
    replace(list, table([
      {label: 'Number', value: x => x.phone},
      {label: 'Reason', value: x => x.reason},
      {label: 'Source', value: x => x.source},
      {label: 'Added', value: x => fmtTime(x.created_at)},
      ctx.canWrite ? {label: '', value: x => h('button', {type: 'button', class: 'btn-quiet', 'data-write': true, 'aria-label': `Remove ${x.phone}`,
        onclick: async () => {
          replace(out, );
          try { await del('/v1/dnd_numbers', {agent_uuid: agent, phone: x.phone}); await load(); append(out, notice(`${x.phone} removed`, 'ok')); }
          catch (e) { append(out, notice(e.message)); }
        }}, 'Remove')} : null,
    ].filter(Boolean), res.data, {empty: search ? 'No number matches.' : 'The list is empty.'}), pager(res.meta, href) || '');
  };
  const searchForm = h('form', {class: 'filters', role: 'search', 'aria-label': 'Search the list'},
    h('div', {class: 'field'}, h('label', {for: 'dnd-agent'}, 'Agent'),
      h('select', {id: 'dnd-agent', name: 'agent_uuid'}, agents.map(a => h('option', {value: a.agent_id, selected: a.agent_id === agent}, a.name)))),
    h('div', {class: 'field'}, h('label', {for: 'dnd-search'}, 'Number contains'),
      h('input', {id: 'dnd-search', name: 'search', type: 'search', inputmode: 'tel', maxlength: 32, value: search})),
    h('div', {class: 'field field-actions'}, h('button', {type: 'submit'}, 'Search')));
  searchForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams({agent_uuid: searchForm.elements.namedItem('agent_uuid').value});
    const sv = searchForm.elements.namedItem('search').value.trim();
    if (sv) p.set('search', sv);
    ctx.navigate(`#/dnd?${p}`);
  });
  let addForm = null;
  if (ctx.canWrite && agent) {
    addForm = h('form', {class: 'filters', 'aria-label': 'Add a number', 'data-write': true},
      h('div', {class: 'field'}, h('label', {for: 'dnd-phone'}, 'Number'), h('input', {id: 'dnd-phone', name: 'phone', type: 'tel', required: true, maxlength: 32})),
      h('div', {class: 'field'}, h('label', {for: 'dnd-reason'}, 'Reason'), h('input', {id: 'dnd-reason', name: 'reason', maxlength: 500})),
      h('div', {class: 'field field-actions'}, h('button', {type: 'submit'}, 'Add')));
    addForm.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      replace(out, );
      const body = {agent_uuid: agent, phone: addForm.elements.namedItem('phone').value.trim()};
      const reason = addForm.elements.namedItem('reason').value.trim();
      if (reason) body.reason = reason;
      try {
        const res = await post('/v1/dnd_numbers', body);
        addForm.reset();
        append(out, notice(res.message || `${res.data.phone} added`, 'ok'));
        await load();
      } catch (e) { append(out, notice(e.message)); }
    });
  }
  append(root, h('h1', {}, 'Do not disturb'), searchForm,
    addForm ? h('section', {class: 'panel'}, h('h2', {}, 'Add a number'), addForm) : null, out, list);
  await load();
}
