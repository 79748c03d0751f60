"""A REPL walkthrough: run it, or paste its lines into ``python -i`` one by one.

Pull-style events suit a REPL: ``q.get()`` shows what happened, nothing runs behind
your back except the SDK's own threads.

    python -i samples/repl_walkthrough.py
"""

from purecloud_webrtc import PureCloudWebrtcSdk
from purecloud_webrtc.emulator import Emulator
from purecloud_webrtc.media import BufferSink, ToneSource

emu = Emulator().start()                       # a local stand-in for Genesys Cloud
sdk = PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                         streaming_base_url=emu.streaming_base_url, ice_host_addresses=["127.0.0.1"])
q = sdk.event_queue()                          # every event, pulled when you like
sdk.initialize()
print(q.get(timeout=5))                        # Event(name='connected', ...)

call = emu.inbound_call(tone_hz=440)           # ring ring
pending = next(e for e in iter(lambda: q.get(timeout=5), None) if e.name == "pendingSession").value
print(pending)
with sdk.expect_event("sessionStarted", timeout=10) as started:   # race-free: listens before accepting
    sdk.accept_pending_session(pending.id, source=ToneSource(880), sink=BufferSink())
session = started.value
call.wait_state("connected")
call.wait_for_audio(min_seconds=1)
print("we hear", round(session.sink.dominant_frequency()), "Hz; they hear", round(call.heard_frequency()), "Hz")
sdk.end_session(id=session.id)
print([e.name for e in q.drain()])
sdk.close()
emu.stop()
