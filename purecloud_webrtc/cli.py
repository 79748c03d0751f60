"""The ``purecloud-webrtc`` command line (also ``python -m purecloud_webrtc``).

Subcommands:

``demo``
    two real calls against the bundled emulator (:mod:`purecloud_webrtc.demo`; its options pass through);
``emulator``
    run the emulator until Ctrl-C (:mod:`purecloud_webrtc.emulator.__main__`; its options pass through);
``answer``
    answer calls, with a microphone and speaker, files, a tone or silence;
``call NUMBER``
    place a call, stay on it, report what was heard, hang up;
``devices``
    list the audio devices PortAudio sees;
``doctor``
    check the token, REST, the streaming connection, ICE servers, local media and audio devices, saying
    what is wrong and how to fix it.

``answer``, ``call`` and ``doctor`` connect to Genesys Cloud with ``--token`` (default
``$GENESYS_ACCESS_TOKEN``) and ``--environment``; ``answer`` and ``call`` run against the bundled
emulator when no token is given, ``doctor`` does so with ``--emulator``.

Exit status: 0 success, 1 failure, 2 usage error.  Progress goes to standard output, line by line,
flushed as it happens.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ._version import __version__

__all__ = ["build_parser", "main", "parse_sink", "parse_source"]

#: Subcommands whose arguments are handed, untouched, to another module's ``main``.
_PASSTHROUGH = ("demo", "emulator")

_print_lock = threading.Lock()


def _out(*parts: Any) -> None:
    """Print one progress line now (events print from the SDK's events thread, the rest from the main one)."""
    with _print_lock:
        print(*parts, flush=True)


def _stamp(*parts: Any) -> None:
    """Print one time-stamped line (events and call progress)."""
    _out(f"[{time.strftime('%H:%M:%S')}]", *parts)


class UsageProblem(Exception):
    """A bad option value found after parsing (reported like an argparse error, exit status 2)."""


# -- audio specs -------------------------------------------------------------------------------


def _device_spec(text: str) -> int | str | None:
    """A device named on the command line: an index when all digits, a name otherwise, ``None`` when empty."""
    if text == "":
        return None
    return int(text) if text.isdigit() else text


def parse_source(spec: str | None) -> Callable[[], Any]:
    """Turn ``--source`` into a factory of fresh audio sources (one per call).

    :param spec: ``None``/``auto`` (the SDK default: microphone, silence without one), a WAV path,
        ``tone[:HZ]``, ``silence`` or ``mic[:DEVICE]`` (index or name).
    :returns: a function returning what to pass as ``source`` (``None`` for the SDK default).
    :raises UsageProblem: a malformed spec or a missing file.
    """
    from .media import MicrophoneSource, SilenceSource, ToneSource, WavFileSource

    if spec is None or spec == "auto":
        return lambda: None
    kind, _, arg = spec.partition(":")
    if kind == "tone":
        try:
            hz = float(arg) if arg else 440.0
            ToneSource(hz).close()
        except ValueError as exc:
            raise UsageProblem(f"--source {spec}: {exc}") from None
        return lambda: ToneSource(hz)
    if spec == "silence":
        return SilenceSource
    if kind in ("mic", "microphone"):
        device = _device_spec(arg)
        return lambda: MicrophoneSource(device)
    path = Path(spec)
    if not path.is_file():
        raise UsageProblem(f"--source {spec}: no such file (give a WAV path, tone:HZ, silence or mic[:DEVICE])")
    return lambda: WavFileSource(path)


def parse_sink(spec: str | None) -> Callable[[int], Any]:
    """Turn ``--sink`` into a factory of fresh sinks, called with the call number (1, 2, ...).

    :param spec: ``None``/``auto`` (the SDK default: speaker, discarded without one), a WAV path (call 2
        and later get ``-2``, ``-3``... before the suffix), ``null``, ``buffer`` (kept in memory only for the
        frequency report) or ``speaker[:DEVICE]``.
    :returns: a function returning what to pass as ``sink`` (``None`` for the SDK default).
    :raises UsageProblem: a malformed spec or a directory that does not exist.
    """
    from .media import NullSink, SpeakerSink, WavRecorderSink

    if spec is None or spec == "auto":
        return lambda n: None
    if spec in ("null", "buffer"):
        return lambda n: NullSink()
    kind, _, arg = spec.partition(":")
    if kind == "speaker":
        device = _device_spec(arg)
        return lambda n: SpeakerSink(device)
    path = Path(spec)
    if path.parent != Path("") and not path.parent.is_dir():
        raise UsageProblem(f"--sink {spec}: directory {path.parent} does not exist")

    def wav(n: int) -> Any:
        target = path if n <= 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        return WavRecorderSink(target)

    return wav


# -- connecting --------------------------------------------------------------------------------


def _is_loopback_url(url: str | None) -> bool:
    """Whether ``url`` points at this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if not url:
        return False
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _setup_logging(verbose: int) -> None:
    """Warnings only by default (they explain fallbacks such as "no microphone"); more with ``-v``."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        logging.getLogger("aioice").setLevel(logging.WARNING)
        logging.getLogger("aiortc").setLevel(logging.WARNING)
        # urllib3's own "Retrying (Retry(total=...))" lines: the SDK reports the outcome itself.
        logging.getLogger("urllib3").setLevel(logging.ERROR)


def _sdk_options(args: argparse.Namespace) -> dict[str, Any]:
    """The SDK keyword arguments for a real (or explicitly addressed) service."""
    options: dict[str, Any] = {"environment": args.environment}
    if args.api_base_url:
        options["api_base_url"] = args.api_base_url
    if args.streaming_base_url:
        options["streaming_base_url"] = args.streaming_base_url
    hosts = list(args.ice_host_address or [])
    if not hosts and _is_loopback_url(args.api_base_url) and _is_loopback_url(args.streaming_base_url):
        hosts = ["127.0.0.1"]  # a local service (an emulator): keep media on loopback too
    if hosts:
        options["ice_host_addresses"] = hosts
    return options


@contextlib.contextmanager
def _service(args: argparse.Namespace, *, use_emulator: bool, **options: Any) -> Iterator[tuple[Any, Any]]:
    """Yield ``(sdk, emulator)`` -- not yet initialized; ``emulator`` is ``None`` against a real service."""
    from . import PureCloudWebrtcSdk

    if not use_emulator:
        with PureCloudWebrtcSdk(args.token, **_sdk_options(args), **options) as sdk:
            yield sdk, None
        return
    from .emulator import Emulator

    _stamp("starting the bundled emulator on 127.0.0.1 ...")
    with Emulator() as emulator:
        _stamp(f"emulator: REST {emulator.api_base_url}, streaming {emulator.streaming_base_url}, "
               f"user {emulator.user.name}")
        options.setdefault("ice_host_addresses", ["127.0.0.1"])
        with PureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                streaming_base_url=emulator.streaming_base_url, **options) as sdk:
            yield sdk, emulator


def _check_target(args: argparse.Namespace) -> bool:
    """Whether to run against the emulator; a URL without a token is a usage problem."""
    if args.token:
        return False
    if args.api_base_url or args.streaming_base_url:
        raise UsageProblem("--api-base-url/--streaming-base-url need --token (or $GENESYS_ACCESS_TOKEN)")
    return True


def _advice(exc: BaseException) -> str:
    """A one-line fix for the errors users meet most."""
    from .errors import (
        AuthenticationError,
        ConnectionFailedError,
        OperationTimeoutError,
        TlsError,
    )

    if isinstance(exc, AuthenticationError):
        return ("the access token was rejected: get a new one (they expire) and check --environment is the "
                "region of your org")
    if isinstance(exc, TlsError):
        return "TLS verification failed: behind an inspecting proxy, pass its CA bundle (ca_bundle option)"
    if isinstance(exc, ConnectionFailedError):
        return "the service could not be reached: check --environment, your network, proxy and firewall"
    if isinstance(exc, OperationTimeoutError):
        return "the service did not answer in time: check your network, then retry"
    return "run with -v for details"


def _hook_events(sdk: Any) -> None:
    """Print the SDK's and each session's events as they happen (from the SDK's events thread)."""
    sdk.on("connected", lambda info: _stamp("event connected"))
    sdk.on("ready", lambda: _stamp("event ready"))
    sdk.on("disconnected", lambda info: _stamp("event disconnected", info))
    sdk.on("pendingSession", lambda p: _stamp(
        f"event pendingSession id={p.id} from={p.address} conversation={p.conversation_id} autoAnswer={p.auto_answer}"))
    sdk.on("cancelPendingSession", lambda sid: _stamp("event cancelPendingSession", sid))
    sdk.on("handledPendingSession", lambda sid: _stamp("event handledPendingSession", sid))
    sdk.on("error", lambda error, details: _stamp("event error", error))

    @sdk.on("sessionStarted")
    def started(session: Any) -> None:
        _stamp(f"event sessionStarted id={session.id} conversation={session.conversation_id}")
        session.on("change:connectionState", lambda s, state: _stamp(f"  session {s.id[:8]} connectionState={state}"))
        session.on("terminated", lambda s, reason: _stamp(f"  session {s.id[:8]} terminated reason={reason}"))

    sdk.on("sessionEnded", lambda session, reason: _stamp(f"event sessionEnded id={session.id} reason={reason}"))


def _stay(session: Any, seconds: float, heard: Any) -> None:
    """Stay on ``session`` for ``seconds`` (or until it ends), then up to 15 s more until audio has arrived."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not session.ended:
        time.sleep(0.05)
    late = time.monotonic() + 15.0
    while not session.ended and heard.total_seconds < min(seconds, 1.0) and time.monotonic() < late:
        time.sleep(0.05)


def _report_heard(heard: Any, seconds: float, session: Any) -> float:
    """Print what the far end sounded like; returns the dominant frequency (0.0 for silence)."""
    window = max(0.2, min(1.0, seconds))
    level = heard.rms_dbfs(last_seconds=window)
    hz = heard.dominant_frequency(last_seconds=window) if level > -70.0 else 0.0
    frames = session.frames_received
    if hz > 0:
        _stamp(f"heard: {hz:.1f} Hz at {level:.1f} dBFS ({frames} audio frames received)")
    else:
        _stamp(f"heard: silence ({frames} audio frames received)")
    return hz


def _probe_devices(args: argparse.Namespace, make_source: Callable[[], Any], make_sink: Callable[[int], Any]) -> None:
    """Open (and close) a named microphone or speaker now, so a bad device fails before any call.

    :raises AudioDeviceError: naming the available devices.
    """
    if (args.source or "").partition(":")[0] in ("mic", "microphone"):
        make_source().close()
    if (args.sink or "").partition(":")[0] == "speaker":
        make_sink(1).close()


# -- answer ------------------------------------------------------------------------------------


def _cmd_answer(args: argparse.Namespace) -> int:
    from .errors import (
        OperationTimeoutError,
        PureCloudWebrtcError,
        SessionNotFoundError,
    )
    from .media import AudioDeviceError, BufferSink

    use_emulator = _check_target(args)
    if args.calls is not None and args.calls < (1 if use_emulator else 0):
        raise UsageProblem("--calls must be at least 1" + (" against the emulator" if use_emulator else ""))
    if args.seconds <= 0:
        raise UsageProblem("--seconds must be positive")
    make_source = parse_source(args.source)
    make_sink = parse_sink(args.sink)
    try:
        _probe_devices(args, make_source, make_sink)
    except AudioDeviceError as exc:
        _out(f"answer: FAILED: {exc}")
        return 1
    calls = args.calls if args.calls is not None else (1 if use_emulator else 0)  # 0: until Ctrl-C
    answered = 0
    try:
        with _service(args, use_emulator=use_emulator) as (sdk, emulator):
            _hook_events(sdk)
            _stamp("connecting ...")
            sdk.initialize(timeout=30)
            _stamp(f"connected as {sdk.jid}; answering " + (f"{calls} call(s)" if calls else "calls until Ctrl-C"))
            with sdk.event_queue(["pendingSession"]) as ringing:
                while not calls or answered < calls:
                    if emulator is not None:
                        call = emulator.inbound_call()
                        _stamp(f"emulator: ringing us (conversation {call.conversation_id})")
                    else:
                        _stamp("waiting for a call (call this user's WebRTC phone) ...")
                    pending = None
                    while pending is None:
                        try:
                            pending = ringing.get(timeout=15.0 if emulator is not None else 1.0).value
                        except OperationTimeoutError:
                            if emulator is not None:
                                raise
                    # Every call also feeds a BufferSink, for the "heard" report.
                    heard = BufferSink(max_seconds=max(2.0, min(args.seconds, 30.0)))
                    if args.sink == "buffer":
                        sink: list[Any] = [heard]
                    else:
                        user_sink = make_sink(answered + 1)
                        sink = [_default_sink(sdk) if user_sink is None else user_sink, heard]
                    _stamp(f"ringing: {pending.address}; answering")
                    try:
                        with sdk.expect_event("sessionStarted", timeout=20) as started:
                            sdk.accept_pending_session(pending.id, source=make_source(), sink=sink)
                    except SessionNotFoundError as exc:  # withdrawn, or answered elsewhere, meanwhile
                        _stamp(f"missed: {exc}")
                        if emulator is not None:
                            raise
                        continue
                    session = started.value
                    answered += 1
                    _stamp(f"answered: session {session.id}")
                    _stay(session, args.seconds, heard)
                    _report_heard(heard, args.seconds, session)
                    _hang_up(sdk, session)
                    _stamp(f"call {answered} done")
    except KeyboardInterrupt:
        _out(f"answer: stopped by Ctrl-C after {answered} call(s)")
        return 0
    except PureCloudWebrtcError as exc:
        _out(f"answer: FAILED: {type(exc).__name__}: {exc}")
        _out(f"answer: {_advice(exc)}")
        return 1
    except (AudioDeviceError, OSError) as exc:  # audio devices, files
        _out(f"answer: FAILED: {exc}")
        return 1
    _out(f"answer: answered {answered} call(s)")
    return 0


def _hang_up(sdk: Any, session: Any) -> None:
    """End ``session`` unless the far end already has; returns once ``sessionEnded`` was delivered."""
    from .errors import SessionNotFoundError

    if session.ended:
        _stamp(f"the far end hung up ({session.end_reason})")
        return
    _stamp("hanging up")
    try:
        with sdk.expect_event("sessionEnded", timeout=20):
            sdk.end_session(id=session.id)
    except SessionNotFoundError:  # it ended on its own just now
        _stamp(f"the far end hung up ({session.end_reason})")


def _default_sink(sdk: Any) -> Any:
    """The SDK's default sink (its ``default_sink`` option, else the speaker, discarded without one)."""
    from .media import resolve_sink

    return resolve_sink(sdk.options.default_sink, logger=sdk.log)


# -- call --------------------------------------------------------------------------------------


def _cmd_call(args: argparse.Namespace) -> int:
    from .errors import PureCloudWebrtcError
    from .media import AudioDeviceError, BufferSink, resolve_sink, resolve_source

    use_emulator = _check_target(args)
    if args.seconds <= 0:
        raise UsageProblem("--seconds must be positive")
    make_source = parse_source(args.source)
    make_sink = parse_sink(args.sink)
    heard = BufferSink(max_seconds=max(2.0, min(args.seconds, 30.0)))
    try:
        # Outbound calls are proposed with auto-answer: the SDK answers them with its default media.
        source = resolve_source(make_source())
        user_sink = make_sink(1)
        sink = [heard] if args.sink == "buffer" else [resolve_sink(user_sink), heard]
        with _service(args, use_emulator=use_emulator, default_source=source, default_sink=sink) as (sdk, emulator):
            _hook_events(sdk)
            _stamp("connecting ...")
            sdk.initialize(timeout=30)
            _stamp(f"connected as {sdk.jid}; calling {args.number}")
            with sdk.expect_event("sessionStarted", timeout=30) as started:
                conversation_id = sdk.start_softphone_session(phone_number=args.number)
                _stamp(f"placed: conversation {conversation_id}")
            session = started.value
            _stamp(f"connected: session {session.id}; staying {args.seconds:g} s")
            _stay(session, args.seconds, heard)
            hz = _report_heard(heard, args.seconds, session)
            if emulator is not None:
                far = emulator.call_by_conversation(conversation_id)
                _stamp(f"emulator: the far end played {far.tone_hz:g} Hz")
            _hang_up(sdk, session)
            _out(f"call: done; heard {hz:.1f} Hz" if hz else "call: done; heard silence")
    except KeyboardInterrupt:
        _out("call: interrupted")
        return 1
    except PureCloudWebrtcError as exc:
        _out(f"call: FAILED: {type(exc).__name__}: {exc}")
        _out(f"call: {_advice(exc)}")
        return 1
    except (AudioDeviceError, OSError) as exc:  # audio devices, files
        _out(f"call: FAILED: {exc}")
        return 1
    return 0


# -- devices -----------------------------------------------------------------------------------


_FILES_HINT = "calls still work with files and tones (--source FILE.wav|tone:440, --sink FILE.wav|null)"


def _devices_hint(problem: str = "") -> str:
    """How to get audio devices, depending on what is missing."""
    if "pyaudio" in problem:
        return (f"{_FILES_HINT}; for a microphone and speaker install pyaudio: "
                "apt-get install portaudio19-dev, then pip install 'purecloud_webrtc[audio]'")
    return (f"{_FILES_HINT}; for a microphone and speaker start a sound server (PulseAudio/PipeWire) or "
            "plug in a sound card or headset, then run 'purecloud-webrtc devices'")


def _cmd_devices(args: argparse.Namespace) -> int:
    from .media import AudioDeviceError, list_devices

    _out("listing audio devices ...")
    try:
        devices = list_devices()
    except AudioDeviceError as exc:
        _out(f"no audio devices: {exc}")
        _out(f"hint: {_devices_hint(str(exc))}")
        return 0
    if not devices:
        _out("no audio devices: PortAudio lists none (is a sound server such as PulseAudio running?)")
        _out(f"hint: {_devices_hint()}")
        return 0
    for device in devices:
        _out(device.describe())
    inputs = sum(1 for d in devices if d.supports("input"))
    outputs = sum(1 for d in devices if d.supports("output"))
    _out(f"{len(devices)} device(s): {inputs} with input, {outputs} with output; "
         "name one with --source mic:NAME or --sink speaker:NAME (index, name or a unique part of it)")
    return 0


# -- doctor ------------------------------------------------------------------------------------


@dataclass
class _Check:
    """The outcome of one doctor check."""

    status: str  # "ok", "FAIL", "warn", "skip"
    message: str
    fix: str = ""


class _Doctor:
    """Runs the checks in order, printing a line as each starts and one when it ends."""

    def __init__(self) -> None:
        self.failed = 0
        self.warned = 0

    def run(self, title: str, check: Callable[[], _Check], *, required: bool = True) -> _Check:
        _out(f"... {title}")
        try:
            result = check()
        except Exception as exc:  # a check must never end the doctor with a traceback
            logging.getLogger(__name__).debug("check %s failed", title, exc_info=True)
            result = _Check("FAIL", f"{title}: unexpected {type(exc).__name__}: {exc}",
                            "run with -v for details and report it if it persists")
        if result.status == "FAIL" and not required:
            result.status = "warn"
        self.report(result)
        return result

    def report(self, result: _Check) -> None:
        if result.status == "FAIL":
            self.failed += 1
        elif result.status == "warn":
            self.warned += 1
        _out(f"[{result.status}] {result.message}")
        if result.fix:
            _out(f"       fix: {result.fix}")


def _check_internals() -> _Check:
    from ._internals import TESTED, check_versions, installed_versions, probe

    versions = ", ".join(f"{name} {version}" for name, version in installed_versions().items())
    failed = {name: status.reason for name, status in probe().items() if status.state == "failed"}
    problems = check_versions()
    if failed or problems:
        detail = "; ".join(problems + [f"{name}: {reason}" for name, reason in failed.items()])
        tested = ", ".join(f"{n} {lo}..{hi}" for n, (lo, hi) in TESTED.items())
        return _Check("FAIL", f"internals ({versions}): {detail}",
                      f"install versions in the tested range ({tested}); the SDK falls back meanwhile")
    states = ", ".join(f"{name} {status.state}" for name, status in probe().items())
    return _Check("ok", f"internals ({versions}): {states}")


def _check_rest(sdk: Any) -> _Check:
    from .errors import (
        AuthenticationError,
        ConnectionFailedError,
        PureCloudWebrtcError,
        TlsError,
    )

    base = sdk.options.api_base_url
    try:
        me = sdk.api.get_me(timeout=20)
    except AuthenticationError as exc:
        return _Check("FAIL", f"REST {base}: token rejected (HTTP {exc.status})",
                      "get a new one: access tokens expire (typically after 24 h) or may belong to another "
                      "region; create a token for this user (OAuth implicit grant, or the Genesys Cloud CLI) "
                      "and check --environment is your org's region")
    except TlsError as exc:
        return _Check("FAIL", f"REST {base}: TLS verification failed: {exc}",
                      "behind a TLS-inspecting proxy pass its CA bundle (PureCloudWebrtcSdk(ca_bundle=...) "
                      "or REQUESTS_CA_BUNDLE)")
    except ConnectionFailedError as exc:
        return _Check("FAIL", f"REST {base}: unreachable: {_short(exc)}", _unreachable_advice(base, exc))
    except PureCloudWebrtcError as exc:
        status = getattr(exc, "status", None)
        if status == 404:
            return _Check("FAIL", f"REST {base}: {base}/api/v2/users/me does not exist (HTTP 404)",
                          "the API base URL is wrong: give the host only (https://api.mypurecloud.ie, or the "
                          "emulator's http://127.0.0.1:PORT), or just --environment")
        return _Check("FAIL", f"REST {base}: {_short(exc)}",
                      "the service refused the request: run with -v for the exchange" if status else
                      "run with -v for details")
    name = me.get("name") or me.get("username") or me.get("id")
    return _Check("ok", f"REST {base} reachable, token valid: user {name} ({me.get('id')})")


def _short(exc: BaseException) -> str:
    """An error's message without the chained library detail (urllib3's pool reprs and the like)."""
    text = str(exc)
    return text.split(": HTTPConnectionPool(")[0].split(": HTTPSConnectionPool(")[0]


def _unreachable_advice(url: str, exc: BaseException) -> str:
    """What to check when ``url`` could not be reached, by what went wrong."""
    from urllib.parse import urlparse

    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme in ("https", "wss") else 80)
    text = f"{exc} {exc.__cause__ or ''}".lower()
    if "refused" in text:
        return (f"nothing listens on {parsed.hostname}:{port}: check the URL's host and port (is the emulator "
                "or proxy running?)")
    if "name or service not known" in text or "nodename nor servname" in text or "resolve" in text \
            or "name resolution" in text:
        return (f"the host name {parsed.hostname} does not resolve: check --environment (e.g. mypurecloud.ie) "
                "and your DNS")
    if "timed out" in text:
        return (f"{parsed.hostname}:{port} did not answer in time: a firewall may drop the traffic; allow "
                "HTTPS (port 443) through your proxy/firewall (HTTPS_PROXY is honoured)")
    return ("check --environment (e.g. mypurecloud.ie), DNS and that HTTPS (port 443) to the API host is "
            "allowed through your proxy/firewall (HTTPS_PROXY is honoured)")


def _check_streaming(sdk: Any) -> _Check:
    from .errors import (
        AuthenticationError,
        ConnectionFailedError,
        OperationTimeoutError,
        PureCloudWebrtcError,
        TlsError,
    )

    base = sdk.options.streaming_base_url
    started = time.monotonic()
    try:
        sdk.initialize(timeout=30)
    except AuthenticationError as exc:
        return _Check("FAIL", f"streaming {base}: login refused: {exc}",
                      "the token works for REST but not for the streaming (XMPP) login: the user needs the "
                      "WebRTC phone / chat permissions; get a new token")
    except TlsError as exc:
        return _Check("FAIL", f"streaming {base}: TLS verification failed: {exc}",
                      "pass your proxy's CA bundle (ca_bundle=...)")
    except (ConnectionFailedError, OperationTimeoutError) as exc:
        return _Check("FAIL", f"streaming {base}: cannot connect: {exc}",
                      "allow secure WebSockets (wss://, port 443) to the streaming host; a proxy must pass "
                      "WebSocket upgrades")
    except PureCloudWebrtcError as exc:
        return _Check("FAIL", f"streaming {base}: {exc}", "run with -v for the wire exchange")
    return _Check("ok", f"streaming connected as {sdk.jid} in {time.monotonic() - started:.2f} s")


def _check_ice(sdk: Any) -> _Check:
    servers = sdk.ice_servers
    urls: list[str] = []
    for server in servers:
        value = server.get("urls")
        urls.extend([value] if isinstance(value, str) else list(value or []))
    turn = [u for u in urls if u.startswith(("turn:", "turns:"))]
    stun = [u for u in urls if u.startswith(("stun:", "stuns:"))]
    relay_only = sdk.options.ice_transport_policy == "relay"
    if not urls:
        return _Check("warn", "no ICE servers received: only host candidates"
                      + (" (expected from the bundled emulator)" if _is_loopback_url(sdk.options.api_base_url) else ""),
                      "media works only when both ends reach each other directly; a real org hands out STUN and "
                      "TURN servers -- without them calls from behind NAT get no audio")
    if not turn:
        return _Check("warn", f"ICE servers: {len(stun)} STUN, no TURN: relay-only (ice_transport_policy='relay') "
                      "cannot work and strict firewalls will block media",
                      "check the org's WebRTC settings; allow UDP to the media servers")
    note = ("relay-only policy in use: all media goes through TURN" if relay_only
            else "relay-only (ice_transport_policy='relay') is possible when UDP is blocked")
    return _Check("ok", f"ICE servers received: {len(stun)} STUN, {len(turn)} TURN ({', '.join(turn[:2])}); {note}")


async def _loopback_tone(hz: float, seconds: float) -> tuple[float, int]:
    """Two aiortc peers on 127.0.0.1 exchange a tone; returns (heard Hz, frames received)."""
    import numpy as np
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import MediaStreamError

    from ._ice import release_host_addresses, restrict_host_addresses
    from .media import FrameConverter, ToneSource, dominant_frequency

    loop = asyncio.get_running_loop()
    restrict_host_addresses(loop, ["127.0.0.1"])
    sender = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    receiver = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    source = ToneSource(hz)
    try:
        sender.addTrack(source.create_track())
        got_track: asyncio.Future[Any] = loop.create_future()

        @receiver.on("track")
        def on_track(track: Any) -> None:
            if not got_track.done():
                got_track.set_result(track)

        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        track = await asyncio.wait_for(got_track, 10)
        converter = FrameConverter(channels=1)
        chunks: list[Any] = []
        frames = 0
        wanted = int(seconds * 50)
        while frames < wanted:
            try:
                frame = await asyncio.wait_for(track.recv(), 10)
            except MediaStreamError:
                break
            frames += 1
            chunks.append(converter.convert(frame))
        if not chunks:
            return 0.0, 0
        samples = np.concatenate(chunks)[-48000 // 2:]  # the last half second, past the codec's start-up
        return dominant_frequency(samples), frames
    finally:
        source.close()
        await sender.close()
        await receiver.close()
        release_host_addresses(loop)


def _check_media() -> _Check:
    hz = 880.0
    try:
        heard, frames = asyncio.run(asyncio.wait_for(_loopback_tone(hz, 1.0), 25))
    except (asyncio.TimeoutError, TimeoutError):  # noqa: UP041 - distinct classes on Python 3.10
        return _Check("FAIL", "loopback media test: no audio between two local peers within 25 s",
                      "aiortc could not connect over 127.0.0.1: check that the loopback interface is up and "
                      "not firewalled (UDP)")
    except ImportError as exc:
        return _Check("FAIL", f"loopback media test: {exc}", "reinstall the SDK's dependencies: pip install aiortc")
    if abs(heard - hz) > 5.0:
        return _Check("FAIL", f"loopback media test: sent {hz:g} Hz, heard {heard:.1f} Hz ({frames} frames)",
                      "the Opus/SRTP stack is broken: pip install --force-reinstall aiortc av")
    return _Check("ok", f"loopback media test: two WebRTC peers on 127.0.0.1 exchanged a {hz:g} Hz tone "
                  f"(heard {heard:.1f} Hz, {frames} frames)")


def _check_devices() -> _Check:
    from .media import AudioDeviceError, list_devices

    try:
        devices = list_devices()
    except AudioDeviceError as exc:
        return _Check("warn", f"audio devices: none usable ({exc})", _devices_hint(str(exc)))
    inputs = [d for d in devices if d.supports("input")]
    outputs = [d for d in devices if d.supports("output")]
    if not inputs or not outputs:
        missing = " and ".join(k for k, v in (("microphone", inputs), ("speaker", outputs)) if not v)
        return _Check("warn", f"audio devices: no {missing} ({len(devices)} device(s) in all)", _devices_hint())
    default_in = next((d.name for d in inputs if d.is_default_input), "none")
    default_out = next((d.name for d in outputs if d.is_default_output), "none")
    return _Check("ok", f"audio devices: {len(inputs)} input, {len(outputs)} output "
                  f"(default input {default_in!r}, default output {default_out!r})")


def _cmd_doctor(args: argparse.Namespace) -> int:
    from .errors import PureCloudWebrtcError

    doctor = _Doctor()
    use_emulator = False
    _out("... access token")
    where = "--token" if args.token_from_option else "$GENESYS_ACCESS_TOKEN"
    token = args.token or ""
    if token and (token.lower().startswith("bearer ") or token != token.strip()):
        doctor.report(_Check("FAIL", f"access token ({where}) has a 'Bearer ' prefix or surrounding white space",
                             "pass the bare token: the SDK adds 'Bearer ' itself"))
        args.token = None  # the checks that need a token are skipped
    elif token:
        doctor.report(_Check("ok", f"access token given ({where}, {len(token)} characters)"))
    elif args.emulator:
        if args.api_base_url or args.streaming_base_url:
            raise UsageProblem("--emulator starts its own service: leave out --api-base-url/--streaming-base-url")
        use_emulator = True
        doctor.report(_Check("ok", "no token needed: checking against the bundled emulator (--emulator)"))
    else:
        doctor.report(_Check("FAIL", "no access token",
                             "pass --token TOKEN or set GENESYS_ACCESS_TOKEN to an OAuth access token of the "
                             "user (e.g. from an implicit-grant client or the Genesys Cloud CLI), with "
                             "--environment your org's region; or run 'doctor --emulator' to check this machine "
                             "against the bundled emulator"))
    if args.token or use_emulator:
        try:
            with _service(args, use_emulator=use_emulator) as (sdk, _emulator):
                rest = doctor.run("REST API reachable, token valid", lambda: _check_rest(sdk))
                if rest.status == "ok":
                    streaming = doctor.run("streaming connection", lambda: _check_streaming(sdk))
                else:
                    streaming = _Check("skip", "streaming connection: skipped (needs a working REST check)")
                    doctor.report(streaming)
                if streaming.status == "ok":
                    doctor.run("ICE servers", lambda: _check_ice(sdk), required=False)
                else:
                    doctor.report(_Check("skip", "ICE servers: skipped (needs a streaming connection)"))
        except PureCloudWebrtcError as exc:  # e.g. a bad --environment or URL
            doctor.report(_Check("FAIL", f"cannot set up the SDK: {exc}", _advice(exc)))
    else:
        doctor.report(_Check("skip", "REST, streaming and ICE checks: skipped (need a token)"))
    doctor.run("loopback media test", _check_media)
    doctor.run("hooks into aiortc/aioice/PyAV internals", _check_internals, required=False)
    doctor.run("audio devices", _check_devices, required=False)
    verdict = "all required checks passed" if not doctor.failed else f"{doctor.failed} check(s) failed"
    _out(f"doctor: {verdict}" + (f", {doctor.warned} warning(s)" if doctor.warned else ""))
    return 1 if doctor.failed else 0


# -- parser and entry point --------------------------------------------------------------------


def _add_service_options(parser: argparse.ArgumentParser, *, emulator_note: str) -> None:
    group = parser.add_argument_group("service")
    group.add_argument("--token", default=None,
                       help=f"user access token (default: $GENESYS_ACCESS_TOKEN; {emulator_note})")
    group.add_argument("--environment", default=os.environ.get("GENESYS_ENVIRONMENT", "mypurecloud.com"),
                       help="Genesys Cloud region, e.g. mypurecloud.ie (default: $GENESYS_ENVIRONMENT or "
                            "%(default)s)")
    group.add_argument("--api-base-url", default=None, metavar="URL",
                       help="REST base URL instead of https://api.ENVIRONMENT (a proxy, an emulator)")
    group.add_argument("--streaming-base-url", default=None, metavar="URL",
                       help="streaming base URL instead of wss://streaming.ENVIRONMENT")
    group.add_argument("--ice-host-address", action="append", metavar="IP",
                       help="gather ICE host candidates only on this address (repeatable; default: every "
                            "interface, 127.0.0.1 for loopback URLs)")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="-v: info logs, -vv: debug and wire dumps")


def build_parser() -> argparse.ArgumentParser:
    """The ``purecloud-webrtc`` argument parser (``demo`` and ``emulator`` options are parsed by their modules)."""
    parser = argparse.ArgumentParser(
        prog="purecloud-webrtc",
        description="Genesys Cloud WebRTC softphone from the command line.",
        epilog="Exit status: 0 success, 1 failure, 2 usage error.  "
               "'purecloud-webrtc COMMAND --help' shows the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"purecloud_webrtc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    sub.add_parser("demo", help="two real calls against the bundled emulator (options: see 'demo --help')",
                   add_help=False)
    sub.add_parser("emulator", help="run the bundled emulator until Ctrl-C (options: see 'emulator --help')",
                   add_help=False)

    answer = sub.add_parser("answer", help="answer calls (microphone/speaker, files, a tone)",
                            description="Answer calls and print their events. Without a token the bundled "
                                        "emulator rings this SDK --calls times.")
    _add_service_options(answer, emulator_note="none: the bundled emulator rings us")
    answer.add_argument("--source", default=None, metavar="SPEC",
                        help="what the caller hears: a WAV path, tone[:HZ], silence or mic[:DEVICE] "
                             "(default: the microphone, silence without one)")
    answer.add_argument("--sink", default=None, metavar="SPEC",
                        help="where the caller's audio goes: a WAV path (calls 2.. get -2, -3...), null, buffer "
                             "or speaker[:DEVICE] (default: the speaker, discarded without one)")
    answer.add_argument("--seconds", type=float, default=5.0, help="seconds to stay on each call (default 5)")
    answer.add_argument("--calls", type=int, default=None, metavar="N",
                        help="answer N calls, then exit (default: 1 against the emulator, else until Ctrl-C)")
    answer.set_defaults(handler=_cmd_answer)

    call = sub.add_parser("call", help="place a call, report what was heard, hang up",
                          description="Place a call with start_softphone_session, stay --seconds, print what "
                                      "was heard (dominant frequency and level), hang up. Without a token it "
                                      "calls the bundled emulator.")
    call.add_argument("number", help="phone number to call, e.g. +13175550123")
    _add_service_options(call, emulator_note="none: call the bundled emulator")
    call.add_argument("--source", default=None, metavar="SPEC",
                      help="what the far end hears: a WAV path, tone[:HZ], silence or mic[:DEVICE] "
                           "(default: the microphone, silence without one)")
    call.add_argument("--sink", default=None, metavar="SPEC",
                      help="where the far end's audio goes: a WAV path, null, buffer (memory only, for the "
                           "frequency report) or speaker[:DEVICE] (default: the speaker, discarded without one)")
    call.add_argument("--seconds", type=float, default=5.0, help="seconds to stay on the call (default 5)")
    call.set_defaults(handler=_cmd_call)

    devices = sub.add_parser("devices", help="list audio devices", description="List the audio devices "
                             "PortAudio sees (index, name, channels, default rate, defaults).")
    devices.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    devices.set_defaults(handler=_cmd_devices)

    doctor = sub.add_parser("doctor", help="check token, REST, streaming, ICE, media and devices",
                            description="Check everything a call needs and say how to fix what is wrong. "
                                        "Exit status 0 when every required check passes, 1 otherwise.")
    _add_service_options(doctor, emulator_note="none: the token check fails unless --emulator")
    doctor.add_argument("--emulator", action="store_true",
                        help="without a token, check against the bundled emulator on 127.0.0.1")
    doctor.set_defaults(handler=_cmd_doctor)
    return parser


def _run_passthrough(command: str, rest: list[str]) -> int:
    if command == "demo":
        from .demo import main as demo_main

        return int(demo_main(rest) or 0)
    from .emulator.__main__ import main as emulator_main

    return int(emulator_main(rest) or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 failure, 2 usage error).

    :param argv: the arguments after the program name (default ``sys.argv[1:]``).
    """
    from ._extras import MissingExtraError

    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        if args_list and args_list[0] in _PASSTHROUGH:
            return _run_passthrough(args_list[0], args_list[1:])
        parser = build_parser()
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except MissingExtraError as exc:  # one line naming the extra, not a traceback
        print(f"purecloud-webrtc {args_list[0]}: {exc}", file=sys.stderr, flush=True)
        return 1
    token_option = getattr(args, "token", None)
    if hasattr(args, "token"):
        args.token_from_option = token_option is not None
        if token_option is None:
            args.token = os.environ.get("GENESYS_ACCESS_TOKEN") or None
    _setup_logging(args.verbose)
    try:
        return int(args.handler(args))
    except UsageProblem as exc:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog} {args.command}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except MissingExtraError as exc:
        print(f"{parser.prog} {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        _out(f"{args.command}: interrupted")
        return 1
    except BrokenPipeError:  # e.g. piped into head: stop quietly
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
