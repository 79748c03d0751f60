"""Shared fixtures: the emulator, SDKs pointed at it, and leak checks; the test lanes.

Lanes, one folder each, marked by folder (``pytest -m unit`` ...): ``unit/`` (no server, no emulator,
seconds; ``make test-fast``), ``integration/`` (the emulator), ``interop/`` (Prosody, stanza,
libwebrtc) and ``devices/`` (a private PulseAudio).  ``make test`` runs them all.

Every SDK made here gathers ICE host candidates on 127.0.0.1 only (the network rule),
and every test fails if it leaves a thread of ours (``pcw-*``) running.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

import purecloud_webrtc as pcw
import purecloud_webrtc.media  # noqa: F401  (pcw.media below)
from helpers import wait_until  # noqa: F401  (re-exported for older imports)
from pulse import pulse_server  # noqa: F401  (the private PulseAudio fixture, tests/pulse.py)


LANES = ("unit", "integration", "interop", "devices")
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: Any, items: List[Any]) -> None:
    for item in items:
        try:
            lane = Path(str(item.fspath)).resolve().relative_to(_HERE).parts[0]
        except ValueError:
            continue
        if lane in LANES:
            item.add_marker(getattr(pytest.mark, lane))


def _our_threads() -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("pcw-") and t.is_alive()]


@pytest.fixture(autouse=True)
def no_thread_leaks() -> Iterator[None]:
    before = set(_our_threads())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in _our_threads() if t not in before]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture
def emulator() -> Iterator[Any]:
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emu:
        yield emu


class SdkFactory:
    """Makes SDKs connected to an emulator and closes them at the end of the test."""

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.made: List[pcw.PureCloudWebrtcSdk] = []
        self.callback_errors: List[Any] = []

    def __call__(self, *, initialize: bool = True, user: Any = None, **options: Any) -> pcw.PureCloudWebrtcSdk:
        token = options.pop("access_token", None) or (user.access_token if user is not None else self.emulator.access_token)
        options.setdefault("api_base_url", self.emulator.api_base_url)
        options.setdefault("streaming_base_url", self.emulator.streaming_base_url)
        options.setdefault("ice_host_addresses", ["127.0.0.1"])
        options.setdefault("default_source", pcw.media.SilenceSource())
        options.setdefault("default_sink", pcw.media.NullSink())
        sdk = pcw.PureCloudWebrtcSdk(token, environment="mypurecloud.com", **options)
        self.made.append(sdk)

        @sdk.on("error")
        def on_error(error: Any, details: Any) -> None:
            if isinstance(details, dict) and "callback" in details:
                self.callback_errors.append((error, details))

        if initialize:
            sdk.initialize(timeout=15)
        return sdk

    def close(self) -> None:
        for sdk in self.made:
            sdk.close()


@pytest.fixture
def make_sdk(emulator: Any) -> Iterator[SdkFactory]:
    factory = SdkFactory(emulator)
    try:
        yield factory
    finally:
        factory.close()
    assert not factory.callback_errors, f"callbacks raised: {factory.callback_errors}"


@pytest.fixture
def emulator_process() -> Iterator[Any]:
    """The emulator in a child process (its far ends' CPU and GIL are not this process's; it can be killed)."""
    from purecloud_webrtc.emulator.process import EmulatorProcess

    with EmulatorProcess() as emu:
        yield emu


@pytest.fixture
def make_process_sdk() -> Iterator[Callable[..., pcw.PureCloudWebrtcSdk]]:
    """Makes initialized SDKs pointed at an :class:`EmulatorProcess`; closes them at the end of the test."""
    made: List[pcw.PureCloudWebrtcSdk] = []

    def make(emu: Any, **options: Any) -> pcw.PureCloudWebrtcSdk:
        options.setdefault("ice_host_addresses", ["127.0.0.1"])
        sdk = pcw.PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                                     streaming_base_url=emu.streaming_base_url, **options)
        made.append(sdk)
        sdk.initialize(timeout=15)
        return sdk

    yield make
    for sdk in made:
        sdk.close(timeout=5)


@pytest.fixture(autouse=True)
def _quiet_aioice() -> None:
    logging.getLogger("aioice").setLevel(logging.WARNING)
