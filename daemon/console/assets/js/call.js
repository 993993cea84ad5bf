// One call: status and timings (GET /v1/call/{id}), the transcript with per-turn latencies and barge-ins
// (…/transcript), the analysis, and the stereo recording (…/recording: a signed link) in an <audio> element,
// its two channels drawn apart: left the caller, right the agent.
import {get, ApiError} from './api.js';
import {h, badge, facts, fmtTime, fmtDuration, notice, append} from './dom.js';

function timeOf(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleTimeString();
}

function turn(t) {
  const lat = t.latency ? Object.entries(t.latency).map(([k, v]) => `${k.replace(/_ms$/, '').replace(/_/g, ' ')} ${Math.round(v)} ms`).join(', ') : null;
  return h('li', {class: `turn turn-${t.role}`},
    h('div', {class: 'turn-head'},
      h('span', {class: 'turn-role'}, t.role === 'user' ? 'Caller' : t.role[0].toUpperCase() + t.role.slice(1)),
      h('time', {datetime: t.started_at || ''}, timeOf(t.started_at)),
      t.kind ? badge(t.kind, 'kind') : null,
      t.interrupted ? badge('interrupted (barge-in)', 'bargein') : null,
      lat ? h('span', {class: 'latency'}, lat) : null),
    h('p', {class: 'turn-text'}, t.text));
}

// Two waveforms (min/max per pixel column) on one canvas per channel.
function drawChannel(canvas, data) {
  const g = canvas.getContext('2d');
  const w = canvas.width, hgt = canvas.height, mid = hgt / 2;
  g.clearRect(0, 0, w, hgt);
  g.fillStyle = getComputedStyle(canvas).color;
  const per = Math.max(1, Math.floor(data.length / w));
  for (let x = 0; x < w; x++) {
    let lo = 0, hi = 0;
    const start = x * per;
    for (let i = start; i < start + per && i < data.length; i++) {
      const v = data[i];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    g.fillRect(x, mid - hi * mid, 1, Math.max(1, (hi - lo) * mid));
  }
}

async function recording(section, id, signal) {
  let link;
  try {
    link = (await get(`/v1/call/${encodeURIComponent(id)}/recording`, null, {signal})).data.recording_url;
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) { append(section, h('p', {class: 'empty'}, 'No recording for this call.')); return; }
    throw e;
  }
  // The link names the host the request was sent to; only its path is used, so it is always this origin.
  const u = new URL(link);
  const src = u.pathname + u.search;
  const audio = h('audio', {controls: true, preload: 'auto', id: 'recording', src});
  const caller = h('canvas', {width: 800, height: 80, class: 'wave wave-caller', 'aria-hidden': 'true'});
  const agent = h('canvas', {width: 800, height: 80, class: 'wave wave-agent', 'aria-hidden': 'true'});
  const status = h('p', {class: 'sub', role: 'status'}, 'Loading the waveforms…');
  append(section, audio,
    h('div', {class: 'channels'},
      h('div', {class: 'channel'}, h('span', {class: 'channel-label'}, 'Caller (left)'), caller),
      h('div', {class: 'channel'}, h('span', {class: 'channel-label'}, 'Agent (right)'), agent)),
    status);
  try {
    const bytes = await (await fetch(src, {signal})).arrayBuffer();
    const ac = new OfflineAudioContext(2, 1, 48000);
    const buf = await ac.decodeAudioData(bytes);
    drawChannel(caller, buf.getChannelData(0));
    drawChannel(agent, buf.numberOfChannels > 1 ? buf.getChannelData(1) : new Float32Array(0));
    status.textContent = `${buf.numberOfChannels} channels, ${buf.duration.toFixed(1)} s`;
  } catch (e) {
    if (e.name === 'AbortError') return;
    status.textContent = `The waveforms could not be drawn: ${e.message}`;
  }
}

export async function render(root, ctx) {
  const id = ctx.params[0];
  const [call, tr] = await Promise.all([
    get(`/v1/call/${encodeURIComponent(id)}`, null, {signal: ctx.signal}),
    get(`/v1/call/${encodeURIComponent(id)}/transcript`, null, {signal: ctx.signal}),
  ]);
  const c = call.data;
  const t = tr.data;
  const rec = h('section', {class: 'panel', 'aria-labelledby': 'rec-h'}, h('h2', {id: 'rec-h'}, 'Recording'));
  append(root, 
    h('p', {}, h('a', {href: '#/calls'}, '← Conversations')),
    h('div', {class: 'page-head'}, h('h1', {}, c.execution_mode === 'test' && !c.phone_number ? 'Test call from the browser' : `Call with ${c.phone_number || 'unknown'}`), badge(c.status)),
    h('section', {class: 'panel'}, h('h2', {}, 'Call'), facts({
      agent: c.agent_name || c.agent_uuid, direction: c.call_type, line: c.line, from_number: c.from_number,
      created: fmtTime(c.created_at), picked_up: fmtTime(c.call_picked_at), ended: fmtTime(c.ended_at),
      duration: fmtDuration(c.duration_seconds), ended_by: c.call_ended_by, reason: c.call_ended_reason,
      greeting_gap_ms: c.greeting_gap_ms, mode: c.execution_mode, call_id: c.call_id})),
    rec,
    h('section', {class: 'panel'}, h('h2', {}, 'Transcript'),
      t.transcript.length ? h('ol', {class: 'transcript'}, t.transcript.map(turn)) : h('p', {class: 'empty'}, 'Nothing was said.')),
    h('section', {class: 'panel'}, h('h2', {}, 'Analysis'),
      h('p', {}, `Status: ${t.analysis_status || '—'}`),
      c.summary ? h('p', {class: 'summary'}, c.summary) : null,
      c.data_captured ? h('div', {}, h('h3', {}, 'Data captured'), facts(c.data_captured)) : null,
      c.post_call_analysis ? h('details', {}, h('summary', {}, 'Details'), facts(c.post_call_analysis)) : null,
      c.structured_output ? h('details', {}, h('summary', {}, 'Structured output'),
        h('pre', {}, JSON.stringify(c.structured_output, null, 2))) : null));
  recording(rec, id, ctx.signal).catch(e => { if (e.name !== 'AbortError') append(rec, notice(e.message)); });
}
