"""Capture the SDP corpus of ``tests/data/browser_sdp`` from real browsers (run by hand, not in CI).

    apt-get install chromium firefox-esr      # Debian's builds; nothing is downloaded by this script
    .venv/bin/python scripts/browser_sdp/capture.py [--out tests/data/browser_sdp]   # as root

It runs itself in a new network namespace whose only interface is ``lo`` (``unshare -n``, as
``scripts/netns-run`` does), so every candidate is a loopback address and no packet leaves.

What it does:

1. Writes offers made by aiortc (the version installed here) to ``aiortc/``. The libwebrtc offers are
   the committed ``tests/data/sdp_interop/libwebrtc_offer_*.sdp`` and the Genesys-style gateway offer
   is ``tests/data/sdp/gateway_offer.sdp``.
2. Serves ``capture.html`` on 127.0.0.1 and opens it in headless Chromium, then Firefox ESR, with fake
   microphone and camera. Each browser makes its offers (audio send/recv/only, inactive, two audio
   tracks, audio+video, audio+data channel, PCMU/narrowband/G.722 preferred, BUNDLE max-compat and
   max-bundle; re-offers on a connected call: ICE restart, adding video, hold, removing the track,
   stopping the video transceiver),
   each as created (``trickle``) and after gathering (``gathered``), and answers the foreign offers,
   with a microphone (``mic``), without one (``nomic``) and as a softphone does
   (``softphone``: the first audio section with a microphone, every other section stopped, so rejected).
3. Opens each browser again to answer every browser's initial offers (both browsers, both directions).
4. Writes ``index.json``: one entry per file with stack, version, scenario, role, form, and for an
   answer the file of the offer it answers. Failures (an offer a browser refused) are listed too.

Refresh the corpus when a browser changes: run it, review ``git diff --stat tests/data/browser_sdp``,
run ``pytest tests/unit/test_browser_corpus.py`` and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Dict, List, Optional

ROOT = Path(__file__).resolve().parents[2]
PAGE = Path(__file__).with_name("capture.html")
INITIAL_SCENARIOS = ("audio", "audio-sendonly", "audio-recvonly", "audio-inactive", "two-audio", "audio-video",
                     "audio-data", "pcmu-preferred", "narrowband-only", "g722-preferred", "max-compat", "max-bundle")
FOREIGN = {  # corpus-relative file -> (stack, scenario); the libwebrtc and gateway ones are committed elsewhere
    "../sdp_interop/libwebrtc_offer_audio.sdp": ("libwebrtc", "audio"),
    "../sdp_interop/libwebrtc_offer_audio_video_bundle.sdp": ("libwebrtc", "audio-video"),
    "../sdp_interop/libwebrtc_offer_sendonly.sdp": ("libwebrtc", "audio-sendonly"),
    "../sdp_interop/libwebrtc_offer_recvonly.sdp": ("libwebrtc", "audio-recvonly"),
    "../sdp/gateway_offer.sdp": ("gateway", "audio"),
    "../sdp/gateway_offer_sendonly_ptime.sdp": ("gateway", "audio-sendonly"),
}

FIREFOX_PREFS = {
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.force_interface": "lo",
    "media.peerconnection.ice.default_address_only": False,
    "media.peerconnection.ice.link_local": True,
    "media.peerconnection.mtransport_process": False,
    "network.process.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "toolkit.telemetry.enabled": False,
    "app.update.enabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
}


def require_isolation() -> None:
    """Re-run this script in a new network namespace whose only interface is ``lo``.

    Firefox gathers no candidate at all without a default route (it looks for its "default address"
    first), so the namespace routes everything to ``lo`` with source 127.0.0.1: a packet for any other
    address has nowhere to go but this namespace's loopback.
    """
    import socket

    interfaces = sorted(name for _, name in socket.if_nameindex())  # this network namespace's, unlike /sys
    if interfaces == ["lo"] and os.environ.get("CAPTURE_ISOLATED") == "1":
        return
    if os.environ.get("CAPTURE_ISOLATED") == "1":
        sys.exit(f"refusing to run with network interfaces {interfaces}")
    setup = "ip link set lo up && ip route add default dev lo src 127.0.0.1 && exec \"$@\""
    os.environ["CAPTURE_ISOLATED"] = "1"
    os.execvp("unshare", ["unshare", "-n", "--", "sh", "-c", setup, "capture", sys.executable, *sys.argv])


def version_of(command: List[str]) -> str:
    out = subprocess.run(command, capture_output=True, text=True, timeout=60).stdout
    found = re.search(r"(\d+(?:\.\d+)+\S*)", out)
    return found.group(1) if found else out.strip()


async def aiortc_offers(out: Path) -> Dict[str, tuple]:
    """aiortc's offers for the scenarios it can make; returns corpus-relative file -> (stack, scenario)."""
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack

    scenarios = {
        "audio": lambda pc: pc.addTrack(AudioStreamTrack()),
        "audio-sendonly": lambda pc: pc.addTransceiver(AudioStreamTrack(), direction="sendonly"),
        "audio-recvonly": lambda pc: pc.addTransceiver("audio", direction="recvonly"),
        "two-audio": lambda pc: (pc.addTrack(AudioStreamTrack()), pc.addTrack(AudioStreamTrack())),
        "audio-video": lambda pc: (pc.addTrack(AudioStreamTrack()), pc.addTrack(VideoStreamTrack())),
        "audio-data": lambda pc: (pc.addTrack(AudioStreamTrack()), pc.createDataChannel("chat")),
    }
    made = {}
    (out / "aiortc").mkdir(parents=True, exist_ok=True)
    for scenario, setup in scenarios.items():
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        setup(pc)
        await pc.setLocalDescription(await pc.createOffer())
        name = f"aiortc/{scenario}.gathered.offer.sdp"
        (out / name).write_text(pc.localDescription.sdp, newline="")
        made[name] = ("aiortc", scenario)
        await pc.close()
    return made


class Capture:
    """One browser run: serves the page and its plan, stores what the page posts."""

    def __init__(self, out: Path, browser: str, version: str, plan: dict) -> None:
        self.out, self.browser, self.version, self.plan = out, browser, version, plan
        self.entries: List[dict] = []
        self.failures: List[dict] = []
        self.user_agent = ""
        self.done = threading.Event()

    def handler(self) -> type:
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, body: bytes, kind: str = "application/json") -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/plan":
                    self._reply(json.dumps(capture.plan).encode())
                elif self.path == "/favicon.ico":
                    self.send_error(404)
                else:
                    self._reply(PAGE.read_bytes(), "text/html; charset=utf-8")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                capture.receive(self.path, body)
                self._reply(b"{}")

        return Handler

    def receive(self, path: str, body: dict) -> None:
        if path == "/result":
            name = f"{self.browser}/{body.pop('name')}.sdp"
            sdp = body.pop("sdp")
            (self.out / name).parent.mkdir(parents=True, exist_ok=True)
            (self.out / name).write_text(sdp, newline="")
            answers = body.pop("answers", None)
            if answers and answers.startswith("own:"):
                answers = f"{self.browser}/{answers[4:]}.sdp"
            entry = {"file": name, "stack": self.browser, "version": self.version, **body}
            if answers:
                entry["answers"] = answers
            self.entries.append(entry)
        elif path == "/failure":
            self.failures.append({"stack": self.browser, "version": self.version, **body})
        elif path == "/browser":
            self.user_agent = body.get("user_agent", "")
        elif path == "/done":
            self.done.set()

    def run(self, command_for: Any, timeout: float = 600) -> None:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with tempfile.TemporaryDirectory() as profile:
            proc = subprocess.Popen(command_for(profile, url), stdout=subprocess.DEVNULL,
                                    stderr=open(os.environ["CAPTURE_LOG"], "ab") if os.environ.get("CAPTURE_LOG") else subprocess.DEVNULL)
            try:
                if not self.done.wait(timeout):
                    raise SystemExit(f"{self.browser}: no /done within {timeout} s")
            finally:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                server.shutdown()
        print(f"{self.browser}: {len(self.entries)} files, {len(self.failures)} failures ({self.user_agent})")


def chromium_command(profile: str, url: str) -> List[str]:
    return ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            "--allow-loopback-in-peer-connection", url]


def firefox_command(profile: str, url: str) -> List[str]:
    prefs = "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in FIREFOX_PREFS.items())
    Path(profile, "user.js").write_text(prefs)
    return ["firefox-esr", "--headless", "--no-remote", "--profile", profile, url]


BROWSERS = {
    "chromium": (chromium_command, ["chromium", "--version"]),
    "firefox": (firefox_command, ["firefox-esr", "--version"]),
}


def foreign_plan(out: Path, files: Dict[str, tuple]) -> List[dict]:
    return [{"file": file, "stack": stack, "scenario": scenario, "sdp": (out / file).read_text()}
            for file, (stack, scenario) in files.items()]


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "browser_sdp")
    parser.add_argument("--try", dest="trial", choices=sorted(BROWSERS),
                        help="only check that this browser starts and gathers: its offers into a temporary folder")
    args = parser.parse_args(argv)
    if args.trial:
        require_isolation()
        with tempfile.TemporaryDirectory() as tmp:
            command, version = BROWSERS[args.trial]
            capture = Capture(Path(tmp), args.trial, version_of(version), {"offers": "audio", "answer_to": []})
            capture.run(command)
            done = [e for e in capture.entries if e["form"] == "gathered" and e["role"] == "offer"]
            with_candidates = sum("a=candidate:" in (Path(tmp) / e["file"]).read_text() for e in done)
            print(f"{with_candidates} of {len(done)} gathered offers carry candidates")
        return 0
    require_isolation()
    out: Path = args.out
    for stack in ("chromium", "firefox", "aiortc"):
        shutil.rmtree(out / stack, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    import aiortc

    foreign = dict(FOREIGN)
    foreign.update(asyncio.run(aiortc_offers(out)))
    entries: List[dict] = [{"file": f, "stack": "aiortc", "version": aiortc.__version__, "scenario": s,
                            "role": "offer", "form": "gathered"} for f, (_, s) in foreign.items()
                           if f.startswith("aiortc/")]
    failures: List[dict] = []
    versions = {name: version_of(cmd) for name, (_, cmd) in BROWSERS.items()}
    # Pass 1: each browser's own offers and re-offers, and its answers to aiortc, libwebrtc and the gateway.
    for name, (command, _) in BROWSERS.items():
        capture = Capture(out, name, versions[name], {"offers": True, "answer_to": foreign_plan(out, foreign)})
        capture.run(command)
        entries += capture.entries
        failures += capture.failures
    # Pass 2: each browser answers both browsers' initial offers.
    browser_offers = {e["file"]: (e["stack"], e["scenario"]) for e in entries
                      if e["stack"] in BROWSERS and e["role"] == "offer" and e["form"] == "gathered"
                      and e["scenario"] in INITIAL_SCENARIOS}
    for name, (command, _) in BROWSERS.items():
        capture = Capture(out, name, versions[name], {"offers": False,
                                                      "answer_to": foreign_plan(out, browser_offers)})
        capture.run(command)
        entries += capture.entries
        failures += capture.failures
    entries.sort(key=lambda e: e["file"])
    index = {"generated_by": "scripts/browser_sdp/capture.py", "versions": {"aiortc": aiortc.__version__, **versions},
             "files": entries, "failures": failures}
    (out / "index.json").write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
    print(f"{len(entries)} files ({sum(e['stack'] in BROWSERS for e in entries)} from browsers), "
          f"{len(failures)} failures -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
