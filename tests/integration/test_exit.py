"""Leaving without close(): the interpreter's exit ends the calls and stops what would keep it alive."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import ROOT, wait_until

SDK_SCRIPT = textwrap.dedent("""
    import sys, time
    import purecloud_webrtc as pcw
    from purecloud_webrtc.media import NullSink, SilenceSource
    sdk = pcw.PureCloudWebrtcSdk(sys.argv[1], api_base_url=sys.argv[2], streaming_base_url=sys.argv[3],
                                 ice_host_addresses=["127.0.0.1"], default_source=SilenceSource(),
                                 default_sink=NullSink())
    sdk.initialize(timeout=15)
    print("ready", flush=True)
    with sdk.expect_event("sessionStarted", timeout=40) as started:
        pass
    deadline = time.monotonic() + 40  # generous: a CPU hog on both cores slows the DTLS handshake
    while started.value.connection_state != "connected" and time.monotonic() < deadline:
        time.sleep(0.05)
    print("in call", flush=True)
    # ...and the script ends here, without close()
""")


def test_exit_without_close_ends_the_call_at_the_far_end(emulator):
    proc = subprocess.Popen([sys.executable, "-c", SDK_SCRIPT, emulator.access_token, emulator.api_base_url,
                             emulator.streaming_base_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.poll() is not None else ""
        call = emulator.inbound_call(auto_answer=True)
        assert proc.stdout.readline().strip() == "in call"
        call.wait_state("connected", timeout=40)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        # The far end did not stay connected: the exit hung up.
        wait_until(lambda: call.state == "ended", 10, "the far end to see the call end")
        assert call.terminated_by_client
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_a_script_that_never_stops_its_emulator_still_exits():
    code = ("from purecloud_webrtc.emulator import Emulator\n"
            "emu = Emulator().start()\n"
            "call = emu.inbound_call()\n"
            "print('started', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "started" in proc.stdout, proc.stderr
