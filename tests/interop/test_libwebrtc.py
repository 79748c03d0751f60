"""Calls whose far end is Google's libwebrtc (Node, @roamhq/wrtc) instead of aiortc.

The emulator's gateway is unchanged; each call's media party is ``node/libwebrtc_party.js``,
which makes libwebrtc's own full audio offer, plays a tone and streams back what it hears.
The SDK (aiortc) answers it: codec negotiation must pick Opus out of libwebrtc's list, and
the tones must be heard both ways (FFT).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Iterator

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator import Emulator, LibwebrtcParty
from purecloud_webrtc.media import BufferSink, ToneSource

from conftest import SdkFactory, wait_until

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
SCRIPT = NODE_DIR / "libwebrtc_party.js"
NODE = shutil.which("node")
HAVE_WRTC = NODE is not None and (NODE_DIR / "node_modules" / "@roamhq" / "wrtc" / "package.json").is_file()
TOL = 5.0

pytestmark = [
    pytest.mark.timeout(90),
    pytest.mark.skipif(not HAVE_WRTC, reason="Node.js or node/node_modules/@roamhq/wrtc is missing "
                                             "(scripts/bootstrap.sh installs both; CI has them)"),
]


@pytest.fixture
def libwebrtc_emulator() -> Iterator[Emulator]:
    assert NODE is not None
    with Emulator(remote_party=LibwebrtcParty(script=str(SCRIPT), node=NODE), tone_hz=440.0) as emu:
        yield emu


@pytest.fixture
def sdk_factory(libwebrtc_emulator: Emulator) -> Iterator[SdkFactory]:
    factory = SdkFactory(libwebrtc_emulator)
    try:
        yield factory
    finally:
        factory.close()


def _rtpmap(sdp: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(r"^a=rtpmap:(\d+) (\S+)", sdp, re.M)}


@pytest.mark.parametrize("trickle", [True, False], ids=["trickle", "inline-candidates"])
def test_call_with_libwebrtc_far_end(libwebrtc_emulator: Emulator, sdk_factory: SdkFactory, trickle: bool) -> None:
    sdk = sdk_factory()
    with sdk.expect_event("pendingSession", timeout=15) as ev:
        call = libwebrtc_emulator.inbound_call(trickle=trickle)
    with sdk.expect_event("sessionStarted", timeout=30) as started:
        sdk.accept_pending_session(ev.value.id, source=ToneSource(660.0), sink=BufferSink())
    session: pcw.Session = started.value
    call.wait_state("connected", timeout=30)
    # libwebrtc's full offer, as it made it.
    offered = _rtpmap(call.local_sdp or "")
    names = {v.split("/")[0].lower() for v in offered.values()}
    assert {"opus", "red", "g722", "pcmu", "pcma", "cn", "telephone-event"} <= names, offered
    assert re.search(r"^a=fmtp:\d+ .*useinbandfec=1", call.local_sdp or "", re.M)
    # The SDK's answer picks Opus first (aiortc keeps the offerer's order and drops what it lacks).
    answer = call.remote_sdp or ""
    m_line = re.search(r"^m=audio \d+ \S+ (.*)$", answer, re.M)
    assert m_line is not None, answer
    first_pt = m_line.group(1).split()[0]
    assert _rtpmap(answer)[first_pt].lower().startswith("opus/48000/2"), answer
    assert offered[first_pt] == _rtpmap(answer)[first_pt]  # same payload type number as libwebrtc's
    # Audio both ways: aiortc hears libwebrtc's 440 Hz, libwebrtc hears the SDK's 660 Hz.
    call.wait_for_audio(timeout=20, min_seconds=1.0)
    assert session.sink.wait_for_duration(1.2, timeout=20)
    assert abs(session.sink.dominant_frequency(last_seconds=1.0) - 440.0) <= TOL
    wait_until(lambda: abs(call.heard_frequency(seconds=1.0) - 660.0) <= TOL, 10, "libwebrtc hearing 660 Hz")
    assert "connected" in call.connection_states
    with sdk.expect_event("sessionEnded", timeout=15) as ended:
        sdk.end_session(id=session.id)
    assert ended.args[1] == "success"
    call.wait_state("ended", timeout=10)
