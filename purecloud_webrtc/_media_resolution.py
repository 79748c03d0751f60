"""What a session sends and plays: sources and sinks resolved off the loop, and who owns them.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._pending import AcceptOptions
from .jingle.session import JingleSession

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["MediaResolution"]


def _is_media_object(obj: Any) -> bool:
    from .media import AudioSink, AudioSource

    return isinstance(obj, (AudioSource, AudioSink))


class MediaResolution:
    """What a session sends and plays: sources and sinks resolved off the loop, and who owns them (mixed into ``Core``)."""

    async def accept_session(self, session: JingleSession, source: Any, sink: Any, auto_start_media: bool) -> None:
        """Resolve media (off-loop: devices may be slow) and answer ``session``."""
        from .media import resolve_sink, resolve_source

        deferred: AcceptOptions = getattr(session, "deferred_options", AcceptOptions())
        if source is None:
            source = deferred.source
        if sink is None:
            sink = deferred.sink
        # A default source/sink given as an object is shared by every session: the SDK owns it (closed by
        # close()), a session must not close it when it ends.  Anything resolved per session is the session's.
        owns_source = owns_sink = True
        if source is None and auto_start_media and deferred.auto_start_media:
            source = self.options.default_source
            owns_source = not _is_media_object(source)
            source_obj = await self.run_blocking(resolve_source, source, logger=self.log)
        elif source is None:
            source_obj = None
        else:
            source_obj = await self.run_blocking(resolve_source, source, logger=self.log)
        if sink is None:
            sink = self.options.default_sink
            owns_sink = not _is_media_object(sink)
        sink_obj = await self.run_blocking(resolve_sink, sink, logger=self.log)
        try:
            await session.accept(source_obj, sink_obj, owns_source=owns_source, owns_sink=owns_sink)
        except BaseException:
            for obj in (source_obj, sink_obj):
                if obj is not None and obj not in (session.source, session.sink):
                    await self.run_blocking(obj.close)
            raise
