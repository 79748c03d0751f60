"""purecloud_webrtc: Genesys Cloud (PureCloud) WebRTC softphone calls from Python.

Import from here (and from :mod:`purecloud_webrtc.media`, :mod:`purecloud_webrtc.emulator`);
deeper modules are private.
"""

import logging

from ._version import __version__
from .errors import (
    ApiError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    ConnectionFailedError,
    IqError,
    MediaError,
    OperationTimeoutError,
    PureCloudWebrtcError,
    SessionError,
    SessionNotFoundError,
    SessionStateError,
    SignalingError,
    UsageError,
)
from .events import Event, EventQueue, PendingSession, signals
from .sdk import PureCloudWebrtcSdk, SdkOptions
from .session import Session

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "PureCloudWebrtcSdk",
    "SdkOptions",
    "Session",
    "PendingSession",
    "Event",
    "EventQueue",
    "signals",
    "PureCloudWebrtcError",
    "ConfigurationError",
    "UsageError",
    "ApiError",
    "AuthenticationError",
    "ConnectionFailedError",
    "SignalingError",
    "IqError",
    "SessionError",
    "SessionNotFoundError",
    "SessionStateError",
    "MediaError",
    "OperationTimeoutError",
    "ClosedError",
]
