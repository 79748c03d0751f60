"""The blocking facade: :class:`PureCloudWebrtcSdk`.

It validates options, owns the three kinds of background thread (the core loop
``pcw-core-N``, the WebSocket reader ``pcw-ws-N``, the events thread
``pcw-events-N``) and offers plain blocking methods.  It holds no protocol
logic: every command is a coroutine run on the core with a timeout.
"""

from __future__ import annotations

import atexit
import dataclasses
import difflib
import ipaddress
import logging
import os
import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import urlparse

from ._commands import deadline as _deadline, grace as _grace
from ._core import AcceptOptions, Core
from ._trust import Limits, TrustedPeers
from .api import KNOWN_ENVIRONMENTS, ApiClient
from .errors import (
    SessionStateError,
    ClosedError,
    ConfigurationError,
    PureCloudWebrtcError,
    UsageError,
)
from .events import SDK_EVENTS, Dispatcher, Emitter, PendingSession
from .session import Session

__all__ = ["PureCloudWebrtcSdk", "SdkOptions"]

_package_log = logging.getLogger("purecloud_webrtc")


@dataclass(frozen=True)
class SdkOptions:
    """The validated options of one SDK (see :class:`PureCloudWebrtcSdk` for their meaning).

    Its ``repr()`` never shows the access token nor ICE server credentials.
    """

    access_token: str = field(repr=False)
    environment: str = "mypurecloud.com"
    org_id: Optional[str] = None
    session_survivability: bool = True
    auto_answer_outbound_calls: Union[bool, str] = True
    auto_connect_sessions: bool = True
    ice_servers: Optional[List[Dict[str, Any]]] = None
    ice_transport_policy: str = "all"
    api_base_url: str = ""
    streaming_base_url: str = ""
    streaming_url: Optional[str] = None
    jid_resource: Optional[str] = None
    ice_host_addresses: Optional[List[str]] = None
    default_source: Any = None
    default_sink: Any = None
    request_timeout: float = 15.0
    connect_timeout: float = 15.0
    iq_timeout: float = 15.0
    ping_interval: float = 14.0
    ping_timeout: float = 7.0
    reconnect: bool = True
    reconnect_initial_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    reconnect_max_attempts: Optional[int] = None
    ice_refresh_interval: float = 6 * 3600.0
    ca_bundle: Optional[str] = None
    allow_insecure: bool = False
    subscribe_conversations: bool = True
    jitter_buffer: Any = True
    stats_interval: float = 5.0
    quality_thresholds: Any = None
    trusted_peers: Any = None
    limits: Limits = field(default_factory=Limits)
    media_interrupted_after: float = 2.0
    media_timeout: float = 30.0
    pending_timeout: float = 300.0
    pending_reconnect_grace: float = 15.0
    codec_preferences: Tuple[str, ...] = ("opus", "PCMU", "PCMA", "G722")
    relay_without_stun: bool = False
    mic_processing: Any = None
    voice_activity: Any = None

    def __repr__(self) -> str:
        shown = []
        for name in self.__dataclass_fields__:
            if name == "access_token":
                continue
            value = getattr(self, name)
            if name == "ice_servers" and value:
                value = [{k: ("***" if k == "credential" else v) for k, v in server.items()} for server in value]
            shown.append(f"{name}={value!r}")
        return f"SdkOptions(access_token=***, {', '.join(shown)})"


# The seed's camelCase names, accepted as keyword arguments for code ported from JavaScript.
_CAMEL = {
    "accessToken": "access_token",
    "orgId": "org_id",
    "sessionSurvivability": "session_survivability",
    "autoAnswerOutboundCalls": "auto_answer_outbound_calls",
    "autoConnectSessions": "auto_connect_sessions",
    "iceServers": "ice_servers",
    "iceTransportPolicy": "ice_transport_policy",
}


# The official SDK's microphone defaults (defaults.micEchoCancellation ...), under their JavaScript names.
_CAMEL_MIC = {
    "micEchoCancellation": "echo_cancellation",
    "micNoiseSuppression": "noise_suppression",
    "micAutoGainControl": "auto_gain_control",
}


def _checked_mic_options(mic: Dict[str, Any]) -> Any:
    """The ``mic_*`` options as an :class:`~purecloud_webrtc.media.processing.AudioProcessing`.

    :raises ConfigurationError: a value that is not ``None`` or a bool.
    :raises MissingExtraError: a stage asked for (``True``) without the ``voice`` extra.
    """
    from .media.processing import AudioProcessing

    for name, value in mic.items():
        if value is not None and not isinstance(value, bool):
            raise ConfigurationError(f"mic_{name} must be True, False or None (the default), not {value!r}",
                                     f"mic_{name}")
    return AudioProcessing(**mic)


# Whitespace or control characters: a token read from a file with its newline, or pasted with a space.
_BAD_TOKEN_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")
# A bare DNS host name: the environment becomes part of https://api.{environment} and friends.
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


def check_access_token(token: Any) -> str:
    """Validate an access token without ever quoting it in the error.

    :raises ConfigurationError: for a missing or non-string token, or one with whitespace or control
        characters (often a trailing newline read from a file).
    """
    if token is None or token == "":
        raise ConfigurationError("access_token is required (an OAuth access token of the user)", "access_token")
    if not isinstance(token, str):
        raise ConfigurationError(f"access_token must be a string, not {type(token).__name__}", "access_token")
    if _BAD_TOKEN_CHARS.search(token):
        raise ConfigurationError("access_token contains whitespace or control characters (a newline read from a "
                                 "file?); strip it first", "access_token")
    return token


def _check_codecs(value: Any) -> Tuple[str, ...]:
    from ._negotiation import check_codec_preferences

    try:
        return check_codec_preferences(value)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(str(exc), "codec_preferences") from None


def _check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, not {value!r}", name)
    return value


def _check_number(name: str, value: Any, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigurationError(f"{name} must be a number >= {minimum}, not {value!r}", name)
    return float(value)


#: What may follow a base URL as the emulator and the service's docs print it: accepted and dropped, so
#: ``http://127.0.0.1:8765/api/v2/`` and ``ws://.../stream/channels/{channelId}`` work as pasted.
_BASE_URL_TAILS = {
    "api_base_url": re.compile(r"/api/v2/?$"),
    "streaming_base_url": re.compile(r"/stream/channels(/\{channelId\}|/)?$"),
}


def _check_url(name: str, value: str, schemes: Sequence[str]) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a URL string, not {type(value).__name__}", name)
    parsed = urlparse(value)
    if parsed.scheme not in schemes or not parsed.netloc:
        raise ConfigurationError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}: "
                                 f"{value!r}", name)
    tail = _BASE_URL_TAILS.get(name)
    if tail is not None:
        value = tail.sub("", value.rstrip("/") + ("/" if value.endswith("/") else ""))
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_ice_servers(value: Any) -> Optional[List[Dict[str, Any]]]:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        raise ConfigurationError("ice_servers must be a list of {'urls': ..., 'username': ..., 'credential': ...}",
                                 "ice_servers")
    servers = []
    for i, server in enumerate(value):
        if not isinstance(server, Mapping) or "urls" not in server:
            raise ConfigurationError(f"ice_servers[{i}] must be a mapping with 'urls'", "ice_servers")
        urls = server["urls"]
        url_list = [urls] if isinstance(urls, str) else list(urls) if isinstance(urls, (list, tuple)) else None
        if not url_list or not all(isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns")
                                   for u in url_list):
            raise ConfigurationError(f"ice_servers[{i}]['urls'] must be stun:/turn: URLs, not {urls!r}", "ice_servers")
        unknown = set(server) - {"urls", "username", "credential"}
        if unknown:
            raise ConfigurationError(f"ice_servers[{i}] has unknown keys {sorted(unknown)}", "ice_servers")
        servers.append(dict(server))
    return servers


def softphone_call_body(phone_number: Optional[str], user_id: Optional[str], queue_id: Optional[str],
                        fields: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``POST conversations/calls`` body of ``start_softphone_session``.

    :raises UsageError: when it names nobody to call.
    """
    body: Dict[str, Any] = dict(fields)
    if phone_number:
        body["phoneNumber"] = phone_number
    if user_id:
        body["callUserId"] = user_id
    if queue_id:
        body["callQueueId"] = queue_id
    if not any(k in body for k in ("phoneNumber", "callUserId", "callQueueId", "participants", "conversationIds")):
        raise UsageError("start_softphone_session needs phone_number, user_id or queue_id")
    return body


#: SDKs not closed yet: the interpreter's exit closes them (their calls end; best effort, bounded).
_open_sdks: "weakref.WeakSet[PureCloudWebrtcSdk]" = weakref.WeakSet()
#: Seconds each open SDK gets to end its calls at interpreter exit.
EXIT_CLOSE_TIMEOUT = 3.0


def _close_at_exit() -> None:
    for sdk in list(_open_sdks):
        try:
            sdk.close(timeout=EXIT_CLOSE_TIMEOUT)
        except Exception:  # exiting anyway
            pass


atexit.register(_close_at_exit)


class PureCloudWebrtcSdk(Emitter):
    """A Genesys Cloud WebRTC softphone client.

    :param access_token: the user's OAuth access token (required).
    :param environment: the Genesys Cloud region, e.g. ``mypurecloud.com`` (unknown values only warn).
    :param org_id: the organization id (kept for parity with the seed; not needed by the protocol).
    :param session_survivability: keep calls up while the streaming socket is down (default) or end them.
    :param auto_answer_outbound_calls: accept proposals flagged auto-answer (calls this user placed) at once:
        ``True`` every one (the seed's behaviour: also calls placed from Genesys Cloud's own UI), ``"own"``
        only those this SDK placed with :meth:`start_softphone_session` (several processes of one user, such
        as gunicorn or Celery workers, each answer their own), ``False`` none.  A call this SDK placed is
        answered with the ``source``/``sink`` given to :meth:`start_softphone_session` either way.
    :param auto_connect_sessions: answer a session as soon as its offer arrives (otherwise call ``session.accept()``).
    :param ice_servers: ICE servers replacing the ones the service hands out (``[{"urls": ..., ...}]``).
    :param ice_transport_policy: ``"all"`` or ``"relay"``.
    :param api_base_url: REST base URL; default ``https://api.{environment}``.  A trailing ``/api/v2/`` (as
        the emulator prints it) is accepted and dropped.
    :param streaming_base_url: WebSocket base URL; default ``wss://streaming.{environment}``.  A trailing
        ``/stream/channels/{channelId}`` is accepted and dropped.
    :param streaming_url: the full WebSocket URL to connect to instead of
        ``{streaming_base_url}/stream/channels/{channel_id}``; ``{channel_id}`` in it is replaced.  For a
        plain XMPP server such as Prosody (``ws://127.0.0.1:5280/xmpp-websocket``).
    :param jid_resource: the XMPP resource to bind (default: a random one, kept across reconnects).
    :param ice_host_addresses: gather host candidates only on these addresses (e.g. ``["127.0.0.1"]``).
        Default: every interface, except that when every service URL is on loopback (the bundled emulator,
        a local Prosody) it is ``["127.0.0.1"]``: the far ends are on this machine.
    :param default_source: audio sent when ``accept_pending_session`` names none (default: microphone).
    :param default_sink: where remote audio goes when none is named (default: speaker).
    :param logger: logger for the SDK's messages (default ``purecloud_webrtc``).
    :param request_timeout: seconds per REST request.
    :param connect_timeout: seconds for the streaming connection handshake.
    :param iq_timeout: seconds to wait for an IQ answer.
    :param ping_interval: seconds between client pings (0 disables them).
    :param ping_timeout: seconds to wait for a pong; the second missed pong in a row declares the socket
        dead (so a half-open socket is noticed within ``ping_interval + 2 * ping_timeout``, 28 s by default).
    :param reconnect: reconnect automatically after an unexpected drop.
    :param reconnect_initial_delay: first back-off delay in seconds (doubled per failure, with jitter).
    :param reconnect_max_delay: back-off cap in seconds.
    :param reconnect_max_attempts: give up after this many failed attempts (default: never).
    :param ice_refresh_interval: seconds between ICE server refreshes (TURN credentials expire; default 6 h).
    :param ca_bundle: path of a CA bundle to verify the service's TLS certificates with (default: the system's).
    :param subscribe_conversations: subscribe to this user's conversation events over the streaming
        socket and emit ``conversationUpdate`` (default on).
    :param allow_insecure: allow plain ``http://``/``ws://`` URLs to hosts other than loopback (never do this
        in production; loopback URLs, as used with the local emulator, are always allowed).
    :param jitter_buffer: play received audio through the SDK's adaptive jitter buffer with loss
        concealment (default ``True``; a :class:`~purecloud_webrtc.media.jitter.JitterBufferConfig` tunes it;
        ``False`` keeps aiortc's own receive path).
    :param stats_interval: seconds between the ``stats`` events of each session (0 disables them).
    :param quality_thresholds: a :class:`~purecloud_webrtc.quality.QualityThresholds` for ``qualityWarning``.
    :param trusted_peers: who may offer calls.  Default ``None``: the service's softphone gateway only (a
        full JID whose domain has a label starting with ``gjoll``, outside the user's organisation
        domain).  A regular expression is matched against the whole full JID (case-insensitive), e.g.
        ``r"gateway@xmpp\\.example\\.test/.*"`` for a plain XMPP server; a callable ``fn(jid) -> bool`` also
        works.  Proposals from anybody else are ignored (a ``trace`` event), never answered.
    :param limits: a :class:`~purecloud_webrtc.Limits` bounding what a peer can make the SDK hold.
    :param media_interrupted_after: seconds without remote media before a connected call becomes
        ``interrupted`` (``change:interrupted(True)``; ``False`` again when media returns).
    :param media_timeout: seconds a call may stay interrupted before the SDK ends it (reason
        ``connectivity-error``, hung up by REST so the far end does not stay connected; 0: never).
        ICE failure, or aiortc closing the media on consent expiry, ends it at once the same way.
    :param pending_timeout: seconds a proposal rings at most without news from the service (the service
        retracts long before: 8 s for ACD alerts, 300 s for outbound dials); then ``cancelPendingSession``.
    :param pending_reconnect_grace: after a reconnect, a proceeded proposal is proceeded again and every
        proposal the service does not propose again within this many seconds expires (its retract may
        have been lost while we were away); accepting an expired one raises ``SessionStateError``.
    :param codec_preferences: the audio codecs to answer with, most wanted first, among those this SDK
        supports (``"opus"``, ``"PCMU"``, ``"PCMA"``, ``"G722"``); the first one the offer has is sent.
        ``telephone-event`` is accepted at that codec's clock rate when offered (docs/protocol.rst §4.10).
    :param relay_without_stun: follow the official client's rule: when ICE server discovery returns no STUN
        server, use relay candidates only (and so, with no TURN server either, none at all). By default the
        SDK keeps its host candidates then (docs/protocol.rst §2.8).
    :param mic_echo_cancellation: cancel the echo of the SDK's speakers in microphone calls (the official
        SDK's ``defaults.micEchoCancellation``).  ``None`` (default): on when the ``voice`` extra is installed,
        as in browsers; ``True``: required (the constructor raises :class:`MissingExtraError` naming the
        extra when it is missing); ``False``: off.  A ``MicrophoneSource(echo_cancellation=...)`` decides for
        its own calls.  Files, tones and callbacks are never processed.
    :param mic_noise_suppression: suppress steady background noise in microphone calls (same values).
    :param mic_auto_gain_control: level the voice in microphone calls (same values).
    :param voice_activity: the :class:`~purecloud_webrtc.media.VadConfig` of the session event
        ``voiceActivity`` (default: the energy detector; ``VadConfig(backend="webrtc")`` uses WebRTC's voice
        detector from the ``voice`` extra).
    :param xmpp_transport: test seam: a factory for the streaming socket (see ``XmppStream``); the default is
        websocket-client.  Protocol tests script a server through it without a socket.
    :param http_adapter: test seam: a ``requests`` transport adapter mounted for the REST client.

    Threads: callbacks run on the SDK's events thread; methods may be called from any other thread
    (and from callbacks, except those that wait for events).
    """

    _event_table = SDK_EVENTS

    def __init__(
        self,
        access_token: Optional[str] = None,
        environment: str = "mypurecloud.com",
        org_id: Optional[str] = None,
        session_survivability: bool = True,
        auto_answer_outbound_calls: Union[bool, str] = True,
        auto_connect_sessions: bool = True,
        ice_servers: Optional[Sequence[Mapping[str, Any]]] = None,
        ice_transport_policy: str = "all",
        *,
        api_base_url: Optional[str] = None,
        streaming_base_url: Optional[str] = None,
        streaming_url: Optional[str] = None,
        jid_resource: Optional[str] = None,
        ice_host_addresses: Optional[Sequence[str]] = None,
        default_source: Any = None,
        default_sink: Any = None,
        logger: Optional[logging.Logger] = None,
        request_timeout: float = 15.0,
        connect_timeout: float = 15.0,
        iq_timeout: float = 15.0,
        ping_interval: float = 14.0,
        ping_timeout: float = 7.0,
        reconnect: bool = True,
        reconnect_initial_delay: float = 0.5,
        reconnect_max_delay: float = 30.0,
        reconnect_max_attempts: Optional[int] = None,
        ice_refresh_interval: float = 6 * 3600.0,
        ca_bundle: Optional[str] = None,
        allow_insecure: bool = False,
        subscribe_conversations: bool = True,
        jitter_buffer: Any = True,
        stats_interval: float = 5.0,
        quality_thresholds: Any = None,
        trusted_peers: Any = None,
        limits: Optional[Limits] = None,
        xmpp_transport: Any = None,
        http_adapter: Any = None,
        media_interrupted_after: float = 2.0,
        media_timeout: float = 30.0,
        pending_timeout: float = 300.0,
        pending_reconnect_grace: float = 15.0,
        codec_preferences: Sequence[str] = ("opus", "PCMU", "PCMA", "G722"),
        relay_without_stun: bool = False,
        mic_echo_cancellation: Optional[bool] = None,
        mic_noise_suppression: Optional[bool] = None,
        mic_auto_gain_control: Optional[bool] = None,
        voice_activity: Any = None,
        **seed_options: Any,
    ) -> None:
        self.log = logger or _package_log
        values: Dict[str, Any] = dict(
            access_token=access_token, environment=environment, org_id=org_id,
            session_survivability=session_survivability, auto_answer_outbound_calls=auto_answer_outbound_calls,
            auto_connect_sessions=auto_connect_sessions, ice_servers=ice_servers,
            ice_transport_policy=ice_transport_policy,
        )
        mic = {"echo_cancellation": mic_echo_cancellation, "noise_suppression": mic_noise_suppression,
               "auto_gain_control": mic_auto_gain_control}
        for key, value in seed_options.items():
            if key in _CAMEL_MIC:
                mic[_CAMEL_MIC[key]] = value
                continue
            if key in _CAMEL:
                values[_CAMEL[key]] = value
                continue
            known = list(_CAMEL) + list(_CAMEL_MIC) + list(SdkOptions.__dataclass_fields__)
            close = difflib.get_close_matches(key, known, n=1)
            raise ConfigurationError(f"unknown option {key!r}" + (f"; did you mean {close[0]!r}?" if close else ""), key)
        self.options = self._validate(values, api_base_url=api_base_url, streaming_base_url=streaming_base_url,
                                      streaming_url=streaming_url,
                                      jid_resource=jid_resource, ice_host_addresses=ice_host_addresses,
                                      default_source=default_source, default_sink=default_sink,
                                      request_timeout=request_timeout, connect_timeout=connect_timeout,
                                      iq_timeout=iq_timeout, ping_interval=ping_interval, ping_timeout=ping_timeout,
                                      reconnect=reconnect, reconnect_initial_delay=reconnect_initial_delay,
                                      reconnect_max_delay=reconnect_max_delay,
                                      reconnect_max_attempts=reconnect_max_attempts,
                                      ice_refresh_interval=ice_refresh_interval, ca_bundle=ca_bundle,
                                      allow_insecure=allow_insecure, subscribe_conversations=subscribe_conversations,
                                      trusted_peers=trusted_peers, limits=limits,
                                      media_interrupted_after=media_interrupted_after, media_timeout=media_timeout,
                                      pending_timeout=pending_timeout,
                                      pending_reconnect_grace=pending_reconnect_grace,
                                      codec_preferences=codec_preferences, relay_without_stun=relay_without_stun)
        from ._session_quality import checked_quality_options

        self.options = checked_quality_options(self.options, jitter_buffer, stats_interval, quality_thresholds)
        from .media.vad import VadConfig

        if voice_activity is not None and not isinstance(voice_activity, VadConfig):
            raise ConfigurationError(f"voice_activity must be a VadConfig, not {voice_activity!r}", "voice_activity")
        self.options = dataclasses.replace(self.options, mic_processing=_checked_mic_options(mic),
                                           voice_activity=voice_activity)
        self.api = ApiClient(self.options.api_base_url, self.options.access_token, timeout=self.options.request_timeout,
                             verify=self.options.ca_bundle or True, adapter=http_adapter)
        self._xmpp_transport = xmpp_transport
        self._dispatcher = Dispatcher(self)
        self._init_emitter(self._dispatcher)
        self._core = Core(self)
        self._core.start()
        self._closed = False
        self._close_lock = threading.Lock()
        _open_sdks.add(self)
        self.org: Optional[Dict[str, Any]] = None

    def _validate(self, values: Dict[str, Any], **extra: Any) -> SdkOptions:
        token = check_access_token(values["access_token"])
        environment = values["environment"]
        if not isinstance(environment, str) or not environment:
            raise ConfigurationError("environment must be a non-empty string such as 'mypurecloud.com'", "environment")
        if not _HOST_NAME.match(environment):
            # It is pasted into https://api.{environment}: "evil.example/x?" or "a@b" would send the token elsewhere.
            raise ConfigurationError(f"environment must be a bare host name such as 'mypurecloud.com', not "
                                     f"{environment[:80]!r}", "environment")
        if environment not in KNOWN_ENVIRONMENTS and not (extra["api_base_url"] and extra["streaming_base_url"]):
            self.log.warning("environment %r is not a known Genesys Cloud environment (known: %s)",
                             environment, ", ".join(KNOWN_ENVIRONMENTS))
        if values["org_id"] is not None and not isinstance(values["org_id"], str):
            raise ConfigurationError("org_id must be a string", "org_id")
        for name in ("session_survivability", "auto_connect_sessions"):
            _check_bool(name, values[name])
        if values["auto_answer_outbound_calls"] not in (True, False, "own") or isinstance(
                values["auto_answer_outbound_calls"], int) and not isinstance(values["auto_answer_outbound_calls"], bool):
            raise ConfigurationError("auto_answer_outbound_calls must be True, False or 'own', not "
                                     f"{values['auto_answer_outbound_calls']!r}", "auto_answer_outbound_calls")
        _check_bool("reconnect", extra["reconnect"])
        policy = values["ice_transport_policy"]
        if policy not in ("all", "relay"):
            raise ConfigurationError(f"ice_transport_policy must be 'all' or 'relay', not {policy!r}",
                                     "ice_transport_policy")
        api_base = _check_url("api_base_url", extra["api_base_url"] or f"https://api.{environment}", ("http", "https"))
        streaming_base = _check_url("streaming_base_url", extra["streaming_base_url"] or f"wss://streaming.{environment}",
                                    ("ws", "wss"))
        allow_insecure = _check_bool("allow_insecure", extra["allow_insecure"])
        streaming_url = None if extra["streaming_url"] is None else _check_url(
            "streaming_url", extra["streaming_url"], ("ws", "wss"))
        checked = [("api_base_url", api_base), ("streaming_base_url", streaming_base)]
        if streaming_url is not None:
            checked.append(("streaming_url", streaming_url))
        for name, url in checked:
            parsed = urlparse(url)
            if parsed.scheme in ("http", "ws") and not allow_insecure and not _is_loopback(parsed.hostname or ""):
                raise ConfigurationError(
                    f"{name} {url!r} is not encrypted: the service speaks https:// and wss:// only; pass "
                    "allow_insecure=True to allow plain connections for local development", name)
        ca_bundle = extra["ca_bundle"]
        if ca_bundle is not None and (not isinstance(ca_bundle, str) or not os.path.isfile(ca_bundle)):
            raise ConfigurationError(f"ca_bundle must be the path of a CA certificate file, not {ca_bundle!r}",
                                     "ca_bundle")
        attempts = extra["reconnect_max_attempts"]
        if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1):
            raise ConfigurationError("reconnect_max_attempts must be a positive int or None", "reconnect_max_attempts")
        hosts = extra["ice_host_addresses"]
        if hosts is not None:
            if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
                raise ConfigurationError("ice_host_addresses must be a list of IP addresses", "ice_host_addresses")
            for host in hosts:
                try:
                    ipaddress.ip_address(host)
                except (ValueError, TypeError):
                    raise ConfigurationError(f"ice_host_addresses: {host!r} is not an IP address",
                                             "ice_host_addresses") from None
            hosts = list(hosts)
        else:
            # A service on this machine (the emulator, a local Prosody): its far ends are on loopback, and
            # without this the calls would end in failed-transport with no explanation (issue 15).
            service_hosts = [urlparse(url).hostname or "" for _, url in checked]
            if all(_is_loopback(host) for host in service_hosts):
                hosts = ["::1"] if all(host == "::1" for host in service_hosts) else ["127.0.0.1"]
        try:
            TrustedPeers(extra["trusted_peers"])
        except ValueError as exc:
            raise ConfigurationError(str(exc), "trusted_peers") from None
        limits = extra["limits"] if extra["limits"] is not None else Limits()
        if not isinstance(limits, Limits):
            raise ConfigurationError("limits must be a purecloud_webrtc.Limits", "limits")
        resource = extra["jid_resource"]
        if resource is not None and (not isinstance(resource, str) or not resource or "/" in resource):
            raise ConfigurationError("jid_resource must be a non-empty string without '/'", "jid_resource")
        return SdkOptions(
            access_token=token,
            environment=environment,
            org_id=values["org_id"],
            session_survivability=values["session_survivability"],
            auto_answer_outbound_calls=values["auto_answer_outbound_calls"],
            auto_connect_sessions=values["auto_connect_sessions"],
            ice_servers=_check_ice_servers(values["ice_servers"]),
            ice_transport_policy=policy,
            api_base_url=api_base,
            streaming_base_url=streaming_base,
            streaming_url=streaming_url,
            jid_resource=resource,
            ice_host_addresses=hosts,
            default_source=extra["default_source"],
            default_sink=extra["default_sink"],
            request_timeout=_check_number("request_timeout", extra["request_timeout"], 0.1),
            connect_timeout=_check_number("connect_timeout", extra["connect_timeout"], 0.1),
            iq_timeout=_check_number("iq_timeout", extra["iq_timeout"], 0.1),
            ping_interval=_check_number("ping_interval", extra["ping_interval"], 0.0),
            ping_timeout=_check_number("ping_timeout", extra["ping_timeout"], 0.05),
            reconnect=extra["reconnect"],
            reconnect_initial_delay=_check_number("reconnect_initial_delay", extra["reconnect_initial_delay"], 0.0),
            reconnect_max_delay=_check_number("reconnect_max_delay", extra["reconnect_max_delay"], 0.0),
            reconnect_max_attempts=attempts,
            ice_refresh_interval=_check_number("ice_refresh_interval", extra["ice_refresh_interval"], 0.1),
            ca_bundle=ca_bundle,
            allow_insecure=allow_insecure,
            subscribe_conversations=_check_bool("subscribe_conversations", extra["subscribe_conversations"]),
            trusted_peers=extra["trusted_peers"],
            limits=limits,
            media_interrupted_after=_check_number("media_interrupted_after", extra["media_interrupted_after"], 0.1),
            media_timeout=_check_number("media_timeout", extra["media_timeout"], 0.0),
            pending_timeout=_check_number("pending_timeout", extra["pending_timeout"], 1.0),
            pending_reconnect_grace=_check_number("pending_reconnect_grace", extra["pending_reconnect_grace"], 0.1),
            codec_preferences=_check_codecs(extra["codec_preferences"]),
            relay_without_stun=_check_bool("relay_without_stun", extra["relay_without_stun"]),
        )

    # -- state ------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """``True`` while the streaming connection is up."""
        return self._core.state == "connected"

    @property
    def state(self) -> str:
        """``idle``, ``connecting``, ``connected``, ``disconnected`` or ``closed``."""
        return "closed" if self._closed else self._core.state

    @property
    def jid(self) -> Optional[str]:
        """The bound full JID, once connected."""
        return self._core.full_jid

    @property
    def user(self) -> Optional[Dict[str, Any]]:
        """The ``users/me`` record, after :meth:`initialize`."""
        return self._core.me

    @property
    def internals(self) -> Dict[str, Any]:
        """Which hooks into aiortc/aioice/PyAV internals are active (see :func:`purecloud_webrtc.probe`)."""
        from ._internals import probe

        return {name: status for name, status in probe().items()}

    @property
    def ice_servers(self) -> List[Dict[str, Any]]:
        """The ICE servers in use (discovered or given)."""
        return list(self._core.ice_servers)

    @property
    def sessions(self) -> List[Session]:
        """Live sessions (a snapshot)."""
        return [s.public for s in list(self._core.sessions.values()) if not s.ended]

    @property
    def pending_sessions(self) -> List[PendingSession]:
        """Proposals not yet answered, handled elsewhere or withdrawn (a snapshot)."""
        seen, out = set(), []
        for entry in list(self._core.pending.values()):
            if entry.info.id not in seen:
                seen.add(entry.info.id)
                out.append(entry.info)
        return out

    def get_session(self, id: Optional[str] = None, *, conversation_id: Optional[str] = None) -> Session:
        """The live session with this id or conversation id.

        :raises SessionNotFoundError: when there is none.
        """
        return self._core.commands.find_session(id, conversation_id).public

    # -- lifecycle -------------------------------------------------------------------------

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise ClosedError(f"{what}: the SDK is closed")

    def initialize(self, timeout: Optional[float] = 30.0) -> None:
        """Connect to Genesys Cloud and return once calls can be received (emits ``connected`` then ``ready``).

        REST ``users/me`` and ``organizations/me``, a streaming channel, the WebSocket with SASL and bind,
        ICE servers, pings.

        :raises AuthenticationError: the token was refused (HTTP 401/403 or SASL failure).
        :raises ConnectionFailedError: a host could not be reached.
        :raises OperationTimeoutError: it took longer than ``timeout`` seconds.
        """
        self._check_open("initialize")
        self._core.call(lambda: self._core.commands.initialize(_deadline(timeout), timeout), _grace(timeout),
                        "initialize")

    def disconnect(self, timeout: Optional[float] = 10.0) -> None:
        """Close the streaming connection (no reconnect).

        With ``session_survivability`` (default) sessions stay up and media keeps flowing; without it
        every session ends with reason ``connectivity-error``.  :meth:`initialize` connects again.
        """
        if self._closed:
            return
        self._core.call(self._core.commands.disconnect, timeout, "disconnect")

    def close(self, timeout: float = 10.0) -> None:
        """End every session, disconnect, and stop every thread of this SDK.  Idempotent, any thread.

        ``timeout`` is a deadline for the whole close: ending the calls, stopping the loop, joining the
        threads.  A thread still busy then (say a REST request waiting out its own deadline) is not waited
        for; it ends by itself within that request's deadline.  Called from inside an event callback it
        cannot join the events thread it runs on; everything else is still torn down.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        deadline = time.monotonic() + max(0.0, timeout)

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        core = self._core
        try:
            if core.thread.is_alive() and not core.on_core_thread():
                # Leave a little of the budget for the joins below.
                core.call(core.shutdown, max(0.05, left() - min(0.5, 0.2 * timeout)), "close")
        except PureCloudWebrtcError as exc:
            self.log.warning("close: shutdown was not clean: %s", exc)
        finally:
            if core.thread.is_alive():
                core.loop.call_soon_threadsafe(core.loop.stop)
                if not core.on_core_thread():
                    core.thread.join(left())
            for executor in (core.executor, core.rest_executor):
                # Queued work is cancelled; running work is joined only until the deadline.
                executor.shutdown(wait=False, cancel_futures=True)
                if not core.on_core_thread():
                    for thread in list(getattr(executor, "_threads", ())):
                        thread.join(left())
            # What a teardown cut short left open (a close still queued, or never reached under load): a
            # device or a file a call owned is closed here, whatever the deadline.
            swept = core.close_all_owned()
            if swept:
                self.log.debug("close: closed %d source(s)/sink(s) the calls' teardown had not reached", swept)
            for stream in [core.stream, *core.old_streams]:
                if stream is not None and stream.transport is not None:
                    stream.transport.close()
                    stream.transport.join(min(2.0, left()))
            self._dispatcher.close(left())
            self._disconnect_all()
            self.api.close()
            core.state = "closed"

    def __enter__(self) -> "PureCloudWebrtcSdk":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # A forgotten SDK must not keep threads alive; close() is idempotent.
        try:
            if not getattr(self, "_closed", True):
                self.close(timeout=2.0)
        except Exception:
            pass

    def set_access_token(self, token: str) -> None:
        """Use ``token`` for REST calls and the next (re)connect, without dropping calls.

        :raises ConfigurationError: for an empty token, or one with whitespace or control characters.
        """
        self.api.set_access_token(check_access_token(token))

    # -- calls -----------------------------------------------------------------------------

    def accept_pending_session(
        self,
        id: str,
        *,
        source: Any = None,
        sink: Any = None,
        auto_start_media: bool = True,
        auto_connect_session: Optional[bool] = None,
        timeout: Optional[float] = 10.0,
    ) -> None:
        """Accept a proposed call (sends XEP-0353 ``proceed``); media follows when the offer arrives.

        :param id: the id from the ``pendingSession`` event.
        :param source: what we send: ``None`` (SDK default, normally the microphone), a WAV path, an
            :class:`~purecloud_webrtc.media.AudioSource` (``ToneSource(440)``...), an aiortc track or a callable.
        :param sink: where the remote audio goes: ``None`` (default speaker), a WAV path, an
            :class:`~purecloud_webrtc.media.AudioSink`, a callable ``fn(samples, timestamp)`` or a list of these.
        :param auto_start_media: with ``False`` and no ``source``, answer receive-only.
        :param auto_connect_session: answer as soon as the offer arrives (default: the SDK's
            ``auto_connect_sessions``); with ``False`` call ``session.accept()`` after ``sessionStarted``.
        :raises SessionNotFoundError: unknown id, or no longer pending (withdrawn, handled elsewhere).
        :raises SessionStateError: already accepted.
        """
        self._check_open("accept_pending_session")
        options = AcceptOptions(source, sink, auto_start_media, auto_connect_session)
        self._core.call(lambda: self._core.commands.accept_pending(id, options), timeout, "accept_pending_session")

    acceptPendingSession = accept_pending_session  # noqa: N815 - the seed's spelling

    def _accept_session(self, core_session: Any, source: Any, sink: Any, auto_start_media: bool,
                        timeout: Optional[float]) -> None:
        self._check_open("accept")
        self._core.call(lambda: self._core.commands.accept_session(core_session, source, sink, auto_start_media),
                        timeout or 20.0, "session.accept")

    def end_session(
        self,
        id: Optional[str] = None,
        *,
        conversation_id: Optional[str] = None,
        reason: str = "success",
        timeout: Optional[float] = 15.0,
    ) -> None:
        """Hang up a session and return once it has ended.

        As the seed does: ``GET conversations/calls/{cid}``, then ``PATCH`` this user's connected participant
        to ``disconnected``; the service answers with a Jingle ``session-terminate``.  When the session has no
        conversation id, a REST call fails, or no terminate arrives in time, a Jingle ``session-terminate``
        is sent instead.

        :raises SessionNotFoundError: no live session with that id / conversation id.
        """
        self._check_open("end_session")
        # Inside a callback it must not wait for the sessionEnded it would have to deliver itself.
        wait = not self._dispatcher.on_events_thread()
        self._core.call(lambda: self._core.commands.end_session(id, conversation_id, reason, _deadline(timeout), wait),
                        _grace(timeout), "end_session")

    endSession = end_session  # noqa: N815

    def set_audio_mute(self, session: Any, muted: bool, *, rest: bool = True, timeout: Optional[float] = None) -> None:
        """Mute or unmute a call: silence is sent at once (no renegotiation), then REST ``{"muted": ...}``.

        :param session: a :class:`Session` or a session id.
        :raises SessionNotFoundError: no live session with that id.
        :raises ApiError: the REST update failed (the local mute is in effect anyway).
        """
        target = session if isinstance(session, Session) else self.get_session(session)
        target.set_audio_mute(muted, rest=rest, timeout=timeout)

    setAudioMute = set_audio_mute  # noqa: N815

    def reject_pending_session(self, id: str, *, timeout: Optional[float] = 10.0) -> None:
        """Decline a proposed call.

        Like the newest official SDK, the call is declined by REST (this user's participant ``PATCH``ed to
        ``disconnected``); XEP-0353 ``reject`` goes to the proposer and to our own bare JID too, so this
        user's other devices stop ringing (docs/protocol.rst §3.4).  No ``cancelPendingSession`` follows.

        :raises SessionNotFoundError: unknown id, or no longer pending.
        """
        self._check_open("reject_pending_session")
        self._core.call(lambda: self._core.commands.reject_pending(id, _deadline(timeout)), _grace(timeout),
                        "reject_pending_session")

    rejectPendingSession = reject_pending_session  # noqa: N815

    def set_conversation_held(self, conversation_id: str, held: bool, *, timeout: Optional[float] = 15.0) -> None:
        """Put this user's side of a conversation on hold (or take it off): REST ``{"held": ...}``.

        :raises ApiError: when the conversation or this user's participant cannot be found or updated.
        """
        self._check_open("set_conversation_held")
        self._core.call(lambda: self._core.commands.set_conversation_held(conversation_id, held, _deadline(timeout)),
                        _grace(timeout), "set_conversation_held")

    setConversationHeld = set_conversation_held  # noqa: N815

    def fetch_users_station(self, *, timeout: Optional[float] = 15.0) -> Dict[str, Any]:
        """The user's effective station (``GET users/me?expand=station``, then ``GET stations/{id}``).

        :raises ApiError: when the user has no station.
        """
        self._check_open("fetch_users_station")
        return self._core.call(lambda: self._core.commands.fetch_users_station(_deadline(timeout)), _grace(timeout),
                               "fetch_users_station")

    fetchUsersStation = fetch_users_station  # noqa: N815

    def wait_for_session(self, conversation_id: str, timeout: Optional[float] = 15.0, *,
                         connected: bool = False) -> Session:
        """The session of ``conversation_id``, whether it started before this call or starts within ``timeout``.

        Use it after :meth:`start_softphone_session`: the REST answer and the proposal race (the official SDK's
        behaviour notes), so the session may already exist.

        :param connected: return only once the call's media is connected (the far end answered and audio
            flows), as mute, hold and DTMF by REST need: the service knows the participant as connected then.
        :raises OperationTimeoutError: not within ``timeout`` (one deadline for both waits).
        :raises SessionStateError: ``connected`` and the session ended first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self.expect_event("sessionStarted", timeout, lambda s: s.conversation_id == conversation_id) as ev:
            # Listening first, then looking: a session that starts in between is not missed.
            existing = next((s for s in self.sessions if s.conversation_id == conversation_id), None)
            if existing is not None:
                ev.cancel()
        session = existing if existing is not None else ev.value
        if connected:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            with session.expect_event("change:connectionState", left,
                                      lambda s, state: state in ("connected", "disconnected", "failed")) as changed:
                if session.connection_state == "connected" or session.ended:
                    changed.cancel()
            if session.ended or session.connection_state != "connected":
                raise SessionStateError(f"session {session.id} ended before its media connected "
                                        f"({session.end_reason or session.connection_state})", session_id=session.id)
        return session

    def start_softphone_session(self, phone_number: Optional[str] = None, *, user_id: Optional[str] = None,
                                queue_id: Optional[str] = None, source: Any = None, sink: Any = None,
                                timeout: Optional[float] = 15.0, **fields: Any) -> str:
        """Place a call by REST (``POST /conversations/calls``) and return its conversation id.

        The service then proposes the call to this user with auto-answer set; this SDK answers it (unless
        ``auto_answer_outbound_calls=False``) with ``source`` and ``sink`` (as for
        :meth:`accept_pending_session`; ``None``: the SDK's defaults), and ``sessionStarted`` follows.
        ``wait_for_session(conversation_id)`` returns the session.

        :raises UsageError: not connected (``initialize()`` first): nothing could answer the call.
        :raises MediaSpecError: ``source``/``sink`` cannot be opened (checked before the call is placed).
        :raises ApiError: the service refused the call.
        """
        self._check_open("start_softphone_session")
        body = softphone_call_body(phone_number, user_id, queue_id, fields)
        return self._core.call(
            lambda: self._core.commands.start_softphone_session(body, _deadline(timeout), source, sink),
            _grace(timeout), "start_softphone_session")

    def __repr__(self) -> str:
        return f"<PureCloudWebrtcSdk {self.options.environment} state={self.state} jid={self.jid}>"
