// One chat session: its thread (GET …/messages), updated live from GET /v1/chat/session/{id}/events read with
// fetch() (EventSource cannot send API-Token), and the operator's commands through POST …/support.
import {get, post, readEvents} from './api.js';
import {h, badge, facts, fmtTime, notice, append, replace} from './dom.js';

const ROLE = {customer: 'Customer', agent: 'Agent', operator: 'Operator', whisper: 'Whisper (agent only)',
  tell: 'Tell (guidance)', system: 'Note', tool: 'Tool'};

function message(m) {
  return h('li', {class: `msg msg-${m.role}`, 'data-id': m.id},
    h('div', {class: 'msg-head'}, h('span', {class: 'msg-role'}, ROLE[m.role] || m.role),
      m.operator ? h('span', {}, m.operator) : null,
      h('time', {datetime: m.created_at}, fmtTime(m.created_at)),
      m.latency_ms !== null && m.latency_ms !== undefined ? h('span', {class: 'latency'}, `${m.latency_ms} ms`) : null,
      m.error ? badge('fallback', 'error') : null),
    h('p', {class: 'msg-text'}, m.text));
}

export async function render(root, ctx) {
  const id = ctx.params[0];
  const path = `/v1/chat/session/${encodeURIComponent(id)}`;
  const [sres, mres] = await Promise.all([
    get(path, null, {signal: ctx.signal}),
    get(`${path}/messages`, {per_page: 100, page: 1}, {signal: ctx.signal}),
  ]);
  let session = sres.data;
  let messages = mres.data;
  // A long history: the last page is the newest.
  if (mres.meta && mres.meta.total_pages > 1) {
    messages = (await get(`${path}/messages`, {per_page: 100, page: mres.meta.total_pages}, {signal: ctx.signal})).data;
  }
  const seen = new Set(messages.map(m => m.id));
  const thread = h('ol', {class: 'thread', id: 'thread', 'aria-live': 'polite'}, messages.map(message));
  const head = h('div', {class: 'page-head'});
  const info = h('div', {});
  const out = h('div', {role: 'status'});
  const showSession = () => {
    replace(head, h('h1', {}, `Chat with ${session.customer_id || id}`),
      h('span', {id: 'session-status'}, badge(session.status)), h('span', {id: 'session-mode'}, badge(session.mode)),
      session.help_requested ? badge('help requested', 'help') : '');
    replace(info, facts({agent: session.agent_uuid, active_human: session.active_human, started: fmtTime(session.created_at),
      last_message: fmtTime(session.last_message_at), summary: session.summary}));
    for (const b of root.querySelectorAll('[data-command]')) b.disabled = session.status === 'closed';
  };

  const text = h('textarea', {id: 'support-message', name: 'message', rows: 3, maxlength: 4000});
  const send = async (command) => {
    const body = {};
    if (command) body.command = command;
    if (text.value.trim()) body.message = text.value.trim();
    replace(out, );
    try {
      const res = await post(`${path}/support`, body);
      text.value = '';
      session = {...session, mode: res.data.mode, status: res.data.status,
        active_human: res.data.active_human !== undefined ? res.data.active_human : session.active_human};
      if (command === 'end') session.help_requested = false;
      showSession();
      append(out, notice(`${command || 'message'}: done`, 'ok'));
    } catch (e) {
      append(out, notice(e.message));
    }
  };
  const btn = (command, label, title) => h('button', {type: 'button', 'data-command': command || 'message', 'data-write': true, title,
    onclick: () => send(command)}, label);
  const controls = ctx.canWrite ? h('section', {class: 'panel', 'aria-labelledby': 'op-h'},
    h('h2', {id: 'op-h'}, 'Operator'),
    h('label', {for: 'support-message'}, 'Message'), text,
    h('div', {class: 'actions'},
      btn(null, 'Send to customer', 'A plain operator message (support mode)'),
      btn('takeover', 'Take over', 'Support mode: the agent stops answering'),
      btn('tell', 'Tell', 'Guidance that makes the agent reply'),
      btn('whisper', 'Whisper', 'Private guidance for the agent\'s next turn'),
      btn('end', 'Hand back to AI'),
      btn('close', 'Close')), out) : null;

  append(root, h('p', {}, h('a', {href: '#/chat'}, '← Chat inbox')), head,
    h('div', {class: 'grid2 grid-chat'},
      h('section', {class: 'panel'}, h('h2', {}, 'Thread'), thread),
      h('div', {}, controls, h('section', {class: 'panel'}, h('h2', {}, 'Session'), info))));
  showSession();

  const live = h('p', {class: 'sub', id: 'live-state'}, 'Live updates: connecting…');
  append(root, live);
  let lastId = null;
  const follow = async () => {
    while (!ctx.signal.aborted) {
      try {
        live.textContent = 'Live updates: on';
        lastId = await readEvents(`${path}/events`, {signal: ctx.signal, lastEventId: lastId, onEvent: (e) => {
          if (e.event === 'message.created' && e.data && !seen.has(e.data.id)) {
            seen.add(e.data.id);
            append(thread, message(e.data));
          } else if (['mode.changed', 'status.changed', 'help.requested'].includes(e.event) && e.data) {
            session = {...session, ...e.data};
            showSession();
          } else if (e.event === 'reset') {
            get(`${path}/messages`, {per_page: 100}, {signal: ctx.signal}).then(r => {
              for (const m of r.data) if (!seen.has(m.id)) { seen.add(m.id); append(thread, message(m)); }
            }).catch(() => {});
          }
        }});
      } catch (e) {
        if (ctx.signal.aborted) return;
        live.textContent = `Live updates: reconnecting (${e.message})`;
      }
      // The stream ended (restart, reload, slow reader): reconnect with the last id after a pause.
      await new Promise(r => setTimeout(r, 3000));
    }
  };
  follow();
}
