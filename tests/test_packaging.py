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
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parent.parent
NETNS_RUN = ROOT / "scripts" / "netns-run"
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"

# What setup.cfg must declare: distribution name -> versions that must / must not
# be allowed by its specifier.
RUNTIME_DEPS = {
    "aiortc": (">=1.9,<2", ["1.9.0", "1.16.0"], ["1.8.0", "2.0"]),
    "websocket-client": (">=1.6,<2", ["1.6.0", "1.8.0"], ["1.5.9", "2.0"]),
    "requests": (">=2.28,<3", ["2.28.0", "2.32.3"], ["2.27.1", "3.0"]),
    "blinker": (">=1.6,<2", ["1.6", "1.9.0"], ["1.5", "2.0"]),
    "defusedxml": (">=0.7,<1", ["0.7.1"], ["0.6.0", "1.0"]),
    "numpy": (">=1.24,<3", ["1.24.0", "2.2.0"], ["1.23.5", "3.0"]),
}
EXTRAS = {
    "audio": {"pyaudio"},
    "emulator": {"aiohttp"},
    "test": {"pytest", "pytest-timeout", "hypothesis", "aiohttp", "pyaudio", "flask", "django", "celery", "build", "wheel", "sphinx"},
    "docs": {"sphinx"},
    "dev": {
        "pytest",
        "pytest-timeout",
        "hypothesis",
        "aiohttp",
        "pyaudio",
        "ruff",
        "mypy",
    },
}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


@pytest.fixture(scope="module")
def setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    read = cfg.read(ROOT / "setup.cfg", encoding="utf-8")
    assert read, "setup.cfg missing"
    return cfg


def _requirements(value: str) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in value.strip().splitlines() if line.strip()]
    return {_norm(r.name): r for r in reqs}


def test_metadata(setup_cfg: configparser.ConfigParser) -> None:
    meta = setup_cfg["metadata"]
    assert meta["name"] == "purecloud_webrtc"
    assert meta["version"] == "attr: purecloud_webrtc._version.__version__"
    assert meta["long_description"] == "file: README.rst"
    assert meta["long_description_content_type"] == "text/x-rst"
    assert meta["license"] == "MIT"
    # setuptools 77+ deprecates License classifiers beside an SPDX license.
    assert "License ::" not in meta["classifiers"]
    assert meta["description"].strip()

    opts = setup_cfg["options"]
    assert SpecifierSet(opts["python_requires"]) == SpecifierSet(">=3.10")
    assert "3.9.18" not in SpecifierSet(opts["python_requires"])
    assert opts["packages"].strip() == "find:"
    assert "purecloud_webrtc" in setup_cfg["options.packages.find"]["include"].split()
    assert setup_cfg["options.package_data"]["purecloud_webrtc"].strip() == "py.typed"
    assert (ROOT / "purecloud_webrtc" / "py.typed").is_file()

    scripts = setup_cfg["options.entry_points"]["console_scripts"]
    assert (
        "purecloud-webrtc-emulator = purecloud_webrtc.emulator.__main__:main"
        in scripts.strip().splitlines()
    )


def test_install_requires(setup_cfg: configparser.ConfigParser) -> None:
    reqs = _requirements(setup_cfg["options"]["install_requires"])
    assert set(reqs) == set(RUNTIME_DEPS)
    for name, (spec, allowed, refused) in RUNTIME_DEPS.items():
        assert reqs[name].specifier == SpecifierSet(spec), name
        for v in allowed:
            assert v in reqs[name].specifier, (name, v)
        for v in refused:
            assert v not in reqs[name].specifier, (name, v)


def test_extras(setup_cfg: configparser.ConfigParser) -> None:
    extras = setup_cfg["options.extras_require"]
    assert set(extras) == set(EXTRAS)
    for extra, names in EXTRAS.items():
        reqs = _requirements(extras[extra])
        assert set(reqs) == names, extra
    assert _requirements(extras["audio"])["pyaudio"].specifier == SpecifierSet(
        ">=0.2.13,<0.3"
    )
    assert _requirements(extras["emulator"])["aiohttp"].specifier == SpecifierSet(
        ">=3.9,<4"
    )


def test_pytest_config(setup_cfg: configparser.ConfigParser) -> None:
    pt = setup_cfg["tool:pytest"]
    assert pt["testpaths"].split() == ["tests"]
    assert int(pt["timeout"]) == 120
    assert "-ra" in pt["addopts"].split()


def test_build_system_and_shim() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is new in Python 3.11")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert set(data) == {"build-system"}, "pyproject.toml holds only [build-system]"
    requires = {
        _norm(Requirement(r).name): Requirement(r)
        for r in data["build-system"]["requires"]
    }
    assert "61" in requires["setuptools"].specifier
    assert "wheel" in requires
    assert "setup()" in (ROOT / "setup.py").read_text(encoding="utf-8")


def test_version_matches_installed_metadata() -> None:
    import purecloud_webrtc
    from purecloud_webrtc import _version

    assert _version.__version__ == "0.1.0"
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


def test_makefile_targets() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "SHELL := /bin/bash" in text
    phony = next(line for line in text.splitlines() if line.startswith(".PHONY:"))
    for target in ("demo", "test", "lint", "clean", "help"):
        assert target in phony.split()
        assert f"\n{target}:" in text


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
