"""The notification service on the same socket (XEP-0060 pubsub): the conversation topic and the service's channel topics.

A part of :class:`~purecloud_webrtc._core.Core` (a mixin): the state it uses lives on the core,
which owns all protocol state on its one loop thread; every method runs on that thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _xml as X
from ._xml import Element, element, q
from .errors import PureCloudWebrtcError, SignalingError

if TYPE_CHECKING:  # pragma: no cover
    from ._core import Core  # noqa: F401
    from .sdk import PureCloudWebrtcSdk  # noqa: F401


__all__ = ["Notifications"]


class Notifications:
    """The notification service on the same socket (XEP-0060 pubsub): the conversation topic and the service's channel topics (mixed into ``Core``)."""

    @property
    def conversation_topic(self) -> str:
        return f"v2.users.{(self.me or {}).get('id')}.conversations"

    async def _subscribe_conversations(self) -> None:
        """XEP-0060 subscribe to this user's conversation topic on ``notifications.{env}`` (docs/protocol.rst §2.7)."""
        assert self.stream is not None and self.jid is not None
        pubsub = element(q("pubsub", "pubsub"), None,
                         element(q("pubsub", "subscribe"), {"node": self.conversation_topic, "jid": str(self.jid)}))
        iq = element(q("client", "iq"), {"type": "set", "to": f"notifications.{self.options.environment}"}, pubsub)
        try:
            # Never long: the subscription is optional, and initialize() waits for it.
            await self.stream.iq(iq, timeout=min(self.options.iq_timeout, 5.0))
        except PureCloudWebrtcError as exc:
            # Optional for calls: report it, keep the connection.
            self.trace("warning", f"could not subscribe to conversation events: {exc}")

    def _on_pubsub(self, el: Element) -> None:
        event = el.find(q("pubsub_event", "event"))
        if event is None:
            return
        for items in X.findall(event, "pubsub_event", "items"):
            node = items.get("node") or ""
            if node == self.conversation_topic:
                for item in X.findall(items, "pubsub_event", "item"):
                    self._on_conversation_event(item)
                continue
            if "no_longer_subscribed" in node or "duplicate_id" in node or "socket_closing" in node:
                # The channel is dead or shared by two sockets: hard reconnect on a new channel (§2.6).
                self.force_reconnect(f"service topic {node}")
                return

    def _on_conversation_event(self, item: Element) -> None:
        import json

        from .events import ConversationUpdate

        body = X.child_text(item, "json", "json")
        try:
            data = json.loads(body or "")
            conversation = data.get("eventBody", data) if isinstance(data, dict) else None
            if not isinstance(conversation, dict) or not conversation.get("id"):
                raise ValueError("no conversation id")
        except ValueError as exc:
            self.report_error(SignalingError(f"bad conversation event: {exc}"), {"body": (body or "")[:500]})
            return
        self.sdk._emit("conversationUpdate", ConversationUpdate.from_body(conversation, (self.me or {}).get("id")))
