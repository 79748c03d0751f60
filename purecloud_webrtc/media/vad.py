"""Voice activity of the remote party: is the caller speaking?

An energy detector on the received 20 ms frames, with an adaptive noise floor, so that it works on a
quiet line and on a noisy one without tuning:

* the floor follows the quietest level quickly (down at once) and the background slowly (up 0.02 dB per
  frame, 1 dB/s), so speech, which comes in bursts, does not pull it up (a steady sound N dB above the
  old floor becomes background after N - ``margin_db`` seconds);
* speech starts when a frame is ``margin_db`` above the floor (and above ``min_dbfs``) for
  ``start_frames`` frames in a row (40 ms by default: a click is not speech);
* it ends after ``hangover`` seconds without such a frame (300 ms by default: the pauses between words
  are not the end of a sentence).

A second backend, ``VadConfig(backend="webrtc")``, takes each frame's speech probability from WebRTC's own
voice detector (the spectral analysis of its noise suppressor, the ``voice`` extra) instead of its energy,
with the same start and hangover rules: it tells speech from a steady tone or hum as loud as the speech,
which an energy detector cannot.  Both have one API, :meth:`EnergyVad.feed_frame`, and
:func:`create_vad` makes the one a config asks for.

The session event ``voiceActivity(session, speaking)`` reports the changes (the SDK option
``voice_activity`` chooses the config); the SDK runs the detector only while someone listens to it.  It is the signal bots need for barge-in and turn taking; Pipecat users can
also use Pipecat's own VAD analyzers on the input frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

__all__ = ["EnergyVad", "VadConfig", "WebrtcVad", "create_vad"]

_BACKENDS = ("energy", "webrtc")


@dataclass(frozen=True)
class VadConfig:
    """Tuning of :class:`EnergyVad` (the defaults suit telephone speech).

    :ivar margin_db: how far above the noise floor a frame is speech.
    :ivar min_dbfs: frames below this are never speech (a silent line's floor is -inf).
    :ivar start_frames: consecutive speech frames before speech starts.
    :ivar hangover: seconds without a speech frame before speech ends.
    :ivar backend: ``"energy"`` (a level over the noise floor) or ``"webrtc"`` (WebRTC's speech probability;
        needs the ``voice`` extra, :class:`~purecloud_webrtc.MissingExtraError` at once without it).
    :ivar speech_probability: with ``"webrtc"``, the probability from which a frame is speech.
    """

    margin_db: float = 12.0
    min_dbfs: float = -50.0
    start_frames: int = 2
    hangover: float = 0.3
    backend: str = "energy"
    speech_probability: float = 0.5

    def __post_init__(self) -> None:
        if not 3.0 <= self.margin_db <= 40.0:
            raise ValueError(f"margin_db must be between 3 and 40 dB, not {self.margin_db!r}")
        if not -90.0 <= self.min_dbfs <= -10.0:
            raise ValueError(f"min_dbfs must be between -90 and -10 dBFS, not {self.min_dbfs!r}")
        if not 1 <= self.start_frames <= 50:
            raise ValueError(f"start_frames must be between 1 and 50, not {self.start_frames!r}")
        if not 0.02 <= self.hangover <= 5.0:
            raise ValueError(f"hangover must be between 0.02 and 5 s, not {self.hangover!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"backend must be one of {_BACKENDS}, not {self.backend!r}")
        if not 0.0 < self.speech_probability < 1.0:
            raise ValueError(f"speech_probability must be between 0 and 1, not {self.speech_probability!r}")
        if self.backend == "webrtc":
            from .processing import _require

            _require()


class EnergyVad:
    """Feed it each frame's level (:meth:`feed`); it says when speech starts and ends.

    :param config: :class:`VadConfig`.
    :param frame_seconds: the length of a frame (20 ms).
    """

    #: the floor rises this much per frame at most (dB)
    FLOOR_RISE_DB = 0.02

    def __init__(self, config: Optional[VadConfig] = None, frame_seconds: float = 0.02) -> None:
        self.config = config or VadConfig()
        self.floor_dbfs: Optional[float] = None
        self.speaking = False
        self._run = 0
        self._quiet = 0
        self._hangover_frames = max(1, round(self.config.hangover / frame_seconds))

    def feed(self, level_dbfs: float) -> Optional[bool]:
        """Take one frame's RMS level (dBFS); returns ``True``/``False`` when speech starts/ends, else
        ``None``."""
        c = self.config
        floor = self.floor_dbfs
        if floor is None or level_dbfs < floor:
            floor = level_dbfs
        else:
            floor = min(level_dbfs, floor + self.FLOOR_RISE_DB)
        self.floor_dbfs = floor
        loud = level_dbfs >= c.min_dbfs and level_dbfs >= max(floor, c.min_dbfs - c.margin_db) + c.margin_db
        return self._step(loud)

    def feed_frame(self, samples: np.ndarray, level_dbfs: float) -> Optional[bool]:
        """One received frame (int16, 48 kHz) and its level: the API both backends share."""
        return self.feed(level_dbfs)

    def _step(self, loud: bool) -> Optional[bool]:
        c = self.config
        if loud:
            self._run += 1
            self._quiet = 0
            if not self.speaking and self._run >= c.start_frames:
                self.speaking = True
                return True
        else:
            self._run = 0
            if self.speaking:
                self._quiet += 1
                if self._quiet >= self._hangover_frames:
                    self.speaking = False
                    self._quiet = 0
                    return False
        return None

    def reset(self) -> None:
        """Forget the floor and the state (a new call, or nobody listened for a while)."""
        self.floor_dbfs = None
        self.speaking = False
        self._run = 0
        self._quiet = 0


class WebrtcVad(EnergyVad):
    """Speech by WebRTC's voice detector (the ``voice`` extra): a frame is speech when its speech
    probability reaches ``config.speech_probability`` and its level ``config.min_dbfs``; start and hangover
    as :class:`EnergyVad`.

    :raises MissingExtraError: without the ``voice`` extra.
    """

    def __init__(self, config: Optional[VadConfig] = None, frame_seconds: float = 0.02) -> None:
        super().__init__(config or VadConfig(backend="webrtc"), frame_seconds)
        from .processing import SAMPLE_RATE, _require

        self._detector: Any = _require().VoiceDetector(sample_rate=SAMPLE_RATE, num_channels=1)
        #: the latest frame's speech probability
        self.probability = 0.0

    def feed_frame(self, samples: np.ndarray, level_dbfs: float) -> Optional[bool]:
        usable = samples[: samples.size - samples.size % 480]  # whole 10 ms blocks at 48 kHz
        if usable.size:
            self.probability = float(self._detector.process(np.ascontiguousarray(usable, dtype=np.int16)))
        loud = level_dbfs >= self.config.min_dbfs and self.probability >= self.config.speech_probability
        return self._step(loud)

    def reset(self) -> None:
        super().reset()
        self._detector.reset()
        self.probability = 0.0


def create_vad(config: Optional[VadConfig] = None) -> EnergyVad:
    """The detector ``config`` asks for (:class:`EnergyVad` or :class:`WebrtcVad`)."""
    config = config or VadConfig()
    return WebrtcVad(config) if config.backend == "webrtc" else EnergyVad(config)
