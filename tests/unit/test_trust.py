"""The trust rules without a network: who may propose, the remote-candidate filter, option hygiene, bounds."""

from __future__ import annotations

import pytest

import purecloud_webrtc as pcw

from helpers import HOSTILE_CANDIDATE_HOSTS as HOSTILE

OFFLINE = dict(api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")
SECRET = "s3cr3t-token-value-0123456789"


def test_remembered_sdp_mode_sessions_and_offer_ids_are_bounded():
    sdk = pcw.PureCloudWebrtcSdk("tok", **OFFLINE)
    core = sdk._core
    limits = core.limits

    async def run() -> None:
        for i in range(3 * limits.max_sdp_mode_sessions):
            core._remember_sdp_mode(f"s-{i}")
        for i in range(3 * limits.max_remembered_offers):
            assert core._remember_offer(f"r-{i}", 0.0)
        assert not core._remember_offer(f"r-{3 * limits.max_remembered_offers - 1}", 1.0)  # a repeat

    try:
        core.call(run, 10, "bounds")
        assert len(core.sdp_mode_sids) <= limits.max_sdp_mode_sessions
        assert len(core._seen_offers) <= limits.max_remembered_offers
    finally:
        sdk.close()


def test_candidate_filter_rules():
    from purecloud_webrtc._trust import CandidateFilter

    def line(host: str, typ: str = "host", proto: str = "udp", component: int = 1, port: int = 5000) -> str:
        return f"candidate:1 {component} {proto} 1 {host} {port} typ {typ}"

    loopback = CandidateFilter("all", ["127.0.0.1"])
    for host, reason in HOSTILE.items():
        assert loopback.verdict(line(host)) == reason, host
    assert loopback.verdict(line("127.0.0.1")) is None
    assert loopback.verdict(line("127.0.0.1", port=0)) == "bad port"
    assert loopback.verdict("garbage") == "malformed"
    # Gathering on real interfaces: private and public addresses are fine, loopback is not (it would let an
    # offer probe services on this machine).
    anywhere = CandidateFilter("all", None)
    assert anywhere.verdict(line("10.1.2.3")) is None and anywhere.verdict(line("203.0.113.7")) is None
    assert anywhere.verdict(line("2001:db8::1")) is None
    assert anywhere.verdict(line("127.0.0.1")) == "loopback address (we do not gather on loopback)"
    assert anywhere.verdict(line("169.254.169.254")) == "link-local address"
    relay = CandidateFilter("relay", None)
    assert relay.verdict(line("203.0.113.7")) == "not a relay candidate (relay-only policy)"
    assert relay.verdict(line("203.0.113.7", typ="relay")) is None
    assert relay.verdict(line("203.0.113.7", typ="srflx")) == "not a relay candidate (relay-only policy)"
    assert CandidateFilter("all", ["192.0.2.1"]).verdict(line("2001:db8::1")) == "IPv6 (we gather IPv4 only)"


def test_relay_policy_applies_to_remote_candidates():
    sdk = pcw.PureCloudWebrtcSdk("tok", ice_transport_policy="relay", ice_host_addresses=["127.0.0.1"], **OFFLINE)
    try:
        verdict = sdk._core.candidate_filter().verdict
        assert verdict("candidate:1 1 udp 1 127.0.0.1 5000 typ host") == "not a relay candidate (relay-only policy)"
        assert verdict("candidate:1 1 udp 1 127.0.0.1 5000 typ relay raddr 0.0.0.0 rport 0") is None
    finally:
        sdk.close()


@pytest.mark.parametrize("jid,trusted", [
    ("webrtc-7731@gjoll.us-east-1.example-cloud.com/a61c4e20", True),
    ("webrtc-1@gjoll-use1.inindca.com/r", True),
    ("webrtc-1@gjoll.us-east-1.example-cloud.com", False),  # a gateway speaks from a full JID
    ("colleague@acmecorp.orgspan.com/gjoll", False),  # the resource is the colleague's to choose
    ("gjoll@acmecorp.orgspan.com/x", False),
    ("x@gjoll.acmecorp.orgspan.com/r", False),  # inside our organisation's domain
    ("x@gjoll.orgspan.com/r", False),  # an organisation named "gjoll"
    ("acd-1@acmecorp.orgspan.com/r", False),
    ("room@conference.acmecorp.orgspan.com/r", False),
    ("", False),
])
def test_default_trust_rule(jid, trusted):
    from purecloud_webrtc._trust import TrustedPeers

    assert TrustedPeers(None).allows(jid, "acmecorp.orgspan.com") is trusted


def test_trusted_peers_option_forms():
    from purecloud_webrtc._trust import TrustedPeers

    assert TrustedPeers(r"gateway@test\.local/.*").allows("GATEWAY@test.local/gjoll-1", "test.local")
    assert not TrustedPeers(r"gateway@test\.local/.*").allows("gateway@test.local.evil/x", "test.local")
    assert TrustedPeers(lambda jid: jid.endswith("/ok")).allows("a@b/ok", None)
    assert not TrustedPeers(lambda jid: 1 / 0).allows("a@b/ok", None)  # a failing callable trusts nobody
    with pytest.raises(pcw.ConfigurationError) as info:
        pcw.PureCloudWebrtcSdk("tok", trusted_peers="(", api_base_url="http://127.0.0.1:9",
                               streaming_base_url="ws://127.0.0.1:9")
    assert info.value.option == "trusted_peers"


@pytest.mark.parametrize("bad", [SECRET + "\n", SECRET + "\r\n", " " + SECRET, SECRET[:5] + " " + SECRET[5:],
                                 SECRET + "\t", SECRET + "\x00", SECRET + "\x7f"])
def test_token_with_whitespace_or_control_characters_is_refused(bad):
    with pytest.raises(pcw.ConfigurationError) as info:
        pcw.PureCloudWebrtcSdk(bad, api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")
    assert info.value.option == "access_token"
    assert SECRET not in str(info.value) and SECRET[:5] not in str(info.value) and "newline" in str(info.value)
    sdk = pcw.PureCloudWebrtcSdk(SECRET, api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")
    try:
        with pytest.raises(pcw.ConfigurationError) as info:
            sdk.set_access_token(bad)
        assert SECRET not in str(info.value)
        assert sdk.api.access_token == SECRET  # the good token is kept
    finally:
        sdk.close()


@pytest.mark.parametrize("environment", [
    "evil.example/x?", "evil.example#", "user@evil.example", "mypurecloud.com:8443", "evil.example\\x",
    "my purecloud.com", "mypurecloud.com/", "https://mypurecloud.com", "-bad.example", "a..b",
])
def test_environment_must_be_a_bare_host_name(environment):
    with pytest.raises(pcw.ConfigurationError) as info:
        pcw.PureCloudWebrtcSdk("tok", environment=environment)
    assert info.value.option == "environment"


def test_valid_environments_build_the_service_urls():
    sdk = pcw.PureCloudWebrtcSdk("tok", environment="usw2.pure.cloud")
    try:
        assert sdk.options.api_base_url == "https://api.usw2.pure.cloud"
        assert sdk.options.streaming_base_url == "wss://streaming.usw2.pure.cloud"
    finally:
        sdk.close()


def test_plain_streaming_url_to_another_host_is_refused():
    base = dict(api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")
    with pytest.raises(pcw.ConfigurationError) as info:
        pcw.PureCloudWebrtcSdk("tok", streaming_url="ws://xmpp.example.com/xmpp-websocket", **base)
    assert info.value.option == "streaming_url" and "allow_insecure" in str(info.value)
    for ok in (dict(streaming_url="ws://xmpp.example.com/ws", allow_insecure=True),
               dict(streaming_url="wss://xmpp.example.com/ws"), dict(streaming_url="ws://127.0.0.1:5280/ws")):
        pcw.PureCloudWebrtcSdk("tok", **base, **ok).close()  # type: ignore[arg-type]

