// One agent: its recent calls, and the "Test call" button that talks to it from this browser (testcall.js,
// loaded only when pressed).
import * as api from './api.js';
import {h, table, badge, fmtTime, fmtDuration, notice, append, replace} from './dom.js';

export async function render(root, ctx) {
  const id = ctx.params[0];
  const agents = await api.get('/v1/active_agents', null, {signal: ctx.signal});
  const agent = agents.find(a => a.agent_id === id);
  if (!agent) { append(root, h('h1', {}, 'Agent'), notice(`No active voice agent "${id}" for this token.`)); return; }
  const recent = h('div', {id: 'agent-recent-calls'});
  // Refreshed after a test call ends, so the call just made is listed without reloading the page.
  const loadRecent = async () => {
    const calls = await api.get('/v1/calls', {agent_uuid: id, per_page: 10}, {signal: ctx.signal});
    replace(recent, table([
      {label: 'When', value: c => h('a', {href: `#/calls/${encodeURIComponent(c.call_id)}`}, fmtTime(c.created_at))},
      {label: 'Number', value: c => c.phone_number || '(test call)'},
      {label: 'Status', value: c => badge(c.status)},
      {label: 'Duration', value: c => fmtDuration(c.duration_seconds), class: 'num'},
    ], calls.data, {empty: 'No calls yet.'}));
  };
  await loadRecent();
  const state = h('p', {id: 'testcall-state', role: 'status', class: 'sub'}, '');
  const transcript = h('ol', {id: 'testcall-transcript', class: 'transcript', 'aria-live': 'polite'});
  const result = h('div', {id: 'testcall-result'});
  let running = null;
  const start = h('button', {type: 'button', id: 'testcall-start', 'data-write': true}, 'Test call');
  const stop = h('button', {type: 'button', id: 'testcall-stop', disabled: true}, 'Hang up');
  start.addEventListener('click', async () => {
    start.disabled = true;
    replace(transcript, );
    replace(result, );
    state.textContent = 'Starting…';
    try {
      const {startTestCall} = await import('./testcall.js');
      running = await startTestCall({
        token: api.token(), agentUuid: id,
        onState: (s) => { state.textContent = s; },
        onTranscript: ({role, text}) => append(transcript, h('li', {class: `turn turn-${role === 'caller' ? 'user' : role}`},
          h('div', {class: 'turn-head'}, h('span', {class: 'turn-role'}, role === 'caller' ? 'You' : 'Agent')), h('p', {class: 'turn-text'}, text))),
        onEnd: ({callId, status}) => {
          running = null;
          start.disabled = false;
          stop.disabled = true;
          state.textContent = `Ended: ${status}`;
          if (callId) replace(result, h('a', {href: `#/calls/${encodeURIComponent(callId)}`}, 'Open the call record'));
          // The page may have been left meanwhile (its signal aborts the request): only other failures show.
          loadRecent().catch(e => { if (e.name !== 'AbortError') append(result, notice(`Recent calls: ${e.message}`)); });
        },
      });
      stop.disabled = false;
    } catch (e) {
      start.disabled = false;
      state.textContent = '';
      replace(result, notice(`Test call: ${e.message}`));
    }
  });
  stop.addEventListener('click', () => { if (running) running.stop(); });
  append(root, h('p', {}, h('a', {href: '#/agents'}, '← Agents')),
    h('div', {class: 'page-head'}, h('h1', {}, agent.name), badge(agent.status)),
    h('p', {class: 'sub'}, agent.agent_id),
    ctx.canWrite ? h('section', {class: 'panel', 'aria-labelledby': 'tc-h'}, h('h2', {id: 'tc-h'}, 'Test call'),
      h('p', {class: 'sub'}, 'Talk to this agent with your microphone. The call is recorded and marked as a test.'),
      h('div', {class: 'actions'}, start, stop), state, transcript, result) : null,
    h('section', {class: 'panel'}, h('h2', {}, 'Recent calls'), recent));
  return () => { if (running) running.stop(); };
}
