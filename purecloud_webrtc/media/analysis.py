"""Audio arithmetic: frequency and level measurement, frame conversion.

Everything here is pure numpy/PyAV work with no shared state except inside a
:class:`FrameConverter` instance; the functions may be called from any thread,
and a :class:`FrameConverter` must be used by one thread at a time (sinks use
theirs on the core loop thread).
"""

from __future__ import annotations

import logging
import math
from typing import Optional, Union

import av
import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "FRAME_SAMPLES",
    "SILENCE_DBFS",
    "dominant_frequency",
    "rms_dbfs",
    "frame_to_mono",
    "frame_to_int16",
    "to_int16",
    "FrameConverter",
]

logger = logging.getLogger(__name__)

#: The SDK's audio rate: Opus runs at 48 kHz and every generated track and sink uses it.
SAMPLE_RATE = 48000
#: Samples in one 20 ms frame at :data:`SAMPLE_RATE`.
FRAME_SAMPLES = 960
#: What :func:`rms_dbfs` returns for digital silence or an empty input.
SILENCE_DBFS = float("-inf")

# Below this RMS (relative to full scale, about -120 dBFS, a third of one
# int16 step) a signal is treated as silence by dominant_frequency().
_SILENCE_RMS = 1e-6

ArrayLike = Union[np.ndarray, bytes, bytearray, memoryview]


def _as_float(samples: ArrayLike) -> np.ndarray:
    """Return ``samples`` as float64 scaled to [-1, 1] (full scale = 1.0)."""
    if isinstance(samples, (bytes, bytearray, memoryview)):
        array = np.frombuffer(samples, dtype="<i2")
    else:
        array = np.asarray(samples)
    if array.dtype.kind == "u":
        info = np.iinfo(array.dtype)
        half = (int(info.max) + 1) / 2.0
        return (array.astype(np.float64) - half) / half
    if array.dtype.kind == "i":
        return array.astype(np.float64) / float(-np.iinfo(array.dtype).min)
    if array.dtype.kind == "f":
        return array.astype(np.float64, copy=False)
    if array.dtype.kind == "b":
        return array.astype(np.float64)
    raise TypeError(f"audio samples must be integer or float, not {array.dtype}")


def _flatten(x: np.ndarray) -> np.ndarray:
    if x.ndim == 2:
        # (samples, channels): mix down so a stereo block is measured as one signal.
        return np.asarray(x.mean(axis=1))
    return x.reshape(-1)


def dominant_frequency(samples: ArrayLike, sample_rate: int = SAMPLE_RATE) -> float:
    """Return the frequency (Hz) of the strongest spectral peak of ``samples``.

    The block is DC-removed, Hann-windowed and FFT'd; the peak bin is refined by
    parabolic interpolation of the log magnitudes (accurate to a small fraction
    of a bin: 1 s at 48 kHz gives ~0.01 Hz on a pure tone).

    :param samples: 1-D mono samples, int16 (or any integer type: full scale is
        the type's range) or float (full scale 1.0), or raw little-endian int16
        bytes.  A 2-D ``(samples, channels)`` array is mixed to mono first;
        interleaved stereo must be de-interleaved by the caller.
    :param sample_rate: the samples' rate in Hz.
    :returns: the frequency in Hz, or ``0.0`` for an empty block, a block of
        fewer than 4 samples, or silence (RMS below about -120 dBFS).
    """
    x = _flatten(_as_float(samples))
    n = x.size
    if n < 4:
        return 0.0
    x = x - x.mean()
    if math.sqrt(float(np.mean(x * x))) < _SILENCE_RMS:
        return 0.0
    spectrum = np.abs(np.fft.rfft(x * np.hanning(n)))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    if k == 0:
        return 0.0
    offset = 0.0
    if 0 < k < spectrum.size - 1:
        a, b, c = np.log(spectrum[k - 1 : k + 2] + 1e-300)
        denominator = a - 2.0 * b + c
        if denominator < 0.0:
            offset = float(0.5 * (a - c) / denominator)
            offset = max(-0.5, min(0.5, offset))
    return float((k + offset) * sample_rate / n)


def rms_dbfs(samples: ArrayLike) -> float:
    """Return the RMS level of ``samples`` in dB relative to full scale.

    Computed as ``20 * log10(rms)`` with full scale 1.0 (float input) or the
    integer type's range (int16: 32768), so a full-scale sine reads -3.01 dBFS
    and a square wave 0 dBFS.

    :param samples: as for :func:`dominant_frequency` (any shape; all samples count).
    :returns: the level in dBFS; :data:`SILENCE_DBFS` (``float("-inf")``) for
        an empty block or digital silence (all samples exactly zero).
    """
    x = _as_float(samples).reshape(-1)
    if x.size == 0:
        return SILENCE_DBFS
    mean_square = float(np.mean(x * x))
    if mean_square <= 0.0:
        return SILENCE_DBFS
    return 10.0 * math.log10(mean_square)


def to_int16(samples: ArrayLike) -> np.ndarray:
    """Convert samples of any numeric type to int16 (floats: full scale 1.0, clipped).

    int16 input is returned as is (not copied); bytes are read as little-endian int16.
    """
    if isinstance(samples, (bytes, bytearray, memoryview)):
        return np.frombuffer(samples, dtype="<i2").astype(np.int16, copy=False)
    array = np.asarray(samples)
    if array.dtype == np.int16:
        return array
    if array.dtype.kind == "i" and array.dtype.itemsize > 2:
        return np.asarray(array >> (8 * array.dtype.itemsize - 16)).astype(np.int16)
    if array.dtype.kind == "i" and array.dtype.itemsize < 2:
        return array.astype(np.int16) << 8
    if array.dtype.kind == "u" and array.dtype.itemsize == 1:
        return ((array.astype(np.int16) - 128) << 8).astype(np.int16)
    scaled = np.rint(_as_float(array) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def frame_to_int16(frame: av.AudioFrame) -> np.ndarray:
    """Return a frame's samples as int16 with shape ``(samples, channels)``.

    Accepts packed or planar frames of any sample format PyAV decodes
    (s16/s32/flt/dbl/u8 and their planar forms).
    """
    array = frame.to_ndarray()
    channels = frame.layout.nb_channels or 1
    if frame.format.is_planar:
        interleaved = array.T
    else:
        interleaved = array.reshape(-1, channels)
    return to_int16(interleaved)


def downmix(samples: np.ndarray) -> np.ndarray:
    """The average of the first two channels of int16 ``(n, channels)`` samples, as 1-D int16 (rounded).

    Integer arithmetic (no float conversion), so identical channels come back unchanged.
    """
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0])
    total = samples[:, 0].astype(np.int32)
    total += samples[:, 1]
    total += 1
    total >>= 1
    return total.astype(np.int16)


def frame_to_mono(frame: av.AudioFrame) -> np.ndarray:
    """Return a frame's samples as 1-D int16 mono at the frame's own rate.

    Handles what aiortc receivers deliver (s16 packed stereo, 48 kHz, 960
    samples per frame), mono frames and planar frames.  Channels are averaged
    (rounded), so identical left/right channels come back unchanged.
    """
    return downmix(frame_to_int16(frame))


class FrameConverter:
    """Turns received frames into int16 at a fixed rate and channel count.

    Channel mixing is done with numpy (stereo to mono: the average; mono to
    stereo: duplicated; more channels to stereo: the first two); a rate change
    goes through a stateful ``av.AudioResampler``, so consecutive frames join
    without clicks.  One instance serves one stream, on one thread at a time.

    :param channels: 1 or 2.
    :param rate: the output rate in Hz.
    """

    def __init__(self, channels: int = 1, rate: int = SAMPLE_RATE) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 or 2, not {channels!r}")
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self.channels = channels
        self.rate = int(rate)
        self._resampler: Optional[av.AudioResampler] = None
        self._resampler_input_rate: Optional[int] = None

    def convert(self, frame: av.AudioFrame) -> np.ndarray:
        """Convert one frame.

        :returns: int16 samples, shape ``(n,)`` for mono or ``(n, 2)`` for
            stereo; ``n`` may differ from the frame's sample count while a
            resampler fills or drains its delay line.
        """
        samples = frame_to_int16(frame)
        if self.channels == 1:
            if samples.shape[1] == 1:
                mixed = samples
            else:
                mixed = downmix(samples).reshape(-1, 1)
        elif samples.shape[1] == 1:
            mixed = np.repeat(samples, 2, axis=1)
        else:
            mixed = samples[:, :2]
        mixed = np.ascontiguousarray(mixed)
        input_rate = int(frame.sample_rate or self.rate)
        if input_rate != self.rate:
            mixed = self._resample(mixed, input_rate)
        return mixed[:, 0].copy() if self.channels == 1 else mixed

    def _resample(self, samples: np.ndarray, input_rate: int) -> np.ndarray:
        layout = "mono" if self.channels == 1 else "stereo"
        if self._resampler is None or self._resampler_input_rate != input_rate:
            self._resampler = av.AudioResampler(format="s16", layout=layout, rate=self.rate)
            self._resampler_input_rate = input_rate
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout=layout)
        frame.sample_rate = input_rate
        pieces = [f.to_ndarray().reshape(-1, self.channels) for f in self._resampler.resample(frame)]
        if not pieces:
            return np.zeros((0, self.channels), dtype=np.int16)
        return np.concatenate(pieces).astype(np.int16, copy=False)
