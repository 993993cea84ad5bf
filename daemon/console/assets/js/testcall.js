// The browser test call (OSVI's "web call", execution_mode test): asks the box for a one-time ticket with the
// API token, opens the call's WebSocket on the same origin and streams the microphone (16 kHz s16le, 20 ms
// frames) while playing the agent. Protocol: docs/api.md "Test calls from the browser".
//
// startTestCall({token, agentUuid, onState, onTranscript, onEnd}) -> Promise<{callId, stop()}>
//   onState(string): "connecting", "connected", "ended"
//   onTranscript({role: "agent"|"caller", text})
//   onEnd({callId, status}): the call's final status as the box recorded it ("picked", ...), or
//     "disconnected" when the socket ended without the box saying.

const noop = () => {};

async function requestTicket(token, agentUuid) {
  const res = await fetch('/v1/web_calls', {
    method: 'POST',
    headers: { 'API-Token': token, 'Content-Type': 'application/json' },
    body: JSON.stringify({ agent_uuid: agentUuid }),
  });
  let body = null;
  try {
    body = await res.json();
  } catch (e) {
    body = null;
  }
  if (!res.ok || !body || !body.success) {
    throw new Error((body && body.error) || `the box refused the test call (HTTP ${res.status})`);
  }
  return body.data;
}

export async function startTestCall({ token, agentUuid, onState = noop, onTranscript = noop, onEnd = noop }) {
  onState('connecting');
  // The microphone and the audio graph first: a ticket asked for and then left unused (the user refused the
  // microphone) would hold one of the box's web call slots until it expires.
  const media = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  let context;
  let ticket;
  try {
    context = new AudioContext({ sampleRate: 16000, latencyHint: 'interactive' });
    await context.audioWorklet.addModule(new URL('./testcall-worklet.js', import.meta.url));
    ticket = await requestTicket(token, agentUuid);
  } catch (e) {
    media.getTracks().forEach((t) => t.stop());
    if (context) context.close();
    throw e;
  }
  const source = context.createMediaStreamSource(media);
  const node = new AudioWorkletNode(context, 'osvi-testcall', {
    numberOfInputs: 1,
    numberOfOutputs: 1,
    outputChannelCount: [1],
  });
  source.connect(node);
  node.connect(context.destination);
  if (context.state === 'suspended') await context.resume();

  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new WebSocket(`${scheme}//${location.host}${ticket.ws_path}`);
  socket.binaryType = 'arraybuffer';

  let callId = null;
  let status = null;
  let finished = false;

  const cleanup = () => {
    if (finished) return;
    finished = true;
    node.port.onmessage = null;
    source.disconnect();
    media.getTracks().forEach((t) => t.stop());
    // The agent's last words may still sit in the worklet's queue: let them play out.
    setTimeout(() => {
      node.disconnect();
      context.close();
    }, 500);
    onState('ended');
    onEnd({ callId, status: status || 'disconnected' });
  };

  node.port.onmessage = (event) => {
    const m = event.data;
    if (m.type === 'frame') {
      if (socket.readyState === WebSocket.OPEN) socket.send(m.buffer);
    } else if (m.type === 'error') {
      socket.close(1000, 'audio unavailable');
    }
  };

  return new Promise((resolve, reject) => {
    const stop = () => {
      if (socket.readyState === WebSocket.OPEN || socket.readyState === WebSocket.CONNECTING) {
        socket.close(1000, 'caller hung up');
      }
    };
    socket.onmessage = (event) => {
      if (typeof event.data !== 'string') {
        node.port.postMessage({ type: 'play', buffer: event.data }, [event.data]);
        return;
      }
      let m;
      try {
        m = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (m.type === 'call') {
        callId = m.call_id;
        resolve({ callId, stop });
      } else if (m.type === 'state') {
        onState(m.state);
      } else if (m.type === 'transcript') {
        onTranscript({ role: m.role, text: m.text });
      } else if (m.type === 'clear') {
        node.port.postMessage({ type: 'clear' });
      } else if (m.type === 'end') {
        status = m.status;
      }
    };
    socket.onclose = (event) => {
      if (!callId) reject(new Error(event.reason || `the test call could not start (${event.code})`));
      cleanup();
    };
  });
}
