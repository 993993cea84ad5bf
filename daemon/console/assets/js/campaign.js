// One campaign: status and progress, its uploads, a CSV contacts upload (POST …/contacts.csv, text/csv),
// activate/pause, and the contacts list.
import {get, request} from './api.js';
import {h, table, badge, facts, fmtTime, notice, append, replace} from './dom.js';
import {progress, statusButton} from './campaigns.js';
import {pager} from './calls.js';

export async function render(root, ctx) {
  const id = ctx.params[0];
  const body = h('div', {});
  const out = h('div', {role: 'status'});
  const load = async () => {
    const page = ctx.query.get('page') || 1;
    const [c, st, contacts] = await Promise.all([
      get(`/v1/campaigns/${id}`, null, {signal: ctx.signal}),
      get(`/v1/campaigns/${id}/status`, null, {signal: ctx.signal}),
      get(`/v1/campaigns/${id}/contacts`, {page, per_page: 25}, {signal: ctx.signal}),
    ]);
    const camp = c.data;
    replace(body, 
      h('div', {class: 'page-head'}, h('h1', {}, camp.name), badge(camp.status), statusButton(camp, ctx, load, out)),
      progress(st.data),
      h('section', {class: 'panel'}, h('h2', {}, 'Settings'), facts({schedule: camp.schedule, retry: camp.is_retry_enabled,
        retry_threshold: camp.retry_threshold, retry_delay_s: camp.retry_delay, calls_by_status: st.data.calls.by_status})),
      ctx.canWrite ? uploadForm(camp, load, out) : null,
      h('section', {class: 'panel'}, h('h2', {}, 'Uploads'), table([
        {label: 'File', value: u => u.file_name},
        {label: 'Agent', value: u => u.agent_uuid},
        {label: 'Queued', value: u => u.queues.reduce((a, q) => a + q.total_queued, 0), class: 'num'},
        {label: 'Done', value: u => u.queues.every(q => q.completed) ? 'yes' : 'no'},
        {label: 'Created', value: u => fmtTime(u.created_at)},
      ], st.data.uploads, {empty: 'No uploads yet.'})),
      h('section', {class: 'panel'}, h('h2', {}, 'Contacts'), table([
        {label: 'Phone', value: x => x.phone},
        {label: 'Name', value: x => x.person_name},
        {label: 'State', value: x => badge(x.state)},
        {label: 'Attempts', value: x => x.attempts, class: 'num'},
        {label: 'Last outcome', value: x => x.last_outcome},
      ], contacts.data, {empty: 'No contacts.'}), pager(contacts.meta, p => `#/campaigns/${id}?page=${p}`)));
  };

  function uploadForm(camp, after, out) {
    const file = h('input', {type: 'file', id: 'csv-file', accept: '.csv,text/csv', required: true});
    const agent = h('select', {id: 'csv-agent', required: true}, camp.agents.map(a => h('option', {value: a.agent_uuid}, a.agent_uuid)));
    const enqueue = h('input', {type: 'checkbox', id: 'csv-enqueue'});
    const form = h('form', {class: 'filters', 'aria-label': 'Upload contacts', 'data-write': true},
      h('div', {class: 'field'}, h('label', {for: 'csv-file'}, 'Contacts (CSV with a phone column)'), file),
      h('div', {class: 'field'}, h('label', {for: 'csv-agent'}, 'Agent'), agent),
      h('div', {class: 'field field-check'}, enqueue, h('label', {for: 'csv-enqueue'}, 'Queue for calling now')),
      h('div', {class: 'field field-actions'}, h('button', {type: 'submit'}, 'Upload')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      replace(out, );
      const f = file.files[0];
      if (!f) return;
      try {
        const res = await request('POST', `/v1/campaigns/${id}/contacts.csv`, {
          query: {agent_uuid: agent.value, enqueue: String(enqueue.checked), file_name: f.name},
          body: f, contentType: 'text/csv'});
        const d = res.data;
        append(out, notice(`${d.contacts_accepted} of ${d.contacts_received} contacts accepted, ${d.duplicates_removed} duplicates, ` +
          `${d.dnd_skipped.length} on the DND list, ${d.invalid.length} invalid.`, 'ok'));
        if (d.invalid.length) append(out, table([{label: 'Line', value: x => x.line}, {label: 'Phone', value: x => x.phone},
          {label: 'Reason', value: x => x.reason}], d.invalid.slice(0, 50)));
        await after();
      } catch (e) {
        append(out, notice(e.message));
      }
    });
    return h('section', {class: 'panel'}, h('h2', {}, 'Upload contacts'), form);
  }

  append(root, h('p', {}, h('a', {href: '#/campaigns'}, '← Campaigns')), out, body);
  await load();
}
