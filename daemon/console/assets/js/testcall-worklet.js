// AudioWorklet of the browser test call: the microphone cut into 20 ms frames of s16le for the socket, and
// the agent's audio played from a bounded jitter queue. Runs on the audio rendering thread at the
// AudioContext's rate (16 kHz, set by testcall.js).

const FRAME = 320; // 20 ms at 16 kHz
const MAX_QUEUE = 16000 * 2; // two seconds of agent audio at most; the box sends in real time

class TestCallProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Int16Array(FRAME);
    this.fill = 0;
    this.chunks = []; // Int16Array pieces of agent audio, oldest first
    this.head = 0; // read position in chunks[0]
    this.queued = 0;
    this.port.onmessage = (event) => {
      const m = event.data;
      if (m.type === 'play') {
        const samples = new Int16Array(m.buffer);
        // A queue past its bound means the box outran us: the oldest audio is dropped, not the newest.
        this.chunks.push(samples);
        this.queued += samples.length;
        while (this.queued > MAX_QUEUE && this.chunks.length > 1) this.dropFirst();
      } else if (m.type === 'clear') {
        this.chunks = [];
        this.head = 0;
        this.queued = 0;
      }
    };
    if (sampleRate !== 16000) this.port.postMessage({ type: 'error', message: `sample rate ${sampleRate}, not 16000` });
  }

  dropFirst() {
    this.queued -= this.chunks[0].length - this.head;
    this.chunks.shift();
    this.head = 0;
  }

  process(inputs, outputs) {
    const input = inputs[0] && inputs[0][0];
    const n = outputs[0][0].length;
    // Capture: the box's clock is this one, so a frame goes out every 20 ms even before the microphone
    // delivers (silence then).
    for (let i = 0; i < n; i++) {
      const s = input ? Math.max(-1, Math.min(1, input[i])) : 0;
      this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.fill === FRAME) {
        const out = this.frame.slice(0);
        this.port.postMessage({ type: 'frame', buffer: out.buffer }, [out.buffer]);
        this.fill = 0;
      }
    }
    // Playback: what the queue holds, silence when it runs short.
    const channel = outputs[0][0];
    for (let i = 0; i < n; i++) {
      if (this.chunks.length === 0) {
        channel[i] = 0;
        continue;
      }
      const chunk = this.chunks[0];
      channel[i] = chunk[this.head++] / 0x8000;
      this.queued--;
      if (this.head >= chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(channel);
    return true;
  }
}

registerProcessor('osvi-testcall', TestCallProcessor);
