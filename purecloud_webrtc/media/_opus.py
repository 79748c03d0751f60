"""A small ctypes binding of libopus: decoding with loss concealment and in-band FEC.

FFmpeg's ``libopus`` decoder (what aiortc uses through PyAV) cannot be asked for
packet loss concealment or for the in-band FEC copy of a lost frame: it never
calls ``opus_decode`` with a NULL packet or with ``decode_fec=1``.  libopus can,
so the jitter buffer talks to it directly.

The library is found in this order: the copy bundled in PyAV's wheel
(``av.libs/libopus-*.so*``, present wherever aiortc is installed, libopus 1.5
with ``opus_packet_has_lbrr``), then the system's ``libopus.so.0``.  When none
loads, :func:`available` is ``False`` and the jitter buffer falls back to
aiortc's decoders with a simpler concealment.

Threading: a decoder or encoder object is used by one thread at a time (the
core loop); the library itself is thread-safe.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from typing import Optional

import numpy as np

__all__ = ["available", "version", "OpusError", "Decoder", "Encoder", "packet_samples", "packet_has_lbrr"]

log = logging.getLogger(__name__)

SAMPLE_RATE = 48000
#: The longest Opus packet: 120 ms at 48 kHz.
MAX_FRAME = 5760

_OPUS_APPLICATION_VOIP = 2048
_OPUS_SET_BITRATE_REQUEST = 4002
_OPUS_SET_INBAND_FEC_REQUEST = 4012
_OPUS_SET_PACKET_LOSS_PERC_REQUEST = 4014
_OPUS_SET_SIGNAL_REQUEST = 4024
_OPUS_SIGNAL_VOICE = 3001


class OpusError(RuntimeError):
    """libopus returned an error code."""


def _candidates() -> list:
    from .._internals import pyav_libopus_paths

    paths = list(pyav_libopus_paths())
    found = ctypes.util.find_library("opus")
    if found:
        paths.append(found)
    paths.append("libopus.so.0")
    return paths


def _load() -> Optional[ctypes.CDLL]:
    from .._internals import record_libopus

    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
            lib.opus_decoder_create  # noqa: B018 - probe the symbol
        except (OSError, AttributeError):
            continue
        lib.opus_get_version_string.restype = ctypes.c_char_p
        lib.opus_decoder_create.restype = ctypes.c_void_p
        lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_decode.restype = ctypes.c_int
        lib.opus_decode.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                    ctypes.POINTER(ctypes.c_int16), ctypes.c_int, ctypes.c_int]
        lib.opus_encoder_create.restype = ctypes.c_void_p
        lib.opus_encoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.opus_encoder_destroy.argtypes = [ctypes.c_void_p]
        lib.opus_encode.restype = ctypes.c_int32
        lib.opus_encode.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int16), ctypes.c_int,
                                    ctypes.c_char_p, ctypes.c_int32]
        lib.opus_packet_get_nb_samples.restype = ctypes.c_int
        lib.opus_packet_get_nb_samples.argtypes = [ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32]
        lib.opus_strerror.restype = ctypes.c_char_p
        lib.opus_strerror.argtypes = [ctypes.c_int]
        if hasattr(lib, "opus_packet_has_lbrr"):
            lib.opus_packet_has_lbrr.restype = ctypes.c_int
            lib.opus_packet_has_lbrr.argtypes = [ctypes.c_char_p, ctypes.c_int32]
        log.debug("libopus %s loaded from %s", lib.opus_get_version_string().decode(), path)
        record_libopus(path)
        return lib
    log.info("libopus not found: Opus loss concealment and FEC are not available")
    record_libopus(None)
    return None


_lib = _load()


def available() -> bool:
    """Whether libopus could be loaded."""
    return _lib is not None


def version() -> str:
    """libopus's version string, or ``""``."""
    return _lib.opus_get_version_string().decode() if _lib is not None else ""


def _check(code: int, what: str) -> int:
    if code < 0:
        assert _lib is not None
        raise OpusError(f"{what}: {_lib.opus_strerror(code).decode()} ({code})")
    return code


def packet_samples(packet: bytes) -> int:
    """Samples per channel at 48 kHz that ``packet`` decodes to.

    :raises OpusError: for a malformed packet.
    """
    assert _lib is not None
    return _check(_lib.opus_packet_get_nb_samples(packet, len(packet), SAMPLE_RATE), "opus_packet_get_nb_samples")


def packet_has_lbrr(packet: bytes) -> Optional[bool]:
    """Whether ``packet`` carries an in-band FEC (LBRR) copy of the previous frame; ``None`` if unknown."""
    if _lib is None or not hasattr(_lib, "opus_packet_has_lbrr") or not packet:
        return None
    result = _lib.opus_packet_has_lbrr(packet, len(packet))
    return None if result < 0 else bool(result)


class Decoder:
    """An Opus decoder producing 48 kHz interleaved int16 with ``channels`` channels.

    :raises OpusError: when libopus is missing or refuses to create a decoder.
    """

    def __init__(self, channels: int = 2) -> None:
        if _lib is None:
            raise OpusError("libopus is not available")
        err = ctypes.c_int(0)
        self._dec = _lib.opus_decoder_create(SAMPLE_RATE, channels, ctypes.byref(err))
        _check(err.value, "opus_decoder_create")
        self.channels = channels
        self._buf = np.zeros(MAX_FRAME * channels, dtype=np.int16)
        self._ptr = self._buf.ctypes.data_as(ctypes.POINTER(ctypes.c_int16))

    def _run(self, data: Optional[bytes], samples: int, fec: int) -> np.ndarray:
        assert _lib is not None
        # Concealment and FEC work in multiples of 2.5 ms (120 samples at 48 kHz).
        samples = max(120, min(MAX_FRAME, (samples + 119) // 120 * 120))
        n = _check(_lib.opus_decode(self._dec, data, len(data) if data else 0, self._ptr, samples, fec),
                   "opus_decode")
        return self._buf[: n * self.channels].reshape(n, self.channels).copy()

    def decode(self, packet: bytes) -> np.ndarray:
        """Decode one packet: an ``(n, channels)`` int16 array."""
        return self._run(packet, MAX_FRAME, 0)

    def conceal(self, samples: int) -> np.ndarray:
        """Packet loss concealment for ``samples`` per channel (a multiple of 2.5 ms)."""
        return self._run(None, samples, 0)

    def decode_fec(self, next_packet: bytes, samples: int) -> np.ndarray:
        """Recover the ``samples`` before ``next_packet`` from its in-band FEC (plain PLC if it has none)."""
        return self._run(next_packet, samples, 1)

    def close(self) -> None:
        if self._dec and _lib is not None:
            _lib.opus_decoder_destroy(self._dec)
            self._dec = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class Encoder:
    """An Opus VoIP encoder (tests and benchmarks use it to make real packets with or without FEC)."""

    def __init__(self, channels: int = 1, *, bitrate: int = 32000, fec: bool = False, loss_percent: int = 0) -> None:
        if _lib is None:
            raise OpusError("libopus is not available")
        err = ctypes.c_int(0)
        self._enc = _lib.opus_encoder_create(SAMPLE_RATE, channels, _OPUS_APPLICATION_VOIP, ctypes.byref(err))
        _check(err.value, "opus_encoder_create")
        self.channels = channels
        # opus_encoder_ctl is variadic: every argument needs an explicit C type (a bare int would
        # truncate the 64-bit handle).
        ctl, handle = _lib.opus_encoder_ctl, ctypes.c_void_p(self._enc)
        _check(ctl(handle, ctypes.c_int(_OPUS_SET_BITRATE_REQUEST), ctypes.c_int32(bitrate)), "bitrate")
        _check(ctl(handle, ctypes.c_int(_OPUS_SET_INBAND_FEC_REQUEST), ctypes.c_int32(1 if fec else 0)), "fec")
        _check(ctl(handle, ctypes.c_int(_OPUS_SET_PACKET_LOSS_PERC_REQUEST), ctypes.c_int32(loss_percent)), "loss")
        if fec:
            # In-band FEC exists only in SILK frames; a steady tone would otherwise push the encoder to CELT.
            _check(ctl(handle, ctypes.c_int(_OPUS_SET_SIGNAL_REQUEST), ctypes.c_int32(_OPUS_SIGNAL_VOICE)), "signal")
        self._out = ctypes.create_string_buffer(4000)

    def encode(self, pcm: np.ndarray) -> bytes:
        """Encode ``(n, channels)`` or flat int16 samples (n = 2.5/5/10/20/40/60 ms)."""
        assert _lib is not None
        data = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        n = data.size // self.channels
        size = _check(_lib.opus_encode(self._enc, data.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)), n,
                                       self._out, len(self._out)), "opus_encode")
        return self._out.raw[:size]

    def close(self) -> None:
        if self._enc and _lib is not None:
            _lib.opus_encoder_destroy(self._enc)
            self._enc = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
