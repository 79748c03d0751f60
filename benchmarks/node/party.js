// The libwebrtc party of the benchmarks (Node + @roamhq/wrtc), driven by JSON lines on stdin.
//
// Commands (one JSON object per line) and answers (one per line on stdout):
//   {"cmd":"answer","id":K,"sdp":OFFER}  -> {"id":K,"sdp":ANSWER}   receive audio, report clicks
//   {"cmd":"stats","id":K}               -> {"id":K,"stats":{...}}  frames, gaps, concealment
//   {"cmd":"answer","id":K,"sdp":OFFER,"tone":HZ} -> same, and send a tone back (the capacity run)
//   {"cmd":"close","id":K}               -> {"id":K,"closed":true}
//   {"cmd":"setup","n":N}                -> {"setup":[{connected_ms, first_audio_ms}, ...]}
//   {"cmd":"quit"}
// Events: {"event":"click","id":K,"t":EPOCH_MS} when a click is heard (same detector as Python's).
//
// Network rule: only 127.0.0.1 UDP candidates ever leave or enter this process, and no ICE
// server is configured, so libwebrtc only talks to 127.0.0.1.
'use strict';

const wrtc = require('@roamhq/wrtc');
const readline = require('readline');

const { RTCPeerConnection } = wrtc;
const { RTCAudioSource, RTCAudioSink } = wrtc.nonstandard;

const CLICK_LEVEL = 14000;      // |sample| above this is a click (the tone peaks at ~3300)
const SILENT_RMS = 200;         // a 10 ms chunk below this RMS is a gap
const QUIET_MS = 300;           // a click must follow this much time without one

function now() { return performance.timeOrigin + performance.now(); }
function send(obj) { process.stdout.write(JSON.stringify(obj) + '\n'); }

function loopbackOnly(sdp) {
  return sdp.split('\r\n').filter((line) => {
    if (!line.startsWith('a=candidate:')) return true;
    const parts = line.split(' ');
    return parts[2].toLowerCase() === 'udp' && parts[4] === '127.0.0.1';
  }).join('\r\n');
}

function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', check);
    pc.addEventListener('icecandidate', (e) => { if (!e.candidate) resolve(); });
    setTimeout(resolve, 5000);
  });
}

const calls = new Map();

class Listener {
  constructor(id, track) {
    this.id = id;
    this.sink = new RTCAudioSink(track);
    this.lastClick = -1e9;
    this.chunks = 0;
    this.silent = 0;
    this.gapEvents = 0;
    this.inGap = false;
    this.started = false;
    this.lastAt = null;
    this.lateMs = 0;
    this.sink.ondata = (data) => this.onData(data);
  }

  onData(data) {
    const t = now();
    const ch = data.channelCount || 1;
    const s = data.samples;
    const n = data.numberOfFrames || (s.length / ch);
    let sum = 0;
    let click = -1;
    for (let i = 0; i < n; i++) {
      const v = s[i * ch];
      sum += v * v;
      if (click < 0 && (v > CLICK_LEVEL || v < -CLICK_LEVEL)) click = i;
    }
    const rms = Math.sqrt(sum / Math.max(1, n));
    if (!this.started) {
      if (rms < SILENT_RMS) return;
      this.started = true;
    }
    this.chunks += 1;
    if (this.lastAt !== null && t - this.lastAt > 15) this.lateMs += t - this.lastAt - 10;
    this.lastAt = t;
    if (rms < SILENT_RMS) {
      this.silent += 1;
      if (!this.inGap) { this.inGap = true; this.gapEvents += 1; }
    } else {
      this.inGap = false;
    }
    if (click >= 0) {
      const at = t + (click * 1000) / data.sampleRate;
      if (at - this.lastClick > QUIET_MS) send({ event: 'click', id: this.id, t: at });
      this.lastClick = at;
    }
  }

  stop() { try { this.sink.stop(); } catch (e) { /* already stopped */ } }
}

async function answer(id, offer, toneHz) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  const entry = { pc, listener: null, tone: null };
  calls.set(id, entry);
  if (toneHz) {
    entry.tone = toneSource(toneHz);
    pc.addTrack(entry.tone.source.createTrack());
  }
  pc.ontrack = (e) => {
    if (e.track.kind === 'audio' && !entry.listener) entry.listener = new Listener(id, e.track);
  };
  await pc.setRemoteDescription({ type: 'offer', sdp: loopbackOnly(offer) });
  await pc.setLocalDescription(await pc.createAnswer());
  await gathered(pc);
  send({ id, sdp: loopbackOnly(pc.localDescription.sdp) });
}

async function stats(id) {
  const entry = calls.get(id);
  const out = { frames10ms: 0, silent10ms: 0, gapEvents: 0, concealedMs: null, packetsLost: null,
                packetsReceived: null, jitterBufferMs: null, lateMs: 0 };
  if (entry && entry.listener) {
    const l = entry.listener;
    Object.assign(out, { frames10ms: l.chunks, silent10ms: l.silent, gapEvents: l.gapEvents, lateMs: l.lateMs });
  }
  if (entry) {
    try {
      const report = await entry.pc.getStats();
      report.forEach((r) => {
        if (r.type === 'inbound-rtp' && (r.kind === 'audio' || r.mediaType === 'audio')) {
          if (r.concealedSamples !== undefined) out.concealedMs = (r.concealedSamples / 48000) * 1000;
          if (r.packetsLost !== undefined) out.packetsLost = r.packetsLost;
          if (r.packetsReceived !== undefined) out.packetsReceived = r.packetsReceived;
          if (r.jitterBufferDelay !== undefined && r.jitterBufferEmittedCount) {
            out.jitterBufferMs = (r.jitterBufferDelay / r.jitterBufferEmittedCount) * 1000;
          }
        }
      });
    } catch (e) { /* stats are best effort */ }
  }
  send({ id, stats: out });
}

function close(id) {
  const entry = calls.get(id);
  if (entry) {
    if (entry.listener) entry.listener.stop();
    if (entry.tone) entry.tone.stop();
    entry.pc.close();
    calls.delete(id);
  }
  send({ id, closed: true });
}

function toneSource(hz = 300) {
  const source = new RTCAudioSource();
  let phase = 0;
  const timer = setInterval(() => {
    const samples = new Int16Array(480);
    for (let i = 0; i < 480; i++) { samples[i] = Math.round(Math.sin(phase) * 3000); phase += (2 * Math.PI * hz) / 48000; }
    source.onData({ samples, sampleRate: 48000, bitsPerSample: 16, channelCount: 1, numberOfFrames: 480 });
  }, 10);
  return { source, stop: () => clearInterval(timer) };
}

async function oneSetup() {
  const a = new RTCPeerConnection({ iceServers: [] });
  const b = new RTCPeerConnection({ iceServers: [] });
  const tone = toneSource();
  a.addTrack(tone.source.createTrack());
  const t0 = now();
  let connected = null;
  let firstAudio = null;
  let sink = null;
  const done = new Promise((resolve) => {
    b.ontrack = (e) => {
      sink = new RTCAudioSink(e.track);
      sink.ondata = (data) => {
        if (firstAudio !== null) return;
        let sum = 0;
        for (let i = 0; i < data.samples.length; i++) sum += data.samples[i] * data.samples[i];
        if (Math.sqrt(sum / data.samples.length) > SILENT_RMS) { firstAudio = now() - t0; resolve(); }
      };
    };
    setTimeout(resolve, 10000);
  });
  b.addEventListener('iceconnectionstatechange', () => {
    if (connected === null && (b.iceConnectionState === 'connected' || b.iceConnectionState === 'completed')) {
      connected = now() - t0;
    }
  });
  await a.setLocalDescription(await a.createOffer());
  await gathered(a);
  await b.setRemoteDescription({ type: 'offer', sdp: loopbackOnly(a.localDescription.sdp) });
  await b.setLocalDescription(await b.createAnswer());
  await gathered(b);
  await a.setRemoteDescription({ type: 'answer', sdp: loopbackOnly(b.localDescription.sdp) });
  await done;
  if (sink) sink.stop();
  tone.stop();
  a.close();
  b.close();
  return { connected_ms: connected, first_audio_ms: firstAudio };
}

async function setup(n) {
  const results = [];
  for (let i = 0; i < n; i++) results.push(await oneSetup());
  send({ setup: results });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let msg;
  try { msg = JSON.parse(line); } catch (e) { return; }
  const fail = (e) => send({ id: msg.id, error: String(e && e.stack || e) });
  if (msg.cmd === 'answer') answer(msg.id, msg.sdp, msg.tone).catch(fail);
  else if (msg.cmd === 'stats') stats(msg.id).catch(fail);
  else if (msg.cmd === 'close') close(msg.id);
  else if (msg.cmd === 'setup') setup(msg.n).catch(fail);
  else if (msg.cmd === 'quit') { for (const id of [...calls.keys()]) close(id); setTimeout(() => process.exit(0), 100); }
});
rl.on('close', () => process.exit(0));
// Bounded: never outlive the benchmark by more than an hour.
setTimeout(() => process.exit(3), 3600 * 1000).unref();
