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
    with Emulator(stun=False) as emu, make(emu) as sdk:
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


def test_no_secret_in_any_log_trace_or_error_across_a_call_a_token_change_and_a_refusal(caplog):
    """Item 7 of the resilience issue: scan everything the SDK says at every level."""
    import base64
    import logging

    from purecloud_webrtc.media import BufferSink, ToneSource

    secrets = ["first-secret-token-abc", "second-secret-token-xyz"]
    said = []
    with caplog.at_level(logging.DEBUG):
        with Emulator(access_token=secrets[0]) as emu, make(emu, ping_interval=0.2, ping_timeout=0.5,
                                                             reconnect_initial_delay=0.05) as sdk:
            sdk.on("trace", lambda level, message, details: said.append(f"{level} {message} {details}"))
            sdk.on("error", lambda error, details: said.append(f"{error!r} {error} {details}"))
            sdk.on("disconnected", lambda info: said.append(str(info)))
            sdk.initialize()
            with sdk.expect_event("pendingSession") as ev:
                call = emu.inbound_call()
            with sdk.expect_event("sessionStarted"):
                sdk.accept_pending_session(ev.value.id, source=ToneSource(500), sink=BufferSink())
            call.wait_state("connected", timeout=15)
            emu.rotate_access_token(secrets[1])
            sdk.set_access_token(secrets[1])
            with sdk.expect_event("connected"):
                emu.drop_connections()
            emu.rotate_access_token("revoked-token-not-secret")
            with sdk.expect_event("disconnected", predicate=lambda info: not info["reconnecting"]):
                emu.drop_connections()
            payloads = [base64.b64encode(f"\0{emu.user.jid}\0authKey:{s}".encode()).decode() for s in secrets]
    text = caplog.text + "\n".join(said) + "\n".join(r.getMessage() for r in caplog.records)
    assert "RECV" in caplog.text and said  # the scan saw real output
    for secret in secrets + payloads:
        assert secret not in text
