"""RFC 4733 telephone-events on top of aiortc, which has no support for them.

aiortc neither negotiates ``telephone-event`` nor lets anything add packets to the RTP
stream of a sender (sequence numbers live inside its send loop).  Three small, per-call
hooks make RFC 4733 work without touching installed files:

* **Negotiation** (:func:`offer_telephone_event`, :func:`answer_telephone_event`): the
  ``telephone-event`` payload type is added to the SDP we *send* (the peer connection's own
  description does not need it).
* **Sending** (:class:`TelephoneEventSender`): while digits are queued, the outgoing audio
  packets of our SSRC are rewritten, on their way into SRTP, into event packets: the same
  SSRC and the same, continuous sequence numbers, the payload type of ``telephone-event``,
  the timestamp of the event's first packet, a growing duration, the marker on the first
  packet and three end packets (RFC 4733 §2.5.1).  The voice is replaced while a digit
  plays, as RFC 4733 senders do.
* **Receiving** (:func:`attach_receiver`): the event payload type is routed to the audio
  receiver and its packets are taken out before aiortc's codec check (which would drop them).

Threading: everything runs on the loop that owns the peer connection.
"""

from __future__ import annotations

import collections
import logging
import re
import struct
import threading
from typing import Any, Callable, Deque, Optional, Tuple

from .. import _internals
from .dtmf import check_digits

__all__ = ["EVENT_CODES", "offer_telephone_event", "answer_telephone_event", "telephone_event_of",
           "TelephoneEventSender", "attach_receiver", "parse_event"]

log = logging.getLogger(__name__)

#: RFC 4733 §3.2 event codes of the DTMF keys.
EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
_DIGIT_OF = {code: digit for digit, code in EVENT_CODES.items()}
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) telephone-event/(\d+)", re.M | re.I)


def telephone_event_of(sdp: str) -> Optional[Tuple[int, int]]:
    """``(payload type, clock rate)`` of ``telephone-event`` in ``sdp`` (48 kHz preferred), or ``None``."""
    found = [(int(pt), int(rate)) for pt, rate in _RTPMAP.findall(sdp)]
    if not found:
        return None
    return next((f for f in found if f[1] == 48000), found[0])


def _add_to_audio_section(sdp: str, pt: int, rate: int) -> str:
    """``telephone-event`` in the first audio section: its payload type in the m-line and its rtpmap/fmtp
    lines together (before, every audio m-line got the payload type and only the first its rtpmap, so a
    second audio section listed a payload type nobody described)."""
    lines = sdp.split("\r\n")
    out = []
    in_audio = added = False
    for line in lines:
        if line.startswith("m="):
            if in_audio and not added:
                out.extend(_event_lines(pt, rate))
                added = True
            in_audio = line.startswith("m=audio ") and not added
            if in_audio:
                parts = line.split(" ")
                if str(pt) not in parts[3:]:
                    line = " ".join(parts + [str(pt)])
        out.append(line)
    if in_audio and not added:
        while out and out[-1] == "":
            out.pop()
        out.extend(_event_lines(pt, rate))
        out.append("")
    return "\r\n".join(out)


def _event_lines(pt: int, rate: int) -> list:
    return [f"a=rtpmap:{pt} telephone-event/{rate}", f"a=fmtp:{pt} 0-15"]


def offer_telephone_event(offer: str, pt: int = 101, rate: int = 8000) -> str:
    """Add ``telephone-event`` to an offer we send (as the gateway offers it, docs/protocol.rst §4.2)."""
    if telephone_event_of(offer) is not None:
        return offer
    return _add_to_audio_section(offer, pt, rate)


def _first_codec_rate(sdp: str) -> Optional[int]:
    """Clock rate of the first format of the first audio m-line (the codec that is sent)."""
    mline = re.search(r"^m=audio \S+ \S+ (\d+)", sdp, re.M)
    if mline is None:
        return None
    pt = mline.group(1)
    rtpmap = re.search(rf"^a=rtpmap:{pt} [^/\s]+/(\d+)", sdp, re.M)
    if rtpmap is not None:
        return int(rtpmap.group(1))
    return 8000 if pt in ("0", "8", "9") else None


def answer_telephone_event(answer: str, offer: str) -> str:
    """Accept the offer's ``telephone-event`` in the answer we send (nothing if it was not offered).

    Of several, the one at the clock rate of the codec the answer sends (RFC 4733 §2.1: events use the
    audio's clock); when none is at that rate (an Opus offer with only ``telephone-event/8000``, as the
    gateway's), the first offered, as browsers answer it.
    """
    offered = [(int(pt), int(rate)) for pt, rate in _RTPMAP.findall(offer)]
    if not offered or telephone_event_of(answer) is not None:
        return answer
    rate = _first_codec_rate(answer)
    return _add_to_audio_section(answer, *next((o for o in offered if o[1] == rate), offered[0]))


def parse_event(payload: bytes) -> Optional[Tuple[str, bool, int]]:
    """``(digit, end, duration)`` of an RFC 4733 payload, ``None`` for a non-DTMF event or a short payload."""
    if len(payload) < 4:
        return None
    event, flags, duration = struct.unpack("!BBH", payload[:4])
    digit = _DIGIT_OF.get(event)
    if digit is None:
        return None
    return digit, bool(flags & 0x80), duration


def _header_length(data: bytes) -> int:
    length = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10 and len(data) >= length + 4:
        length += 4 + 4 * struct.unpack("!H", data[length + 2:length + 4])[0]
    return length


class TelephoneEventSender:
    """Turns a sender's outgoing audio packets into RFC 4733 events while digits are queued.

    :param sender: the aiortc ``RTCRtpSender`` of the call's audio.
    :param pt: negotiated ``telephone-event`` payload type; :param rate: its clock rate.
    """

    PACKET_MS = 20

    def __init__(self, sender: Any, pt: int, rate: int) -> None:
        self.sender = sender
        self.pt = pt
        self.rate = rate
        self._queue: Deque[Tuple[int, int]] = collections.deque()  # (event code, packets of tone)
        self._lock = threading.Lock()
        self._current: Optional[dict] = None
        self._gap = 0
        self._restore: Optional[Callable[[], None]] = None
        self.sent_events = 0

    def install(self) -> bool:
        """Hook the sender's outgoing RTP; ``False`` when this aiortc does not look as expected (recorded
        in :func:`purecloud_webrtc._internals.probe` and logged)."""
        self._restore = _internals.wrap_send_rtp(self.sender, self._rewrite)
        return self._restore is not None

    def uninstall(self) -> None:
        restore, self._restore = self._restore, None
        if restore is not None:
            restore()

    def send(self, digits: str, duration: float = 0.1, gap: float = 0.06) -> float:
        """Queue ``digits`` (any thread); returns the seconds they take."""
        digits = check_digits(digits)
        tone = max(2, round(duration * 1000 / self.PACKET_MS))
        pause = max(2, round(gap * 1000 / self.PACKET_MS))
        with self._lock:
            for digit in digits:
                self._queue.append((EVENT_CODES[digit], tone))
                self._queue.append((-1, pause))
        return len(digits) * (tone + pause + 3) * self.PACKET_MS / 1000

    @property
    def busy(self) -> bool:
        with self._lock:
            return bool(self._queue) or self._current is not None

    def _rewrite(self, data: bytes) -> bytes:
        # Only our audio packets (not RTCP, not other senders on a bundled transport).
        if len(data) < 12 or (data[1] & 0x7F) in range(64, 96) or struct.unpack("!I", data[8:12])[0] != _internals.sender_ssrc(self.sender):
            return data
        with self._lock:
            if self._current is None:
                if not self._queue:
                    return data
                code, packets = self._queue.popleft()
                if code < 0:
                    self._gap = packets
                    self._current = {"gap": True}
                else:
                    self._current = {"code": code, "packets": packets, "sent": 0, "ends": 0, "ts": None}
            current = self._current
            if current.get("gap"):
                self._gap -= 1
                if self._gap <= 0:
                    self._current = None
                return data
        header = _header_length(data)
        if current["ts"] is None:
            current["ts"] = data[4:8]
        current["sent"] += 1
        sent = min(current["sent"], current["packets"])
        end = current["sent"] > current["packets"]
        duration = min(0xFFFF, sent * self.rate * self.PACKET_MS // 1000)
        if end:
            current["ends"] += 1
            if current["ends"] >= 3:  # the end packet goes three times (RFC 4733 §2.5.1.4)
                with self._lock:
                    self._current = None
                self.sent_events += 1
        marker = 0x80 if current["sent"] == 1 else 0x00
        payload = struct.pack("!BBH", current["code"], (0x80 if end else 0x00) | 10, duration)
        return bytes([data[0] & 0xDF, marker | self.pt]) + data[2:4] + current["ts"] + data[8:header] + payload


def attach_receiver(pc: Any, pt: int, on_digit: Callable[[str], None]) -> bool:
    """Route ``telephone-event`` packets of ``pc``'s audio receiver to ``on_digit`` (once per event).

    :returns: ``False`` when this aiortc does not look as expected (nothing is changed then).
    """
    receiver = next((t.receiver for t in pc.getTransceivers() if t.kind == "audio"), None)
    seen: Deque[Tuple[int, int]] = collections.deque(maxlen=64)

    async def handle(packet: Any) -> None:
        event = parse_event(packet.payload)
        key = (packet.ssrc, packet.timestamp)
        if event is None or key in seen:
            return
        seen.append(key)
        try:
            on_digit(event[0])
        except Exception:  # a listener's bug must not break the receiver
            log.exception("RFC 4733 listener failed")

    return _internals.intercept_payload_type(receiver, pt, handle)
