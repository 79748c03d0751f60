"""The exception hierarchy of :mod:`purecloud_webrtc`.

Every error raised by the SDK derives from :class:`PureCloudWebrtcError` and,
where it helps, from the matching builtin (``ValueError``, ``TimeoutError``,
``LookupError``, ``ConnectionError``), so ``except TimeoutError`` keeps working.
Errors carry their context as attributes.  If a caller is waiting for an
operation, the error is raised to it; otherwise it is emitted as the SDK's
``error`` event -- never both.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
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
    "OperationTimeoutError",
    "ClosedError",
    "EventOverflowError",
]


class PureCloudWebrtcError(Exception):
    """Base class of every error raised by the SDK."""


class ConfigurationError(PureCloudWebrtcError, ValueError):
    """An option passed to the SDK is missing or invalid.

    :ivar option: the name of the offending option.
    """

    def __init__(self, message: str, option: Optional[str] = None) -> None:
        super().__init__(message)
        self.option = option


class UsageError(PureCloudWebrtcError, RuntimeError):
    """The SDK was used in a way that cannot work (e.g. waiting for an event from inside a callback)."""


class ApiError(PureCloudWebrtcError):
    """A REST call to the Public API failed.

    :ivar status: HTTP status code, or ``None`` when no response arrived.
    :ivar method: HTTP method.
    :ivar url: request URL.
    :ivar correlation_id: the ``inin-correlation-id`` response header, if any.
    :ivar body: the decoded response body (dict or text), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        status: Optional[int] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
        correlation_id: Optional[str] = None,
        body: object = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.url = url
        self.correlation_id = correlation_id
        self.body = body


class AuthenticationError(ApiError):
    """The access token was refused: HTTP 401/403 from the API or a SASL failure on the stream.

    :ivar condition: the SASL failure condition (e.g. ``not-authorized``) when it came from the stream.
    """

    def __init__(self, message: str, *, condition: Optional[str] = None, **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
        self.condition = condition


class ConnectionFailedError(PureCloudWebrtcError, ConnectionError):
    """The API or streaming host could not be reached, or the stream broke.

    :ivar url: the URL that could not be reached, when known.
    """

    def __init__(self, message: str, *, url: Optional[str] = None) -> None:
        super().__init__(message)
        self.url = url


class TlsError(ConnectionFailedError):
    """A TLS handshake failed: untrusted certificate, wrong host name, or TLS refused."""


class SignalingError(PureCloudWebrtcError):
    """The XMPP stream or a Jingle/XEP-0353 exchange went wrong (bad stanza, stream error, protocol violation)."""


class IqError(SignalingError):
    """The peer answered one of our IQs with an error.

    :ivar condition: the RFC 6120 stanza error condition (e.g. ``item-not-found``).
    :ivar error_type: the error ``type`` attribute (``cancel``, ``modify``, ``wait``, ...).
    :ivar app_condition: an application-specific condition (e.g. Jingle ``unknown-session``), if any.
    """

    def __init__(
        self,
        message: str,
        *,
        condition: Optional[str] = None,
        error_type: Optional[str] = None,
        app_condition: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.condition = condition
        self.error_type = error_type
        self.app_condition = app_condition


class SessionError(PureCloudWebrtcError):
    """A session operation failed.

    :ivar session_id: the session (or pending session) id concerned.
    """

    def __init__(self, message: str, *, session_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.session_id = session_id


class SessionNotFoundError(SessionError, LookupError):
    """No session or pending session with the given id or conversation id exists."""


class SessionStateError(SessionError):
    """The session is not in a state that allows the operation (e.g. accepting twice)."""


class MediaError(PureCloudWebrtcError):
    """Audio or WebRTC media could not be set up (device, file, codec, peer connection)."""


class MediaSpecError(MediaError, ValueError):
    """A source or sink the SDK cannot use, found before anything is sent: no such file, a directory that
    does not exist or cannot be written, a malformed named spec (``"tone:abc"``).

    :ivar spec: what was asked for.
    """

    def __init__(self, message: str, spec: object = None) -> None:
        super().__init__(message)
        self.spec = spec


class OperationTimeoutError(PureCloudWebrtcError, TimeoutError):
    """A blocking operation did not finish in time.

    :ivar operation: what was being waited for.
    :ivar timeout: the time limit in seconds.
    """

    def __init__(self, operation: str, timeout: Optional[float]) -> None:
        shown = "no time limit" if timeout is None else f"{timeout:.3g} s"  # 30 s, not 29.99598545599997 s
        super().__init__(f"{operation} timed out after {shown}")
        self.operation = operation
        self.timeout = timeout


class ClosedError(PureCloudWebrtcError, RuntimeError):
    """The SDK was closed (or is closing) while the operation was pending."""


class EventOverflowError(PureCloudWebrtcError):
    """Events were dropped because a callback kept the events thread busy while the bounded queue filled.

    The core never waits for callbacks (it runs every call's media): once the queue is full, further
    ordered events are dropped and counted, and this error is the first event delivered when the
    events thread is free again.  Periodic events (``audioLevel``, ``stats``) are coalesced instead.

    :ivar dropped: how many events were lost.
    :ivar names: their names, in order (at most the first 100).
    """

    def __init__(self, dropped: int, names: "list[str]") -> None:
        super().__init__(f"{dropped} event(s) were dropped while a callback blocked the events thread "
                         f"({', '.join(sorted(set(names))[:10])})")
        self.dropped = dropped
        self.names = names
