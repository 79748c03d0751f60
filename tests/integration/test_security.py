"""Trust boundaries: only the service's gateway can ring, talk to or end a call; peers are bounded.

Each attack runs while a legitimate call is up (far end 440 Hz, SDK 880 Hz), in both negotiation
modes, and each test proves two things: the attack failed, and the legitimate call still carries
audio both ways (checked by frequency).  The attacker is the emulator's :class:`Intruder`: a
colleague of the same organisation, or any JID we name.
"""

from __future__ import annotations

import gc
import os
import stat
import uuid
from typing import Any, Iterator, List, NamedTuple

import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.emulator import Emulator

from conftest import SdkFactory
from helpers import HOSTILE_CANDIDATE_HOSTS as HOSTILE
from helpers import answer_call, wait_until

MODES = ["jingle", "sdp-over-xmpp"]


class Env(NamedTuple):
    emu: Any
    sdk: Any
    session: Any
    call: Any
    mode: str
    events: Any

    @property
    def rpc(self) -> bool:
        return self.mode != "jingle"


@pytest.fixture(params=MODES)
def env(request) -> Iterator[Env]:
    marker = request.node.get_closest_marker("sdk_options")
    with Emulator(sdp_over_xmpp=request.param != "jingle") as emu:
        factory = SdkFactory(emu)
        try:
            sdk = factory(**(marker.kwargs if marker else {}))
            session, call = answer_call(sdk, emu)
            events = sdk.event_queue()
            yield Env(emu, sdk, session, call, request.param, events)
            events.close()
        finally:
            factory.close()
        assert not factory.callback_errors


def still_both_ways(env: Env) -> None:
    """The legitimate call goes on: the SDK hears 440 Hz and the far end hears 880 Hz, freshly."""
    session, call = env.session, env.call
    frames, heard = session.frames_received, call.seconds_heard()
    # A second of fresh audio both ways after the attack: the frequencies below are measured on it alone (a
    # flood may have cost the jitter buffer some concealment while it was handled, which is not what is
    # checked).  The far end's buffer keeps its latest 20 s.
    wait_until(lambda: session.frames_received >= frames + 60 and call.seconds_heard() >= min(heard + 1.0, 19.5),
               20, "fresh audio both ways")
    assert env.sdk.connected and not session.ended and session.state == "active"
    assert abs(session.sink.dominant_frequency(0.4) - 440.0) <= 5
    assert abs(call.heard_frequency(0.4) - 880.0) <= 5
    assert [s.id for s in env.sdk.sessions] == [session.id]


def refusals(env: Env) -> List[Any]:
    return [e for e in env.events.drain() if e.name == "trace" and (e.args[2] or {}).get("refused")]


def wait_refused(env: Env, count: int = 1, timeout: float = 10.0) -> List[Any]:
    seen: List[Any] = []
    wait_until(lambda: seen.extend(refusals(env)) or len(seen) >= count, timeout, f"{count} refusal trace(s)")
    return seen


def gateway_like(emu: Any) -> str:
    """A JID the default trust rule accepts as a gateway, but not the call's own peer."""
    return f"webrtc-9999@gjoll.us-east-1.emulator.local/{uuid.uuid4()}"


# -- 1. eavesdropping by auto-answer ---------------------------------------------------------------

def test_colleague_auto_answer_proposal_is_never_proceeded(env):
    colleague = env.emu.intruder()
    impostors = [
        colleague,  # a colleague from their own client
        env.emu.intruder(f"{colleague.jid.split('/')[0]}/gjoll"),  # the official client's regex would trust this
        env.emu.intruder(f"acd-{uuid.uuid4().hex[:8]}@{env.emu.domain}/r"),
        env.emu.intruder(f"screenrecording-1@{env.emu.domain}/r"),
        env.emu.intruder(f"room-1@conference.{env.emu.domain}/r"),
        env.emu.intruder(f"gjoll-evil@gjoll.orgspan.com/r"),  # an organisation named "gjoll" beside ours
    ]
    sids = [i.propose(auto_answer=True, sdp_over_xmpp=env.rpc) for i in impostors]
    seen = wait_refused(env, len(impostors))
    assert {e.args[2]["id"] for e in seen} == set(sids)
    # ...and the session-initiate that would follow is refused too: no microphone for the eavesdropper.
    reply = colleague.wait_for_reply(colleague.session_initiate(sids[0]))
    assert 'type="error"' in reply and "<unknown-session" in reply
    for impostor in impostors:
        assert not any("<proceed" in text for text in impostor.received), impostor.received
    assert env.sdk.pending_sessions == []
    assert not [e for e in env.events.drain() if e.name in ("pendingSession", "sessionStarted")]
    still_both_ways(env)
    assert all(state == "new" for state in colleague.ice_states())


def test_session_initiate_without_a_proceed_is_refused(env):
    for attacker in (env.emu.intruder(), env.emu.intruder(gateway_like(env.emu))):
        sid = str(uuid.uuid4())
        reply = attacker.wait_for_reply(attacker.session_initiate(sid))
        assert 'type="error"' in reply and "<item-not-found" in reply and "<unknown-session" in reply
        # The same through JSON-RPC: an offer nobody proceeded.
        reply = attacker.wait_for_reply(attacker.rpc_offer(sid))
        assert 'type="error"' in reply and "<unknown-session" in reply
        assert not any("session-accept" in t or '"answer"' in t for t in attacker.received)
    still_both_ways(env)


def test_session_initiate_for_a_pending_but_unanswered_proposal_is_refused(env):
    gateway = env.emu.intruder(gateway_like(env.emu))
    with env.sdk.expect_event("pendingSession") as ev:
        sid = gateway.propose(auto_answer=False, sdp_over_xmpp=env.rpc)
    assert ev.value.id == sid
    reply = gateway.wait_for_reply(gateway.rpc_offer(sid) if env.rpc else gateway.session_initiate(sid))
    assert 'type="error"' in reply and "<unknown-session" in reply
    assert [p.id for p in env.sdk.pending_sessions] == [sid]  # still ringing, still the user's choice
    still_both_ways(env)


# -- 2. a stranger inside a live session ------------------------------------------------------------

def strangers(env: Env) -> List[Any]:
    return [env.emu.intruder(), env.emu.intruder(gateway_like(env.emu))]


@pytest.mark.parametrize("wire", ["jingle", "rpc"])
def test_terminate_from_a_stranger_changes_nothing(env, wire):
    for stranger in strangers(env):
        reply = stranger.wait_for_reply(stranger.terminate(env.session.id, mode=wire))
        assert 'type="error"' in reply and "<unknown-session" in reply
    still_both_ways(env)


def test_reinvite_or_offer_from_a_stranger_does_not_replace_the_call(env):
    for stranger in strangers(env):
        for reinvite in (False, True):
            reply = stranger.wait_for_reply(stranger.rpc_offer(env.session.id, reinvite=reinvite))
            assert 'type="error"' in reply and "<unknown-session" in reply
        reply = stranger.wait_for_reply(stranger.session_initiate(env.session.id))
        assert 'type="error"' in reply and "<unknown-session" in reply
        assert not any('"answer"' in t or "session-accept" in t for t in stranger.received)
        assert all(state == "new" for state in stranger.ice_states())
    assert env.sdk.get_session(env.session.id) is env.session
    still_both_ways(env)


@pytest.mark.parametrize("wire", ["jingle", "rpc"])
def test_candidates_from_a_stranger_are_refused(env, wire):
    before = env.session.remote_candidates
    for stranger in strangers(env):
        ids = stranger.candidates(env.session.id, ["candidate:1 1 udp 2130706431 127.0.0.1 9 typ host"], mode=wire)
        reply = stranger.wait_for_reply(ids[0])
        assert 'type="error"' in reply and "<unknown-session" in reply
    assert env.session.remote_candidates == before
    still_both_ways(env)


# -- 3. bounds: what a peer can make us hold --------------------------------------------------------

def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_a_thousand_unsolicited_offers_hold_no_socket_and_no_memory(env):
    attacker = env.emu.intruder(gateway_like(env.emu))
    sdp = attacker.offer_sdp()

    def flood(n: int) -> List[str]:
        ids = []
        for _ in range(n):
            sid = str(uuid.uuid4())
            ids.append(attacker.rpc_offer(sid, sdp=sdp) if env.rpc or len(ids) % 2 else
                       attacker.session_initiate(sid, sdp=sdp))
        return ids

    attacker.wait_for_reply(flood(50)[-1])  # warm up allocators and logs
    gc.collect()
    fds, rss = _fds(), _rss_kib()
    ids = flood(1000)
    attacker.wait_for_reply(ids[-1], timeout=30)
    gc.collect()
    assert _fds() - fds <= 3, "file descriptors grew"
    assert _rss_kib() - rss < 16 * 1024, "RSS grew by more than 16 MiB"
    core = env.sdk._core
    assert len(core.sessions) == 1 and len(core.sdp_mode_sids) <= core.limits.max_sdp_mode_sessions
    assert not core._early_candidates and sum(1 for t in attacker.received if 'type="error"' in t) >= 1000
    still_both_ways(env)


@pytest.mark.parametrize("wire", ["jingle", "rpc"])
def test_two_thousand_remote_candidates_are_bounded(env, wire):
    # The call's own gateway (or whoever speaks as it) floods the live session with candidates.
    gateway = env.emu.intruder(env.call.gateway_jid)
    before = env.session.remote_candidates
    flood = [f"candidate:{i} 1 udp 2130706431 127.0.0.1 {20000 + i} typ host" for i in range(2000)]
    with env.sdk.expect_event("error", timeout=30,
                              predicate=lambda error, details: "max_remote_candidates" in str(error)) as ev:
        ids = gateway.candidates(env.session.id, flood, mode=wire)
    assert isinstance(ev.value, pcw.SignalingError)
    limit = env.sdk.options.limits.max_remote_candidates
    total = before["accepted"] + before["dropped"] + 2000
    wait_until(lambda: env.session.remote_candidates["accepted"] + env.session.remote_candidates["dropped"]
               >= total, 60, "every candidate counted")
    counts = env.session.remote_candidates
    assert counts["accepted"] == limit
    assert counts["reasons"]["over Limits.max_remote_candidates"] >= 2000 - limit
    stats = env.session.get_stats()
    assert stats.remote_candidates_accepted == limit and stats.remote_candidates_dropped >= 2000 - limit
    still_both_ways(env)


def test_pending_proposals_are_bounded(env):
    gateway = env.emu.intruder(gateway_like(env.emu))
    limit = env.sdk.options.limits.max_pending_sessions
    with env.sdk.expect_event("error", timeout=20,
                              predicate=lambda error, details: "max_pending_sessions" in str(error)):
        for _ in range(limit + 5):
            gateway.propose(auto_answer=False, sdp_over_xmpp=env.rpc)
    wait_until(lambda: len(env.sdk.pending_sessions) == limit, 10, "pending sessions at the limit")
    assert not any("<proceed" in t for t in gateway.received)
    still_both_ways(env)


def test_early_candidates_before_an_offer_are_bounded():
    # SDP over XMPP: candidates may precede the offer (kept for the proceeded session), but not without end.
    with Emulator(sdp_over_xmpp=True) as emu:
        factory = SdkFactory(emu)
        try:
            sdk = factory(auto_answer_outbound_calls=True)
            gateway = emu.intruder(gateway_like(emu))
            with sdk.expect_event("pendingSession"):
                sid = gateway.propose(auto_answer=True, sdp_over_xmpp=True)
            wait_until(lambda: any("<proceed" in t for t in gateway.received), 10, "the proceed")
            limit = sdk.options.limits.max_early_candidates
            with sdk.expect_event("error", timeout=20,
                                  predicate=lambda error, details: "max_early_candidates" in str(error)):
                gateway.candidates(sid, [f"candidate:{i} 1 udp 1 127.0.0.1 {30000 + i} typ host"
                                         for i in range(limit + 40)], mode="rpc")
            assert len([f for _, f in sdk._core._early_candidates[sid] if f]) == limit
        finally:
            factory.close()


@pytest.mark.sdk_options(limits=pcw.Limits(max_sessions=1))  # the legitimate call is the one
def test_live_sessions_are_bounded(env):
    gateway = env.emu.intruder(gateway_like(env.emu))
    with env.sdk.expect_event("error", timeout=10,
                              predicate=lambda error, details: "max_sessions" in str(error)):
        gateway.propose(auto_answer=True, sdp_over_xmpp=env.rpc)
    assert env.sdk.pending_sessions == [] and not any("<proceed" in t for t in gateway.received)
    still_both_ways(env)


# -- 4. remote candidate filter (recorded, never sent) ----------------------------------------------


def hostile_lines(port: int = 40000) -> List[str]:
    lines = [f"candidate:h{i} 1 udp 2130706431 {host} {port + i} typ host" for i, host in enumerate(HOSTILE)]
    lines.append(f"candidate:t1 1 tcp 1518280447 127.0.0.1 {port + 99} typ host tcptype passive")
    lines.append(f"candidate:c2 2 udp 2130706430 127.0.0.1 {port + 98} typ host")
    return lines


@pytest.fixture
def ice_recorder(monkeypatch) -> Iterator[List[Any]]:
    """Record every remote candidate aioice is given and every address it would send STUN to.

    Sends to anything but 127.0.0.1 are recorded and swallowed, so even a broken filter never puts a packet
    on the wire toward a hostile address.
    """
    import aioice.ice

    seen: List[Any] = []
    original_add = aioice.ice.Connection.add_remote_candidate
    original_send = aioice.ice.StunProtocol.send_stun

    async def add_remote_candidate(self, candidate):  # type: ignore[no-untyped-def]
        if candidate is not None:
            seen.append(("candidate", candidate.host, candidate.port))
        return await original_add(self, candidate)

    def send_stun(self, message, addr):  # type: ignore[no-untyped-def]
        seen.append(("send", addr[0], addr[1]))
        if addr[0] == "127.0.0.1":
            return original_send(self, message, addr)

    monkeypatch.setattr(aioice.ice.Connection, "add_remote_candidate", add_remote_candidate)
    monkeypatch.setattr(aioice.ice.StunProtocol, "send_stun", send_stun)
    yield seen


def _assert_only_loopback(seen: List[Any]) -> None:
    hosts = {host for _, host, _ in seen}
    assert hosts <= {"127.0.0.1"}, f"the ICE agent was given or sent to {sorted(hosts - {'127.0.0.1'})}"


@pytest.mark.parametrize("wire", ["jingle", "rpc"])
def test_hostile_trickled_candidates_are_dropped_and_counted(env, ice_recorder, wire):
    gateway = env.emu.intruder(env.call.gateway_jid)
    before = env.session.remote_candidates
    lines = hostile_lines()
    gateway.candidates(env.session.id, lines, mode=wire, per_stanza=len(lines))
    wait_until(lambda: env.session.remote_candidates["dropped"] - before["dropped"] == len(lines), 10,
               "every hostile candidate counted")
    reasons = env.session.remote_candidates["reasons"]
    for expected in set(HOSTILE.values()) | {"not udp", "rtcp component (rtcp-mux is always used)"}:
        assert reasons.get(expected), f"no candidate dropped as {expected!r}: {reasons}"
    assert env.session.remote_candidates["accepted"] == before["accepted"]
    _assert_only_loopback(ice_recorder)
    still_both_ways(env)
    _assert_only_loopback(ice_recorder)


def test_hostile_inline_candidates_in_an_offer_are_dropped(ice_recorder):
    with Emulator() as emu:
        factory = SdkFactory(emu)
        try:
            sdk = factory()
            gateway = emu.intruder(gateway_like(emu))
            sid = gateway.propose(auto_answer=True)
            wait_until(lambda: any("<proceed" in t for t in gateway.received), 10, "the proceed")
            sdp = gateway.offer_sdp()
            head, sep, tail = sdp.partition("a=candidate:")
            extra = "".join(f"a={line}\r\n" for line in hostile_lines(41000))
            with sdk.expect_event("sessionStarted") as ev:
                gateway.wait_for_reply(gateway.session_initiate(sid, sdp=head + extra + sep + tail))
            session = ev.value
            wait_until(lambda: session.remote_candidates["dropped"] == len(hostile_lines()), 10, "counted")
            assert session.remote_candidates["accepted"] >= 1  # the offer's own loopback candidate
            wait_until(lambda: any(kind == "send" for kind, _, _ in ice_recorder), 10, "ICE checks")
            _assert_only_loopback(ice_recorder)
        finally:
            factory.close()


# -- 5. the trust rule ---------------------------------------------------------------------------


# -- 6. token and URL hygiene --------------------------------------------------------------------

SECRET = "s3cr3t-token-value-0123456789"


def test_token_never_in_repr_or_exceptions(emulator):
    turn = [{"urls": "turn:127.0.0.1:3478", "username": "u", "credential": "turn-secret-xyz"}]
    sdk = pcw.PureCloudWebrtcSdk(SECRET, api_base_url=emulator.api_base_url,
                                 streaming_base_url=emulator.streaming_base_url, ice_servers=turn)
    try:
        texts = [repr(sdk), str(sdk), repr(sdk.options), str(sdk.options), repr(sdk.api)]
        with pytest.raises(pcw.AuthenticationError) as info:
            sdk.initialize(timeout=10)  # the emulator does not know this token
        error: BaseException = info.value
        while error is not None:
            texts += [str(error), repr(error), repr(vars(error)), repr(error.args)]
            error = error.__cause__ or error.__context__  # type: ignore[assignment]
        for text in texts:
            assert SECRET not in text and "turn-secret-xyz" not in text, text
        assert "access_token=***" in repr(sdk.options)
    finally:
        sdk.close()


# -- 7. files we write are private ----------------------------------------------------------------

@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # a permissive umask: only our explicit mode can keep the file private
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Any) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_recording_files_are_private(emulator, make_sdk, tmp_path, open_umask):
    from purecloud_webrtc.media import WavRecorderSink

    sink = WavRecorderSink(tmp_path / "sink.wav")
    sink.close()
    assert _mode(tmp_path / "sink.wav") == 0o600
    shared = tmp_path / "shared.wav"
    shared.write_bytes(b"")
    os.chmod(shared, 0o666)  # an existing file is made private too
    WavRecorderSink(shared).close()
    assert _mode(shared) == 0o600
    WavRecorderSink(tmp_path / "group.wav", mode=0o640).close()
    assert _mode(tmp_path / "group.wav") == 0o640
    sdk = make_sdk()
    session, call = answer_call(sdk, emulator)
    session.start_recording(tmp_path / "call.wav")
    assert _mode(tmp_path / "call.wav") == 0o600
    session.stop_recording()
    session.start_recording(tmp_path / "call-shared.wav", mode=0o644)
    assert _mode(tmp_path / "call-shared.wav") == 0o644
    with pytest.raises(ValueError):
        WavRecorderSink(tmp_path / "x.wav", mode=0o7777)
