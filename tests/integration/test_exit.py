"""Leaving without close(): the interpreter's exit ends the calls and stops what would keep it alive."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import ROOT, wait_until

SDK_SCRIPT = textwrap.dedent("""
    import sys, time
    import logging
    import purecloud_webrtc as pcw
    from purecloud_webrtc.media import NullSink, SilenceSource
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("aioice").setLevel(logging.INFO)
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
    print("in call" if started.value.connection_state == "connected" else
          f"not connected: {started.value.connection_state} {started.value.end_reason}", flush=True)
    sys.stdin.readline()  # the test says when the far end is connected too (its DTLS may finish later)
    # ...and the script ends here, without close()
""")


def test_exit_without_close_ends_the_call_at_the_far_end(emulator):
    proc = subprocess.Popen([sys.executable, "-c", SDK_SCRIPT, emulator.access_token, emulator.api_base_url,
                             emulator.streaming_base_url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.poll() is not None else ""
        call = emulator.inbound_call(auto_answer=True)
        line = proc.stdout.readline().strip()
        if line != "in call":
            proc.wait(30)
            raise AssertionError(f"{line}; far end {call.state} {call.states}\n{proc.stderr.read()[-6000:]}")
        call.wait_state("connected", timeout=40)
        assert proc.stdin is not None
        proc.stdin.write("exit\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
        # The far end did not stay connected: the exit hung up.
        wait_until(lambda: call.state == "ended", 10, "the far end to see the call end")
        assert call.terminated_by_client
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


def test_a_script_that_never_stops_its_emulator_still_exits():
    code = ("from purecloud_webrtc.emulator import Emulator\n"
            "emu = Emulator().start()\n"
            "call = emu.inbound_call()\n"
            "print('started', flush=True)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "started" in proc.stdout, proc.stderr
