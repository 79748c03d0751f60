"""Connecting: XEP-0215 ICE servers and policy, SASL failures, the stream's own answers."""

from __future__ import annotations

import asyncio

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc import _xml as X
from purecloud_webrtc.emulator import Emulator
from purecloud_webrtc.xmpp.stream import Jid, XmppStream

TURN = [{"urls": "turn:127.0.0.1:3478", "username": "u1", "credential": "c1"},
        {"urls": "turn:127.0.0.1:443?transport=tcp", "username": "u1", "credential": "c1"}]
STUN = [{"urls": "stun:127.0.0.1:3478"}]


def make(emu, **options):
    sdk = pcw.PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                                 streaming_base_url=emu.streaming_base_url, ice_host_addresses=["127.0.0.1"], **options)
    return sdk


def test_turn_and_stun_from_the_service_give_policy_all():
    with Emulator(ice_servers=TURN + STUN) as emu, make(emu) as sdk:
        sdk.initialize()
        assert sdk.ice_servers == TURN + STUN
        assert sdk._core.ice_transport_policy == "all"


def test_turn_without_stun_means_relay_only():
    with Emulator(ice_servers=TURN) as emu, make(emu) as sdk:
        sdk.initialize()
        assert sdk.ice_servers == TURN
        assert sdk._core.ice_transport_policy == "relay"


def test_no_ice_servers_keeps_host_candidates():
    with Emulator() as emu, make(emu) as sdk:
        sdk.initialize()
        assert sdk.ice_servers == [] and sdk._core.ice_transport_policy == "all"


def test_user_ice_servers_replace_discovery():
    mine = [{"urls": "stun:127.0.0.1:19302"}]
    with Emulator(ice_servers=TURN) as emu, make(emu, ice_servers=mine) as sdk:
        sdk.initialize()
        assert sdk.ice_servers == mine and sdk._core.ice_transport_policy == "all"
        assert not any("extdisco" in text for direction, text in emu.stanzas() if direction == "in")


def run_stream(emu, password, resource="r1"):
    async def main():
        import requests

        channel = requests.post(f"{emu.api_base_url}/api/v2/notifications/channels",
                                params={"connectionType": "streaming"},
                                headers={"Authorization": f"Bearer {emu.access_token}"}, timeout=5).json()
        stream = XmppStream(asyncio.get_running_loop(), url=f"{emu.streaming_base_url}/stream/channels/{channel['id']}",
                            jid=Jid.parse(emu.user.jid), password=lambda: password, resource=resource,
                            on_message=lambda el: None, on_iq=lambda el: False, on_closed=lambda reason: None,
                            connect_timeout=5, ping_interval=0)
        try:
            jid = await stream.connect()
            ping = X.element(X.q("client", "iq"), {"type": "get"}, X.element(X.q("ping", "ping")))
            await stream.iq(ping, timeout=5)
            return jid
        finally:
            await stream.close()
            stream.transport.join()

    return asyncio.run(main())


def test_sasl_plain_with_the_right_password_binds_our_resource():
    with Emulator() as emu:
        jid = run_stream(emu, "authKey:" + emu.access_token, resource="my-resource")
        assert str(jid) == f"{emu.user.jid}/my-resource"


def test_sasl_refusal_is_an_authentication_error_naming_the_condition():
    with Emulator() as emu:
        with pytest.raises(pcw.AuthenticationError) as info:
            run_stream(emu, "authKey:wrong")
        assert info.value.condition == "not-authorized"
        assert "SASL not-authorized" in str(info.value)


def test_sasl_payload_and_token_never_reach_the_logs(caplog):
    import logging

    import base64

    with caplog.at_level(logging.DEBUG):
        with Emulator(access_token="very-secret-token-123") as emu, make(emu) as sdk:
            sdk.initialize()
            payload = base64.b64encode(f"\0{emu.user.jid}\0authKey:very-secret-token-123".encode()).decode()
    assert "very-secret-token-123" not in caplog.text
    assert payload not in caplog.text
    assert "RECV" in caplog.text and "[redacted]" in caplog.text  # the wire log ran, with the auth redacted
