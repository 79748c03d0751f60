"""Receive path and statistics of one session: our jitter buffer, ``get_stats()``, the ``stats`` event.

A :class:`SessionQuality` belongs to one :class:`~purecloud_webrtc.jingle.session.JingleSession`
and is driven by it at four points: the remote track arrives (:meth:`wrap_track`
routes it through :mod:`purecloud_webrtc.media.receive` unless the SDK option
``jitter_buffer=False``), the answer is written (:meth:`munge_answer` asks the
peer for Opus in-band FEC when its offer said it can send it), media connects
(:meth:`start` begins the periodic ``stats`` event), and media closes
(:meth:`stop`).

Threading: everything runs on the core loop; the payloads (:class:`CallStats`,
:class:`QualityWarning`) are frozen and go to the events thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from typing import TYPE_CHECKING, Any, Optional

from .media.jitter import JitterBufferConfig
from .quality import CallStats, QualityThresholds, StatsCollector

if TYPE_CHECKING:  # pragma: no cover
    from .jingle.session import JingleSession
    from .media.receive import JitterBufferTrack

__all__ = ["SessionQuality", "advertise_inband_fec", "checked_quality_options"]

log = logging.getLogger(__name__)


def checked_quality_options(options: Any, jitter_buffer: Any, stats_interval: Any, thresholds: Any) -> Any:
    """``options`` (an ``SdkOptions``) with the validated ``jitter_buffer``, ``stats_interval`` and
    ``quality_thresholds`` options.

    :raises ConfigurationError: for a value of the wrong kind.
    """
    from .errors import ConfigurationError

    if not isinstance(jitter_buffer, (bool, JitterBufferConfig)):
        raise ConfigurationError("jitter_buffer must be True, False or a JitterBufferConfig, not "
                                 f"{jitter_buffer!r}", "jitter_buffer")
    if isinstance(stats_interval, bool) or not isinstance(stats_interval, (int, float)) or stats_interval < 0:
        raise ConfigurationError(f"stats_interval must be a number of seconds >= 0, not {stats_interval!r}",
                                 "stats_interval")
    if thresholds is not None and not isinstance(thresholds, QualityThresholds):
        raise ConfigurationError(f"quality_thresholds must be a QualityThresholds, not {thresholds!r}",
                                 "quality_thresholds")
    return dataclasses.replace(options, jitter_buffer=jitter_buffer, stats_interval=float(stats_interval),
                               quality_thresholds=thresholds)


def advertise_inband_fec(answer: str, offer: Optional[str]) -> str:
    """Add ``useinbandfec=1`` to the Opus ``fmtp`` of ``answer`` when ``offer`` has it for that payload type.

    In SDP the parameter is the *receiver's* wish (RFC 7587 §6.1): the peer encodes in-band FEC only
    if our answer asks for it, and aiortc's answers never do, although our jitter buffer can use it.
    """
    if not offer or "useinbandfec=1" not in offer:
        return answer
    offered = set(re.findall(r"a=fmtp:(\d+) [^\r\n]*useinbandfec=1", offer))
    opus = set(re.findall(r"a=rtpmap:(\d+) opus/48000", answer, flags=re.IGNORECASE)) & offered
    if not opus:
        return answer
    lines = answer.split("\r\n")
    out = []
    for line in lines:
        match = re.match(r"a=fmtp:(\d+) (.*)", line)
        if match and match.group(1) in opus:
            if "useinbandfec" not in match.group(2):
                line = f"{line};useinbandfec=1"
            opus.discard(match.group(1))
        out.append(line)
        rtpmap = re.match(r"a=rtpmap:(\d+) opus/48000", line, flags=re.IGNORECASE)
        if rtpmap and rtpmap.group(1) in opus and f"a=fmtp:{rtpmap.group(1)} " not in answer:
            out.append(f"a=fmtp:{rtpmap.group(1)} useinbandfec=1")
            opus.discard(rtpmap.group(1))
    return "\r\n".join(out)


class SessionQuality:
    """The receive path and statistics of one session (core loop only).

    :param session: the Jingle session.
    """

    def __init__(self, session: "JingleSession") -> None:
        self.session = session
        options = session.core.options
        setting = getattr(options, "jitter_buffer", True)
        self.enabled = setting is not False and setting is not None
        self.config = setting if isinstance(setting, JitterBufferConfig) else JitterBufferConfig()
        self.interval = float(getattr(options, "stats_interval", 5.0) or 0.0)
        thresholds = getattr(options, "quality_thresholds", None)
        self.collector = StatsCollector(thresholds if isinstance(thresholds, QualityThresholds) else None)
        self.track: Optional["JitterBufferTrack"] = None
        self.remote: Any = None
        self._task: Optional["asyncio.Task[None]"] = None

    @property
    def last(self) -> Optional[CallStats]:
        """The latest snapshot (from the periodic event or :meth:`collect`)."""
        return self.collector.last

    def wrap_track(self, pc: Any, track: Any) -> Any:
        """The track the session should play: ours (jitter buffer) or aiortc's own when disabled."""
        self.remote = track
        if not self.enabled or track.kind != "audio":
            return track
        from .media.receive import attach

        ours = attach(pc, track, self.config)
        if ours is None:
            return track
        self.track = ours
        return ours

    def munge_answer(self, answer: str) -> str:
        """Our answer SDP, asking for in-band FEC when the offer supports it and the jitter buffer is on."""
        if not self.enabled:
            return answer
        return advertise_inband_fec(answer, self.session.remote_sdp)

    def _codec(self) -> Any:
        if self.track is not None and self.track.codec is not None:
            return self.track.codec
        pc = self.session.pc
        if pc is None:
            return None
        from .media.receive import codec_of

        for transceiver in pc.getTransceivers():
            if transceiver.kind == "audio":
                codec = codec_of(transceiver.receiver)
                if codec is not None:
                    return codec
                from ._internals import transceiver_codecs

                codecs = transceiver_codecs(transceiver)
                if codecs:
                    return codecs[0]
        return None

    async def collect(self, emit: bool = False) -> CallStats:
        """Take a snapshot now (``getStats()`` plus the jitter buffer) and report threshold crossings."""
        pc = self.session.pc
        report = None
        if pc is not None and pc.connectionState not in ("closed",):
            try:
                report = await pc.getStats()
            except Exception:  # stats must never break a call
                log.debug("getStats failed", exc_info=True)
        jb = self.track.stats() if self.track is not None else None
        pump = self.session.pump
        stats, crossings = self.collector.sample(report, jb, codec=self._codec(), jitter_buffer=self.track is not None,
                                                 frames=pump.frames if pump is not None else 0)
        counts = self.session.candidates
        live = getattr(getattr(self.session, "rtc", None), "live", None)
        processor = live.mic_processor if live is not None else None
        stats = dataclasses.replace(stats, remote_candidates_accepted=counts.accepted,
                                    remote_candidates_dropped=counts.dropped,
                                    audio_processing=processor.stats if processor is not None else None)
        self.collector.last = stats
        public = self.session.public
        for warning in crossings:
            level = "warning" if warning.active else "info"
            self.session.core.trace(level, f"session {self.session.sid}: call quality: {warning}",
                                    {"session_id": self.session.sid, "metric": warning.metric,
                                     "value": warning.value, "threshold": warning.threshold,
                                     "active": warning.active})
            public._emit("qualityWarning", public, warning)
        if emit:
            public._emit("stats", public, stats)
        return stats

    def start(self) -> None:
        """Begin the periodic ``stats`` event (idempotent; nothing when ``stats_interval`` is 0)."""
        if self._task is None and self.interval > 0 and not self.session.ended:
            self._task = self.session.core.loop.create_task(self._run(), name=f"pcw-stats-{self.session.sid}")

    async def _run(self) -> None:
        try:
            while not self.session.ended:
                await asyncio.sleep(self.interval)
                if self.session.ended:
                    return
                await self.collect(emit=True)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("session %s: periodic stats failed", self.session.sid)

    async def stop(self) -> None:
        """Stop the periodic event and take a last snapshot (kept as :attr:`last`)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        try:
            if self.session.pc is not None and (self.track is not None or self.remote is not None):
                await self.collect(emit=False)
        except Exception:
            log.debug("final stats failed", exc_info=True)
