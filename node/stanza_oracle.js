#!/usr/bin/env node
// A reference oracle for purecloud_webrtc/jingle/sdp.py: stanza's own SDP <-> Jingle
// conversion (the library the official JavaScript client is built on), driven as a
// filter.  Reads one JSON object on stdin, writes one JSON object on stdout:
//
//   in:  {"requests": [{"op": ..., ...}, ...]}
//   out: {"stanza": "<version>", "results": [{"ok": true, "value": ...} | {"ok": false, "error": "..."}]}
//
// ops:
//   import_sdp        {sdp}                 -> stanza's intermediate form of an SDP
//   sdp_to_jingle     {sdp, role}           -> the <jingle/> XML stanza would send for it
//   jingle_to_intermediate {xml, role}      -> stanza's intermediate form of a <jingle/> (ours or its own)
//   jingle_to_sdp     {xml, role}           -> the SDP stanza would hand to the browser for it
//
// role is the party that wrote the SDP / Jingle ("initiator" or "responder"), as in stanza.
'use strict';

const { JXT } = require('stanza');
const Protocol = require('stanza/protocol').default;
const { importFromSDP, exportToSDP } = require('stanza/jingle');
const {
    convertIntermediateToRequest,
    convertRequestToIntermediate
} = require('stanza/jingle/sdp/Protocol');
const stanzaVersion = require('stanza/package.json').version;

// The namespace, not the short name: with 'iceUdp' stanza silently drops <transport/>.
const ICE_UDP = 'urn:xmpp:jingle:transports:ice-udp:1';

const registry = new JXT.Registry();
registry.define(Protocol);

function checkRole(role) {
    if (role !== 'initiator' && role !== 'responder') {
        throw new Error(`role must be initiator or responder, not ${JSON.stringify(role)}`);
    }
    return role;
}

// A bare <jingle/> is parsed inside an <iq/>, the only place stanza's registry knows it.
function parseJingle(xml) {
    const wrapped = `<iq xmlns="jabber:client" type="set" id="oracle">${xml}</iq>`;
    const iq = registry.import(JXT.parse(wrapped));
    if (!iq || !iq.jingle) {
        throw new Error('stanza found no <jingle/> in the XML');
    }
    return iq.jingle;
}

const ops = {
    import_sdp(req) {
        return importFromSDP(req.sdp);
    },
    sdp_to_jingle(req) {
        const request = convertIntermediateToRequest(importFromSDP(req.sdp), checkRole(req.role), ICE_UDP);
        const iq = registry.export('iq', {
            id: 'oracle',
            type: 'set',
            jingle: { action: 'session-initiate', sid: 'oracle', ...request }
        });
        const xml = iq.toString();
        // Hand back the <jingle/> alone, as our translator produces it.
        const start = xml.indexOf('<jingle');
        const end = xml.lastIndexOf('</iq>');
        return xml.slice(start, end);
    },
    jingle_to_intermediate(req) {
        return convertRequestToIntermediate(parseJingle(req.xml), checkRole(req.role));
    },
    jingle_to_sdp(req) {
        return exportToSDP(convertRequestToIntermediate(parseJingle(req.xml), checkRole(req.role)));
    }
};

function main(input) {
    const { requests } = JSON.parse(input);
    const results = requests.map(req => {
        try {
            const op = ops[req.op];
            if (!op) {
                throw new Error(`unknown op ${JSON.stringify(req.op)}`);
            }
            // JSON round trip: drop undefined fields so both sides compare plain data.
            return { ok: true, value: JSON.parse(JSON.stringify(op(req)) ?? 'null') };
        } catch (err) {
            return { ok: false, error: String(err && err.stack ? err.stack : err) };
        }
    });
    process.stdout.write(JSON.stringify({ stanza: stanzaVersion, results }));
}

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', chunk => { input += chunk; });
process.stdin.on('end', () => {
    try {
        main(input);
    } catch (err) {
        process.stderr.write(`stanza_oracle: ${err && err.stack ? err.stack : err}\n`);
        process.exit(1);
    }
});
