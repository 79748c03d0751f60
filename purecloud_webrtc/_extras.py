"""Optional dependencies (the package's extras), and the one-line hint when one is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import PureCloudWebrtcError

__all__ = ["MissingExtraError", "require", "EXTRAS"]

#: extra → (what it adds, the module whose absence means it is not installed)
EXTRAS = {
    "audio": ("microphones and speakers (pyaudio)", "pyaudio"),
    "emulator": ("the bundled emulator, the demo and doctor --emulator (aiohttp)", "aiohttp"),
    "voice": ("microphone echo cancellation, noise suppression and gain control (pywebrtc-audio)",
              "pywebrtc_audio"),
    "pipecat": ("the Pipecat transport, purecloud_webrtc.contrib.pipecat (Python 3.11+)", "pipecat"),
}


class MissingExtraError(PureCloudWebrtcError, ImportError):
    """An optional part of the SDK was used without its extra installed.

    :ivar extra: the extra to install (``pip install 'purecloud_webrtc[EXTRA]'``).
    """

    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} needs the '{extra}' extra: pip install 'purecloud_webrtc[{extra}]'")
        self.extra = extra


def require(extra: str, what: str) -> ModuleType:
    """Import the module behind ``extra``, or raise :class:`MissingExtraError` naming the extra."""
    module = EXTRAS[extra][1]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(what, extra) from None
