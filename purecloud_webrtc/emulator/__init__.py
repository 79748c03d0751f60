"""An emulator of the Genesys Cloud side of WebRTC softphone calls, on 127.0.0.1 only.

It serves the Public API calls the SDK makes (``/api/v2/...``), the streaming
service (XMPP over WebSocket, RFC 7395, at ``/stream/channels/{channelId}``)
and, per call, the XMPP↔SIP gateway with a real aiortc far end that plays a
tone and records what it hears.  For tests, demos and offline development::

    from purecloud_webrtc import PureCloudWebrtcSdk
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emu, PureCloudWebrtcSdk(
            emu.access_token, api_base_url=emu.api_base_url, streaming_base_url=emu.streaming_base_url,
            ice_host_addresses=["127.0.0.1"]) as sdk:
        sdk.initialize()
        call = emu.inbound_call(auto_answer=True)  # the SDK answers it by itself
        call.wait_state("connected", timeout=20)
        call.wait_for_audio()
        call.hangup()

``python -m purecloud_webrtc.emulator`` runs one from the command line.
"""

from typing import TYPE_CHECKING, Any

# Imported on first use: FaultProxy needs nothing more than the SDK, the rest needs the ``emulator`` extra
# (aiohttp), and without it the first use says so in one line (MissingExtraError).
_WHERE = {
    "EmulatedUser": "._state", "EmulatorError": "._state", "ALLOWED_MEDIA_ADDRESSES": ".party",
    "CALL_STATES": ".party", "JINGLE_REASONS": ".party", "EmulatedCall": ".party", "FaultProxy": ".faultproxy",
    "Intruder": ".intruder", "LibwebrtcParty": ".libwebrtc_party", "Emulator": ".server",
    "XmppServerLogin": ".xmpp_client_gateway",
}

if TYPE_CHECKING:  # pragma: no cover
    from ._state import EmulatedUser, EmulatorError
    from .faultproxy import FaultProxy
    from .intruder import Intruder
    from .libwebrtc_party import LibwebrtcParty
    from .party import ALLOWED_MEDIA_ADDRESSES, CALL_STATES, JINGLE_REASONS, EmulatedCall
    from .server import Emulator
    from .xmpp_client_gateway import XmppServerLogin


def __getattr__(name: str) -> Any:
    import importlib

    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if where != ".faultproxy":
        from .._extras import require

        require("emulator", "purecloud_webrtc.emulator")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ALLOWED_MEDIA_ADDRESSES",
    "CALL_STATES",
    "JINGLE_REASONS",
    "EmulatedCall",
    "EmulatedUser",
    "Emulator",
    "EmulatorError",
    "FaultProxy",
    "Intruder",
    "LibwebrtcParty",
    "XmppServerLogin",
]
