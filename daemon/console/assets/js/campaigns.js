// Campaigns: GET /v1/campaigns with each one's progress (GET /v1/campaigns/{id}/status); activate and pause
// (status "inactive": nothing dialled, the queue kept) through PATCH /v1/campaigns/{id} {"status"}.
import {get, patch} from './api.js';
import {h, table, badge, notice, append, replace} from './dom.js';

export function progress(status) {
  const by = status.calls.by_status || {};
  const done = Object.entries(by).filter(([k]) => k !== 'in_progress').reduce((a, [, v]) => a + v, 0);
  const queued = status.uploads.flatMap(u => u.queues).reduce((a, q) => a + q.total_queued, 0);
  const total = done + queued;
  return h('div', {class: 'progress-wrap'},
    h('progress', {max: total || 1, value: done, 'aria-label': 'Calls made of calls planned'}),
    h('span', {class: 'sub'}, `${done} called, ${queued} queued`));
}

export function statusButton(c, ctx, after, out) {
  if (!ctx.canWrite || !['active', 'inactive'].includes(c.status)) return null;
  // "inactive" is the API's paused state: nothing is dialled, the queue is kept.
  const next = c.status === 'active' ? 'inactive' : 'active';
  return h('button', {type: 'button', 'data-campaign': c.id, 'data-write': true, onclick: async () => {
    replace(out, );
    try {
      await patch(`/v1/campaigns/${c.id}`, {status: next});
      await after();
    } catch (e) {
      append(out, notice(`${c.name}: ${e.message}`));
    }
  }}, next === 'active' ? 'Activate' : 'Pause');
}

export async function render(root, ctx) {
  const list = h('div', {});
  const out = h('div', {role: 'status'});
  const load = async () => {
    const res = await get('/v1/campaigns', null, {signal: ctx.signal});
    const statuses = await Promise.all(res.data.map(c => get(`/v1/campaigns/${c.id}/status`, null, {signal: ctx.signal}).then(r => r.data)));
    replace(list, table([
      {label: 'Campaign', value: c => h('a', {href: `#/campaigns/${c.id}`}, c.name)},
      {label: 'Status', value: c => badge(c.status)},
      {label: 'Agents', value: c => c.agents.map(a => a.agent_uuid).join(', ')},
      {label: 'Progress', value: c => progress(statuses[res.data.indexOf(c)])},
      {label: 'Source', value: c => c.source},
      {label: '', value: c => statusButton(c, ctx, load, out)},
    ], res.data, {empty: 'No campaigns.'}));
  };
  append(root, h('h1', {}, 'Campaigns'), out, list);
  await load();
}
