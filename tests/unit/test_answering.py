"""What the SDK answers to every audio offer of the browser corpus (docs/protocol.rst §4.10).

Each offer goes the way ``SessionMedia`` takes it: :func:`plan_offer` picks the section and orders the
codecs, aiortc answers that section, ``telephone-event`` is added, and :func:`shape_answer` puts the other
sections back rejected. Candidates are taken out of the offers first, and host candidates are restricted
to 127.0.0.1: nothing is contacted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from answering import answer
from sdp_semantic import semantic

from purecloud_webrtc import _xml
from purecloud_webrtc._negotiation import (NegotiationError, check_codec_preferences,
                                           plan_offer)
from purecloud_webrtc._xml import element, q
from purecloud_webrtc.jingle.sdp import jingle_to_sdp, sdp_to_jingle, split_candidates

pytestmark = pytest.mark.timeout(30)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "browser_sdp"
INDEX: Dict[str, Any] = json.loads((CORPUS / "index.json").read_text())
AUDIO_OFFERS = [e for e in INDEX["files"] if e["role"] == "offer" and "m=audio" in (CORPUS / e["file"]).read_bytes().decode()]
RATES = {"opus": 48000, "pcmu": 8000, "pcma": 8000, "g722": 8000}


def sections(sdp: str) -> List[List[str]]:
    out: List[List[str]] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if line.startswith("m="):
            out.append([line])
        elif out and line:
            out[-1].append(line)
    return out


def codec_names(section: List[str]) -> Dict[str, str]:
    names = {pt: n for pt, n in (("0", "pcmu"), ("8", "pcma"), ("9", "g722")) if pt in section[0].split()[3:]}
    for line in section:
        match = re.match(r"a=rtpmap:(\d+) ([^/]+)/(\d+)", line)
        if match:
            names[match.group(1)] = match.group(2).lower()
    return names


def telephone_events(section: List[str]) -> List[Tuple[str, int]]:
    return [(m.group(1), int(m.group(2))) for line in section
            for m in [re.match(r"a=rtpmap:(\d+) telephone-event/(\d+)", line)] if m]


def expected_section(offer: str) -> Optional[int]:
    for index, section in enumerate(sections(offer)):
        rejected = section[0].split()[1] == "0" and "a=bundle-only" not in section
        if section[0].startswith("m=audio") and not rejected and set(codec_names(section).values()) & set(RATES):
            return index
    return None


@pytest.mark.parametrize("entry", AUDIO_OFFERS, ids=[e["file"] for e in AUDIO_OFFERS])
def test_every_audio_offer_is_answered_as_a_softphone_should(entry: Dict[str, Any]) -> None:
    offer = (CORPUS / entry["file"]).read_bytes().decode()
    taken = expected_section(offer)
    if taken is None:
        with pytest.raises(NegotiationError):
            answer(offer)
        return
    ours = answer(offer)
    offered, answered = sections(offer), sections(ours)
    # Same m-lines, same order, same kinds and mids.
    assert [s[0].split()[0] for s in answered] == [s[0].split()[0] for s in offered]
    mids = [next((x for x in s if x.startswith("a=mid:")), None) for s in offered]
    assert [next((x for x in s if x.startswith("a=mid:")), None) for s in answered] == mids
    for index, section in enumerate(answered):
        if index == taken:
            continue
        # Every other section rejected cleanly: port 0, one format, nothing of ICE, DTLS, direction.
        assert section[0].split()[1] == "0", section
        assert len(section[0].split()) == 4
        assert all(line.startswith(("m=", "c=", "a=mid:", "a=rtpmap:")) for line in section), section
    audio = answered[taken]
    assert audio[0].split()[1] != "0" and any(x.startswith("a=ice-ufrag:") for x in audio)
    # The codec: Opus when the section offered it, else PCMU, PCMA, G.722 in that order.
    offered_names = codec_names(offered[taken])
    first_pt = audio[0].split()[3]
    chosen = codec_names(audio)[first_pt]
    assert chosen == next(n for n in ("opus", "pcmu", "pcma", "g722") if n in offered_names.values())
    # telephone-event: once, at the chosen codec's clock rate when offered at it.
    offered_te = telephone_events(offered[taken])
    answered_te = telephone_events(audio)
    if offered_te:
        assert len(answered_te) == 1 and answered_te[0][0] in audio[0].split()[3:]
        rates = [rate for _, rate in offered_te]
        assert answered_te[0][1] == (RATES[chosen] if RATES[chosen] in rates else rates[0])
    else:
        assert answered_te == []
    # BUNDLE names only the section we took.
    for line in ours.splitlines():
        if line.startswith("a=group:"):
            assert line.split()[1:] == [mids[taken][len("a=mid:"):]], line
    # The answer goes to Jingle and back meaning the same, and rejected contents carry no ICE.
    stripped, _ = split_candidates(ours)
    jingle = element(q("jingle", "jingle"), {"action": "session-accept", "sid": "s"},
                     *sdp_to_jingle(stripped, "responder", include_candidates=False))
    back = jingle_to_sdp(_xml.parse(_xml.to_string(jingle)), "responder")
    assert semantic(back) == semantic(stripped)


def test_the_corpus_exercises_the_rules() -> None:
    offers = [(CORPUS / e["file"]).read_bytes().decode() for e in AUDIO_OFFERS]
    assert len(offers) >= 40
    assert any(sections(o)[0][0].split()[3] == "0" for o in offers), "no offer with PCMU first"
    assert any(len([s for s in sections(o) if s[0].startswith("m=audio")]) == 2 for o in offers)
    assert any("m=video" in o for o in offers) and any("m=application" in o for o in offers)
    assert any("opus" not in o.lower() for o in offers), "no narrowband-only offer"


def test_pcmu_first_offer_is_answered_with_opus_and_telephone_event_at_48k() -> None:
    offer = (CORPUS / "chromium" / "pcmu-preferred.gathered.offer.sdp").read_bytes().decode()
    assert sections(offer)[0][0].split()[3] == "0" and "telephone-event/48000" in offer
    audio = sections(answer(offer))[0]
    assert codec_names(audio)[audio[0].split()[3]] == "opus"
    assert [rate for _, rate in telephone_events(audio)] == [48000]


def test_codec_preferences_choose_the_codec() -> None:
    offer = (CORPUS / "chromium" / "audio.gathered.offer.sdp").read_bytes().decode()
    audio = sections(answer(offer, ("PCMA", "opus")))[0]
    assert codec_names(audio)[audio[0].split()[3]] == "pcma"
    assert [rate for _, rate in telephone_events(audio)] == [8000]


def test_narrowband_offer_gets_pcmu_and_telephone_event_at_8k() -> None:
    offer = (CORPUS / "firefox" / "narrowband-only.gathered.offer.sdp").read_bytes().decode()
    audio = sections(answer(offer))[0]
    assert codec_names(audio)[audio[0].split()[3]] == "pcmu"
    assert [rate for _, rate in telephone_events(audio)] == [8000]


def test_an_offer_without_usable_audio_is_refused_clearly() -> None:
    offer = (CORPUS / "chromium" / "audio.gathered.offer.sdp").read_bytes().decode()
    video_only = offer.replace("m=audio ", "m=video ")
    with pytest.raises(NegotiationError, match="no audio section"):
        plan_offer(video_only)
    with pytest.raises(NegotiationError, match="it can use PCMA"):
        plan_offer((CORPUS / "firefox" / "narrowband-only.gathered.offer.sdp").read_bytes().decode().replace(
            " PCMA/", " XYZ/").replace(" PCMU/", " XYZ/").replace(" 0 8 ", " 96 97 "), ("PCMA",))


@pytest.mark.parametrize("bad", ["opus", [], ["opus", "speex"], ["opus", "OPUS"], [1]])
def test_bad_codec_preferences_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError):
        check_codec_preferences(bad)


def test_telephone_event_is_offered_in_the_first_audio_section_only() -> None:
    """Before, a second audio m-line got the payload type without its rtpmap, and our own reader refused it."""
    from purecloud_webrtc.media.rfc4733 import offer_telephone_event

    offer = offer_telephone_event((CORPUS / "aiortc" / "two-audio.gathered.offer.sdp").read_bytes().decode())
    first, second = [s for s in sections(offer) if s[0].startswith("m=audio")]
    assert "101" in first[0].split()[3:] and telephone_events(first) == [("101", 8000)]
    assert "101" not in second[0].split()[3:] and telephone_events(second) == []
    jingle = element(q("jingle", "jingle"), {"action": "session-initiate", "sid": "s"}, *sdp_to_jingle(offer, "initiator"))
    assert semantic(jingle_to_sdp(_xml.parse(_xml.to_string(jingle)), "initiator")) == semantic(offer)
