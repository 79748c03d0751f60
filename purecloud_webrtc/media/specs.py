"""Named sources and sinks: the same strings in the API, the command line and the docs.

Sources (what the far end hears)::

    "silence"                     digital silence
    "tone" / "tone:HZ"            a sine tone (440 Hz by default)
    "mic" / "mic:DEVICE"          the default microphone, or one by index or (part of its) name
    anything else                 a WAV (or any audio) file path, played in a loop

Sinks (where the far end's audio goes)::

    "null"                        discarded
    "buffer"                      kept in memory (``BufferSink``: levels and frequency analysis)
    "speaker" / "speaker:DEVICE"  the default speaker, or one by index or name
    anything else                 a WAV file path to record to (created ``0600``)

A name wins over a file of the same name in the working directory: write ``./silence`` for the file.
Everything is checked when the spec is resolved, before a call is answered: a missing file, a directory
that does not exist or cannot be written, or a malformed spec raise :class:`~purecloud_webrtc.MediaSpecError`
at once; an unknown or busy device raises :class:`~purecloud_webrtc.media.AudioDeviceError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Union

from ..errors import MediaSpecError

if TYPE_CHECKING:  # pragma: no cover
    from .sinks import AudioSink
    from .sources import AudioSource

__all__ = ["SOURCE_SPECS", "SINK_SPECS", "source_from_spec", "sink_from_spec", "device_spec"]

#: the spellings a source spec may take, for messages and ``--help``
SOURCE_SPECS = "a WAV path, 'tone[:HZ]', 'silence' or 'mic[:DEVICE]'"
#: the spellings a sink spec may take
SINK_SPECS = "a WAV path, 'null', 'buffer' or 'speaker[:DEVICE]'"


def device_spec(text: str) -> Union[int, str, None]:
    """``""`` → the default device, ``"3"`` → index 3, anything else → a name (or part of one)."""
    text = text.strip()
    if not text:
        return None
    return int(text) if text.isdigit() else text


def source_from_spec(spec: Union[str, "os.PathLike[str]"]) -> "AudioSource":
    """The :class:`AudioSource` a named spec or a path stands for (see the module docstring).

    :raises MediaSpecError: a malformed spec, or a file that does not exist or holds no audio.
    :raises AudioDeviceError: ``mic:...`` names no usable input device.
    """
    from .sources import MicrophoneSource, SilenceSource, ToneSource, WavFileSource

    if isinstance(spec, str):
        kind, sep, arg = spec.partition(":")
        if spec == "silence":
            return SilenceSource()
        if kind == "tone" and (sep or spec == "tone"):
            try:
                return ToneSource(float(arg) if arg else 440.0)
            except ValueError as exc:
                raise MediaSpecError(f"source {spec!r}: {exc} (write tone:440)", spec) from None
        if kind in ("mic", "microphone") and (sep or spec == kind):
            return MicrophoneSource(device_spec(arg))
    path = Path(spec)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise MediaSpecError(f"source {str(spec)!r}: {what} (a source is {SOURCE_SPECS})", spec)
    try:
        return WavFileSource(path)
    except (OSError, ValueError) as exc:
        raise MediaSpecError(f"source {str(spec)!r}: cannot be played: {exc}", spec) from None


def sink_from_spec(spec: Union[str, "os.PathLike[str]"], *, mode: Optional[int] = None) -> "AudioSink":
    """The :class:`AudioSink` a named spec or a path stands for (see the module docstring).

    :param mode: permission bits of a recording file (default ``0600``).
    :raises MediaSpecError: a path whose directory does not exist or cannot be written.
    :raises AudioDeviceError: ``speaker:...`` names no usable output device.
    """
    from .sinks import BufferSink, NullSink, SpeakerSink, WavRecorderSink

    if isinstance(spec, str):
        kind, sep, arg = spec.partition(":")
        if spec in ("null", "none"):
            return NullSink()
        if spec == "buffer":
            return BufferSink()
        if kind == "speaker" and (sep or spec == "speaker"):
            return SpeakerSink(device_spec(arg))
    path = Path(spec)
    directory = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise MediaSpecError(f"sink {str(spec)!r} is a directory (a sink is {SINK_SPECS})", spec)
    if not directory.is_dir():
        raise MediaSpecError(f"sink {str(spec)!r}: directory {str(directory)!r} does not exist "
                             f"(a sink is {SINK_SPECS})", spec)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise MediaSpecError(f"sink {str(spec)!r}: directory {str(directory)!r} is not writable", spec)
    try:
        return WavRecorderSink(path) if mode is None else WavRecorderSink(path, mode=mode)
    except OSError as exc:
        raise MediaSpecError(f"sink {str(spec)!r}: cannot be created: {exc}", spec) from None
