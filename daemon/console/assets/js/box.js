// Box: lines and their states, modem facts, upstream and sync health, version (GET /v1/health, admin view),
// and the last warnings and errors osvid logged (GET /v1/system/errors).
import {get} from './api.js';
import {h, table, badge, facts, fmtTime, append} from './dom.js';

export async function render(root, ctx) {
  if (!ctx.session.admin) { append(root, h('h1', {}, 'Box'), h('p', {}, 'The box page needs an admin token.')); return; }
  const [health, errors] = await Promise.all([
    get('/v1/health', null, {signal: ctx.signal}),
    get('/v1/system/errors', {limit: 50}, {signal: ctx.signal}),
  ]);
  const d = health.data;
  const {lines = [], mqtt, webhooks, database, config, api, log} = d;  // d.upstreams: the Model services panel
  // The sync's headline first: how deep the outbox is and when the broker last took a record.
  const sync = mqtt ? {state: mqtt.state, outbox_depth: mqtt.outbox ? mqtt.outbox.queued : null,
    last_publish: mqtt.last_acked_at_ms ? fmtTime(new Date(mqtt.last_acked_at_ms).toISOString()) : 'none since start',
    ...mqtt} : null;
  if (sync) delete sync.last_acked_at_ms;
  append(root, 
    h('div', {class: 'page-head'}, h('h1', {}, 'Box'), badge(d.status)),
    h('p', {class: 'sub'}, `osvid ${d.version}, up ${Math.round((d.uptime_seconds || 0) / 60)} min, since ${fmtTime(d.started_at)}`),
    h('section', {class: 'panel'}, h('h2', {}, 'Lines'), table([
      {label: 'Line', value: l => l.id},
      {label: 'Type', value: l => l.type},
      {label: 'State', value: l => badge(l.state)},
      {label: 'Agent', value: l => l.agent_uuid},
      {label: 'Modem', value: l => l.modem && l.modem.model ? `${l.modem.manufacturer} ${l.modem.model} (fw ${l.modem.firmware || '—'})` : null},
      // A SIP line: its registrar's answer instead of the modem's network registration, and its calls.
      {label: 'Registration', value: l => l.sip ? `${l.sip.registration}${l.sip.last_code ? ` (${l.sip.last_code} ${l.sip.last_reason})` : ''}` : l.modem && l.modem.registration},
      {label: 'Calls', value: l => l.sip ? `${l.sip.calls_active}/${l.sip.max_calls}` : null},
      {label: 'Signal', value: l => l.modem && l.modem.signal !== undefined ? String(l.modem.signal) : null},
      {label: 'Audio', value: l => l.audio ? `${l.audio.kind}${l.audio.ready ? ', ready' : ''}${l.audio.error ? `: ${l.audio.error}` : ''}` : (l.sip ? 'rtp' : null)},
      {label: 'Reason', value: l => l.reason},
    ], lines, {empty: 'No lines configured.'})),
    h('div', {class: 'grid2'},
      h('section', {class: 'panel'}, h('h2', {}, 'Sync (MQTT)'), sync ? facts(sync) : h('p', {class: 'empty'}, 'Fleet sync is not built in.')),
      h('section', {class: 'panel'}, h('h2', {}, 'Webhooks and event streams'), facts({webhooks, event_streams: api && api.event_streams}))),
    h('section', {class: 'panel'}, h('h2', {}, 'Model services'), table([
      {label: 'Base URL', value: u => u.base_url},
      {label: 'Breaker', value: u => badge(u.breaker)},
      {label: 'Failures in a row', value: u => String(u.failures), class: 'num'},
    ], d.upstreams || [], {empty: 'No model service contacted since start.'})),
    h('div', {class: 'grid2'},
      h('section', {class: 'panel'}, h('h2', {}, 'Database'), facts(database)),
      h('section', {class: 'panel'}, h('h2', {}, 'Configuration'), facts({...config, log_level: log && log.level, log_sink: log && log.sink, listen: api && api.listen}))),
    h('section', {class: 'panel'}, h('h2', {}, 'Last warnings and errors'), table([
      {label: 'When', value: e => fmtTime(e.at)},
      {label: 'Priority', value: e => badge(e.priority)},
      {label: 'Message', value: e => e.message},
      {label: 'Call', value: e => e.fields && e.fields.CALL_ID ? h('a', {href: `#/calls/${encodeURIComponent(e.fields.CALL_ID)}`}, 'call') : null},
      {label: 'Line', value: e => e.fields && e.fields.LINE},
    ], errors.data, {empty: 'Nothing logged.'})));
}
