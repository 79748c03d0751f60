"""One process, several Genesys users: one SDK per user, each answering its own calls.

    python samples/multi_agent.py --agents 3                  # against the emulator (one call per agent)
    python samples/multi_agent.py --token T1 --token T2 ...   # against your org: one token per agent

Each agent answers with its own tone (500 Hz, 600 Hz, ...) and records what its caller plays, so the
output shows that calls never cross between agents.  An SDK is a full softphone client of one user:
it has its own threads, its own streaming connection and its own calls; SDKs share nothing, so they are
created and closed independently (here, all in one ``contextlib.ExitStack``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
from typing import Any, Dict, List, Optional

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, ToneSource


class Agent:
    """One user's SDK and the calls it answered; callbacks run on this SDK's own events thread."""

    def __init__(self, number: int, sdk: pcw.PureCloudWebrtcSdk) -> None:
        self.number = number
        self.sdk = sdk
        self.tone_hz = 400.0 + 100.0 * number
        self.sessions: List[pcw.Session] = []
        self.answered = threading.Event()
        sdk.on("pendingSession", self.ringing)
        sdk.on("sessionStarted", self.started)

    def ringing(self, pending: pcw.PendingSession) -> None:
        print(f"agent {self.number}: ringing from {pending.address}", flush=True)
        self.sdk.accept_pending_session(pending.id, source=ToneSource(self.tone_hz), sink=BufferSink())

    def started(self, session: pcw.Session) -> None:
        self.sessions.append(session)
        self.answered.set()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=3, help="how many emulated agents (without --token)")
    p.add_argument("--token", action="append", default=[], help="one access token per agent (a real org)")
    p.add_argument("--environment", default=os.environ.get("GENESYS_ENVIRONMENT", "mypurecloud.com"))
    p.add_argument("--seconds", type=float, default=1.5, help="how long each call lasts")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.ExitStack() as stack:
        emulator: Optional[Any] = None
        if args.token:
            options: List[Dict[str, Any]] = [dict(access_token=t, environment=args.environment) for t in args.token]
        else:
            from purecloud_webrtc.emulator import Emulator

            emulator = stack.enter_context(Emulator())
            users = [emulator.user] + [emulator.add_user(f"Agent {n}") for n in range(2, args.agents + 1)]
            options = [dict(access_token=u.access_token, api_base_url=emulator.api_base_url,
                            streaming_base_url=emulator.streaming_base_url, ice_host_addresses=["127.0.0.1"])
                       for u in users]
        agents = []
        for number, opts in enumerate(options, start=1):
            sdk = stack.enter_context(pcw.PureCloudWebrtcSdk(**opts))
            sdk.initialize()
            agents.append(Agent(number, sdk))
            print(f"agent {number}: connected as {sdk.user['name']} ({sdk.jid})", flush=True)
        if emulator is None:
            print("waiting for calls; Ctrl-C to stop")
            threading.Event().wait()
        calls = [emulator.inbound_call(user=users[i], tone_hz=1000.0 + 100.0 * i) for i in range(len(agents))]
        for agent, call in zip(agents, calls):
            if not agent.answered.wait(20):
                raise SystemExit(f"agent {agent.number} did not answer")
            call.wait_for_audio(timeout=15, min_seconds=args.seconds)
        for agent, call in zip(agents, calls):
            session = agent.sessions[0]
            session.sink.wait_for_duration(1.0, timeout=15)
            print(f"agent {agent.number}: conversation {session.conversation_id}: we hear "
                  f"{session.sink.dominant_frequency():.0f} Hz (caller played {call.tone_hz:.0f}), caller hears "
                  f"{call.heard_frequency():.0f} Hz (we played {agent.tone_hz:.0f})", flush=True)
            with agent.sdk.expect_event("sessionEnded", timeout=15):
                call.hangup()
        print(f"{len(agents)} agents, {len(calls)} calls, all answered by their own agent")


if __name__ == "__main__":
    main()
