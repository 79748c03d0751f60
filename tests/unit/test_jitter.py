"""Our jitter buffer: reordering, duplicates, loss bursts, clock drift, bounded depth, FEC, stats, MOS.

The unit tests drive :class:`JitterBuffer` with real Opus packets over a
simulated network (times are passed in, nothing sleeps), and assert behaviour:
what was concealed, dropped or recovered, that the tone survives, and that the
depth stays bounded.  The end-to-end test puts a lossy UDP relay of our own
between the SDK and the emulator on 127.0.0.1.
"""

from __future__ import annotations

import random
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc._session_quality import advertise_inband_fec
from purecloud_webrtc.media import ToneSource, _opus, dominant_frequency
from purecloud_webrtc.media.jitter import FRAME, JitterBuffer, JitterBufferConfig, OpusAudioDecoder
from purecloud_webrtc.quality import CallStats, QualityThresholds, QualityWarning, StatsCollector, estimated_mos


pytestmark = pytest.mark.skipif(not _opus.available(), reason="libopus not found")

TONE = 440.0


def tone_packets(n: int, *, fec: bool = False, hz: float = TONE) -> List[bytes]:
    """``n`` 20 ms Opus packets of a tone (with in-band FEC when asked)."""
    enc = _opus.Encoder(1, fec=fec, loss_percent=20 if fec else 0)
    t = np.arange(FRAME) / 48000.0
    out = []
    for i in range(n):
        level = 8000.0 * (0.7 + 0.3 * np.sin(2 * np.pi * 2.0 * i * 0.02)) if fec else 8000.0
        out.append(enc.encode((np.sin(2 * np.pi * hz * (t + i * 0.02)) * level).astype(np.int16)))
    return out


Arrival = Tuple[float, int, bytes]  # (arrival time, packet index, payload)


def schedule(packets: List[bytes], *, drop: Any = (), jitter: float = 0.0, drift: float = 0.0,
             base: float = 0.005, seed: int = 1, extra: Optional[List[Arrival]] = None) -> List[Arrival]:
    """Arrival times of ``packets`` sent every 20 ms (by a clock ``drift`` off ours), minus ``drop``."""
    rng = random.Random(seed)
    dropped = set(drop)
    out = [(i * 0.02 * (1.0 + drift) + base + rng.uniform(0.0, jitter), i, p)
           for i, p in enumerate(packets) if i not in dropped]
    out.extend(extra or [])
    out.sort(key=lambda a: a[0])
    return out


class Run:
    """The outcome of :func:`play`."""

    def __init__(self, jb: JitterBuffer, kinds: List[str], pcm: np.ndarray, depths: List[float],
                 results: Dict[str, int]) -> None:
        self.jb, self.kinds, self.pcm, self.depths, self.results = jb, kinds, pcm, depths, results
        self.stats = jb.stats

    def count(self, kind: str) -> int:
        return self.kinds.count(kind)


def play(arrivals: List[Arrival], seconds: float, *, config: Optional[JitterBufferConfig] = None,
         ssrc_of: Any = None, ts_of: Any = None, phase: float = 0.0123) -> Run:
    """Feed ``arrivals`` and pull one frame per 20 ms tick of our clock for ``seconds``."""
    jb = JitterBuffer(OpusAudioDecoder(), config=config)
    kinds: List[str] = []
    frames: List[np.ndarray] = []
    depths: List[float] = []
    results: Dict[str, int] = {}
    k = 0
    tick = phase
    while tick < seconds:
        while k < len(arrivals) and arrivals[k][0] <= tick:
            at, i, payload = arrivals[k]
            ts = ts_of(i) if ts_of else i * FRAME
            result = jb.put(i & 0xFFFF, ts & 0xFFFFFFFF, payload, at, ssrc=ssrc_of(i) if ssrc_of else 1)
            results[result] = results.get(result, 0) + 1
            k += 1
        pcm, kind = jb.pull(tick)
        assert pcm.shape == (FRAME, 1) and pcm.dtype == np.int16  # mono inside the buffer
        kinds.append(kind)
        frames.append(pcm)
        depths.append(jb.depth_ms)
        assert jb._ordered == sorted(jb._transits)  # the kept order is the window's, after every change
        tick += 0.02
    return Run(jb, kinds, np.concatenate(frames)[:, 0], depths, results)


def heard(pcm: np.ndarray, start_s: float, end_s: float) -> float:
    return dominant_frequency(pcm[int(start_s * 48000):int(end_s * 48000)])


# -- packet hygiene ------------------------------------------------------------------------------


def test_in_order_stream_plays_every_packet_once_with_a_small_bounded_delay():
    packets = tone_packets(250)
    run = play(schedule(packets), 5.0)
    assert run.count("plc") == run.count("fec") == run.count("silence") == 0
    assert run.stats.packets_received == 250 and run.stats.packets_lost == 0
    assert abs(heard(run.pcm, 1.0, 4.5) - TONE) < 5
    # One packet interval plus the safety margin is all a clean network needs.
    assert max(run.depths[50:]) <= 45.0


def test_reordered_packets_are_put_back_in_place_without_concealment():
    packets = tone_packets(250)
    arrivals = schedule(packets, base=0.03)
    # Swap every 7th packet with its successor: out of order, but both in time.
    swapped = list(arrivals)
    for i in range(10, 240, 7):
        a, b = swapped[i], swapped[i + 1]
        swapped[i], swapped[i + 1] = (a[0], b[1], b[2]), (b[0], a[1], a[2])
    run = play(swapped, 5.0)
    assert run.stats.reordered >= 30
    # The first swap teaches the buffer that packets can come 20 ms late; after it, none is lost.
    assert run.stats.late <= 1 and run.count("plc") <= 1
    assert "plc" not in run.kinds[40:]
    assert abs(heard(run.pcm, 1.0, 4.5) - TONE) < 5


def test_duplicates_are_dropped_and_do_not_disturb_playout():
    packets = tone_packets(250)
    arrivals = schedule(packets)
    dupes = [(at + 0.004, i, p) for at, i, p in arrivals if i % 3 == 0]
    late_dupes = [(at + 0.3, i, p) for at, i, p in arrivals if i % 10 == 5]  # after it was played
    run = play(schedule(packets, extra=dupes + late_dupes), 6.0)
    assert run.results["duplicate"] == len(dupes) + len(late_dupes)
    assert run.stats.duplicates == len(dupes) + len(late_dupes)
    assert "plc" not in run.kinds[:245] and run.stats.late == 0  # (the stream ends at 5 s)
    assert run.stats.frames_normal >= 240


def test_late_packets_are_dropped_and_the_delay_grows_to_fit_them():
    packets = tone_packets(500)
    # From packet 100 on, the network suddenly adds 60 ms.
    arrivals = [(at + (0.06 if i >= 100 else 0.0), i, p) for at, i, p in schedule(packets)]
    run = play(sorted(arrivals, key=lambda a: a[0]), 10.0)
    assert 0 < run.stats.late <= 12, run.stats
    assert run.stats.expanded_ms >= 40.0
    # Once adapted, nothing is late or concealed any more.
    assert "plc" not in run.kinds[150:490]
    assert abs(heard(run.pcm, 4.0, 9.5) - TONE) < 5


def test_ssrc_change_restarts_the_stream():
    packets = tone_packets(300)

    def ts_of(i: int) -> int:  # the new source starts at an unrelated timestamp
        return i * FRAME if i < 150 else 123456789 + i * FRAME

    run = play(schedule(packets), 6.0, ssrc_of=lambda i: 1 if i < 150 else 2, ts_of=ts_of)
    assert run.stats.resets >= 1
    assert run.count("normal") >= 280
    assert abs(heard(run.pcm, 4.0, 5.5) - TONE) < 5


# -- loss ---------------------------------------------------------------------------------------


def test_loss_bursts_are_concealed_and_latency_does_not_grow():
    packets = tone_packets(750)
    bursts = [range(s, s + 5) for s in range(50, 700, 60)]  # 11 bursts of 100 ms
    lost = [i for burst in bursts for i in burst]
    clean = play(schedule(packets), 15.0)
    lossy = play(schedule(packets, drop=lost), 15.0)
    s = lossy.stats
    assert s.packets_lost == len(lost)
    assert s.concealment_events == len(bursts)
    assert s.concealed_ms == pytest.approx(len(lost) * 20.0)
    # The timeline never stops: every tick produced a frame, and the delay after the last burst
    # is the same as without loss (aiortc's buffer would have grown by ~200 ms).
    assert len(lossy.kinds) == len(clean.kinds)
    assert lossy.stats.delay_ms <= clean.stats.delay_ms + 5.0
    assert max(lossy.depths) <= max(clean.depths) + 5.0
    assert abs(heard(lossy.pcm, 14.1, 14.9) - TONE) < 5


def test_random_loss_with_jitter_keeps_depth_bounded():
    packets = tone_packets(1000)
    rng = random.Random(7)
    lost = [i for i in range(1000) if rng.random() < 0.05]
    run = play(schedule(packets, drop=lost, jitter=0.03), 20.0)
    assert run.stats.packets_lost == len(lost)
    assert run.stats.late <= 20
    assert max(run.depths) <= 100.0
    assert abs(heard(run.pcm, 15.0, 19.5) - TONE) < 5


def test_in_band_fec_recovers_a_lost_packet_when_the_next_one_carries_it():
    packets = tone_packets(400, fec=True)
    with_lbrr = [i for i in range(60, 380) if _opus.packet_has_lbrr(packets[i + 1])]
    # PyAV's bundled libopus (1.6.1) can tell; an older system libopus could not, and this test must say so.
    assert _opus.packet_has_lbrr(packets[61]) is not None, "this libopus cannot tell whether a packet carries FEC"
    lost = with_lbrr[::15][:10]
    run = play(schedule(packets, drop=lost), 8.0)
    assert run.stats.fec_in_stream
    # Once losses are seen the buffer holds one more packet, so the FEC copy is there in time.
    assert run.stats.frames_fec >= len(lost) - 2, run.stats
    assert run.stats.packets_lost == len(lost)


def test_a_long_outage_fades_to_silence_and_restarts_cleanly():
    packets = tone_packets(400)
    run = play(schedule(packets, drop=range(100, 200)), 8.0)
    assert run.count("silence") >= 50  # 2 s gap: concealment for starve_ms, then silence
    assert "normal" in run.kinds[-50:]
    assert abs(heard(run.pcm, 6.0, 7.5) - TONE) < 5


# -- clock drift and bounds ------------------------------------------------------------------------


@pytest.mark.parametrize("drift", [0.01, -0.01])
def test_clock_drift_is_absorbed_by_stretching(drift):
    packets = tone_packets(1500)
    run = play(schedule(packets, drift=drift), 29.0)
    if drift > 0:  # the sender is slow: the buffer would run dry
        assert run.stats.expanded_ms >= 200.0
    else:  # the sender is fast: the buffer would grow without bound
        assert run.stats.accelerated_ms >= 200.0
    assert run.stats.late <= 5 and run.count("plc") <= 5
    assert max(run.depths[100:]) <= 70.0
    assert abs(heard(run.pcm, 20.0, 28.0) - TONE) < 5


def test_depth_is_bounded_after_a_flood():
    packets = tone_packets(600)
    # 3 s of audio held back by the network, then delivered at once.
    arrivals = [(max(at, 4.0) if 50 <= i < 200 else at, i, p) for at, i, p in schedule(packets)]
    config = JitterBufferConfig(max_delay_ms=200.0)
    run = play(sorted(arrivals, key=lambda a: a[0]), 12.0, config=config)
    assert max(run.depths) <= 200.0 + 20.0
    assert run.stats.discarded + run.stats.late > 0
    assert abs(heard(run.pcm, 9.0, 11.5) - TONE) < 5


def test_stored_packets_are_bounded():
    packets = tone_packets(50)
    jb = JitterBuffer(OpusAudioDecoder(), config=JitterBufferConfig(max_packets=20))
    results = [jb.put(i, i * FRAME, p, 0.0, ssrc=1) for i, p in enumerate(packets)]
    assert results.count("stored") == 20 and results.count("discarded") == 30


# -- stats and MOS -------------------------------------------------------------------------------


def test_estimated_mos_matches_the_official_formula():
    # The official SDK's own test vector (stats-aggregator tests): 100 ms, 2 ms jitter, no loss.
    assert estimated_mos(0.1, 0.002, 0.0) == pytest.approx(4.83, abs=0.005)
    assert estimated_mos(0.2, 0.002, 0.0) < estimated_mos(0.1, 0.002, 0.0)
    assert estimated_mos(0.02, 0.001, 0.05) < estimated_mos(0.02, 0.001, 0.0)
    assert estimated_mos(0.0, 0.0, 1.0) == 1.0


def test_stats_collector_warns_once_per_crossing():
    class Inbound:
        type, kind = "inbound-rtp", "audio"

        def __init__(self, received: int, lost: int, jitter: int) -> None:
            self.packetsReceived, self.packetsLost, self.jitter = received, lost, jitter

    collector = StatsCollector(QualityThresholds(jitter_ms=30.0, loss=0.03, rtt_ms=400.0, mos=3.5))
    stats, warnings = collector.sample({"a": Inbound(100, 0, 48)}, None)
    assert isinstance(stats, CallStats) and warnings == [] and stats.mos is not None and stats.mos > 4
    stats, warnings = collector.sample({"a": Inbound(200, 20, 48 * 50)}, None)
    assert {w.metric for w in warnings} >= {"loss", "jitter"} and all(w.active for w in warnings)
    assert set(stats.warnings) >= {"loss", "jitter"}
    _, warnings = collector.sample({"a": Inbound(300, 40, 48 * 50)}, None)
    assert {w.metric for w in warnings} & {"loss", "jitter"} == set()  # still bad: no new warning
    _, warnings = collector.sample({"a": Inbound(400, 40, 48)}, None)
    assert {(w.metric, w.active) for w in warnings} >= {("loss", False), ("jitter", False)}
    assert isinstance(warnings[0], QualityWarning) and str(warnings[0])


def test_answer_asks_for_in_band_fec_only_when_offered():
    offer = "v=0\r\na=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
    answer = "v=0\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n"
    munged = advertise_inband_fec(answer, offer)
    assert "a=fmtp:111 useinbandfec=1" in munged and munged.count("useinbandfec") == 1
    assert advertise_inband_fec(answer, offer.replace("useinbandfec=1", "")) == answer
    with_fmtp = answer + "a=fmtp:111 stereo=1\r\n"
    assert "a=fmtp:111 stereo=1;useinbandfec=1" in advertise_inband_fec(with_fmtp, offer)


def test_quality_options_are_validated():
    kwargs = dict(api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")
    with pytest.raises(pcw.ConfigurationError):
        pcw.PureCloudWebrtcSdk("t", jitter_buffer="yes", **kwargs)
    with pytest.raises(pcw.ConfigurationError):
        pcw.PureCloudWebrtcSdk("t", stats_interval=-1, **kwargs)
    with pytest.raises(pcw.ConfigurationError):
        pcw.PureCloudWebrtcSdk("t", quality_thresholds={"mos": 3}, **kwargs)


# -- end to end: a real call through a lossy relay ----------------------------------------------------


def test_other_codecs_play_through_aiortc_decoders_with_simple_concealment():
    import fractions

    import av
    from aiortc.codecs import get_encoder
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters

    from purecloud_webrtc.media.jitter import GenericAudioDecoder

    codec = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)
    encoder = get_encoder(codec)
    jb = JitterBuffer(GenericAudioDecoder(codec), clock_rate=8000)
    t = np.arange(FRAME) / 48000.0
    out = []
    for i in range(150):
        frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * TONE * (t + i * 0.02)) * 8000).astype(np.int16)
                                           .reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = 48000, i * FRAME, fractions.Fraction(1, 48000)
        payloads, _ = encoder.encode(frame)
        if payloads and i % 20 != 7:  # 8 kHz RTP clock: 160 ticks per 20 ms
            jb.put(i, i * 160, payloads[0], i * 0.02 + 0.005, ssrc=1)
        pcm, _kind = jb.pull(i * 0.02 + 0.0123)
        out.append(pcm[:, 0])
    assert jb.stats.packets_lost == 8 and jb.stats.concealed_ms == pytest.approx(160.0)
    assert abs(dominant_frequency(np.concatenate(out)[48000:]) - TONE) < 5


@pytest.mark.timeout(30)
def test_answer_to_a_gateway_offer_asks_for_fec_in_jingle():
    """aiortc's answer to a gateway offer with ``useinbandfec=1`` gains it, and it survives into Jingle."""
    import asyncio
    from pathlib import Path

    from aiortc import RTCSessionDescription

    from purecloud_webrtc import _ice
    from purecloud_webrtc._xml import q
    from purecloud_webrtc.jingle import sdp as sdpmod

    offer = (Path(__file__).resolve().parents[1] / "data" / "sdp" / "gateway_offer.sdp").read_text().replace("\r\n", "\n")
    offer = offer.replace("\n", "\r\n")

    async def answer() -> str:
        _ice.restrict_host_addresses(asyncio.get_running_loop(), ["127.0.0.1"])
        try:
            from aiortc import RTCConfiguration, RTCPeerConnection

            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            pc.addTrack(ToneSource(440.0).create_track())
            await pc.setLocalDescription(await pc.createAnswer())
            sdp = pc.localDescription.sdp
            await pc.close()
            return sdp
        finally:
            _ice.release_host_addresses(asyncio.get_running_loop())

    plain = asyncio.run(answer())
    assert "useinbandfec" not in plain
    munged = advertise_inband_fec(plain, offer)
    stripped, _ = sdpmod.split_candidates(munged)
    contents = sdpmod.sdp_to_jingle(stripped, "responder", include_candidates=False)
    params = {(p.get("name"), p.get("value")) for c in contents for p in c.iter(q("rtp", "parameter"))}
    assert ("useinbandfec", "1") in params
