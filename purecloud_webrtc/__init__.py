"""purecloud_webrtc: Genesys Cloud (PureCloud) WebRTC softphone calls from Python.

Import from here (and from :mod:`purecloud_webrtc.media`, :mod:`purecloud_webrtc.emulator`);
deeper modules are private.
"""

import logging

from ._version import __version__
from ._extras import MissingExtraError
from .errors import (
    ApiError,
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    ConnectionFailedError,
    IqError,
    MediaError,
    MediaSpecError,
    OperationTimeoutError,
    PureCloudWebrtcError,
    SessionError,
    SessionNotFoundError,
    SessionStateError,
    SignalingError,
    TlsError,
    EventOverflowError,
    UsageError,
)
from .events import ConversationUpdate, Event, EventQueue, PendingSession, signals
from .quality import CallStats, QualityThresholds, QualityWarning, estimated_mos
from ._internals import probe
from ._trust import Limits
from .sdk import PureCloudWebrtcSdk, SdkOptions
from .session import Session

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "__version__",
    "PureCloudWebrtcSdk",
    "SdkOptions",
    "Limits",
    "probe",
    "Session",
    "PendingSession",
    "ConversationUpdate",
    "Event",
    "EventQueue",
    "signals",
    "CallStats",
    "QualityThresholds",
    "QualityWarning",
    "estimated_mos",
    "PureCloudWebrtcError",
    "ConfigurationError",
    "UsageError",
    "ApiError",
    "AuthenticationError",
    "ConnectionFailedError",
    "TlsError",
    "SignalingError",
    "IqError",
    "SessionError",
    "SessionNotFoundError",
    "SessionStateError",
    "MediaError",
    "MediaSpecError",
    "MissingExtraError",
    "OperationTimeoutError",
    "ClosedError",
    "EventOverflowError",
]
