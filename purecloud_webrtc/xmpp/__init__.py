"""XMPP over WebSocket (RFC 7395): the transport thread and the stream state machine."""

from .stream import XmppStream, Jid  # noqa: F401

__all__ = ["XmppStream", "Jid"]
