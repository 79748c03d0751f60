"""What a session sends and plays: sources and sinks resolved off the loop, and who owns them.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ._pending import AcceptOptions
from .errors import UsageError
from .jingle.session import JingleSession

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["MediaResolution"]


def _is_media_object(obj: Any) -> bool:
    from .media import AudioSink, AudioSource

    return isinstance(obj, (AudioSource, AudioSink))


class MediaResolution:
    """What a session sends and plays: sources and sinks resolved off the loop, and who owns them (mixed into ``Core``).

    Who owns what: an object the SDK makes from a spec (a path, ``"tone:440"``, ``None`` for a device, a
    callable) belongs to the call and is closed when the call ends.  An :class:`AudioSource`/:class:`AudioSink`
    passed to ``accept_pending_session``/``accept`` is handed to that call, which closes it when it ends; one
    object feeds one call at a time (a second call asking for it gets ``UsageError``).  ``default_source`` and
    ``default_sink`` given as objects are shared by every call and belong to the SDK (closed by ``close()``).
    """

    #: what calls own (opened from specs, or handed to a call) and is not closed yet: a last sweep in
    #: ``close()`` closes what an interrupted teardown left (a device or a file must never stay open)
    owned_media: "set[Any]"
    _closed_media: "weakref.WeakSet[Any]"
    _owned_lock: threading.Lock

    def own(self, obj: Any) -> Any:
        """Note that a call owns ``obj`` until :meth:`close_owned` (any thread); returns ``obj``."""
        if obj is not None:
            with self._owned_lock:
                self.owned_media.add(obj)
        return obj

    def close_owned(self, obj: Any) -> None:
        """Close ``obj``, which a call owns, once (blocking: on the I/O executor, or after the loop stopped)."""
        with self._owned_lock:
            self.owned_media.discard(obj)
            try:
                if obj in self._closed_media:
                    return
                self._closed_media.add(obj)
            except TypeError:  # not weakly referenceable: closed as asked
                pass
        _close_quietly(obj)

    def close_all_owned(self) -> int:
        """Close whatever calls still own (``close()``'s last sweep, the loop stopped); returns how many."""
        with self._owned_lock:
            left = list(self.owned_media)
        for obj in left:
            self.close_owned(obj)
        return len(left)

    async def _open_source(self, spec: Any, auto_start_media: bool) -> "tuple[Any, bool]":
        """The source for ``spec`` (``None``: the default, or nothing when not ``auto_start_media``) and
        whether the call owns it."""
        from .media import resolve_source

        owned = True
        if spec is None:
            if not auto_start_media:
                return None, False
            spec = self.options.default_source
            owned = not _is_media_object(spec)
        if owned:
            self._check_not_in_use(spec)
        source = await self.run_blocking(resolve_source, spec, logger=self.log)
        return (self.own(source) if owned else source), owned

    async def _open_sink(self, spec: Any) -> "tuple[Any, bool]":
        """The sink for ``spec`` (``None``: the default) and whether the call owns it."""
        from .media import resolve_sink

        owned = True
        if spec is None:
            spec = self.options.default_sink
            owned = not _is_media_object(spec)
        if owned:
            self._check_not_in_use(spec)
        sink = await self.run_blocking(resolve_sink, spec, logger=self.log)
        return (self.own(sink) if owned else sink), owned

    async def resolve_accept_media(self, options: AcceptOptions) -> AcceptOptions:
        """Open what ``options`` asks for (off the loop: devices and files may be slow), with ownership.

        :raises MediaSpecError: a missing file, an unwritable directory, a malformed named spec.
        :raises AudioDeviceError: a device that does not exist or cannot be opened.
        :raises UsageError: an object already feeding another call.
        """
        source, owns_source = await self._open_source(options.source, options.auto_start_media)
        try:
            sink, owns_sink = await self._open_sink(options.sink)
        except BaseException:
            if source is not None and owns_source and not _is_media_object(options.source):
                await self.run_blocking(self.close_owned, source)
            raise
        return dataclasses.replace(options, source=source, sink=sink, resolved=True,
                                   owns_source=owns_source, owns_sink=owns_sink)

    def release_accept_media(self, options: AcceptOptions) -> None:
        """Close what resolved ``options`` own and no call used (the proposal went away first)."""
        if not options.resolved or options.consumed:
            return
        options.consumed = True
        for obj, owned in ((options.source, options.owns_source), (options.sink, options.owns_sink)):
            if obj is not None and owned:
                self.loop.run_in_executor(self.executor, self.close_owned, obj)

    async def close_accept_media(self, options: AcceptOptions) -> None:
        """Close what resolved ``options`` own and no call used, and wait for it (async paths: a session's end,
        the SDK's shutdown, where a queued close could be cancelled with the executor)."""
        if not options.resolved or options.consumed:
            return
        options.consumed = True
        for obj, owned in ((options.source, options.owns_source), (options.sink, options.owns_sink)):
            if obj is not None and owned:
                await self.run_blocking(self.close_owned, obj)

    def _check_not_in_use(self, obj: Any) -> None:
        if not _is_media_object(obj):
            return
        for session in self.sessions.values():
            if not session.ended and obj in (session.rtc.source, session.rtc.sink):
                raise UsageError(f"this {type(obj).__name__} already feeds session {session.sid}: one object feeds "
                                 "one call at a time (pass a new one, or a spec such as 'tone:440')")
        for entry in self.pending.values():
            if entry.options.resolved and not entry.options.consumed and obj in (entry.options.source,
                                                                                  entry.options.sink):
                raise UsageError(f"this {type(obj).__name__} is already promised to pending session "
                                 f"{entry.info.id}: one object feeds one call at a time")

    async def accept_session(self, session: JingleSession, source: Any, sink: Any, auto_start_media: bool) -> None:
        """Answer ``session`` with the media its accept opened; what ``session.accept(source=..., sink=...)``
        names now replaces that (opened off the loop; a replaced object the call owns is closed)."""
        deferred: AcceptOptions = getattr(session, "deferred_options", None) or AcceptOptions()
        if not deferred.resolved or deferred.consumed:
            chosen = await self.resolve_accept_media(
                AcceptOptions(source, sink, auto_start_media and deferred.auto_start_media))
        else:
            chosen = dataclasses.replace(deferred)
            replaced = []
            if source is not None or not auto_start_media:
                new_source, owns = await self._open_source(source, auto_start_media)
                replaced.append((chosen.source, chosen.owns_source))
                chosen.source, chosen.owns_source = new_source, owns
            if sink is not None:
                try:
                    new_sink, owns = await self._open_sink(sink)
                except BaseException:
                    if replaced and chosen.source is not None and chosen.owns_source:
                        await self.run_blocking(self.close_owned, chosen.source)
                    raise
                replaced.append((chosen.sink, chosen.owns_sink))
                chosen.sink, chosen.owns_sink = new_sink, owns
            for obj, owned in replaced:
                if obj is not None and owned:
                    await self.run_blocking(self.close_owned, obj)
        deferred.consumed = chosen.consumed = True
        try:
            await session.accept(chosen.source, chosen.sink, owns_source=chosen.owns_source,
                                 owns_sink=chosen.owns_sink)
        except BaseException:
            for obj, owned in ((chosen.source, chosen.owns_source), (chosen.sink, chosen.owns_sink)):
                if obj is not None and owned and obj not in (session.rtc.source, session.rtc.sink):
                    await self.run_blocking(self.close_owned, obj)
            raise


def _close_quietly(obj: Any) -> None:
    try:
        obj.close()
    except Exception:  # noqa: BLE001 - closing must go on
        logging.getLogger(__name__).debug("closing %r failed", obj, exc_info=True)
