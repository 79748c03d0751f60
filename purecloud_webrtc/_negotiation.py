"""What this SDK accepts of an offer, and the shape of its answer (docs/protocol.rst §4.10).

A softphone call has one audio stream. Of any offer, the SDK takes the first audio section that is not
rejected and offers a codec it can use, and rejects every other section (a second audio section, video,
data channel) cleanly: port 0, the offer's first format, ``c=`` and ``a=mid``, nothing else (RFC 8829
§5.3.1, RFC 3264 §6). aiortc 1.16 cannot do this itself: it answers every section, ignores port 0, and
refuses a section without ICE credentials, so it is given only the section we take
(:func:`plan_offer`), and the rejected sections are put back around its answer (:func:`shape_answer`).

Codecs: the offerer's order is its preference, but the answerer chooses (RFC 3264 §6.1). The section we
take is reordered by ``codec_preferences`` (Opus first by default, then PCMU, PCMA, G.722) before aiortc
reads it, so aiortc's answer lists, and sends, the first of ours the offer has. ``telephone-event`` is
then accepted at the chosen codec's clock rate (RFC 4733 §2.1) by :mod:`purecloud_webrtc.media.rfc4733`.

Everything here is plain text processing, safe on any thread.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

from .jingle.sdp import SdpError

__all__ = ["DEFAULT_CODEC_PREFERENCES", "SUPPORTED_CODECS", "NegotiationError", "AnswerPlan", "plan_offer",
           "shape_answer", "check_codec_preferences"]

#: The order the SDK prefers audio codecs in, when the offer has several.
DEFAULT_CODEC_PREFERENCES: Tuple[str, ...] = ("opus", "PCMU", "PCMA", "G722")
#: The codecs the SDK (aiortc) can send and receive, by lower-case name, with their RTP clock rates.
SUPPORTED_CODECS = {"opus": 48000, "pcmu": 8000, "pcma": 8000, "g722": 8000}
_STATIC = {"0": "pcmu", "8": "pcma", "9": "g722"}  # RFC 3551 payload types aiortc knows without an rtpmap
_RTPMAP = re.compile(r"^a=rtpmap:(\d+) ([^/\s]+)/(\d+)", re.I)


class NegotiationError(SdpError):
    """The offer has nothing this SDK can answer: no audio section, or none with a codec it supports."""


def check_codec_preferences(value: Sequence[str]) -> Tuple[str, ...]:
    """Validate ``codec_preferences``: a non-empty sequence of codec names this SDK supports.

    :raises ValueError: naming what is wrong.
    """
    if isinstance(value, str) or not value:
        raise ValueError(f"codec_preferences must be a non-empty sequence of codec names, not {value!r}")
    names = tuple(value)
    unknown = [name for name in names if not isinstance(name, str) or name.lower() not in SUPPORTED_CODECS]
    if unknown:
        raise ValueError(f"codec_preferences: unsupported codec(s) {unknown!r}; this SDK supports "
                         f"{', '.join(DEFAULT_CODEC_PREFERENCES)}")
    if len({name.lower() for name in names}) != len(names):
        raise ValueError(f"codec_preferences lists a codec twice: {names!r}")
    return names


@dataclass
class _Section:
    lines: List[str]  # the m= line first

    @property
    def mline(self) -> List[str]:
        return self.lines[0][2:].split()

    @property
    def kind(self) -> str:
        return self.mline[0]

    @property
    def port(self) -> int:
        try:
            return int(self.mline[1].split("/")[0])
        except (IndexError, ValueError):
            raise SdpError(f"malformed m-line {self.lines[0]!r}") from None

    @property
    def mid(self) -> Optional[str]:
        return next((line[6:].strip() for line in self.lines if line.startswith("a=mid:")), None)

    @property
    def rejected(self) -> bool:
        return self.port == 0 and "a=bundle-only" not in self.lines

    def codec_names(self) -> dict:
        """Payload type -> lower-case codec name, from rtpmaps and the static table."""
        names = {pt: name for pt, name in _STATIC.items() if pt in self.mline[3:]}
        for line in self.lines:
            match = _RTPMAP.match(line)
            if match:
                names[match.group(1)] = match.group(2).lower()
        return names


def _split(sdp: str) -> Tuple[List[str], List[_Section]]:
    session: List[str] = []
    sections: List[_Section] = []
    for line in sdp.replace("\r\n", "\n").split("\n"):
        if not line:
            continue
        if line.startswith("m="):
            sections.append(_Section([line]))
        elif sections:
            sections[-1].lines.append(line)
        else:
            session.append(line)
    return session, sections


def _join(lines: List[str]) -> str:
    return "\r\n".join(lines) + "\r\n"


@dataclass(frozen=True)
class _Rejected:
    index: int
    kind: str
    proto: str
    fmt: str
    mid: Optional[str]
    rtpmap: Optional[str]


@dataclass(frozen=True)
class AnswerPlan:
    """What :func:`plan_offer` decided for one offer."""

    #: the position of the section we take among the offer's m-lines, and its mid
    index: int
    mid: Optional[str]
    #: the codec we will send (lower-case name) and its clock rate
    codec: str
    clock_rate: int
    #: the offer's direction for that section (``sendrecv``, ``sendonly``, ``recvonly``, ``inactive``)
    remote_direction: str
    rejected: Tuple[_Rejected, ...]
    sections: int


def plan_offer(offer: str, codec_preferences: Sequence[str] = DEFAULT_CODEC_PREFERENCES) -> Tuple[str, AnswerPlan]:
    """Choose what to accept of ``offer``; returns ``(the offer to give aiortc, the plan)``.

    :raises NegotiationError: when no audio section offers a codec of ``codec_preferences``.
    :raises SdpError: for an offer too malformed to read.
    """
    session, sections = _split(offer)
    if not sections:
        raise NegotiationError("the offer has no m= line")
    wanted = [name.lower() for name in codec_preferences]
    chosen: Optional[Tuple[int, str]] = None
    for index, section in enumerate(sections):
        if section.kind != "audio" or section.rejected:
            continue
        names = section.codec_names()
        offered = {names.get(pt) for pt in section.mline[3:]}
        codec = next((name for name in wanted if name in offered), None)
        if codec is not None:
            chosen = (index, codec)
            break
    if chosen is None:
        offered_audio = sorted({name for s in sections if s.kind == "audio" and not s.rejected
                                for name in s.codec_names().values()})
        raise NegotiationError(
            "the offer has no audio section with a codec this SDK can use "
            f"(it can use {', '.join(codec_preferences)}; offered: {', '.join(offered_audio) or 'no audio'})")
    index, codec = chosen
    taken = sections[index]
    names = taken.codec_names()
    fmts = taken.mline[3:]
    order = {name: rank for rank, name in enumerate(wanted)}
    preferred = sorted((pt for pt in fmts if names.get(pt) in order), key=lambda pt: order[names[pt]])
    reordered = preferred + [pt for pt in fmts if pt not in preferred]
    # aiortc lists (and sends) codecs in the order of the rtpmap lines, not the m-line's: reorder both.
    rank = {pt: i for i, pt in enumerate(reordered)}
    body = taken.lines[1:]
    rtpmaps = [line for line in body if _RTPMAP.match(line)]
    rtpmaps.sort(key=lambda line: rank.get(_RTPMAP.match(line).group(1), len(rank)))  # type: ignore[union-attr]
    if rtpmaps:
        first = next(i for i, line in enumerate(body) if _RTPMAP.match(line))
        rest = [line for line in body if not _RTPMAP.match(line)]
        body = rest[:first] + rtpmaps + rest[first:]
    taken_lines = [" ".join(["m=" + taken.kind] + taken.mline[1:3] + reordered)] + body
    rejected = []
    for i, section in enumerate(sections):
        if i == index:
            continue
        fmt = section.mline[3] if len(section.mline) > 3 else "0"
        rtpmap = next((line for line in section.lines if line.startswith(f"a=rtpmap:{fmt} ")), None)
        rejected.append(_Rejected(i, section.kind, section.mline[2] if len(section.mline) > 2 else "RTP/AVP",
                                  fmt, section.mid, rtpmap))
    kept_session = []
    for line in session:
        if line.startswith("a=group:"):
            semantics, *mids = line[8:].split()
            mids = [mid for mid in mids if mid == taken.mid]
            if not mids:
                continue
            line = "a=group:" + " ".join([semantics] + mids)
        kept_session.append(line)
    session_direction = next((line[2:] for line in session
                              if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")), "sendrecv")
    direction = next((line[2:] for line in taken.lines
                      if line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive")), session_direction)
    plan = AnswerPlan(index=index, mid=taken.mid, codec=codec, clock_rate=SUPPORTED_CODECS[codec],
                      remote_direction=direction, rejected=tuple(rejected), sections=len(sections))
    return _join(kept_session + taken_lines), plan


def shape_answer(answer: str, plan: AnswerPlan) -> str:
    """aiortc's one-section ``answer`` with the offer's other sections put back, rejected, in offer order."""
    session, sections = _split(answer)
    if len(sections) != 1:
        raise SdpError(f"expected aiortc's answer to have one m= section, it has {len(sections)}")
    by_index = {r.index: r for r in plan.rejected}
    out = list(session)
    for i in range(plan.sections):
        if i == plan.index:
            out += sections[0].lines
            continue
        r = by_index[i]
        out += [f"m={r.kind} 0 {r.proto} {r.fmt}", "c=IN IP4 0.0.0.0"]
        if r.rtpmap is not None:
            out.append(r.rtpmap)
        if r.mid is not None:
            out.append(f"a=mid:{r.mid}")
    return _join(out)
