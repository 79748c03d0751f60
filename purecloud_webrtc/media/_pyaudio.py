"""Audio device access through pyaudio (PortAudio), imported lazily.

pyaudio is an optional dependency (the ``audio`` extra): nothing here imports it
until a device is actually needed, and its absence surfaces as an
:class:`AudioDeviceError` carrying the install hint.

PortAudio caches the device list when it initialises, so a device that appears
later (a PulseAudio server started after the first lookup, a headset plugged in)
would never be seen by a long-lived instance.  The shared ``PyAudio`` instance is
therefore reference-counted: it lives while a stream is open or a lookup runs and
is terminated when the last user releases it, so every new lookup sees the
devices of the moment (initialising costs ~30 ms).

Threading: every function here may be called from any thread; the shared
instance, stream opening/closing and device listing are serialised by one lock.
PortAudio's own callback threads run the stream callbacks given to
:func:`open_input_stream`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator, Literal, Optional, Sequence, Union

from ..errors import MediaError

__all__ = [
    "AudioDevice",
    "AudioDeviceError",
    "INSTALL_HINT",
    "list_devices",
    "find_device",
    "open_input_stream",
    "open_output_stream",
    "close_stream",
    "is_rate_supported",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install the audio extra with `pip install 'purecloud_webrtc[audio]'` "
    "(pyaudio builds from source on Linux: first `apt-get install portaudio19-dev`)"
)

DeviceKind = Literal["input", "output"]
DeviceSpec = Union[int, str, None]


_warned: "set[str]" = set()


def warn_fallback(log: logging.Logger, kind: str, message: str) -> None:
    """A default device fell back (silence sent, audio discarded): a log line, and once per process and
    ``kind`` a :class:`RuntimeWarning`, so it shows even where logging is not configured."""
    import warnings

    log.warning("%s", message)
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


class AudioDeviceError(MediaError, RuntimeError):
    """An audio device is unavailable: pyaudio missing, no such device, or opening failed.

    :ivar spec: the device specification that was asked for (index, name or ``None``).
    :ivar kind: ``"input"``, ``"output"`` or ``None`` when not device-specific.
    """

    def __init__(self, message: str, *, spec: DeviceSpec = None, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.spec = spec
        self.kind = kind


@dataclass(frozen=True)
class AudioDevice:
    """One PortAudio device as listed by :func:`list_devices`."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_sample_rate: float
    is_default_input: bool
    is_default_output: bool
    host_api: str = ""

    def supports(self, kind: DeviceKind) -> bool:
        """Whether the device has at least one channel of ``kind`` (``"input"``/``"output"``)."""
        channels = self.max_input_channels if kind == "input" else self.max_output_channels
        return channels > 0

    def describe(self) -> str:
        """A one-line human description, used in error messages."""
        flags = []
        if self.is_default_input:
            flags.append("default input")
        if self.is_default_output:
            flags.append("default output")
        extra = f", {', '.join(flags)}" if flags else ""
        api = f" via {self.host_api}" if self.host_api else ""
        return (
            f"[{self.index}] {self.name!r}{api} (in {self.max_input_channels}, "
            f"out {self.max_output_channels}, {self.default_sample_rate:g} Hz{extra})"
        )


_lock = threading.RLock()
_instance: Any = None
_users = 0


def _import_pyaudio() -> ModuleType:
    """Import pyaudio or raise :class:`AudioDeviceError` with the install hint."""
    try:
        import pyaudio  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as exc:
        raise AudioDeviceError(f"pyaudio is not installed ({exc}); {INSTALL_HINT}") from exc
    module: ModuleType = pyaudio
    return module


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null for the duration of the block.

    PortAudio's ALSA and JACK back-ends print dozens of lines straight to fd 2
    (not through Python) while probing; this hides them.  fd 2 is process-wide,
    so anything another thread writes to stderr inside the window is lost too:
    keep the window short.
    """
    try:
        sys.stderr.flush()
    except Exception:  # pragma: no cover - a closed or odd stderr
        pass
    try:
        saved = os.dup(2)
    except OSError:  # pragma: no cover - no fd 2 at all
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_silencers: list[Any] = []  # the C callbacks must outlive every ALSA/JACK call that may invoke them


def _silence_native_logging() -> None:
    """Route ALSA's and JACK's own error printing to nothing, for good (once per process).

    Hiding fd 2 only covers the probing at start-up; during playback ALSA still prints lines
    such as "snd_pcm_recover) underrun occurred" straight to the terminal.  alsa-lib and libjack
    both let a program install its own error handler: ours drops the text (PortAudio reports
    the errors that matter through its return codes, which become :class:`AudioDeviceError`).
    """
    if _silencers:
        return
    import ctypes
    import ctypes.util

    _silencers.append(None)
    name = ctypes.util.find_library("asound")
    if name:
        try:
            alsa = ctypes.CDLL(name)
            handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int,
                                            ctypes.c_char_p)
            handler = handler_type(lambda *args: None)
            alsa.snd_lib_error_set_handler(handler)
            _silencers.append(handler)
        except (OSError, AttributeError):  # pragma: no cover - an odd libasound
            logger.debug("could not install an ALSA error handler", exc_info=True)
    name = ctypes.util.find_library("jack")
    if name:
        try:
            jack = ctypes.CDLL(name)
            message_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p)
            quiet = message_type(lambda text: None)
            jack.jack_set_error_function(quiet)
            jack.jack_set_info_function(quiet)
            _silencers.append(quiet)
        except (OSError, AttributeError):  # pragma: no cover
            logger.debug("could not install a JACK error handler", exc_info=True)


def _acquire() -> Any:
    """Return the shared ``PyAudio`` instance, creating it if needed; pair with :func:`_release`."""
    global _instance, _users
    pyaudio = _import_pyaudio()
    with _lock:
        if _instance is None:
            _silence_native_logging()
            # Without this, libjack tries to spawn a jackd server while probing.
            os.environ.setdefault("JACK_NO_START_SERVER", "1")
            try:
                with _quiet_stderr():
                    _instance = pyaudio.PyAudio()
            except Exception as exc:
                raise AudioDeviceError(f"PortAudio failed to initialise: {exc}") from exc
            logger.debug("PortAudio initialised")
        _users += 1
        return _instance


def _release() -> None:
    """Drop one use of the shared instance; terminate PortAudio when nobody uses it."""
    global _instance, _users
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0 and _instance is not None:
            instance, _instance = _instance, None
            try:
                with _quiet_stderr():
                    instance.terminate()
            except Exception:  # pragma: no cover - PortAudio teardown quirks
                logger.debug("PortAudio terminate failed", exc_info=True)
            logger.debug("PortAudio terminated")


@contextlib.contextmanager
def _pyaudio_instance() -> Iterator[Any]:
    instance = _acquire()
    try:
        yield instance
    finally:
        _release()


def _devices_from(pa: Any) -> list[AudioDevice]:
    try:
        default_in: Optional[int] = int(pa.get_default_input_device_info()["index"])
    except (IOError, OSError, KeyError):
        default_in = None
    try:
        default_out: Optional[int] = int(pa.get_default_output_device_info()["index"])
    except (IOError, OSError, KeyError):
        default_out = None
    devices = []
    for index in range(pa.get_device_count()):
        info = pa.get_device_info_by_index(index)
        host_api = ""
        try:
            host_api = str(pa.get_host_api_info_by_index(info["hostApi"])["name"])
        except Exception:
            pass
        devices.append(
            AudioDevice(
                index=int(info["index"]),
                name=str(info["name"]),
                max_input_channels=int(info["maxInputChannels"]),
                max_output_channels=int(info["maxOutputChannels"]),
                default_sample_rate=float(info["defaultSampleRate"]),
                is_default_input=index == default_in,
                is_default_output=index == default_out,
                host_api=host_api,
            )
        )
    return devices


def list_devices() -> list[AudioDevice]:
    """List every audio device PortAudio sees right now.

    Runs on the calling thread (any thread).

    :raises AudioDeviceError: if pyaudio is not installed or PortAudio cannot start.
    """
    with _lock, _pyaudio_instance() as pa:
        try:
            return _devices_from(pa)
        except Exception as exc:
            raise AudioDeviceError(f"PortAudio could not list its devices: {exc}") from exc


def _available(devices: Sequence[AudioDevice], kind: Optional[DeviceKind]) -> str:
    shown = [d for d in devices if kind is None or d.supports(kind)]
    if not devices:
        return "PortAudio lists no audio devices at all (is a sound server such as PulseAudio running?)"
    if not shown:
        return f"PortAudio lists no {kind} device; all devices: " + "; ".join(d.describe() for d in devices)
    label = f"available {kind} devices" if kind else "available devices"
    return f"{label}: " + "; ".join(d.describe() for d in shown)


def find_device(
    spec: DeviceSpec,
    kind: DeviceKind,
    *,
    devices: Optional[Sequence[AudioDevice]] = None,
) -> AudioDevice:
    """Find the ``kind`` device named by ``spec``.

    ``spec`` is a PortAudio index, a name (exact, then case-insensitive exact,
    then a case-insensitive substring that must match exactly one device) or
    ``None`` for the system default.  Runs on the calling thread (any thread).

    :param spec: index, name or ``None``.
    :param kind: ``"input"`` (microphones) or ``"output"`` (speakers).
    :param devices: the list to search; by default :func:`list_devices` is called.
    :raises AudioDeviceError: no such device, ambiguous name, device without
        ``kind`` channels, no default, or pyaudio missing; the message lists the
        available devices.
    :raises TypeError: if ``spec`` is not an int, str or None.
    :raises ValueError: if ``kind`` is not ``"input"`` or ``"output"``.
    """
    if kind not in ("input", "output"):
        raise ValueError(f"kind must be 'input' or 'output', not {kind!r}")
    if spec is not None and (isinstance(spec, bool) or not isinstance(spec, (int, str))):
        raise TypeError(f"an audio device is given by index (int), name (str) or None, not {type(spec).__name__}")
    if devices is None:
        devices = list_devices()
    capable = [d for d in devices if d.supports(kind)]

    if spec is None:
        for device in capable:
            if (kind == "input" and device.is_default_input) or (kind == "output" and device.is_default_output):
                return device
        raise AudioDeviceError(f"no default {kind} device; {_available(devices, kind)}", spec=spec, kind=kind)

    if isinstance(spec, int):
        for device in devices:
            if device.index == spec:
                if not device.supports(kind):
                    raise AudioDeviceError(
                        f"audio device {device.describe()} has no {kind} channels; {_available(devices, kind)}",
                        spec=spec,
                        kind=kind,
                    )
                return device
        raise AudioDeviceError(f"no audio device with index {spec}; {_available(devices, kind)}", spec=spec, kind=kind)

    for device in capable:
        if device.name == spec:
            return device
    lowered = spec.lower()
    folded = [d for d in capable if d.name.lower() == lowered]
    if len(folded) == 1:
        return folded[0]
    matches = [d for d in capable if lowered in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise AudioDeviceError(
            f"audio device name {spec!r} is ambiguous, it matches "
            + "; ".join(d.describe() for d in matches)
            + "; give the full name or the index",
            spec=spec,
            kind=kind,
        )
    raise AudioDeviceError(f"no {kind} device matches {spec!r}; {_available(devices, kind)}", spec=spec, kind=kind)


def is_rate_supported(device: AudioDevice, kind: DeviceKind, rate: int, channels: int = 1) -> bool:
    """Whether PortAudio accepts 16-bit ``channels``-channel ``rate`` Hz on ``device``.

    Runs on the calling thread (any thread).
    """
    pyaudio = _import_pyaudio()
    with _lock, _pyaudio_instance() as pa:
        kwargs: dict[str, Any] = {}
        if kind == "input":
            kwargs.update(input_device=device.index, input_channels=channels, input_format=pyaudio.paInt16)
        else:
            kwargs.update(output_device=device.index, output_channels=channels, output_format=pyaudio.paInt16)
        try:
            with _quiet_stderr():
                return bool(pa.is_format_supported(rate, **kwargs))
        except ValueError:
            return False


StreamCallback = Callable[[Optional[bytes], int, Any, int], tuple[Optional[bytes], int]]


def _open(device: AudioDevice, kind: DeviceKind, rate: int, channels: int, frames_per_buffer: int, **kwargs: Any) -> Any:
    pyaudio = _import_pyaudio()
    with _lock:
        pa = _acquire()
        try:
            with _quiet_stderr():
                stream = pa.open(
                    format=pyaudio.paInt16,
                    channels=channels,
                    rate=rate,
                    frames_per_buffer=frames_per_buffer,
                    **kwargs,
                )
        except Exception as exc:
            _release()
            hint = ""
            if "-9985" in str(exc) or "unavailable" in str(exc).lower() or "busy" in str(exc).lower():
                # ALSA hw devices allow one user at a time; PortAudio says only "Device unavailable".
                hint = " (the device is busy: another program holds it; use a shared device such as 'pulse')"
            raise AudioDeviceError(
                f"could not open {kind} device {device.describe()} at {rate} Hz, {channels} channel(s): {exc}{hint}",
                spec=device.index,
                kind=kind,
            ) from exc
    logger.debug("opened %s stream on %s at %d Hz", kind, device.describe(), rate)
    return stream


def open_input_stream(
    device: AudioDevice,
    *,
    rate: int,
    channels: int,
    frames_per_buffer: int,
    callback: StreamCallback,
    start: bool = True,
) -> Any:
    """Open a 16-bit capture stream whose ``callback`` runs on a PortAudio thread.

    The stream holds one use of the shared PortAudio instance until
    :func:`close_stream`.  Runs on the calling thread (any thread).

    :raises AudioDeviceError: if the stream cannot be opened.
    """
    return _open(
        device,
        "input",
        rate,
        channels,
        frames_per_buffer,
        input=True,
        input_device_index=device.index,
        stream_callback=callback,
        start=start,
    )


def open_output_stream(device: AudioDevice, *, rate: int, channels: int, frames_per_buffer: int) -> Any:
    """Open a 16-bit blocking playback stream (write with ``stream.write``).

    The stream holds one use of the shared PortAudio instance until
    :func:`close_stream`.  Runs on the calling thread (any thread).

    :raises AudioDeviceError: if the stream cannot be opened.
    """
    return _open(
        device,
        "output",
        rate,
        channels,
        frames_per_buffer,
        output=True,
        output_device_index=device.index,
    )


def close_stream(stream: Any) -> None:
    """Stop and close a stream from :func:`open_input_stream`/:func:`open_output_stream`.

    Must not be called from the stream's own callback.  Runs on the calling thread.
    """
    # PortAudio is not thread-safe between opening and closing streams; the
    # callbacks never take this lock, so stopping under it cannot deadlock.
    with _lock:
        try:
            try:
                if not stream.is_stopped():
                    stream.stop_stream()
            finally:
                stream.close()
        except Exception:
            logger.debug("error while closing an audio stream", exc_info=True)
        finally:
            _release()
