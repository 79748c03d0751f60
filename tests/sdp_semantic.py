"""An independent reading of SDP, reduced to what the SDP <-> Jingle mapping promises to keep.

Shared by the translator's table tests (``tests/unit/test_sdp_jingle.py``) and the browser corpus tests
(``tests/unit/test_browser_corpus.py``). It parses SDP on its own, never with the module under test.
"""

from __future__ import annotations

from typing import Optional

#: What SDP -> Jingle -> SDP loses on purpose, and why.  :func:`semantic`
#: ignores exactly these; ``test_deliberate_losses_happen`` shows each one.
DELIBERATE_LOSSES = {
    "o=, s=, t=": "session boilerplate, regenerated ('o=- <number from sid> 2 IN IP4 0.0.0.0') (PROTOCOL §4.9)",
    "c=, m= port, a=rtcp:": "addresses travel only in candidates; rebuilt as 0.0.0.0 and port 9, or 0 for a "
                            "rejected section (a content whose transport has no ICE credentials)",
    "rejected sections": "a port-0 section (not bundle-only) keeps its description and comes back rejected, "
                         "without the ICE credentials, fingerprints, setup or candidates that mean nothing there",
    "a=bundle-only": "a bundle-only section (port 0) comes back as an accepted one (port 9) in its BUNDLE group",
    "m= profile": "always UDP/TLS/RTP/SAVPF: WebRTC media is DTLS-SRTP, and Jingle has no profile field",
    "a=ice-lite": "stanza has a field for it but never serialises it (PROTOCOL §4.2)",
    "a=ice-options": "no Jingle element for trickle/renomination",
    "a=msid-semantic": "regenerated as 'WMS *' whenever a <stream> exists (aiortc needs it to read a=msid)",
    "session-level b=": "only media-level b= lines map to XEP-0167 <bandwidth/>",
    "extmap '/sendrecv'": "sendrecv is the XEP-0294 default, so no senders attribute and no '/sendrecv'",
    "rtpmap '/1'": "mono is written without '/1' (libwebrtc style); Jingle keeps channels='1' (PROTOCOL §10)",
    "data channel details": "m=application comes back rejected (port 0) without sctp-port/max-message-size/candidates",
    "candidate ufrag, network-cost": "not XEP-0176 attributes",
    "session-level attributes": "ICE/DTLS/direction/extmap/end-of-candidates move into every media section",
    "fmtp spacing": "'a; b' is written 'a;b'",
    "unknown attributes": "anything outside the §4.9 table (a=rid, a=simulcast, a=crypto...) is dropped",
}

# RFC 3551 static payload types used by the fixtures (independent of the module's table).
STATIC = {0: ("PCMU", 8000, 1), 8: ("PCMA", 8000, 1), 9: ("G722", 8000, 1), 13: ("CN", 8000, 1), 18: ("G729", 8000, 1)}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
CANDIDATE_KEYS = ("raddr", "rport", "tcptype", "generation", "network-id")



def attrs(lines: list[str]) -> list[tuple[str, Optional[str]]]:
    result = []
    for line in lines:
        if line.startswith("a="):
            name, colon, value = line[2:].partition(":")
            result.append((name, value if colon else None))
    return result


def values(pairs: list[tuple[str, Optional[str]]], name: str) -> list[str]:
    return [v if v is not None else "" for n, v in pairs if n == name]


def first(pairs: list[tuple[str, Optional[str]]], name: str) -> Optional[str]:
    found = values(pairs, name)
    return found[0] if found else None


def norm_candidate(text: str) -> dict:
    tokens = text.split(":", 1)[1].split() if text.startswith(("candidate:", "a=candidate:")) else text.split()
    ext = dict(zip(tokens[8::2], tokens[9::2]))
    return {
        "foundation": tokens[0],
        "component": int(tokens[1]),
        "protocol": tokens[2].lower(),
        "priority": int(tokens[3]),
        "ip": tokens[4],
        "port": int(tokens[5]),
        "type": tokens[7],
        **{k: ext[k] for k in CANDIDATE_KEYS if k in ext},
    }


def semantic(sdp: str) -> dict:
    """An SDP reduced to what the §4.9 mapping promises to keep (see DELIBERATE_LOSSES)."""
    session: list[str] = []
    sections: list[tuple[str, list[str], list[str]]] = []
    for line in sdp.splitlines():
        if not line:
            continue
        if line.startswith("m="):
            sections.append((line[2:], [], []))
        elif sections:
            (sections[-1][2] if line.startswith("b=") else sections[-1][1]).append(line)
        else:
            session.append(line)
    sa = attrs(session)
    media = []
    for mline, lines, bandwidths in sections:
        kind, port, _proto, *fmts = mline.split()
        a = attrs(lines)
        entry: dict = {
            # Port 0 rejects a section, unless a=bundle-only says it rides on the BUNDLE transport (RFC 8843).
            "rejected": int(port.split("/")[0]) == 0 and ("bundle-only", None) not in a,
            "kind": kind,
            "mid": first(a, "mid") or kind,
            "direction": next((n for n, _ in a if n in DIRECTIONS), None)
            or next((n for n, _ in sa if n in DIRECTIONS), "sendrecv"),
            "ice": (first(a, "ice-ufrag") or first(sa, "ice-ufrag"), first(a, "ice-pwd") or first(sa, "ice-pwd")),
            "fingerprints": [tuple(v.split()) for v in values(a, "fingerprint") or values(sa, "fingerprint")],
            "setup": first(a, "setup") or first(sa, "setup"),
        }
        media.append(entry)
        if entry["rejected"] or kind == "application":
            # A rejected section negotiates no transport: its ICE and DTLS lines mean nothing (RFC 8829
            # §5.3.1) and are not carried (DELIBERATE_LOSSES, "rejected sections"). Data sections always
            # come back rejected ("data channel details").
            for key in ("ice", "fingerprints", "setup"):
                del entry[key]
            if kind == "application":
                del entry["rejected"]
        if kind == "application":
            continue
        codecs: dict[int, dict] = {}
        for fmt in fmts:
            pt = int(fmt)
            name, clock, channels = STATIC.get(pt, (None, None, None))
            codecs[pt] = {"name": name, "clock": clock, "channels": channels, "fmtp": [], "fb": [], "trr": None}
        for value in values(a, "rtpmap"):
            pt_text, desc = value.split(" ", 1)
            parts = desc.split("/")
            codecs[int(pt_text)].update(
                name=parts[0],
                clock=int(parts[1]),
                channels=int(parts[2]) if len(parts) > 2 else (1 if kind == "audio" else None),
            )
        for value in values(a, "fmtp"):
            pt_text, params = value.split(" ", 1)
            codecs[int(pt_text)]["fmtp"] += [p.strip() for p in params.split(";") if p.strip()]
        wildcard: list[tuple[str, ...]] = []
        wildcard_trr = None
        for value in values(a, "rtcp-fb"):
            pt_text, fb_type, *rest = value.split(" ", 2)
            target = codecs[int(pt_text)] if pt_text != "*" else None
            if fb_type == "trr-int":
                if target is None:
                    wildcard_trr = rest[0]
                else:
                    target["trr"] = rest[0]
            elif target is None:
                wildcard.append((fb_type, *rest))
            else:
                target["fb"].append((fb_type, *rest))
        extmaps = []
        for value in values(sa, "extmap") + values(a, "extmap"):
            ident, uri = value.split()[:2]
            ext_id, _, ext_dir = ident.partition("/")
            extmaps.append((int(ext_id), ext_dir or "sendrecv", uri))
        ssrcs: dict[int, list[str]] = {}
        for value in values(a, "ssrc"):
            ssrc, ssrc_attr = value.split(" ", 1)
            ssrcs.setdefault(int(ssrc), []).append(ssrc_attr)
        entry.update(
            codecs=[(pt, codecs[pt]) for pt in map(int, fmts)],
            wildcard_fb=wildcard,
            wildcard_trr=wildcard_trr,
            ptime=first(a, "ptime"),
            maxptime=first(a, "maxptime"),
            extmaps=extmaps,
            extmap_allow_mixed=("extmap-allow-mixed", None) in a + sa,
            rtcp_mux=("rtcp-mux", None) in a,
            rtcp_rsize=("rtcp-rsize", None) in a,
            ssrcs=ssrcs,
            ssrc_groups=[v.split() for v in values(a, "ssrc-group")],
            msid=[v.split() for v in values(a, "msid")],
            bandwidth=bandwidths,
            candidates=[] if entry["rejected"] else [norm_candidate(v) for v in values(a, "candidate")],
            end_of_candidates=not entry["rejected"] and ("end-of-candidates", None) in a + sa,
        )
    return {"group": [v.split() for v in values(sa, "group")], "media": media}
