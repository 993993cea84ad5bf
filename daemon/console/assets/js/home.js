// Home: the stat cards, calls per day by outcome, top agents and calls by hour, from GET /v1/stats?days=N.
import {get} from './api.js';
import {h, table, fmtDuration, append} from './dom.js';
import {lineChart, barChart} from './chart.js';

const OUTCOMES = [['picked', 'Picked'], ['not_picked', 'Not picked'], ['failed', 'Failed'], ['busy', 'Busy'],
  ['voicemail', 'Voicemail']];

// data-value keeps the API's number beside the formatted text (the browser test compares it with /v1/stats).
function card(key, label, value, raw = value) {
  return h('div', {class: 'card', 'data-card': key, 'data-value': raw}, h('span', {class: 'card-label'}, label),
    h('span', {class: 'card-value'}, value));
}

export async function render(root, ctx) {
  const days = ['7', '14', '30', '90'].includes(ctx.query.get('days')) ? ctx.query.get('days') : '7';
  const res = await get('/v1/stats', {days}, {signal: ctx.signal});
  const d = res.data;
  const picker = h('div', {class: 'segmented', role: 'group', 'aria-label': 'Period'},
    ['7', '14', '30', '90'].map(n => h('a', {href: `#/?days=${n}`, class: 'seg', 'aria-current': n === days ? 'true' : null}, `${n} days`)));
  const c = d.cards;
  const cards = h('div', {class: 'cards', id: 'stat-cards'},
    card('total_calls', 'Calls', c.total_calls),
    card('today_calls', 'Today', c.today_calls),
    card('avg_duration_s', 'Average duration', fmtDuration(c.avg_duration_s), c.avg_duration_s),
    card('total_duration_s', 'Total duration', fmtDuration(c.total_duration_s), c.total_duration_s),
    card('answer_rate', 'Answer rate', `${Math.round(c.answer_rate * 1000) / 10} %`, c.answer_rate),
    card('active_agents', 'Active agents', c.active_agents),
    card('inbound', 'Inbound', c.inbound),
    card('outbound', 'Outbound', c.outbound));
  const chatCards = d.chat ? h('div', {class: 'cards cards-small', id: 'chat-cards'},
    card('chat_total', 'Chats', d.chat.total), card('chat_active', 'Active', d.chat.active),
    card('chat_closed', 'Closed', d.chat.closed), card('chat_dormant', 'Dormant', d.chat.dormant)) : null;
  const labels = d.daily.map(x => x.date.slice(5));
  const daily = lineChart({title: 'Calls per day by outcome', labels,
    series: OUTCOMES.map(([key, name]) => ({key, name, values: d.daily.map(x => x[key] || 0)}))});
  const hours = barChart({title: `Calls by hour (${d.time_zone})`, labels: d.by_hour.map((_, i) => String(i)), values: d.by_hour});
  const top = table([
    {label: 'Agent', value: a => h('a', {href: `#/agents/${encodeURIComponent(a.agent_uuid)}`}, a.name || a.agent_uuid)},
    {label: 'Calls', value: a => a.calls, class: 'num'},
    {label: 'Picked', value: a => a.picked, class: 'num'},
    {label: 'Average', value: a => fmtDuration(a.avg_duration_s), class: 'num'},
  ], d.top_agents, {empty: 'No calls in this period.'});
  append(root, 
    h('div', {class: 'page-head'}, h('h1', {}, 'Home'), picker),
    h('p', {class: 'sub'}, `${d.from} to ${d.to}, ${d.time_zone}`),
    cards, chatCards,
    h('div', {class: 'grid2'}, h('section', {class: 'panel'}, daily), h('section', {class: 'panel'}, hours)),
    h('section', {class: 'panel'}, h('h2', {}, 'Top agents'), top));
}
