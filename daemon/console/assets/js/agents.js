// Agents: the active voice agents the token may use (GET /v1/active_agents), each linking to its page.
import {get} from './api.js';
import {h, table, append} from './dom.js';

export async function render(root, ctx) {
  const agents = await get('/v1/active_agents', null, {signal: ctx.signal});
  append(root, h('h1', {}, 'Agents'), table([
    {label: 'Agent', value: a => h('a', {href: `#/agents/${encodeURIComponent(a.agent_id)}`}, a.name)},
    {label: 'Id', value: a => a.agent_id},
    {label: 'Status', value: a => a.status},
  ], agents, {empty: 'No active voice agents.'}));
}
