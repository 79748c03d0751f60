"""Packaging and set-up checks: setup.cfg, the version, the entry points of
``make test`` (scripts/bootstrap.sh, scripts/netns-run, .ci/run).

These run real programs (bash, unshare, ip) as subprocesses; nothing is mocked.
"""

from __future__ import annotations

import configparser
import importlib.metadata
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
NETNS_RUN = ROOT / "scripts" / "netns-run"
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"

def test_pins_match_the_tested_internals() -> None:
    """The install pins of aiortc/aioice/av are exactly the range the internals adapter is tested with."""
    from packaging.version import Version

    from purecloud_webrtc._internals import TESTED

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    reqs = {Requirement(line).name.lower(): Requirement(line) for line in cfg["options"]["install_requires"].splitlines()
            if line.strip() and not line.strip().startswith("#")}
    oldest = {line.split("==")[0]: line.split("==")[1].strip()
              for line in (ROOT / "scripts" / "constraints-oldest.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    for name, (low, high) in TESTED.items():
        spec = reqs[name].specifier
        assert Version(low) in spec and Version(high) in spec, (name, str(spec))
        assert oldest[name] == low, (name, oldest.get(name), low)
        # Nothing older than the oldest tested release is allowed.
        previous = Version(low).release
        below = ".".join(map(str, previous[:-1] + (previous[-1] - 1,))) if previous[-1] else None
        if below:
            assert Version(below) not in spec, (name, below, str(spec))


def test_version_matches_installed_metadata() -> None:
    import purecloud_webrtc
    from purecloud_webrtc import _version

    assert purecloud_webrtc.__version__ == _version.__version__
    try:
        installed = importlib.metadata.version("purecloud_webrtc")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("purecloud_webrtc is not installed: run bash scripts/bootstrap.sh")
    assert installed == _version.__version__


def test_declared_dependencies_import() -> None:
    """What bootstrap installed really imports (pyaudio is a compiled extension)."""
    code = textwrap.dedent(
        """
        import aiortc, websocket, requests, blinker, defusedxml, numpy
        import aiohttp, hypothesis, pytest_timeout
        import pyaudio
        print(pyaudio.get_portaudio_version_text())
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "PortAudio" in proc.stdout


def test_executables() -> None:
    for path in (NETNS_RUN, BOOTSTRAP, ROOT / ".ci" / "run"):
        assert os.access(path, os.X_OK), f"{path} lost its executable bit"
        subprocess.run(["bash", "-n", str(path)], check=True, timeout=30)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "set -euo pipefail" in ci
    assert ci.strip().splitlines()[-1] == "exec make test"


@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve()
    or os.environ.get("CI", "").lower() not in ("true", "1", "yes"),
    # Outside CI, others may add a subpackage while the suite runs (a new
    # __init__.py rightly makes the stamp stale): only a static CI tree is checked.
    reason="needs CI=true and the repository's .venv",
)
def test_bootstrap_is_up_to_date() -> None:
    """``make test`` ran bootstrap just before: a second run would skip pip."""
    proc = subprocess.run(
        ["bash", str(BOOTSTRAP), "--check"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "up to date" in proc.stderr


# ------------------------------------------------------------------ netns-run --


def _isolation_available() -> bool:
    """Same conditions as scripts/netns-run, probed for real."""
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    if not (shutil.which("unshare") and shutil.which("ip")):
        return False
    probe = subprocess.run(
        ["unshare", "-n", "--", "ip", "link", "set", "lo", "up"],
        check=False,
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def _netns_run(*args: str, ci: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [str(NETNS_RUN), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


LOOPBACK_CHECK = textwrap.dedent(
    """
    import errno, socket
    # UDP round trip on 127.0.0.1.
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
    a.settimeout(5); b.settimeout(5)
    a.sendto(b"ping", b.getsockname())
    data, peer = b.recvfrom(64)
    b.sendto(data.upper(), peer)
    assert a.recvfrom(64)[0] == b"PING"
    # TCP on 127.0.0.1.
    srv = socket.create_server(("127.0.0.1", 0))
    cli = socket.create_connection(srv.getsockname(), timeout=5)
    conn, _ = srv.accept()
    cli.sendall(b"hello"); assert conn.recv(5) == b"hello"
    # No route off the machine: a UDP connect() only asks the kernel for a route and
    # sends nothing (192.0.2.1 is TEST-NET-1, documentation only).
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
    except OSError as exc:
        print("offhost", errno.errorcode.get(exc.errno, exc.errno))
    else:
        print("offhost routable")
    print("loopback ok")
    """
)


@pytest.mark.skipif(
    not _isolation_available(), reason="needs root and unshare -n on Linux"
)
def test_netns_run_isolates() -> None:
    # Works nested too: `make test` already runs this suite inside netns-run.
    proc = _netns_run("ip", "-o", "link", ci="true")
    assert proc.returncode == 0, proc.stderr
    names = [line.split(":")[1].strip() for line in proc.stdout.splitlines()]
    assert names == ["lo"]
    assert "UP" in proc.stdout
    assert "NOT isolated" not in proc.stderr

    proc = _netns_run("ip", "-o", "addr", ci="true")
    assert {line.split()[1] for line in proc.stdout.splitlines()} == {"lo"}

    proc = _netns_run(sys.executable, "-c", LOOPBACK_CHECK, ci="true")
    assert proc.returncode == 0, proc.stderr
    assert "loopback ok" in proc.stdout
    assert "offhost ENETUNREACH" in proc.stdout


@pytest.mark.skipif(_isolation_available(), reason="isolation is available here")
def test_netns_run_warns_when_not_isolated() -> None:
    proc = _netns_run(sys.executable, "-c", "print('ran')")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ran"
    assert "NOT isolated" in proc.stderr

    proc = _netns_run(sys.executable, "-c", "print('ran')", ci="true")
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert "requires network isolation" in proc.stderr


def test_netns_run_passes_arguments_verbatim() -> None:
    args = ["a b", "$HOME", '"q"', "'s'", "*", "", "-c", "x;y"]
    proc = _netns_run(
        sys.executable, "-c", "import sys; print(repr(sys.argv[1:]))", *args
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == repr(args)


def test_netns_run_propagates_exit_status() -> None:
    proc = _netns_run(sys.executable, "-c", "raise SystemExit(5)")
    assert proc.returncode == 5
    proc = _netns_run()
    assert proc.returncode == 2
    assert "usage" in proc.stderr
