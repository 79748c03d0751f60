"""Our SDP ⇄ Jingle translator against stanza's, the one the official JavaScript client uses.

``node/stanza_oracle.js`` runs stanza's own converters (``importFromSDP``,
``convertIntermediateToRequest``/``convertRequestToIntermediate``, its JXT
registry for the XML).  For every SDP of the corpus and both roles:

A. **our Jingle, read by stanza**: stanza parses the ``<jingle/>`` we write and must
   get the same intermediate form as from the ``<jingle/>`` it writes itself;
B. **stanza's Jingle, read by us**: the SDP we make of stanza's ``<jingle/>``, read
   back by stanza's SDP parser, must give the same intermediate form as stanza's own
   reading of that Jingle.

Both sides are compared after :func:`canonical`, which keeps every field stanza
carries and normalises only spelling (case of hex, codec names, protocol).  What is
left out or adjusted on purpose is listed in :data:`DELIBERATE` with the reason; any
other difference fails the test.

The corpus: ``tests/data/sdp`` (the translator's own fixtures) and
``tests/data/sdp_interop`` (aiortc 1.16 and libwebrtc (@roamhq/wrtc 0.10) offers and
answers captured on loopback, and hand-written Chrome/Firefox/Safari-style SDPs).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from purecloud_webrtc import _xml as X
from purecloud_webrtc.jingle.sdp import SdpError, jingle_to_sdp, sdp_to_jingle

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "node"
ORACLE = NODE_DIR / "stanza_oracle.js"
DATA = ROOT / "tests" / "data"
CORPUS = sorted((DATA / "sdp").glob("*.sdp")) + sorted((DATA / "sdp_interop").glob("*.sdp")) + sorted(
    (DATA / "browser_sdp").glob("*/*.sdp"))
#: Corpus files by name: the file name for the hand-made fixtures, ``stack/file`` for the browser corpus.
NAMES = {(p.name if p.parent.parent == DATA else f"{p.parent.name}/{p.name}"): p for p in CORPUS}
ROLES = ("initiator", "responder")

NODE = shutil.which("node")
HAVE_STANZA = NODE is not None and (NODE_DIR / "node_modules" / "stanza" / "package.json").is_file()
pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not HAVE_STANZA, reason="Node.js or node/node_modules/stanza is missing "
                                               "(scripts/bootstrap.sh installs both; CI has them)"),
]

#: Differences that are deliberate, each with its reason.  Keys are the fields
#: :func:`canonical` drops or rewrites; the values are shown when the test runs.
DELIBERATE: Dict[str, str] = {
    "session.iceLite": "stanza never writes ice-lite into Jingle (convertIntermediateToTransport only copies a "
                       "field its XML definition lacks), so a lite peer cannot be signalled; we do the same "
                       "(sdp.py docstring).",
    "session-level a=setup": "stanza's importFromSDP throws on an SDP whose a=setup is only at session level "
                             "(it reads the m-section's); it is given the same SDP with a=setup copied into "
                             "every m-section, which is what the session-level line means. We read both.",
    "no a=mid": "for an m-section without a=mid stanza writes a <content> with no name (XEP-0166 requires "
                "one) and so cannot describe it; we name the content after its media type (as SJJ did) and "
                "refuse a nameless <content> with a clear SdpError.",
    "a=rtcp-fb:*": "we carry wildcard feedback as description-level <rtcp-fb/> (XEP-0293 §4: applies to every "
                   "payload type); stanza writes it into each <payload-type> and its Jingle reader ignores the "
                   "description-level form, so stanza reading ours lacks it. Per-payload feedback agrees.",
    "plan-B msid": "msid only in a=ssrc lines: we carry it as an XEP-0339 <source> parameter; stanza turns it into "
                   "a <stream/> and its Jingle reader ignores source parameters other than cname.",
    "static payload types": "RFC 3551 payload types without a=rtpmap: we describe them (PCMU/PCMA/G729/CN...); "
                            "stanza ignores them and writes a <description> with no <payload-type>, which we refuse "
                            "with SdpError (nothing to negotiate).",
    "session-level a=extmap": "RFC 8285 allows a=extmap at session level; we copy it into each content, stanza's "
                              "SDP reader ignores it.",
    "media.protocol": "Jingle has no profile: both regenerate UDP/TLS/RTP/SAVPF for RTP (and stanza "
                      "UDP/DTLS/SCTP for data channels, which we write back rejected).",
    "application media": "data channels: stanza carries SCTP in <sctpmap/>, we write an empty "
                         "webrtc-datachannel description and read it back as a rejected m=application (the "
                         "softphone never negotiates data channels); compared only by mid and kind.",
    "rejected sections": "a section without ICE credentials or fingerprint is rejected (port 0): stanza keeps the "
                         "candidates a browser left in a port-0 section, we drop them with the ICE and DTLS lines; "
                         "neither is used.",
    "a=bundle-only": "Firefox's bundle-only sections (port 0 with a=bundle-only, RFC 8843) are accepted sections "
                     "on the BUNDLE transport: we carry their ICE and DTLS; stanza's SDP reader takes port 0 for "
                     "a rejection and drops them, so stanza reading ours has a transport where its own has none.",
    "rtcpParameters.compound": "derived by stanza from reduced-size; not a field of its own.",
    "codec.numChannels": "a duplicate of channels in stanza's intermediate form.",
    "codec.channels=1": "an rtpmap without a channel count means 1 channel: we write channels=\"1\" for audio "
                        "(the official client does, docs/protocol.rst §10), stanza leaves it out when the SDP did.",
    "codec.parameters without value": "stanza's JXT drops a <parameter/> without value (red's 111/111) on "
                                      "import; we carry it but both sides lose it when stanza reads.",
    "candidate.address": "stanza's intermediate form repeats ip as address.",
    "candidate.generation/network-id": "stanza drops them; we carry them (XEP-0176 generation and network).",
    "candidate.foundation/ports as text": "numbers vs. strings between stanza's SDP and Jingle readers.",
    "fingerprint.value case": "hex case differs between writers; both are the same fingerprint.",
    "fingerprint.setup": "stanza reads the setup of the first fingerprint only.",
    "headerExtension.attributes": "stanza's SDP reader has extmap attributes, its Jingle reader never does.",
    "rtpEncodingParameters/rtcpParameters.ssrc": "compared as one set of (ssrc, cname, FID rtx) because "
                                                 "stanza's SDP reader lists every ssrc while Jingle keeps the "
                                                 "first source and the FID group.",
    "streams": "msid: compared as (stream, track) pairs; stanza turns a missing track into undefined.",
}


def stanza_readable(sdp: str) -> str:
    """``sdp`` with a session-level ``a=setup`` repeated in every m-section (see :data:`DELIBERATE`)."""
    lines = sdp.replace("\r\n", "\n").split("\n")
    first_m = next((i for i, line in enumerate(lines) if line.startswith("m=")), len(lines))
    setup = next((line for line in lines[:first_m] if line.startswith("a=setup:")), None)
    if setup is None:
        return sdp
    out: List[str] = []
    section: List[str] = []
    for line in lines[first_m:] + ["m=end"]:
        if line.startswith("m=") and section:
            if not any(x.startswith("a=setup:") for x in section):
                section.append(setup)
            out += section
            section = []
        section.append(line)
    body = [line for line in out if line]
    return "\r\n".join(lines[:first_m] + body) + "\r\n"


def run_oracle(requests: List[Dict[str, Any]]) -> List[Any]:
    """Run the stanza oracle on ``requests``; returns the values, failing on any oracle error."""
    assert NODE is not None
    proc = subprocess.run([NODE, str(ORACLE)], input=json.dumps({"requests": requests}), capture_output=True,
                          text=True, timeout=60, cwd=str(NODE_DIR))
    assert proc.returncode == 0, f"stanza oracle failed: {proc.stderr}"
    reply = json.loads(proc.stdout)
    values = []
    for request, result in zip(requests, reply["results"]):
        assert result["ok"], f"stanza refused {request['op']}: {result['error']}"
        values.append(result["value"])
    return values


def _num(value: Any) -> Optional[int]:
    # stanza's SDP reader says ssrc=false where there is none.
    return None if value is None or value is False else int(value)


#: Per-fixture deliberate differences: (file, "A" or "B") -> (field left out of the comparison, DELIBERATE key).
WAIVERS: Dict[Tuple[str, str], Tuple[str, str]] = {
    ("gateway_offer_inactive_feedback.sdp", "A"): ("rtcp-fb", "a=rtcp-fb:*"),
    ("legacy_planb_ssrc_params.sdp", "A"): ("streams", "plan-B msid"),
    ("static_payloads_no_rtpmap.sdp", "A"): ("codecs", "static payload types"),
    ("offer_session_level_attributes.sdp", "A"): ("extensions", "session-level a=extmap"),
}
for _name in ("firefox/max-bundle.gathered.offer.sdp", "firefox/max-bundle.trickle.offer.sdp",
              "firefox/two-audio.gathered.offer.sdp", "firefox/two-audio.trickle.offer.sdp"):
    WAIVERS[(_name, "A")] = ("transport", "a=bundle-only")
#: Fixtures whose stanza-written Jingle we refuse on purpose: file -> (part of our SdpError, DELIBERATE key).
REFUSALS: Dict[str, Tuple[str, str]] = {
    "static_payloads_no_rtpmap.sdp": ("has no <payload-type>", "static payload types"),
    "gateway_offer_sendonly_ptime.sdp": ("has no 'name' attribute", "no a=mid"),
}


def canonical(intermediate: Dict[str, Any], ignore: str = "") -> Dict[str, Any]:
    """The fields of a stanza intermediate form both sides must agree on (see :data:`DELIBERATE`).

    :param ignore: one field to leave out (a :data:`WAIVERS` entry).
    """
    media = []
    for m in intermediate.get("media", []):
        # DELIBERATE["no a=mid"]: a nameless content is named after its media type, as we name it.
        entry: Dict[str, Any] = {"kind": m.get("kind"), "mid": m.get("mid") or m.get("kind")}
        if m.get("kind") == "application":
            media.append(entry)
            continue
        ice = m.get("iceParameters") or {}
        dtls = m.get("dtlsParameters") or {}
        rtcp = m.get("rtcpParameters") or {}
        rtp = m.get("rtpParameters") or {}
        encodings = m.get("rtpEncodingParameters") or []
        first = encodings[0] if encodings else {}
        entry.update({
            "direction": m.get("direction"),
            "ice": (ice.get("usernameFragment"), ice.get("password")),
            "fingerprints": sorted((f["algorithm"].lower(), f["value"].upper()) for f in dtls.get("fingerprints", [])),
            "setup": m.get("setup"),
            "rtcp-mux": bool(rtcp.get("mux")),
            "rtcp-rsize": bool(rtcp.get("reducedSize")),
            "ssrc": (_num(first.get("ssrc")), _num((first.get("rtx") or {}).get("ssrc")), rtcp.get("cname")),
            "streams": sorted((s.get("stream"), s.get("track")) for s in m.get("streams") or []),
            "codecs": [
                (c["payloadType"], c["name"].lower(), c["clockRate"], c.get("channels") or 1,
                 tuple(sorted((k, str(v)) for k, v in (c.get("parameters") or {}).items())),
                 tuple(sorted((f["type"], f.get("parameter") or "") for f in c.get("rtcpFeedback") or [])))
                for c in rtp.get("codecs", [])
            ],
            "extensions": [(e["id"], e["uri"], e.get("direction") or "sendrecv")
                           for e in rtp.get("headerExtensions", [])],
            "candidates": sorted(
                (str(c["foundation"]), _num(c["component"] if c["component"] not in ("rtp", "rtcp") else
                                            {"rtp": 1, "rtcp": 2}[c["component"]]),
                 c["protocol"].lower(), _num(c["priority"]), c["ip"], _num(c["port"]), c["type"],
                 c.get("relatedAddress"), _num(c.get("relatedPort")), c.get("tcpType"))
                for c in m.get("candidates") or []),
        })
        # DELIBERATE["rejected sections"]: a section without ICE credentials or fingerprint is rejected; what
        # else its transport says means nothing.
        entry["rejected"] = not (ice and dtls.get("fingerprints"))
        if entry["rejected"] or ignore == "transport":
            for key in ("ice", "fingerprints", "setup", "candidates"):
                del entry[key]
        if ignore == "rtcp-fb":
            entry["codecs"] = [c[:5] for c in entry["codecs"]]
        elif ignore == "transport":
            del entry["rejected"]
        elif ignore:
            del entry[ignore]
        media.append(entry)
    return {"groups": [(g["semantics"], list(g["mids"])) for g in intermediate.get("groups", [])], "media": media}


def _ours_as_xml(sdp: str, role: str) -> str:
    jingle = X.element(X.q("jingle", "jingle"), {"action": "session-initiate", "sid": "ours"})
    for child in sdp_to_jingle(sdp, role):  # type: ignore[arg-type]
        jingle.append(child)
    return X.to_string(jingle)


def _diff(a: Any, b: Any, path: str = "") -> List[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{path}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += _diff(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: ours {a!r} != stanza {b!r}"]


@pytest.fixture(scope="module")
def agreement() -> Dict[Tuple[str, str], Dict[str, Any]]:
    """Everything the oracle says about the corpus, in two batched runs of Node."""
    cases = [(name, role) for name in NAMES for role in ROLES]
    texts = {name: stanza_readable(path.read_text()) for name, path in NAMES.items()}
    first: List[Dict[str, Any]] = []
    for name, role in cases:
        first.append({"op": "sdp_to_jingle", "sdp": texts[name], "role": role})
        first.append({"op": "jingle_to_intermediate", "xml": _ours_as_xml(texts[name], role), "role": role})
    values = run_oracle(first)
    second: List[Dict[str, Any]] = []
    out: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for i, (name, role) in enumerate(cases):
        stanza_xml, stanza_reads_ours = values[2 * i], values[2 * i + 1]
        try:
            our_sdp: Optional[str] = jingle_to_sdp(X.parse(stanza_xml), role)  # type: ignore[arg-type]
            our_error = None
        except SdpError as exc:
            our_sdp, our_error = None, str(exc)
        out[(name, role)] = {"stanza_xml": stanza_xml, "stanza_reads_ours": stanza_reads_ours,
                                  "our_sdp": our_sdp, "our_error": our_error}
        second.append({"op": "jingle_to_intermediate", "xml": stanza_xml, "role": role})
        second.append({"op": "import_sdp", "sdp": our_sdp or "v=0\r\n"})
    values = run_oracle(second)
    for i, key in enumerate(out):
        out[key]["stanza_reads_own"] = values[2 * i]
        out[key]["stanza_reads_our_sdp"] = values[2 * i + 1]
    return out


def test_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 30, [p.name for p in CORPUS]
    text = "".join(p.read_text() for p in CORPUS)
    for feature in ("a=group:BUNDLE", "a=rtcp-fb:", "a=extmap:", "a=ssrc:", "a=msid:", "a=candidate:",
                    "telephone-event", "a=sendonly", "a=recvonly", "a=inactive", "typ relay", "tcptype",
                    "a=fingerprint:sha-1", "a=ssrc-group:FID", "m=video", "m=application"):
        assert feature in text, feature
    names = " ".join(NAMES)
    for origin in ("aiortc", "libwebrtc", "chrome", "firefox", "safari"):
        assert origin in names, origin


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(NAMES))
def test_stanza_reads_our_jingle_as_its_own(agreement: Dict[Tuple[str, str], Dict[str, Any]], name: str,
                                           role: str) -> None:
    case = agreement[(name, role)]
    waived = WAIVERS.get((name, "A"), ("", ""))[0]
    if waived:  # the difference exists (else the waiver is stale) and is the only one
        assert _diff(canonical(case["stanza_reads_ours"]), canonical(case["stanza_reads_own"])) != []
    ours, theirs = canonical(case["stanza_reads_ours"], waived), canonical(case["stanza_reads_own"], waived)
    assert _diff(ours, theirs) == [], f"\nour jingle: {case}"


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(NAMES))
def test_our_sdp_of_stanzas_jingle_means_the_same(agreement: Dict[Tuple[str, str], Dict[str, Any]], name: str,
                                                 role: str) -> None:
    case = agreement[(name, role)]
    if name in REFUSALS:
        assert case["our_error"] is not None and REFUSALS[name][0] in case["our_error"], case["our_error"]
        return
    assert case["our_error"] is None, case["our_error"]
    ours, theirs = canonical(case["stanza_reads_our_sdp"]), canonical(case["stanza_reads_own"])
    assert _diff(ours, theirs) == [], f"\nour SDP:\n{case['our_sdp']}\nstanza's jingle:\n{case['stanza_xml']}"


def test_every_waiver_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    used = {key for _, key in WAIVERS.values()} | {key for _, key in REFUSALS.values()}
    assert used <= set(DELIBERATE), used - set(DELIBERATE)
    assert all(name in NAMES for name, _ in WAIVERS) and set(REFUSALS) <= set(NAMES)
    with capsys.disabled():
        print("\nDeliberate differences from stanza's SDP <-> Jingle:")
        for key, reason in DELIBERATE.items():
            print(f"  - {key}: {reason}")


@pytest.fixture(scope="module")
def our_answers() -> Dict[str, str]:
    """What the SDK answers to every audio offer of the browser corpus (tests/answering.py)."""
    from answering import answer

    from purecloud_webrtc._negotiation import NegotiationError

    answers = {}
    for name, path in NAMES.items():
        text = path.read_text()
        if not name.startswith(("chromium/", "firefox/", "aiortc/")) or ".offer." not in name or "m=audio" not in text:
            continue
        try:
            answers[name] = answer(text)
        except NegotiationError:
            continue
    return answers


def test_stanza_reads_our_answers_to_the_browser_corpus(our_answers: Dict[str, str]) -> None:
    """Every answer we give to a browser offer: stanza parses its SDP, and reads our Jingle of it as its own."""
    assert len(our_answers) >= 40
    requests: List[Dict[str, Any]] = []
    for sdp in our_answers.values():
        requests.append({"op": "sdp_to_jingle", "sdp": sdp, "role": "responder"})
        requests.append({"op": "jingle_to_intermediate", "xml": _ours_as_xml(sdp, "responder"), "role": "responder"})
    values = run_oracle(requests)
    second = [{"op": "jingle_to_intermediate", "xml": values[2 * i], "role": "responder"}
              for i in range(len(our_answers))]
    own = run_oracle(second)
    for i, name in enumerate(our_answers):
        ours, theirs = canonical(values[2 * i + 1]), canonical(own[i])
        assert _diff(ours, theirs) == [], f"{name}\n{our_answers[name]}"
        # stanza sees our rejected audio/video sections as rejected (no transport), the taken one as not.
        rejected = sum(1 for line in our_answers[name].splitlines() if line.startswith(("m=audio 0 ", "m=video 0 ")))
        assert sum(1 for m in ours["media"] if m.get("rejected")) == rejected, name
