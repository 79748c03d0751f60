#!/usr/bin/env node
// A remote media party on Google's libwebrtc (@roamhq/wrtc), driven by the Python
// emulator (purecloud_webrtc/emulator/libwebrtc_party.py) in place of its aiortc party.
// It plays a sine tone and streams back what it hears.
//
// Protocol: one JSON object per line.
//   stdin  {"op": "offer", "tone_hz": 440}         create the offer (libwebrtc's full audio offer)
//          {"op": "answer", "sdp": "..."}           apply the remote answer
//          {"op": "candidate", "candidate": "candidate:...", "mid": "0", "index": 0} | {"op": "candidate", "candidate": null}
//          {"op": "close"}                          close and exit
//   stdout {"event": "offer", "sdp": "..."}        after ICE gathering completed
//          {"event": "answered"} | {"event": "error", "op": ..., "message": ...}
//          {"event": "state", "state": "connecting" | "connected" | ...}
//          {"event": "audio", "rate": 48000, "channels": 1, "pcm": "<base64 int16 LE>"}
'use strict';

const readline = require('readline');
const { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate, nonstandard } = require('@roamhq/wrtc');

const RATE = 48000;
const FRAME = RATE / 100; // libwebrtc's audio source takes 10 ms frames

let pc = null;
let source = null;
let track = null;
let toneTimer = null;
let sink = null;
let heard = [];
let heardFlush = null;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function startTone(frequency) {
    source = new nonstandard.RTCAudioSource();
    track = source.createTrack();
    let phase = 0;
    const step = (2 * Math.PI * frequency) / RATE;
    const started = Date.now();
    let sent = 0;
    // Paced by the clock, not by the timer: setInterval drifts and bunches under load.
    toneTimer = setInterval(() => {
        const due = Math.floor(((Date.now() - started) / 1000) * 100) + 1;
        for (; sent < due; sent++) {
            const samples = new Int16Array(FRAME);
            for (let i = 0; i < FRAME; i++) {
                samples[i] = Math.round(Math.sin(phase) * 0.3 * 32767);
                phase += step;
            }
            phase %= 2 * Math.PI;
            source.onData({ samples, sampleRate: RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: FRAME });
        }
    }, 10);
    return track;
}

function listen(remoteTrack) {
    if (sink || remoteTrack.kind !== 'audio') {
        return;
    }
    sink = new nonstandard.RTCAudioSink(remoteTrack);
    sink.ondata = data => {
        heard.push({ rate: data.sampleRate, channels: data.channelCount,
                     pcm: Buffer.from(data.samples.buffer, data.samples.byteOffset, data.samples.byteLength) });
    };
    // Batched: one line per ~100 ms keeps the pipe cheap.
    heardFlush = setInterval(() => {
        if (!heard.length) {
            return;
        }
        const { rate, channels } = heard[0];
        const same = heard.filter(h => h.rate === rate && h.channels === channels);
        heard = heard.filter(h => !(h.rate === rate && h.channels === channels));
        emit({ event: 'audio', rate, channels, pcm: Buffer.concat(same.map(h => h.pcm)).toString('base64') });
    }, 100);
}

function gatheringComplete() {
    if (pc.iceGatheringState === 'complete') {
        return Promise.resolve();
    }
    return new Promise(resolve => {
        pc.addEventListener('icegatheringstatechange', () => {
            if (pc.iceGatheringState === 'complete') {
                resolve();
            }
        });
    });
}

const ops = {
    async offer(cmd) {
        pc = new RTCPeerConnection({ iceServers: [] });
        pc.addEventListener('connectionstatechange', () => emit({ event: 'state', state: pc.connectionState }));
        pc.addEventListener('track', event => listen(event.track));
        pc.addTrack(startTone(cmd.tone_hz || 440));
        const offer = await pc.createOffer();
        await pc.setLocalDescription(offer);
        await gatheringComplete();
        emit({ event: 'offer', sdp: pc.localDescription.sdp });
    },
    async answer(cmd) {
        await pc.setRemoteDescription(new RTCSessionDescription({ type: 'answer', sdp: cmd.sdp }));
        emit({ event: 'answered' });
    },
    async candidate(cmd) {
        if (!cmd.candidate) {
            return; // end of candidates: libwebrtc needs no marker
        }
        await pc.addIceCandidate(new RTCIceCandidate({ candidate: cmd.candidate, sdpMid: cmd.mid,
                                                        sdpMLineIndex: cmd.index || 0 }));
    },
    async close() {
        shutdown(0);
    }
};

function shutdown(code) {
    clearInterval(toneTimer);
    clearInterval(heardFlush);
    if (sink) {
        sink.stop();
    }
    if (track) {
        track.stop();
    }
    if (pc) {
        pc.close();
    }
    process.exit(code);
}

// One command at a time, in order, as the emulator sends them.
let chain = Promise.resolve();
const lines = readline.createInterface({ input: process.stdin });
lines.on('line', line => {
    if (!line.trim()) {
        return;
    }
    const cmd = JSON.parse(line);
    chain = chain.then(() => (ops[cmd.op] || (() => Promise.reject(new Error(`unknown op ${cmd.op}`))))(cmd))
        .catch(err => emit({ event: 'error', op: cmd.op, message: String(err && err.message ? err.message : err) }));
});
// The emulator went away: nothing is left to do.
lines.on('close', () => chain.then(() => shutdown(0)));
