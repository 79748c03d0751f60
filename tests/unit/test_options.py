"""Constructor options: defaults, validation, seed spellings."""

from __future__ import annotations

import logging

import pytest

import purecloud_webrtc as pcw

LOCAL = dict(api_base_url="http://127.0.0.1:9", streaming_base_url="ws://127.0.0.1:9")


def make(*args, **kwargs):
    sdk = pcw.PureCloudWebrtcSdk(*args, **kwargs)
    sdk.close()
    return sdk


def test_defaults_follow_the_seed():
    sdk = make("tok")
    o = sdk.options
    assert (o.environment, o.session_survivability, o.auto_answer_outbound_calls, o.auto_connect_sessions,
            o.ice_servers, o.ice_transport_policy) == ("mypurecloud.com", True, True, True, None, "all")
    assert o.api_base_url == "https://api.mypurecloud.com"
    assert o.streaming_base_url == "wss://streaming.mypurecloud.com"


@pytest.mark.parametrize("kwargs, option", [
    ({}, "access_token"),
    ({"access_token": ""}, "access_token"),
    ({"access_token": 5}, "access_token"),
    ({"access_token": "t", "session_survivability": "yes"}, "session_survivability"),
    ({"access_token": "t", "auto_connect_sessions": 1}, "auto_connect_sessions"),
    ({"access_token": "t", "ice_transport_policy": "none"}, "ice_transport_policy"),
    ({"access_token": "t", "ice_servers": "stun:x"}, "ice_servers"),
    ({"access_token": "t", "ice_servers": [{"urls": "http://x"}]}, "ice_servers"),
    ({"access_token": "t", "ice_servers": [{"urls": "turn:x", "secret": 1}]}, "ice_servers"),
    ({"access_token": "t", "api_base_url": "ftp://x"}, "api_base_url"),
    ({"access_token": "t", "streaming_base_url": "http://x"}, "streaming_base_url"),
    ({"access_token": "t", "ice_host_addresses": "127.0.0.1"}, "ice_host_addresses"),
    ({"access_token": "t", "ice_host_addresses": ["localhost"]}, "ice_host_addresses"),
    ({"access_token": "t", "request_timeout": -1}, "request_timeout"),
    ({"access_token": "t", "jid_resource": "a/b"}, "jid_resource"),
    ({"access_token": "t", "autoConectSessions": True}, "autoConectSessions"),
])
def test_bad_options_are_refused_with_the_option_named(kwargs, option):
    with pytest.raises(pcw.ConfigurationError) as info:
        pcw.PureCloudWebrtcSdk(**kwargs)
    assert info.value.option == option
    assert isinstance(info.value, ValueError)


def test_seed_camel_case_options_are_accepted():
    sdk = make(accessToken="tok", sessionSurvivability=False, autoAnswerOutboundCalls=False,
               autoConnectSessions=False, iceServers=[{"urls": "stun:127.0.0.1:3478"}], iceTransportPolicy="relay",
               **LOCAL)
    o = sdk.options
    assert (o.access_token, o.session_survivability, o.auto_answer_outbound_calls, o.auto_connect_sessions,
            o.ice_transport_policy) == ("tok", False, False, False, "relay")
    assert o.ice_servers == [{"urls": "stun:127.0.0.1:3478"}]


def test_unknown_environment_warns_like_the_seed(caplog):
    with caplog.at_level(logging.WARNING, logger="purecloud_webrtc"):
        sdk = make("tok", environment="example.invalid")
    assert "not a known Genesys Cloud environment" in caplog.text
    assert sdk.options.api_base_url == "https://api.example.invalid"


def test_known_environment_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="purecloud_webrtc"):
        make("tok", environment="mypurecloud.ie")
    assert "not a known" not in caplog.text


def test_commands_after_close_raise_closed_error():
    sdk = make("tok", **LOCAL)
    for call in (sdk.initialize, lambda: sdk.accept_pending_session("x"), lambda: sdk.end_session(id="x")):
        with pytest.raises(pcw.ClosedError):
            call()
    sdk.close()  # idempotent


def test_unknown_session_ids_are_clear_errors():
    sdk = pcw.PureCloudWebrtcSdk("tok", **LOCAL)
    try:
        with pytest.raises(pcw.SessionNotFoundError, match="no active session with id 'nope'"):
            sdk.end_session(id="nope")
        with pytest.raises(pcw.SessionNotFoundError, match="conversation id 'c'"):
            sdk.end_session(conversation_id="c")
        with pytest.raises(pcw.UsageError):
            sdk.end_session()
        with pytest.raises(LookupError):
            sdk.get_session("nope")
    finally:
        sdk.close()
