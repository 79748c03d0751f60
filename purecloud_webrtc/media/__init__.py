"""Audio in and out of calls: sources, sinks, analysis and device access.

Sources make the aiortc tracks the SDK sends (tracks are created and read on the
core loop thread); sinks receive every frame of the remote track from a
:class:`SinkPump` on the core loop thread and hand slow work to their own named
worker threads; devices are reached through pyaudio, imported lazily.
"""

from ._pyaudio import AudioDevice, AudioDeviceError, find_device, list_devices
from .analysis import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SILENCE_DBFS,
    FrameConverter,
    dominant_frequency,
    frame_to_int16,
    frame_to_mono,
    rms_dbfs,
    to_int16,
)
from .jitter import JitterBufferConfig, JitterBufferStats
from .live import AudioLevels, CallRecorder, Recording
from .sinks import (
    AudioSink,
    BufferSink,
    CallbackSink,
    MultiSink,
    NullSink,
    SinkPump,
    SpeakerSink,
    WavRecorderSink,
    resolve_sink,
)
from .sources import (
    AudioSource,
    CallbackSource,
    MicrophoneSource,
    SilenceSource,
    StreamSource,
    ToneSource,
    TrackSource,
    WavFileSource,
    decode_audio_file,
    make_frame,
    resolve_source,
)
from .vad import EnergyVad, VadConfig, WebrtcVad, create_vad

__all__ = [
    "AudioDevice",
    "AudioLevels",
    "CallRecorder",
    "Recording",
    "AudioDeviceError",
    "AudioSink",
    "AudioSource",
    "BufferSink",
    "CallbackSink",
    "CallbackSource",
    "EnergyVad",
    "FRAME_SAMPLES",
    "FrameConverter",
    "JitterBufferConfig",
    "JitterBufferStats",
    "MicrophoneSource",
    "MultiSink",
    "NullSink",
    "SAMPLE_RATE",
    "SILENCE_DBFS",
    "SilenceSource",
    "SinkPump",
    "SpeakerSink",
    "StreamSource",
    "ToneSource",
    "TrackSource",
    "VadConfig",
    "WebrtcVad",
    "create_vad",
    "WavFileSource",
    "WavRecorderSink",
    "decode_audio_file",
    "dominant_frequency",
    "find_device",
    "frame_to_int16",
    "frame_to_mono",
    "list_devices",
    "make_frame",
    "resolve_sink",
    "resolve_source",
    "rms_dbfs",
    "to_int16",
]
