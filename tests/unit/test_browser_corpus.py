"""The translator over SDPs from real browsers (``tests/data/browser_sdp``, see its ``index.json``).

The corpus was captured by ``scripts/browser_sdp/capture.py`` from Debian's Chromium and Firefox ESR on a
loopback-only network namespace: their offers (audio send/recv/only, inactive, two audio tracks, audio+
video, audio+data channel, PCMU/narrowband/G.722 preferred, BUNDLE max-compat/max-bundle, trickle and
gathered), re-offers on a live call (ICE restart, added video, hold, removed track, stopped video) and
their answers to aiortc, libwebrtc, gateway-style and each other's offers. These files are only text here.

Every file goes SDP -> Jingle -> XML -> SDP and must mean the same to the independent reader of
``tests/sdp_semantic.py``; what the mapping drops on purpose is its ``DELIBERATE_LOSSES``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
from aiortc.sdp import SessionDescription
from sdp_semantic import semantic

from purecloud_webrtc import _xml
from purecloud_webrtc._xml import element, find, q
from purecloud_webrtc.jingle.sdp import jingle_to_sdp, sdp_to_jingle

CORPUS = Path(__file__).resolve().parents[1] / "data" / "browser_sdp"
INDEX: Dict[str, Any] = json.loads((CORPUS / "index.json").read_text())
FILES: List[Dict[str, Any]] = INDEX["files"]
BROWSERS = ("chromium", "firefox")


def text_of(entry: Dict[str, Any]) -> str:
    return (CORPUS / entry["file"]).read_bytes().decode()


def role_of(entry: Dict[str, Any]) -> str:
    return "initiator" if entry["role"] == "offer" else "responder"


def roundtrip(sdp: str, role: str) -> str:
    jingle = element(q("jingle", "jingle"), {"action": "session-initiate", "sid": "corpus"},
                     *sdp_to_jingle(sdp, role))  # type: ignore[arg-type]
    return jingle_to_sdp(_xml.parse(_xml.to_string(jingle)), role)  # type: ignore[arg-type]


def test_index_lists_every_file_and_the_corpus_is_large() -> None:
    listed = {e["file"] for e in FILES}
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.sdp")}
    assert listed == on_disk
    browser_files = [e for e in FILES if e["stack"] in BROWSERS]
    assert len(browser_files) >= 200
    for entry in FILES:
        assert entry["version"] == INDEX["versions"][entry["stack"]]
        assert entry["role"] in ("offer", "answer") and entry["form"] in ("trickle", "gathered") and entry["scenario"]
        if entry["role"] == "answer":
            assert (CORPUS / entry["answers"]).is_file(), entry
    for browser in BROWSERS:
        mine = [e for e in browser_files if e["stack"] == browser]
        assert {e["role"] for e in mine} == {"offer", "answer"}
        assert {e["form"] for e in mine} == {"trickle", "gathered"}
        gathered = [text_of(e) for e in mine if e["form"] == "gathered"]
        assert sum("a=candidate:" in t for t in gathered) > len(gathered) // 2, f"{browser}: few candidates"
    text = "".join(text_of(e) for e in browser_files)
    for feature in ("m=video", "m=application", "a=bundle-only", "a=ssrc-group:FID", "telephone-event/8000",
                    "a=recvonly", "a=sendonly", "a=inactive", "a=extmap-allow-mixed", "m=video 0 "):
        assert feature in text, feature
    assert not INDEX["failures"], INDEX["failures"]


@pytest.mark.parametrize("entry", FILES, ids=[e["file"] for e in FILES])
def test_roundtrip_means_the_same(entry: Dict[str, Any]) -> None:
    original = text_of(entry)
    out = roundtrip(original, role_of(entry))
    assert semantic(out) == semantic(original)
    SessionDescription.parse(out)  # aiortc's parser reads what we write
    assert roundtrip(out, role_of(entry)) == out  # and a second trip changes nothing


def test_a_rejected_section_is_carried_as_rejected() -> None:
    """Chromium's answer to a re-offer that stopped the video: ``m=video 0`` with ICE credentials, fingerprint
    and setup left in. Before, it became a Jingle transport and came back as port 9: accepted."""
    sdp = (CORPUS / "chromium" / "stop-video.gathered.answer.sdp").read_bytes().decode()
    video = sdp[sdp.index("m=video"):]
    assert video.startswith("m=video 0 ") and "a=ice-ufrag:" in video and "a=fingerprint:" in video
    contents = sdp_to_jingle(sdp, "responder")
    transport = find(contents[1], "ice_udp", "transport")
    assert transport is not None and transport.get("ufrag") is None and list(transport) == []
    assert find(contents[0], "ice_udp", "transport").get("ufrag")  # type: ignore[union-attr]
    back = roundtrip(sdp, "responder")
    back_video = back[back.index("m=video"):]
    assert back_video.startswith("m=video 0 ")
    assert "a=ice-ufrag" not in back_video and "a=fingerprint" not in back_video and "a=candidate" not in back_video


def test_stanzas_rejected_content_is_read_as_rejected() -> None:
    """stanza rejects a content with a transport that has no ICE credentials; before, we read it as port 9."""
    content = element(q("jingle", "content"), {"creator": "initiator", "name": "1"},
                      element(q("rtp", "description"), {"media": "video"},
                              element(q("rtp", "payload-type"), {"id": "96", "name": "VP8", "clockrate": "90000"})),
                      element(q("ice_udp", "transport")))
    sdp = jingle_to_sdp(element(q("jingle", "jingle"), {"action": "session-accept", "sid": "s"}, content), "responder")
    assert "m=video 0 UDP/TLS/RTP/SAVPF 96\r\n" in sdp and "a=ice-" not in sdp


def test_bundle_only_sections_stay_accepted() -> None:
    """Firefox's max-bundle offer: the video section is ``m=video 0`` with ``a=bundle-only``, on the BUNDLE
    transport, not rejected."""
    sdp = (CORPUS / "firefox" / "max-bundle.gathered.offer.sdp").read_bytes().decode()
    assert "a=bundle-only" in sdp
    contents = sdp_to_jingle(sdp, "initiator")
    video = [c for c in contents if c.tag == q("jingle", "content")][1]
    assert find(video, "ice_udp", "transport").get("ufrag")  # type: ignore[union-attr]
    assert roundtrip(sdp, "initiator").count("m=video 9 ") == 1


def test_fid_groups_keep_their_sources() -> None:
    """RTX ``ssrc-group:FID`` and both sources' ``a=ssrc`` lines survive, in every browser file that has them."""
    checked = 0
    for entry in FILES:
        sdp = text_of(entry)
        if "a=ssrc-group:FID" not in sdp:
            continue
        back = roundtrip(sdp, role_of(entry))
        for line in sdp.splitlines():
            if line.startswith(("a=ssrc-group:", "a=ssrc:")):
                assert line in back.splitlines(), (entry["file"], line)
        checked += 1
    assert checked >= 10


def test_a_payload_type_listed_twice_is_one_payload_type() -> None:
    """A pre-gathering offer with ``111`` twice in its m-line: before, refused outright ("listed twice")."""
    sdp = (CORPUS / "chromium" / "audio.trickle.offer.sdp").read_bytes().decode()
    mline = next(line for line in sdp.splitlines() if line.startswith("m=audio"))
    fmts = mline.split()[3:]
    doubled = sdp.replace(mline, " ".join(mline.split()[:3] + [fmts[0]] + fmts))
    contents = sdp_to_jingle(doubled, "initiator")
    ids = [pt.get("id") for pt in contents[0].iter(q("rtp", "payload-type"))]
    assert ids == fmts


def _transport_info(*transports: str) -> Any:
    contents = "".join(f'<content creator="initiator" name="{i}"><transport xmlns="urn:xmpp:jingle:transports:ice-udp:1"'
                       f' {t}</transport></content>' for i, t in enumerate(transports))
    return _xml.parse(f'<jingle xmlns="urn:xmpp:jingle:1" action="transport-info" sid="s">{contents}</jingle>')


def test_transport_credentials_tell_a_restart_from_trickle() -> None:
    from purecloud_webrtc.jingle.sdp import SdpError, transport_credentials, with_credentials

    assert transport_credentials(_transport_info('ufrag="a">')) is None  # plain trickle: ufrag only
    fp = '<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256" setup="actpass">AB:CD</fingerprint>'
    creds = transport_credentials(_transport_info(f'ufrag="new" pwd="secretsecretsecretsecret">{fp}'))
    assert creds is not None and (creds.ufrag, creds.pwd) == ("new", "secretsecretsecretsecret")
    assert creds.fingerprints == (("sha-256", "AB:CD", "actpass"),)
    with pytest.raises(SdpError, match="different ICE credentials"):
        transport_credentials(_transport_info('ufrag="a" pwd="p1p1p1p1p1p1p1p1p1p1p1">', 'ufrag="b" pwd="p2p2p2p2p2p2p2p2p2p2">'))
    with pytest.raises(SdpError, match="empty"):
        transport_credentials(_transport_info('ufrag="a" pwd="p">'
                                              '<fingerprint xmlns="urn:xmpp:jingle:apps:dtls:0" hash="sha-256"/>'))
    offer = (CORPUS / "chromium" / "two-audio.gathered.offer.sdp").read_bytes().decode()
    restarted = with_credentials(offer, creds)
    assert "a=candidate" not in restarted and "a=ice-ufrag:new" in restarted
    assert restarted.count("a=ice-ufrag:new") == offer.count("a=ice-ufrag:")
    assert restarted.count("a=fingerprint:sha-256 AB:CD") == offer.count("a=fingerprint:")
    assert "a=setup:actpass" in restarted
