"""Canaries for the private internals of aiortc, aioice and PyAV that ``purecloud_webrtc._internals`` uses.

Each test builds bare library objects (no connection, no packet sent) and checks the attribute or
signature a hook relies on, so a new aiortc release that moves one fails here by name instead of
silently turning a feature off.  ``make test`` runs these on the oldest and the newest tested aiortc.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any, Iterator

import pytest

from purecloud_webrtc import _internals


@pytest.fixture
def transceiver() -> Iterator[Any]:
    from aiortc import RTCConfiguration, RTCPeerConnection

    loop = asyncio.new_event_loop()
    pc = loop.run_until_complete(_make(RTCPeerConnection, RTCConfiguration))
    try:
        yield pc.getTransceivers()[0]
    finally:
        loop.run_until_complete(pc.close())
        loop.close()


async def _make(pc_class: Any, config_class: Any) -> Any:
    pc = pc_class(config_class(iceServers=[]))
    pc.addTransceiver("audio")
    return pc


def test_installed_versions_are_inside_the_tested_range():
    assert _internals.check_versions() == [], _internals.installed_versions()


def test_receiver_keeps_its_jitter_buffer_and_codecs_where_the_hook_looks(transceiver):
    receiver = transceiver.receiver
    assert hasattr(receiver, "_RTCRtpReceiver__jitter_buffer")
    assert isinstance(getattr(receiver, "_RTCRtpReceiver__codecs"), dict)
    assert hasattr(receiver.__dict__["_RTCRtpReceiver__jitter_buffer"], "add")
    marker = object()
    assert _internals.replace_receiver_jitter_buffer(receiver, marker)
    assert receiver.__dict__["_RTCRtpReceiver__jitter_buffer"] is marker
    assert _internals.probe()["jitter_buffer"].state == "active"


def test_receiver_rtp_handler_and_router(transceiver):
    receiver = transceiver.receiver
    handler = getattr(receiver, "_handle_rtp_packet")
    assert inspect.iscoroutinefunction(handler)
    assert list(inspect.signature(handler).parameters) == ["packet", "arrival_time_ms"]
    router = getattr(receiver.transport, "_rtp_router")
    assert list(inspect.signature(router.register_receiver).parameters)[:3] == ["receiver", "ssrcs", "payload_types"]


def test_dtls_transport_send_rtp_and_sender_ssrc(transceiver):
    sender = transceiver.sender
    send = getattr(sender.transport, "_send_rtp")
    assert inspect.iscoroutinefunction(send) and list(inspect.signature(send).parameters) == ["data"]
    assert isinstance(getattr(sender, "_ssrc"), int) and _internals.sender_ssrc(sender) == sender._ssrc
    restore = _internals.wrap_send_rtp(sender, lambda data: data)
    assert restore is not None and sender.transport._send_rtp is not send
    restore()
    assert sender.transport._send_rtp == send


def test_transceiver_codecs_list(transceiver):
    assert isinstance(getattr(transceiver, "_codecs"), list)
    assert _internals.transceiver_codecs(transceiver) == []  # nothing negotiated yet


def test_rtp_packet_payload():
    from aiortc.rtp import RtpPacket

    packet = RtpPacket(payload_type=111, payload=b"\x01\x02")
    assert _internals.packet_payload(packet) == b"\x01\x02"


def test_jitter_frame_and_aioice_host_addresses_signature():
    import aioice.ice

    frame = _internals.jitter_frame(b"x", 960)
    assert (frame.data, frame.timestamp) == (b"x", 960)
    assert list(inspect.signature(aioice.ice.get_host_addresses).parameters) == ["use_ipv4", "use_ipv6"]


def test_pyav_bundles_libopus_and_it_loads():
    from purecloud_webrtc.media import _opus

    assert _internals.pyav_libopus_paths(), "PyAV's wheel has no av.libs/libopus*"
    assert _opus.available() and _internals.probe()["libopus"].state == "active"


def test_host_address_hook_is_scoped_to_the_restricted_loop():
    import aioice.ice

    original = aioice.ice.get_host_addresses
    restricted = asyncio.new_event_loop()
    other = asyncio.new_event_loop()
    try:
        _internals.restrict_host_addresses(restricted, ["127.0.0.1"])

        async def addresses() -> list:
            return aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True)

        assert restricted.run_until_complete(addresses()) == ["127.0.0.1"]
        # Another loop in the process (a user's own aiortc peers) gets aioice's own answer.
        assert other.run_until_complete(addresses()) == original(True, True)
    finally:
        _internals.release_host_addresses(restricted)
        restricted.close()
        other.close()
    # The last restriction gone, aioice is exactly as installed (unless another SDK still holds one).
    if not _internals._restrictions:
        assert aioice.ice.get_host_addresses is original


def test_a_failed_hook_is_recorded_and_reported():
    class Bare:
        transport = None

    assert _internals.wrap_send_rtp(Bare(), lambda d: d) is None
    status = _internals.probe()["rfc4733_send"]
    assert status.state == "failed" and "_send_rtp" in status.reason
    _internals._record("rfc4733_send", True)  # put the process-wide record back for later tests


def test_probe_lists_every_hook():
    assert set(_internals.probe()) == set(_internals.HOOKS)


def test_private_internals_are_touched_in_the_adapter_only():
    """``grep`` for the private names of aiortc/aioice/PyAV finds them in ``_internals.py`` alone."""
    import re
    from pathlib import Path

    package = Path(_internals.__file__).parent
    private = re.compile(r"_RTCRtp\w+__|\._send_rtp\b|\b_rtp_router\b|\b_handle_rtp_packet\b|[\"']_codecs[\"']|"
                         r"transceiver\._codecs|sender\._ssrc|packet\._data|aioice\.ice\.get_host_addresses\s*=|"
                         r"[\"']av\.libs[\"']|aiortc\.jitterbuffer")
    offenders = []
    for path in package.rglob("*.py"):
        if path.name == "_internals.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if private.search(line) and not line.lstrip().startswith("#"):
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    assert offenders == []


def test_importing_the_package_touches_no_internal():
    import subprocess
    import sys

    # Importing installs no hook and checks nothing: the adapter acts at first use.
    code = ("import purecloud_webrtc, purecloud_webrtc._internals as i\n"
            "assert not i._status and not i._warned_versions, i._status\n"
            "import aioice.ice\n"
            "assert aioice.ice.get_host_addresses is not i._restricted_host_addresses\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
