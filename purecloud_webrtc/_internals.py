"""The one adapter for every private internal of aiortc, aioice and PyAV that the SDK relies on.

aiortc has no extension points for what a softphone needs: its own audio jitter buffer cannot be
replaced, it has no RFC 4733 sender or receiver, its host-candidate gathering cannot be restricted,
and PyAV's libopus cannot conceal loss.  So the SDK reaches inside, and it does so **here only**
(``grep`` for a private name elsewhere finds nothing):

=====================  ==========================================================  =====================
hook                   private internal                                             fallback when absent
=====================  ==========================================================  =====================
``jitter_buffer``      ``RTCRtpReceiver.__jitter_buffer``, ``__codecs``;            aiortc's own receive
                       ``RtpPacket._data``                                          path (no concealment)
``rfc4733_send``       ``RTCDtlsTransport._send_rtp``, ``RTCRtpSender._ssrc``       in-band DTMF only
``rfc4733_receive``    ``RTCDtlsTransport._rtp_router``,                            in-band DTMF only
                       ``RTCRtpReceiver._handle_rtp_packet``
``codec_name``         ``RTCRtpTransceiver._codecs``                                stats without codec
``host_addresses``     ``aioice.ice.get_host_addresses``                            no restriction
``jitter_frame``       ``aiortc.jitterbuffer.JitterFrame``                          none (required)
``libopus``            PyAV's bundled ``av.libs/libopus*.so``                       the system libopus
=====================  ==========================================================  =====================

The versions these hooks are tested with are :data:`TESTED`; CI runs the suite on the oldest and the
newest (``make test`` runs the second lane).  Outside that range the SDK warns once at first use and
each hook checks what it touches before using it.  :func:`probe` says which hooks are active; the SDK
logs it at start, ``purecloud-webrtc doctor`` prints it and it is in ``sdk.internals``.  A hook that
fails to install is recorded (with its reason) and logged as a warning: never silently ignored.

Nothing here is imported from aiortc at module import: ``import purecloud_webrtc`` stays cheap.
"""

from __future__ import annotations

import asyncio
import glob
import logging
import os
import threading
import warnings
import weakref
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

__all__ = ["TESTED", "probe", "HookStatus", "check_versions"]

log = logging.getLogger("purecloud_webrtc.internals")

#: (oldest, newest) versions of each dependency the hooks are tested with (inclusive, by release).
TESTED: Dict[str, Tuple[str, str]] = {
    "aiortc": ("1.16.0", "1.16.0"),  # 1.14/1.15 lack RTCConfiguration.iceTransportPolicy (relay-only calls)
    "aioice": ("0.12.0", "0.13.0"),
    "av": ("14.2.0", "18.1.0"),  # older wheels bundle a libopus without opus_packet_has_lbrr (FEC)
}

HOOKS = ("jitter_buffer", "rfc4733_send", "rfc4733_receive", "codec_name", "host_addresses", "jitter_frame",
         "libopus", "dtls_certificate")


@dataclass(frozen=True)
class HookStatus:
    """Whether one hook is in use.

    :ivar state: ``"active"`` (used and working), ``"available"`` (its internals are there, not used yet),
        ``"failed"`` (it could not be installed: the fallback is in use) or ``"unused"`` (not used in this
        process yet, and not checkable without a peer connection).
    :ivar reason: why it failed, or ``""``.
    """

    state: str
    reason: str = ""


_lock = threading.Lock()
_status: Dict[str, HookStatus] = {}
_warned_versions = False


def _version_tuple(text: str) -> Tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def installed_versions() -> Dict[str, Optional[str]]:
    """The installed version of each dependency in :data:`TESTED` (``None`` when missing)."""
    found: Dict[str, Optional[str]] = {}
    for name in TESTED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def check_versions() -> List[str]:
    """One message per dependency outside its tested range (empty when all are inside it)."""
    problems = []
    for name, version in installed_versions().items():
        if version is None:
            continue
        oldest, newest = TESTED[name]
        if not _version_tuple(oldest) <= _version_tuple(version) <= _version_tuple(newest):
            problems.append(f"{name} {version} is outside the tested range {oldest}..{newest}")
    return problems


def _warn_versions_once() -> None:
    global _warned_versions
    with _lock:
        if _warned_versions:
            return
        _warned_versions = True
    problems = check_versions()
    if problems:
        message = ("purecloud_webrtc: " + "; ".join(problems) + ". Each hook into their internals checks what it "
                   "touches and falls back to the library's own behaviour (see purecloud_webrtc.probe()).")
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        log.warning("%s", message)


def _record(hook: str, ok: bool, reason: str = "") -> bool:
    status = HookStatus("active") if ok else HookStatus("failed", reason)
    with _lock:
        previous = _status.get(hook)
        _status[hook] = status  # the latest result: a hook that worked once can still fail for one call
    if not ok and (previous is None or previous.state != "failed"):
        log.warning("hook %s could not be installed (%s); using the fallback", hook, reason)
    return ok


def probe() -> Dict[str, HookStatus]:
    """Which hooks are active, available, failed (with the reason) or off, plus a version check.

    Hooks used at least once report their last result; the others are checked against the classes
    installed (without creating any peer connection).
    """
    _warn_versions_once()
    result: Dict[str, HookStatus] = {}
    static = _static_checks()
    with _lock:
        recorded = dict(_status)
    for hook in HOOKS:
        result[hook] = recorded.get(hook) or static.get(hook, HookStatus("unused"))
    return result


def _static_checks() -> Dict[str, HookStatus]:
    checks: Dict[str, HookStatus] = {}

    def check(hook: str, ok: bool, reason: str) -> None:
        checks[hook] = HookStatus("available") if ok else HookStatus("failed", reason)

    try:
        from aiortc.rtcdtlstransport import RTCDtlsTransport
        from aiortc.rtcrtpreceiver import RTCRtpReceiver

        check("rfc4733_send", callable(getattr(RTCDtlsTransport, "_send_rtp", None)),
              "RTCDtlsTransport._send_rtp is missing")
        check("rfc4733_receive", callable(getattr(RTCRtpReceiver, "_handle_rtp_packet", None)),
              "RTCRtpReceiver._handle_rtp_packet is missing")
    except ImportError as exc:
        check("rfc4733_send", False, str(exc))
        check("rfc4733_receive", False, str(exc))
    try:
        import aioice.ice

        check("host_addresses", callable(getattr(aioice.ice, "get_host_addresses", None)),
              "aioice.ice.get_host_addresses is missing")
    except ImportError as exc:
        check("host_addresses", False, str(exc))
    try:
        from aiortc.jitterbuffer import JitterFrame  # noqa: F401

        check("jitter_frame", True, "")
    except ImportError as exc:
        check("jitter_frame", False, str(exc))
    check("libopus", bool(pyav_libopus_paths()), "PyAV bundles no libopus (the system's is tried)")
    return checks


# -- dtls_certificate: a new peer connection for a call keeps the call's DTLS certificate ---------

_PC_CERTIFICATES = "_RTCPeerConnection__certificates"


def reuse_certificate(new_pc: Any, old_pc: Any) -> bool:
    """Give ``new_pc`` the DTLS certificate of ``old_pc`` (before either negotiates), so the fingerprint the
    far end knows stays true after the media is re-established; ``False`` (recorded in :func:`probe`) when
    aiortc does not look as expected: the new certificate's fingerprint is then signalled instead."""
    certificates = getattr(old_pc, _PC_CERTIFICATES, None)
    if not isinstance(certificates, list) or not isinstance(getattr(new_pc, _PC_CERTIFICATES, None), list):
        return _record("dtls_certificate", False, f"RTCPeerConnection.{_PC_CERTIFICATES} is missing")
    setattr(new_pc, _PC_CERTIFICATES, list(certificates))
    return _record("dtls_certificate", True)


# -- jitter_buffer: our receive path in place of aiortc's ---------------------------------------

_RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
_RECEIVER_CODECS = "_RTCRtpReceiver__codecs"


def receiver_codecs(receiver: Any) -> Dict[int, Any]:
    """The negotiated codecs of an ``RTCRtpReceiver`` by payload type (``{}`` when unknown)."""
    return dict(getattr(receiver, _RECEIVER_CODECS, None) or {})


def replace_receiver_jitter_buffer(receiver: Any, tap: Any) -> bool:
    """Put ``tap`` (an object with ``add(packet)``) where the receiver's audio jitter buffer was.

    :returns: ``False`` (nothing changed) when the receiver does not look as expected.
    """
    _warn_versions_once()
    if receiver is None:
        return _record("jitter_buffer", False, "no receiver")
    if not hasattr(receiver, _RECEIVER_JITTER_BUFFER) or not hasattr(receiver, _RECEIVER_CODECS):
        return _record("jitter_buffer", False, "RTCRtpReceiver has no __jitter_buffer/__codecs")
    setattr(receiver, _RECEIVER_JITTER_BUFFER, tap)
    return _record("jitter_buffer", True)


def packet_payload(packet: Any) -> bytes:
    """An RTP packet's payload without a copy where aiortc allows (``_data``), else ``payload``."""
    return getattr(packet, "_data", None) or packet.payload


# -- rfc4733_send / rfc4733_receive ----------------------------------------------------------------

def sender_ssrc(sender: Any) -> Optional[int]:
    """The SSRC an ``RTCRtpSender`` sends with (``None`` when unknown)."""
    return getattr(sender, "_ssrc", None)


def wrap_send_rtp(sender: Any, rewrite: Callable[[bytes], bytes]) -> Optional[Callable[[], None]]:
    """Pass every RTP packet the sender's DTLS transport sends through ``rewrite``.

    :returns: a function that undoes it, or ``None`` (nothing changed) when aiortc does not look as
        expected; the failure is recorded in :func:`probe`.
    """
    _warn_versions_once()
    transport = getattr(sender, "transport", None)
    original = getattr(transport, "_send_rtp", None)
    if transport is None or original is None or not hasattr(sender, "_ssrc"):
        _record("rfc4733_send", False, "RTCDtlsTransport._send_rtp or RTCRtpSender._ssrc is missing")
        return None

    async def send_rtp(data: bytes) -> None:
        await original(rewrite(data))

    transport._send_rtp = send_rtp
    _record("rfc4733_send", True)

    def restore() -> None:
        if getattr(transport, "_send_rtp", None) is send_rtp:
            transport._send_rtp = original

    return restore


def intercept_payload_type(receiver: Any, pt: int,
                           handler: Callable[[Any], Awaitable[None]]) -> bool:
    """Route the receiver's RTP packets of payload type ``pt`` to ``handler(packet)``; others go on as usual.

    :returns: ``False`` (nothing changed) when aiortc does not look as expected.
    """
    _warn_versions_once()
    transport = getattr(receiver, "transport", None)
    router = getattr(transport, "_rtp_router", None)
    original = getattr(receiver, "_handle_rtp_packet", None)
    if receiver is None or router is None or original is None:
        return _record("rfc4733_receive", False, "RTCDtlsTransport._rtp_router or _handle_rtp_packet is missing")
    # Without this, aiortc's router discards a known SSRC with an unknown payload type.
    router.register_receiver(receiver, ssrcs=[], payload_types=[pt])

    async def handle(packet: Any, arrival_time_ms: int) -> None:
        if packet.payload_type != pt:
            await original(packet, arrival_time_ms=arrival_time_ms)
            return
        await handler(packet)

    receiver._handle_rtp_packet = handle
    return _record("rfc4733_receive", True)


# -- codec_name ------------------------------------------------------------------------------------

def transceiver_codecs(transceiver: Any) -> List[Any]:
    """The codecs negotiated on a transceiver, preferred first (``[]`` when unknown)."""
    codecs = getattr(transceiver, "_codecs", None)
    _record("codec_name", codecs is not None, "RTCRtpTransceiver._codecs is missing")
    return list(codecs or [])


# -- jitter_frame ----------------------------------------------------------------------------------

def jitter_frame(data: bytes, timestamp: int) -> Any:
    """aiortc's ``JitterFrame`` (what its decoders take)."""
    from aiortc.jitterbuffer import JitterFrame

    return JitterFrame(data=data, timestamp=timestamp)


# -- libopus ---------------------------------------------------------------------------------------

def pyav_libopus_paths() -> List[str]:
    """The libopus shared libraries PyAV's wheel bundles (``av.libs/``), best first; ``[]`` when none."""
    try:
        import av
    except ImportError:
        return []
    libs = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    return sorted(glob.glob(os.path.join(libs, "libopus*.so*")))


def record_libopus(path: Optional[str]) -> None:
    """Note which libopus :mod:`purecloud_webrtc.media._opus` loaded (for :func:`probe`)."""
    if path is None:
        _record("libopus", False, "no libopus could be loaded")
    else:
        _record("libopus", True)


# -- host_addresses: aioice gathers only where we say, per event loop -------------------------------
#
# aioice reads its host addresses through the module-level ``aioice.ice.get_host_addresses``.  The
# replacement looks up a restriction registered for the *running event loop*: each SDK owns its loop
# thread, so SDKs (and the emulator) in one process hold different restrictions.  The replacement is
# installed only while at least one loop holds a restriction, and every other loop (the user's own
# aiortc peers) gets aioice's own function, so nothing else in the process changes.

_restrictions: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Tuple[str, ...]]" = weakref.WeakKeyDictionary()
_original_get_host_addresses: Optional[Callable[..., List[str]]] = None


def _restricted_host_addresses(use_ipv4: bool, use_ipv6: bool) -> List[str]:
    try:
        loop: Optional[asyncio.AbstractEventLoop] = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _lock:
        restriction = _restrictions.get(loop) if loop is not None else None
        original = _original_get_host_addresses
    if restriction is None:
        assert original is not None
        return original(use_ipv4, use_ipv6)
    # Exact addresses were asked for; loopback is allowed here on purpose (aioice itself skips it).
    return [a for a in restriction if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]


def restrict_host_addresses(loop: asyncio.AbstractEventLoop, addresses: Optional[Sequence[str]]) -> None:
    """Gather host candidates only on ``addresses`` for peer connections run by ``loop``.

    ``None`` removes the restriction of ``loop`` (aioice's own choice: every non-loopback interface).
    """
    global _original_get_host_addresses
    import aioice.ice

    with _lock:
        if addresses is None:
            _restrictions.pop(loop, None)
        else:
            _restrictions[loop] = tuple(addresses)
        installed = aioice.ice.get_host_addresses is _restricted_host_addresses
        if _restrictions and not installed:
            current = getattr(aioice.ice, "get_host_addresses", None)
            if current is None:
                ok, reason = False, "aioice.ice.get_host_addresses is missing"
            else:
                _original_get_host_addresses = current
                aioice.ice.get_host_addresses = _restricted_host_addresses
                ok, reason = True, ""
        else:
            ok, reason = True, ""
        if not _restrictions and installed and _original_get_host_addresses is not None:
            aioice.ice.get_host_addresses = _original_get_host_addresses
    if addresses is not None:
        _record("host_addresses", ok, reason)


def release_host_addresses(loop: asyncio.AbstractEventLoop) -> None:
    """Forget the restriction of ``loop`` (called when a loop is closed); the last one uninstalls the hook."""
    restrict_host_addresses(loop, None)
