// The /v1 API client: the token from session storage in the API-Token header, envelopes unwrapped, errors thrown.

const TOKEN_KEY = 'osvi.token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, v);
  }
  return u.pathname + u.search;
}

// request('GET', '/v1/calls', {query, body, contentType, signal}) -> the parsed JSON (the whole envelope).
// body is sent as JSON, or as it is (a File, a string) when contentType is given.
export async function request(method, path, {query, body, contentType, signal} = {}) {
  const headers = {'API-Token': token() || ''};
  let payload;
  if (body !== undefined) {
    if (contentType) {
      headers['Content-Type'] = contentType;
      payload = body;
    } else {
      headers['Content-Type'] = 'application/json';
      payload = JSON.stringify(body);
    }
  }
  const res = await fetch(url(path, query), {method, headers, body: payload, signal, cache: 'no-store'});
  let json = null;
  const text = await res.text();
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    throw new ApiError(res.status, `${method} ${path}: the answer is not JSON (HTTP ${res.status})`);
  }
  if (!res.ok || (json && json.success === false)) {
    const msg = (json && (json.error || (json.errors && json.errors[0]))) || `HTTP ${res.status}`;
    throw new ApiError(res.status, msg);
  }
  return json;
}

export const get = (path, query, opts) => request('GET', path, {query, ...opts});
export const post = (path, body, opts) => request('POST', path, {body, ...opts});
export const patch = (path, body, opts) => request('PATCH', path, {body, ...opts});
export const del = (path, query, opts) => request('DELETE', path, {query, ...opts});

// Reads a server-sent event stream with fetch(), since EventSource cannot send the API-Token header.
// onEvent({event, id, data}) for each event (data parsed as JSON when it is JSON); resolves when the stream
// ends, rejects on an HTTP error; abort through the signal. Follows the SSE parsing rules of the HTML standard:
// lines end with CRLF, LF or CR; "data" lines join with "\n"; a blank line dispatches; ':' lines are comments.
export async function readEvents(path, {signal, lastEventId, onEvent}) {
  const headers = {'API-Token': token() || '', Accept: 'text/event-stream'};
  if (lastEventId) headers['Last-Event-ID'] = lastEventId;
  const res = await fetch(path, {headers, signal, cache: 'no-store'});
  if (!res.ok) throw new ApiError(res.status, `${path}: HTTP ${res.status}`);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let ev = {event: '', data: [], id: lastEventId || ''};
  const dispatch = () => {
    if (ev.data.length) {
      const raw = ev.data.join('\n');
      let data = raw;
      try { data = JSON.parse(raw); } catch { /* not JSON: handed over as text */ }
      onEvent({event: ev.event || 'message', id: ev.id, data});
    }
    ev = {event: '', data: [], id: ev.id};
  };
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += value;
    let m;
    // A lone CR at the very end may be the first half of a CRLF: wait for the next chunk.
    while ((m = /\r\n|\n|\r(?!$)/.exec(buffer))) {
      const line = buffer.slice(0, m.index);
      buffer = buffer.slice(m.index + m[0].length);
      if (line === '') { dispatch(); continue; }
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let val = colon < 0 ? '' : line.slice(colon + 1);
      if (val.startsWith(' ')) val = val.slice(1);
      if (field === 'data') ev.data.push(val);
      else if (field === 'event') ev.event = val;
      else if (field === 'id' && !val.includes('\0')) ev.id = val;
    }
  }
  return ev.id;
}
