"""TLS as the real service uses it: https:// and wss://, verified by default."""

from __future__ import annotations

import asyncio

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator import Emulator
from purecloud_webrtc.media import BufferSink, ToneSource
from purecloud_webrtc.xmpp.stream import Jid, XmppStream


def sdk_for(emu, **options):
    options.setdefault("ice_host_addresses", ["127.0.0.1"])
    return pcw.PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                                  streaming_base_url=emu.streaming_base_url, **options)


def test_trusted_certificate_works_for_rest_and_websocket():
    with Emulator(tls=True) as emu:
        assert emu.api_base_url.startswith("https://") and emu.streaming_base_url.startswith("wss://")
        with sdk_for(emu, ca_bundle=emu.ca_file) as sdk:
            sdk.initialize()
            with sdk.expect_event("pendingSession") as ev:
                call = emu.inbound_call(tone_hz=440.0)
            with sdk.expect_event("sessionStarted") as started:
                sdk.accept_pending_session(ev.value.id, source=ToneSource(880.0), sink=BufferSink())
            call.wait_state("connected", timeout=15)
            call.wait_for_audio(timeout=10, min_seconds=0.5)
            assert abs(call.heard_frequency(0.5) - 880.0) <= 5


def test_untrusted_certificate_fails_with_a_clear_error():
    with Emulator(tls=True) as emu, sdk_for(emu) as sdk:  # the system CAs do not know the emulator's CA
        with pytest.raises(pcw.TlsError) as info:
            sdk.initialize(timeout=10)
        assert "TLS failed" in str(info.value) and "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        assert isinstance(info.value, ConnectionError)


def test_wrong_host_certificate_fails_even_with_the_right_ca():
    with Emulator(tls="wrong-host") as emu, sdk_for(emu, ca_bundle=emu.ca_file) as sdk:
        with pytest.raises(pcw.TlsError) as info:
            sdk.initialize(timeout=10)
        assert "127.0.0.1" in str(info.value) or "match" in str(info.value).lower()


def test_websocket_verifies_certificates_too():
    with Emulator(tls=True) as emu, Emulator(tls=True) as other:

        async def main():
            import requests

            channel = requests.post(f"{emu.api_base_url}/api/v2/notifications/channels",
                                    params={"connectionType": "streaming"}, verify=emu.ca_file,
                                    headers={"Authorization": f"Bearer {emu.access_token}"}, timeout=5).json()
            stream = XmppStream(asyncio.get_running_loop(),
                                url=f"{emu.streaming_base_url}/stream/channels/{channel['id']}",
                                jid=Jid.parse(emu.user.jid), password=lambda: "authKey:" + emu.access_token,
                                resource="r", on_message=lambda el: None, on_iq=lambda el: False,
                                on_closed=lambda reason: None, connect_timeout=5, ping_interval=0,
                                sslopt={"ca_certs": other.ca_file})  # a CA that did not sign this server
            await stream.connect()

        with pytest.raises(pcw.TlsError, match="streaming WebSocket"):
            asyncio.run(main())


@pytest.mark.parametrize("option, url", [
    ("api_base_url", "http://api.example.test"),
    ("streaming_base_url", "ws://streaming.example.test"),
])
def test_plain_connections_to_remote_hosts_are_refused_unless_allowed(option, url):
    urls = {"api_base_url": "https://api.example.test", "streaming_base_url": "wss://streaming.example.test"}
    urls[option] = url
    with pytest.raises(pcw.ConfigurationError, match="allow_insecure=True") as info:
        pcw.PureCloudWebrtcSdk("tok", **urls)
    assert info.value.option == option
    sdk = pcw.PureCloudWebrtcSdk("tok", allow_insecure=True, **urls)  # explicit opt-in for local development
    sdk.close()


def test_loopback_plain_urls_are_allowed_for_the_local_emulator():
    sdk = pcw.PureCloudWebrtcSdk("tok", api_base_url="http://127.0.0.1:9", streaming_base_url="ws://localhost:9")
    sdk.close()


def test_ca_bundle_must_exist():
    with pytest.raises(pcw.ConfigurationError) as info:
        pcw.PureCloudWebrtcSdk("tok", ca_bundle="/nonexistent/ca.pem")
    assert info.value.option == "ca_bundle"
