"""How the SDK answers an offer, composed as ``SessionMedia`` composes it, for tests without a call.

:func:`answer` takes an offer's candidates out, restricts host candidates to 127.0.0.1 and closes the peer
connection at once: nothing is ever contacted.
"""

from __future__ import annotations

import asyncio
from typing import Sequence

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from purecloud_webrtc._ice import release_host_addresses, restrict_host_addresses
from purecloud_webrtc._negotiation import DEFAULT_CODEC_PREFERENCES, plan_offer, shape_answer
from purecloud_webrtc.jingle.sdp import split_candidates
from purecloud_webrtc.media.rfc4733 import answer_telephone_event


def answer(offer: str, preferences: Sequence[str] = DEFAULT_CODEC_PREFERENCES) -> str:
    remote, _ = split_candidates(offer)
    prepared, plan = plan_offer(remote, preferences)

    async def run() -> str:
        loop = asyncio.get_running_loop()
        restrict_host_addresses(loop, ["127.0.0.1"])
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(prepared, "offer"))
            pc.addTrack(AudioStreamTrack())
            await pc.setLocalDescription(await pc.createAnswer())
            return pc.localDescription.sdp
        finally:
            await pc.close()
            release_host_addresses(loop)

    return shape_answer(answer_telephone_event(asyncio.run(run()), prepared), plan)
