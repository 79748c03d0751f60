"""Events: names, payloads, blinker signals and the ordered dispatcher.

Every event of the SDK and of its sessions is a module-level blinker signal in
:data:`signals` (Flask's ``signals.py`` is the model), sent with the SDK or the
session as *sender* and the payload as keyword arguments.  All of them are sent
on one thread per SDK, the **events thread** (``pcw-events-N``), in the order the
core produced them; no user code ever runs on the core or socket threads.

The seed JavaScript SDK's names are canonical (``pendingSession``,
``change:connectionState``); the snake_case spellings (``pending_session``,
``connection_state``...) are accepted everywhere.  Unknown names are refused with
a "did you mean" hint.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import queue
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar, overload

from blinker import ANY, NamedSignal, Signal

from .errors import ClosedError, OperationTimeoutError, UsageError

__all__ = [
    "SDK_EVENTS",
    "SESSION_EVENTS",
    "signals",
    "canonical_event_name",
    "Event",
    "PendingSession",
    "ConversationUpdate",
    "EventQueue",
]

log = logging.getLogger(__name__)

#: SDK-level events and the names of their positional arguments, in order.
SDK_EVENTS: Dict[str, Tuple[str, ...]] = {
    "pendingSession": ("pending_session",),
    "cancelPendingSession": ("session_id",),
    "handledPendingSession": ("session_id",),
    "sessionStarted": ("session",),
    "sessionEnded": ("session", "reason"),
    "trace": ("level", "message", "details"),
    "error": ("error", "details"),
    "ready": (),
    "connected": ("info",),
    "disconnected": ("info",),
    "conversationUpdate": ("update",),
}

#: Session-level events and the names of their positional arguments, in order.
SESSION_EVENTS: Dict[str, Tuple[str, ...]] = {
    "terminated": ("session", "reason"),
    "change:connectionState": ("session", "connection_state"),
    "change:interrupted": ("session", "interrupted"),
    "change:active": ("session", "active"),
    "endOfCandidates": ("session",),
    "dtmf": ("session", "digit"),
    "audioLevel": ("session", "levels"),
    "change:muted": ("session", "muted"),
    "silentMicrophone": ("session", "silent"),
    "voiceActivity": ("session", "speaking"),
    "stats": ("session", "stats"),
    "qualityWarning": ("session", "warning"),
}

_DOCS = {
    "pendingSession": "A call is being proposed to this user (inbound, or outbound placed by REST).",
    "cancelPendingSession": "A proposed call was withdrawn (caller hung up, or the alert timed out).",
    "handledPendingSession": "Another client of this user took (or rejected) the proposed call.",
    "sessionStarted": "Media negotiation of a session has started (before media connects).",
    "sessionEnded": "A session ended; the reason is an XEP-0166 condition.",
    "trace": "A log line of the SDK: (level, message, details).",
    "error": "An error that no caller was waiting for: (error, details).",
    "ready": "initialize() finished: the SDK can receive calls.",
    "connected": "The streaming connection is up (first connect or reconnect).",
    "disconnected": "The streaming connection went down.",
    "conversationUpdate": "A conversation of this user changed (participants and states), from the service's events.",
    "terminated": "The session was terminated (either side).",
    "change:connectionState": "The session's media connection state changed.",
    "change:interrupted": "The session's media stopped or resumed flowing.",
    "change:active": "The session became active (accepted) or stopped being active.",
    "endOfCandidates": "The session finished gathering and sending its ICE candidates.",
    "dtmf": "A DTMF digit was heard in the remote audio (RFC 4733 events, or in-band tones by Goertzel detection, "
            "which runs only while someone listens to this event).",
    "audioLevel": "Every 100 ms: input and output levels in dBFS (an AudioLevels payload).",
    "change:muted": "The session was muted (silence is sent) or unmuted.",
    "silentMicrophone": "The audio source stayed at digital silence while unmuted (True), or sound came back (False).",
    "voiceActivity": "The remote party started (True) or stopped (False) speaking: an energy detector with an adaptive "
                     "noise floor on the received audio, which runs only while someone listens to this event.",
    "stats": "Periodic media statistics of the session (a CallStats payload; SDK option stats_interval).",
    "qualityWarning": "Jitter, loss, RTT or estimated MOS crossed its threshold (a QualityWarning payload).",
}

#: a callback's own type, kept by ``on``/``once`` used as decorators (typed code stays typed)
F = TypeVar("F", bound=Callable[..., Any])


class _HeldSignal(NamedSignal):
    """A blinker signal whose receivers stay alive while connected.

    blinker holds receivers weakly by default, so ``signals[name].connect(lambda ...: ...)`` was called
    never: the lambda died at once.  Here a weakly connected receiver is also held strongly until it is
    disconnected (or its sender is garbage-collected); ``weak=False`` is left to blinker as it is.
    """

    def __init__(self, name: str, doc: Optional[str] = None) -> None:
        super().__init__(name, doc)
        self._held: Dict[Tuple[int, int], Any] = {}
        self._held_lock = threading.Lock()

    def connect(self, receiver: Any, sender: Any = ANY, weak: bool = True) -> Any:
        result = super().connect(receiver, sender, weak)
        if weak:
            key = (id(receiver), 0 if sender is ANY else id(sender))
            with self._held_lock:
                self._held[key] = receiver
            if sender is not ANY:
                try:
                    weakref.finalize(sender, self._release, key)
                except TypeError:  # a sender that cannot be weakly referenced: held until disconnect
                    pass
        return result

    def disconnect(self, receiver: Any, sender: Any = ANY) -> None:
        super().disconnect(receiver, sender)
        with self._held_lock:
            for key in [k for k in self._held if k[0] == id(receiver) and (sender is ANY or k[1] == id(sender))]:
                del self._held[key]

    def _release(self, key: Tuple[int, int]) -> None:
        with self._held_lock:
            self._held.pop(key, None)


#: One blinker signal per canonical event name (receivers are held until disconnected: see _HeldSignal).
signals: Dict[str, Signal] = {name: _HeldSignal(name, doc=_DOCS[name]) for name in {**SDK_EVENTS, **SESSION_EVENTS}}


def _snake(name: str) -> str:
    out = []
    for ch in name.replace(":", "_"):
        if ch.isupper():
            out.append("_" + ch.lower())
        else:
            out.append(ch)
    return "".join(out).lstrip("_")


_ALIASES: Dict[str, str] = {}
for _name in list(SDK_EVENTS) + list(SESSION_EVENTS):
    _ALIASES[_name] = _name
    _ALIASES[_snake(_name)] = _name  # change:connectionState -> change_connection_state
    if _name.startswith("change:"):
        _ALIASES[_snake(_name[len("change:"):])] = _name  # connection_state, interrupted, active
        _ALIASES["change:" + _snake(_name[len("change:"):])] = _name


def canonical_event_name(name: str, allowed: Sequence[str]) -> str:
    """Return the canonical spelling of ``name`` among ``allowed`` event names.

    :raises ValueError: for an unknown name, with the closest known names.
    """
    if not isinstance(name, str):
        raise TypeError(f"event name must be a string, not {type(name).__name__}")
    canonical = _ALIASES.get(name)
    if canonical is not None and canonical in allowed:
        return canonical
    known = sorted(set(allowed) | {k for k, v in _ALIASES.items() if v in allowed})
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown event {name!r}{hint} (known: {', '.join(sorted(allowed))})")


@dataclass(frozen=True)
class PendingSession:
    """A proposed call (XEP-0353 ``propose``) waiting to be accepted.

    :ivar id: the proposal id; pass it to ``accept_pending_session``.  It is also the Jingle session id.
    :ivar address: the caller's address (local part of the proposing JID, as the v1 SDK reports it).
    :ivar conversation_id: the Public API conversation id of the call.
    :ivar auto_answer: ``True`` for outbound calls placed by this user (and auto-answer users).
    :ivar from_jid: the full JID of the proposing gateway.
    :ivar persistent_connection_id: ``inin-persistent-cid`` when present.
    """

    id: str
    address: str
    conversation_id: Optional[str]
    auto_answer: bool
    from_jid: str = ""
    persistent_connection_id: Optional[str] = None

    # The seed's camelCase spellings, for code ported from JavaScript.
    @property
    def conversationId(self) -> Optional[str]:  # noqa: N802
        return self.conversation_id

    @property
    def autoAnswer(self) -> bool:  # noqa: N802
        return self.auto_answer

    def __getitem__(self, key: str) -> Any:
        """Dict-style access as in the seed's payload object (``pending["conversationId"]``)."""
        mapping = {"id": self.id, "address": self.address, "conversationId": self.conversation_id,
                   "autoAnswer": self.auto_answer}
        if key in mapping:
            return mapping[key]
        return getattr(self, key)


@dataclass(frozen=True)
class ConversationUpdate:
    """Payload of ``conversationUpdate``: a conversation of this user as the service reports it.

    :ivar conversation_id: the conversation id.
    :ivar participants: the participants (dicts with ``id``, ``purpose``, ``state``, ``muted``, ``held``...).
    :ivar my_participant: this user's participant, when present.
    :ivar raw: the event body as received.
    """

    conversation_id: str
    participants: Tuple[Dict[str, Any], ...]
    my_participant: Optional[Dict[str, Any]]
    raw: Dict[str, Any]

    @classmethod
    def from_body(cls, body: Dict[str, Any], user_id: Optional[str]) -> "ConversationUpdate":
        participants = tuple(p for p in body.get("participants") or [] if isinstance(p, dict))
        mine = [p for p in participants if user_id and (p.get("userId") == user_id
                                                       or (p.get("user") or {}).get("id") == user_id)]
        return cls(str(body["id"]), participants, mine[-1] if mine else None, body)

    @property
    def state(self) -> Optional[str]:
        """This user's participant state (``alerting``, ``connected``, ``disconnected``...)."""
        return self.my_participant.get("state") if self.my_participant else None


@dataclass(frozen=True)
class Event:
    """One delivered event, as pulled from an :class:`EventQueue` or an ``expect_event`` block.

    :ivar name: canonical event name.
    :ivar sender: the SDK or session that emitted it.
    :ivar args: the positional payload, as handlers receive it.
    :ivar time: ``time.monotonic()`` when the core emitted it.
    """

    name: str
    sender: Any
    args: Tuple[Any, ...]
    time: float = 0.0

    @property
    def value(self) -> Any:
        """The first payload argument (``None`` for events without payload)."""
        return self.args[0] if self.args else None


_thread_ids = itertools.count(1)


#: Events produced periodically: only emitted while somebody listens, and coalesced (the latest wins).
PERIODIC_EVENTS = frozenset({"audioLevel", "stats"})

_CLOSED = object()


class Dispatcher:
    """Runs every user callback, in order, on one named thread.

    The contract with the core (which runs every call's media and must never wait for user code):

    * :meth:`emit` never blocks.  Ordered events go through a bounded queue (``maxsize``); when a callback
      blocks long enough to fill it, further ordered events are dropped and counted, and an ``error``
      event (:class:`~purecloud_webrtc.errors.EventOverflowError`) is the first thing delivered once the
      thread is free again.
    * Periodic events (:data:`PERIODIC_EVENTS`) are coalesced per sender: however many are produced while
      one waits for delivery, listeners get the latest one.
    * Receivers live in each emitter's own registry (blinker keeps receivers connected with
      ``weak=False`` for good, whatever ``disconnect`` is asked), so ``off``, ``once``, ``expect_event``,
      ``EventQueue.close`` and ``close()`` leave nothing behind.  The module's blinker :data:`signals` are
      still sent, for code that subscribes to them directly (frameworks).
    * :meth:`close` wakes every waiter (``expect_event``, ``wait_for_event``, ``EventQueue.get``) with
      :class:`~purecloud_webrtc.errors.ClosedError`.
    """

    def __init__(self, owner: Any, *, maxsize: int = 10000, name: Optional[str] = None) -> None:
        self._owner = owner
        self._queue: "queue.Queue[Any]" = queue.Queue(maxsize)
        self._lock = threading.Lock()
        self._latest: Dict[Tuple[str, int], Tuple[Any, Tuple[Any, ...]]] = {}
        self._dropped: List[str] = []
        self._dropped_count = 0
        self._waiters: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._thread = threading.Thread(
            target=self._run, name=name or f"pcw-events-{next(_thread_ids)}", daemon=True
        )
        self._closed = False
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    @property
    def closed(self) -> bool:
        return self._closed

    def on_events_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def emit(self, name: str, sender: Any, args: Tuple[Any, ...]) -> None:
        """Queue one event; safe from any thread; never blocks (see the class docstring)."""
        if self._closed:
            return
        if name in PERIODIC_EVENTS:
            key = (name, id(sender))
            with self._lock:
                queued = key in self._latest
                self._latest[key] = (sender, args)
            if queued:
                return  # the one already waiting will carry these values
            item: Any = (name, sender, None, time.monotonic())
        else:
            item = (name, sender, args, time.monotonic())
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if name in PERIODIC_EVENTS:
                with self._lock:
                    self._latest.pop((name, id(sender)), None)
                return
            with self._lock:
                self._dropped_count += 1
                if len(self._dropped) < 100:
                    self._dropped.append(name)
            log.error("events queue full (%d): a callback is blocking the events thread; event %s dropped",
                      self._queue.maxsize, name)

    def register_waiter(self, waiter: Any) -> None:
        """``waiter.wake_closed()`` is called when the dispatcher closes."""
        with self._lock:
            self._waiters.add(waiter)
        if self._closed:
            waiter.wake_closed()

    def _report_overflow(self) -> None:
        with self._lock:
            count, names = self._dropped_count, self._dropped
            self._dropped_count, self._dropped = 0, []
        if count:
            from .errors import EventOverflowError

            self._deliver("error", self._owner, (EventOverflowError(count, names), {"dropped": count}))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            name, sender, args, _ = item
            if args is None:  # a periodic event: take the latest values
                with self._lock:
                    latest = self._latest.pop((name, id(sender)), None)
                if latest is None:
                    continue
                args = latest[1]
            try:
                self._report_overflow()
                self._deliver(name, sender, args)
            except Exception:  # never let one bad event stop every later callback
                log.exception("could not deliver event %r", name)
            # This frame would otherwise keep the last event (an ended session, its media...) alive
            # until the next one comes.
            item = sender = args = None

    def _deliver(self, name: str, sender: Any, args: Tuple[Any, ...]) -> None:
        arg_names = SDK_EVENTS[name] if name in SDK_EVENTS else SESSION_EVENTS[name]
        kwargs = dict(zip(arg_names, args))
        receivers = sender._receivers_for(name) if isinstance(sender, Emitter) else []
        signal = signals[name]
        if signal.receivers:  # direct blinker subscribers (frameworks)
            receivers = receivers + list(signal.receivers_for(sender))
        for receiver in receivers:
            try:
                receiver(sender, **kwargs)
            except Exception as exc:  # a user callback failed: never let it reach the core
                log.exception("callback for %r raised", name)
                if name != "error":
                    self.emit("error", self._owner, (exc, {"event": name, "callback": repr(receiver)}))
                    _report_unhandled_once(self._owner, exc)

    def close(self, timeout: float = 5.0) -> None:
        """Deliver what is queued, then stop the events thread (joined unless called from it); wake waiters."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            log.error("events queue still full at close; pending events discarded")
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._queue.put_nowait(None)
        if not self.on_events_thread():
            self._thread.join(timeout)
        with self._lock:
            waiters = list(self._waiters)
            self._waiters = weakref.WeakSet()
        for waiter in waiters:
            waiter.wake_closed()


def _report_unhandled_once(owner: Any, exc: BaseException) -> None:
    """A raising callback reports itself on stderr once when nothing else would show it.

    Like ``threading.excepthook``: without an ``error`` listener and without any logging configured
    (the package only has its ``NullHandler``), the traceback would otherwise go nowhere.
    """
    if getattr(owner, "_callback_error_reported", False):
        return
    has_listener = isinstance(owner, Emitter) and bool(owner._receivers_for("error"))
    logger = logging.getLogger("purecloud_webrtc")
    if has_listener or logger.hasHandlers() and any(
            not isinstance(h, logging.NullHandler) for h in _all_handlers(logger)):
        return
    try:
        owner._callback_error_reported = True
    except Exception:
        pass
    import sys
    import traceback

    sys.stderr.write("purecloud_webrtc: an event callback raised (reported once; add an 'error' listener or "
                     "configure logging to see every one):\n")
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


def _all_handlers(logger: logging.Logger) -> List[logging.Handler]:
    handlers: List[logging.Handler] = []
    current: Optional[logging.Logger] = logger
    while current is not None:
        handlers.extend(current.handlers)
        current = current.parent if current.propagate else None
    return handlers


def connect_or_decorate(connect: Callable[[Callable[..., Any]], None], fn: Optional[Callable[..., Any]]) -> Any:
    """``connect(fn)`` and return ``fn``; with ``fn`` None, a decorator that does so (``@sdk.on(name)``)."""
    if fn is None:
        def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
            connect(func)
            return func
        return decorator
    connect(fn)
    return fn


class _Receiver:
    """Adapts a seed-style callback ``fn(*args)`` to blinker's ``fn(sender, **kwargs)``."""

    __slots__ = ("fn", "arg_names", "once", "emitter", "name")

    def __init__(self, fn: Callable[..., Any], arg_names: Tuple[str, ...], once: bool, emitter: "Emitter", name: str):
        self.fn = fn
        self.arg_names = arg_names
        self.once = once
        self.emitter = emitter
        self.name = name

    def __call__(self, sender: Any, **kwargs: Any) -> None:
        if self.once:
            self.emitter._remove_receiver(self.name, self)
        self.fn(*(kwargs[n] for n in self.arg_names))

    def __repr__(self) -> str:
        return f"<callback {getattr(self.fn, '__qualname__', self.fn)!r} for {self.name}>"


class Emitter:
    """Event registration shared by the SDK and its sessions (``on``/``once``/``off``/``expect_event``/queues).

    Receivers live here, per emitter and event name (not in blinker's module-wide registry), so removing
    one really removes it and a closed SDK or an ended session is collectable.
    """

    _event_table: Dict[str, Tuple[str, ...]] = {}

    def _init_emitter(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._registry: Dict[str, List[Callable[..., None]]] = {}
        self._receivers_lock = threading.Lock()

    def _receivers_for(self, name: str) -> List[Callable[..., None]]:
        with self._receivers_lock:
            return list(self._registry.get(name, ()))

    def _add_receiver(self, name: str, receiver: Callable[..., None]) -> None:
        with self._receivers_lock:
            self._registry.setdefault(name, []).append(receiver)

    def _remove_receiver(self, name: str, receiver: Callable[..., None]) -> None:
        with self._receivers_lock:
            receivers = self._registry.get(name)
            if receivers is not None:
                self._registry[name] = [r for r in receivers if r != receiver]  # (bound methods compare equal)
                if not self._registry[name]:
                    del self._registry[name]

    def _has_listeners(self, name: str) -> bool:
        with self._receivers_lock:
            if self._registry.get(name):
                return True
        return bool(signals[name].receivers)

    def _emit(self, name: str, *args: Any) -> None:
        if name in PERIODIC_EVENTS and not self._has_listeners(name):
            return  # nobody listens: not even queued
        self._dispatcher.emit(name, self, args)

    @overload
    def on(self, name: str) -> Callable[[F], F]: ...

    @overload
    def on(self, name: str, fn: F) -> F: ...

    def on(self, name: str, fn: Optional[F] = None) -> Any:
        """Call ``fn(*payload)`` on the events thread each time event ``name`` happens.

        Usable as a decorator: ``@sdk.on("pendingSession")``.  The callback is
        held strongly until :meth:`off` or close.

        :raises ValueError: for an unknown event name.
        """
        canonical = canonical_event_name(name, list(self._event_table))
        return connect_or_decorate(lambda func: self._connect(canonical, func, once=False), fn)

    @overload
    def once(self, name: str) -> Callable[[F], F]: ...

    @overload
    def once(self, name: str, fn: F) -> F: ...

    def once(self, name: str, fn: Optional[F] = None) -> Any:
        """Like :meth:`on`, but the callback is removed after its first call."""
        canonical = canonical_event_name(name, list(self._event_table))
        return connect_or_decorate(lambda func: self._connect(canonical, func, once=True), fn)

    def off(self, name: str, fn: Optional[Callable[..., Any]] = None) -> None:
        """Remove ``fn`` from event ``name`` (all callbacks of that event when ``fn`` is None)."""
        canonical = canonical_event_name(name, list(self._event_table))
        with self._receivers_lock:
            receivers = self._registry.get(canonical, [])
            kept = [r for r in receivers if not (isinstance(r, _Receiver) and (fn is None or r.fn is fn or r.fn == fn))]
            if kept:
                self._registry[canonical] = kept
            else:
                self._registry.pop(canonical, None)

    def _connect(self, name: str, fn: Callable[..., Any], once: bool) -> None:
        if not callable(fn):
            raise TypeError(f"callback for {name!r} must be callable, not {type(fn).__name__}")
        # Held strongly (a lambda is kept), until off(), once's first call, or close().
        self._add_receiver(name, _Receiver(fn, self._event_table[name], once, self, name))

    def _disconnect_all(self) -> None:
        with self._receivers_lock:
            self._registry.clear()

    def _check_may_wait(self, what: str) -> None:
        if self._dispatcher.on_events_thread():
            raise UsageError(
                f"{what} cannot wait inside an event callback: the callback runs on the events thread, "
                "which must return before the awaited event can be delivered"
            )

    def expect_event(
        self,
        name: str,
        timeout: Optional[float] = 10.0,
        predicate: Optional[Callable[..., bool]] = None,
    ) -> "ExpectEvent":
        """Race-free wait for an event caused by the code inside a ``with`` block.

        The receiver is connected when the block starts, so an event emitted
        while the block runs is not missed; leaving the block waits for it::

            with sdk.expect_event("sessionStarted", timeout=10) as ev:
                sdk.accept_pending_session(pending.id)
            session = ev.value

        :param predicate: called with the payload arguments; only an event for which it is true counts.
        :raises OperationTimeoutError: when the event does not come in time (on leaving the block).
        :raises UsageError: when used inside an event callback.
        """
        self._check_may_wait("expect_event")
        return ExpectEvent(self, canonical_event_name(name, list(self._event_table)), timeout, predicate)

    def wait_for_event(
        self,
        name: str,
        timeout: Optional[float] = 10.0,
        predicate: Optional[Callable[..., bool]] = None,
    ) -> Event:
        """Block until the *next* event ``name`` (emitted after this call) and return it.

        Prefer :meth:`expect_event` when the event is caused by your own call.
        """
        with self.expect_event(name, timeout, predicate) as ev:
            pass
        return ev.event

    def event_queue(self, names: Optional[Sequence[str]] = None, maxsize: int = 0) -> "EventQueue":
        """A pull queue of events (all of them, or ``names``), for REPLs and worker loops.

        Close it (or use it as a context manager) to stop collecting.
        """
        wanted = [canonical_event_name(n, list(self._event_table)) for n in names] if names else list(self._event_table)
        return EventQueue(self, wanted, maxsize)


class ExpectEvent:
    """The context manager returned by :meth:`Emitter.expect_event`."""

    def __init__(self, emitter: Emitter, name: str, timeout: Optional[float], predicate: Optional[Callable[..., bool]]):
        self._emitter = emitter
        self._name = name
        self._timeout = timeout
        self._predicate = predicate
        self._done = threading.Event()
        self._event: Optional[Event] = None
        self._closed = False

    def wake_closed(self) -> None:
        """The SDK closed: a waiting ``with`` block ends with :class:`ClosedError`."""
        self._closed = True
        self._done.set()

    def _receiver(self, sender: Any, **kwargs: Any) -> None:
        if self._done.is_set():
            return
        args = tuple(kwargs[n] for n in self._emitter._event_table[self._name])
        if self._predicate is not None and not self._predicate(*args):
            return
        self._event = Event(self._name, sender, args, time.monotonic())
        self._done.set()

    def __enter__(self) -> "ExpectEvent":
        self._emitter._add_receiver(self._name, self._receiver)
        self._emitter._dispatcher.register_waiter(self)
        return self

    def cancel(self) -> None:
        """Stop expecting: leaving the block will not wait (for callers that found what they needed)."""
        self._cancelled = True

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and not getattr(self, "_cancelled", False):
                if not self._done.wait(self._timeout):
                    raise OperationTimeoutError(f"waiting for event {self._name!r}", self._timeout)
                if self._event is None and self._closed:
                    raise ClosedError(f"waiting for event {self._name!r}: the SDK was closed")
        finally:
            self._emitter._remove_receiver(self._name, self._receiver)

    @property
    def event(self) -> Event:
        """The event that arrived.

        :raises UsageError: before it arrived.
        """
        if self._event is None:
            raise UsageError(f"event {self._name!r} has not arrived yet (read .event after the with block)")
        return self._event

    @property
    def value(self) -> Any:
        """The event's first payload argument (the session for ``sessionStarted``, the id for ``cancelPendingSession``...)."""
        return self.event.value

    @property
    def args(self) -> Tuple[Any, ...]:
        return self.event.args


class EventQueue:
    """Collects events into a thread-safe queue; iterate it or call :meth:`get`."""

    def __init__(self, emitter: Emitter, names: Sequence[str], maxsize: int = 0):
        self._emitter = emitter
        self._names = list(names)
        self._queue: "queue.Queue[Event]" = queue.Queue(maxsize)
        self._receivers: List[Tuple[str, Callable[..., None]]] = []
        self._closed = False
        for name in self._names:
            receiver = self._make_receiver(name)
            emitter._add_receiver(name, receiver)
            self._receivers.append((name, receiver))
        emitter._dispatcher.register_waiter(self)

    def wake_closed(self) -> None:
        """The SDK closed: a waiting :meth:`get` (or iteration) ends with :class:`ClosedError`."""
        self._closed = True
        self._queue.put(_CLOSED)  # type: ignore[arg-type]

    def _make_receiver(self, name: str) -> Callable[..., None]:
        arg_names = self._emitter._event_table[name]

        def receiver(sender: Any, **kwargs: Any) -> None:
            self._queue.put(Event(name, sender, tuple(kwargs[n] for n in arg_names), time.monotonic()))

        return receiver

    def get(self, timeout: Optional[float] = None) -> Event:
        """Next event; blocks up to ``timeout`` seconds.

        :raises OperationTimeoutError: when nothing came.
        """
        self._emitter._check_may_wait("EventQueue.get")
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise OperationTimeoutError("waiting for the next event", timeout) from None
        if event is _CLOSED:
            self._queue.put(_CLOSED)  # type: ignore[arg-type]  # for the next get() too
            raise ClosedError("waiting for the next event: the SDK was closed")
        return event

    def get_nowait(self) -> Optional[Event]:
        """Next event, or ``None`` when the queue is empty."""
        try:
            event = self._queue.get_nowait()
        except queue.Empty:
            return None
        if event is _CLOSED:
            self._queue.put(_CLOSED)  # type: ignore[arg-type]
            return None
        return event

    def drain(self) -> List[Event]:
        """All events queued so far."""
        out = []
        while True:
            event = self.get_nowait()
            if event is None:
                return out
            out.append(event)

    def __iter__(self) -> Iterator[Event]:
        """Events as they come; ends when the SDK closes."""
        while True:
            event = self._queue.get()
            if event is _CLOSED:
                self._queue.put(_CLOSED)  # type: ignore[arg-type]
                return
            yield event

    def close(self) -> None:
        for name, receiver in self._receivers:
            self._emitter._remove_receiver(name, receiver)
        self._receivers.clear()

    def __enter__(self) -> "EventQueue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
