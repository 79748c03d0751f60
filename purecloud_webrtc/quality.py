"""Per-session call statistics, the official estimated MOS, and quality warnings.

:func:`estimated_mos` is the formula of the official SDK's stats aggregator
(docs/protocol.rst §7.3, ``calculateEstimatedMos``): effective latency
``E = 1000·L + 2·1000·J + 10`` ms from the mean one-way latency ``L`` (half the
mean RTT) and the mean jitter ``J``; ``R = 93.2 − E/40`` below 160 ms, else
``93.2 − (E − 120)/10``; ``R −= 250·p`` for the loss fraction ``p`` (lost /
received); MOS 1 if ``R < 0``, else ``(1 + 0.035R + 7e-6·R(R−60)(100−R))·5/4.5``.
As there, the inputs are averages since the session's first sample.

A :class:`StatsCollector` turns successive aiortc ``getStats()`` reports plus
the jitter buffer's counters into :class:`CallStats` snapshots and says which
:class:`QualityThresholds` were crossed (edge-triggered, once per crossing).

Threading: collectors run on the core loop; :class:`CallStats` and
:class:`QualityWarning` are frozen and safe to hand to any thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["CallStats", "QualityThresholds", "QualityWarning", "StatsCollector", "estimated_mos"]


def estimated_mos(latency: float, jitter: float, loss: float) -> float:
    """The official SDK's estimated MOS (1.0–5.0, scaled for Opus).

    :param latency: mean one-way latency in seconds (mean RTT / 2).
    :param jitter: mean jitter in seconds.
    :param loss: packets lost / packets received (0.01 for 1 %).
    """
    effective = latency * 1000.0 + jitter * 1000.0 * 2 + 10.0
    if effective < 160.0:
        r = 93.2 - effective / 40.0
    else:
        r = 93.2 - (effective - 120.0) / 10.0
    r -= 2.5 * 100.0 * loss
    if r < 0:
        return 1.0
    return (1.0 + 0.035 * r + 0.000007 * r * (r - 60.0) * (100.0 - r)) * 5.0 / 4.5


@dataclass(frozen=True)
class QualityThresholds:
    """Levels past which a session emits ``qualityWarning``.

    :ivar jitter_ms: interarrival jitter (RFC 3550) of the received audio.
    :ivar loss: fraction of packets lost over the last stats interval.
    :ivar rtt_ms: round-trip time reported by RTCP.
    :ivar mos: estimated MOS below this warns.
    """

    jitter_ms: float = 30.0
    loss: float = 0.03
    rtt_ms: float = 400.0
    mos: float = 3.5


@dataclass(frozen=True)
class QualityWarning:
    """One threshold crossing: ``active`` is ``True`` when the metric went bad, ``False`` when it recovered.

    :ivar metric: ``"jitter"``, ``"loss"``, ``"rtt"`` or ``"mos"``.
    """

    metric: str
    value: float
    threshold: float
    active: bool

    def __str__(self) -> str:
        state = "above" if self.active else "back within"
        if self.metric == "mos":
            state = "below" if self.active else "back above"
        return f"{self.metric} {self.value:.3g} {state} {self.threshold:g}"


@dataclass(frozen=True)
class CallStats:
    """A snapshot of one session's media statistics.

    Counts are cumulative since the call started; ``interval_*`` cover the time since the previous
    snapshot.  Times are milliseconds.  Jitter-buffer fields are zero when the SDK's jitter buffer is
    off (``jitter_buffer=False``) or before the first packet.

    :ivar codec: e.g. ``"opus/48000/2"``, or ``None`` before media.
    :ivar jitter_buffer: whether the SDK's own jitter buffer plays this call.
    :ivar mos: the official estimated MOS since the first sample (``None`` before any packet).
    :ivar warnings: metrics currently past their threshold.
    :ivar remote_candidates_accepted: remote ICE candidates handed to the ICE agent.
    :ivar remote_candidates_dropped: remote ICE candidates refused (unusable or hostile addresses, over
        :attr:`~purecloud_webrtc.Limits.max_remote_candidates`); ``Session.remote_candidates`` says why.
    :ivar audio_processing: the microphone's echo cancellation, noise suppression and gain control
        (:class:`~purecloud_webrtc.media.processing.AudioProcessingStats`: stages in force, echo return
        loss enhancement, delay estimate), ``None`` when the call's source is not a processed microphone.
    """

    timestamp: float
    codec: Optional[str] = None
    payload_type: Optional[int] = None
    jitter_buffer: bool = False
    packets_received: int = 0
    packets_lost: int = 0
    packets_sent: int = 0
    loss_fraction: float = 0.0
    interval_loss_fraction: float = 0.0
    jitter_ms: float = 0.0
    rtt_ms: Optional[float] = None
    concealed_ms: float = 0.0
    concealment_events: int = 0
    fec_recovered: int = 0
    late_packets: int = 0
    duplicate_packets: int = 0
    reordered_packets: int = 0
    jitter_buffer_delay_ms: float = 0.0
    jitter_buffer_target_ms: float = 0.0
    jitter_buffer_depth_ms: float = 0.0
    jitter_buffer_max_depth_ms: float = 0.0
    expanded_ms: float = 0.0
    accelerated_ms: float = 0.0
    frames_received: int = 0
    mos: Optional[float] = None
    warnings: Tuple[str, ...] = ()
    remote_candidates_accepted: int = 0
    remote_candidates_dropped: int = 0
    audio_processing: Any = None

    def as_dict(self) -> Dict[str, Any]:
        """A plain dict (JSON-ready) of the fields."""
        values = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if self.audio_processing is not None:
            values["audio_processing"] = self.audio_processing.as_dict()
        return values


@dataclass
class _Totals:
    rtt_sum: float = 0.0
    rtt_n: int = 0
    jitter_sum: float = 0.0
    jitter_n: int = 0


class StatsCollector:
    """Builds :class:`CallStats` from successive samples of one session (core loop only).

    :param thresholds: warning levels.
    """

    def __init__(self, thresholds: Optional[QualityThresholds] = None) -> None:
        self.thresholds = thresholds or QualityThresholds()
        self._totals = _Totals()
        self._prev_received = 0
        self._prev_lost = 0
        self._active: Dict[str, bool] = {}
        self.last: Optional[CallStats] = None

    def sample(self, report: Any, jb: Any, *, codec: Any = None, jitter_buffer: bool = False,
               frames: int = 0, now: Optional[float] = None) -> Tuple[CallStats, List[QualityWarning]]:
        """Fold one ``getStats()`` report (``None`` allowed) and jitter buffer stats into a snapshot.

        :param report: aiortc ``RTCStatsReport`` (a dict of stats objects) or ``None``.
        :param jb: :class:`~purecloud_webrtc.media.jitter.JitterBufferStats` or ``None``.
        :returns: the snapshot and the threshold crossings since the previous one.
        """
        received = lost = sent = 0
        jitter_s: Optional[float] = None
        rtt_s: Optional[float] = None
        clock = int(getattr(codec, "clockRate", 48000) or 48000)
        for item in (report or {}).values():
            kind = getattr(item, "type", None)
            if kind == "inbound-rtp" and getattr(item, "kind", "audio") == "audio":
                received += int(item.packetsReceived or 0)
                lost += max(0, int(item.packetsLost or 0))
                # aiortc reports RFC 3550 jitter in RTP timestamp units.
                jitter_s = float(item.jitter or 0) / clock
            elif kind == "remote-inbound-rtp" and getattr(item, "kind", "audio") == "audio":
                if getattr(item, "roundTripTime", None) is not None:
                    rtt_s = float(item.roundTripTime)
            elif kind == "outbound-rtp" and getattr(item, "kind", "audio") == "audio":
                sent += int(item.packetsSent or 0)
        if jb is not None:
            # Our buffer sees every packet even when aiortc's statistics have not been read yet.
            received = max(received, jb.packets_received)
            lost = max(lost, jb.packets_lost)
            if jitter_s is None:
                jitter_s = jb.jitter_ms / 1000.0
        totals = self._totals
        if jitter_s is not None and received:
            totals.jitter_sum += jitter_s
            totals.jitter_n += 1
        if rtt_s is not None:
            totals.rtt_sum += rtt_s
            totals.rtt_n += 1
        d_received = received - self._prev_received
        d_lost = lost - self._prev_lost
        self._prev_received, self._prev_lost = received, lost
        interval_loss = d_lost / (d_received + d_lost) if (d_received + d_lost) > 0 and d_lost > 0 else 0.0
        mos: Optional[float] = None
        if received and totals.jitter_n:
            latency = (totals.rtt_sum / totals.rtt_n) / 2.0 if totals.rtt_n else 0.0
            mos = estimated_mos(latency, totals.jitter_sum / totals.jitter_n, lost / received)
        values = {
            "jitter": ((jitter_s or 0.0) * 1000.0, self.thresholds.jitter_ms, True),
            "loss": (interval_loss, self.thresholds.loss, True),
            "rtt": ((rtt_s * 1000.0) if rtt_s is not None else None, self.thresholds.rtt_ms, True),
            "mos": (mos, self.thresholds.mos, False),
        }
        crossings: List[QualityWarning] = []
        for metric, (value, threshold, above_is_bad) in values.items():
            if value is None:
                continue
            bad = value > threshold if above_is_bad else value < threshold
            if bad != self._active.get(metric, False):
                self._active[metric] = bad
                crossings.append(QualityWarning(metric, float(value), float(threshold), bad))
        codec_name = None
        if codec is not None:
            codec_name = f"{codec.mimeType.split('/', 1)[-1].lower()}/{codec.clockRate}"
            if getattr(codec, "channels", None):
                codec_name += f"/{codec.channels}"
        stats = CallStats(
            timestamp=time.time() if now is None else now,
            codec=codec_name,
            payload_type=getattr(codec, "payloadType", None),
            jitter_buffer=jitter_buffer,
            packets_received=received,
            packets_lost=lost,
            packets_sent=sent,
            loss_fraction=lost / (received + lost) if (received + lost) else 0.0,
            interval_loss_fraction=interval_loss,
            jitter_ms=(jitter_s or 0.0) * 1000.0,
            rtt_ms=rtt_s * 1000.0 if rtt_s is not None else None,
            concealed_ms=jb.concealed_ms if jb is not None else 0.0,
            concealment_events=jb.concealment_events if jb is not None else 0,
            fec_recovered=jb.frames_fec if jb is not None else 0,
            late_packets=jb.late if jb is not None else 0,
            duplicate_packets=jb.duplicates if jb is not None else 0,
            reordered_packets=jb.reordered if jb is not None else 0,
            jitter_buffer_delay_ms=jb.delay_ms if jb is not None else 0.0,
            jitter_buffer_target_ms=jb.target_delay_ms if jb is not None else 0.0,
            jitter_buffer_depth_ms=jb.depth_ms if jb is not None else 0.0,
            jitter_buffer_max_depth_ms=jb.max_depth_ms if jb is not None else 0.0,
            expanded_ms=jb.expanded_ms if jb is not None else 0.0,
            accelerated_ms=jb.accelerated_ms if jb is not None else 0.0,
            frames_received=frames,
            mos=mos,
            warnings=tuple(m for m, bad in self._active.items() if bad),
        )
        self.last = stats
        return stats, crossings
