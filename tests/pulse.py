"""A private, userspace PulseAudio server with virtual devices, for device-backed tests.

docs/protocol.rst §13.3: null sinks ``pcw_speaker`` and ``pcw_speaker2`` (virtual speakers, each with a
``.monitor`` to record what was played), null sinks ``pcw_mic_feed``/``pcw_mic2_feed`` whose
monitors are remapped into the sources ``pcw_mic``/``pcw_mic2`` (virtual microphones: what is
played into a feed is what the microphone captures).  An ALSA configuration file, appended to
the system one through ``ALSA_CONFIG_PATH``, names each of them as an ALSA PCM, so PortAudio
(pyaudio) lists them as separate devices.

``pulse_server`` is a session fixture: it starts the server once, points this process
(``PULSE_SERVER``, ``ALSA_CONFIG_PATH``) and every subprocess started afterwards at it, and stops
it at the end.  If the server cannot start, the test using it FAILS with the reason.  Also used by
``benchmarks/audio_devices.py``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import pytest
from helpers import wait_until  # noqa: F401  (shared; re-exported for the audio tests)

SPEAKERS = ("pcw_speaker", "pcw_speaker2")
MICS = ("pcw_mic", "pcw_mic2")

_ASOUND = """
pcm.{name} {{ type pulse; device "{device}"; hint {{ show on; description "{description}" }} }}
"""


class PulseError(RuntimeError):
    """The private PulseAudio server could not be started."""


class PulseServer:
    """One private PulseAudio daemon in ``root`` (start, environment, play, record, stop)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.runtime = self.root / "run"
        self.home = self.root / "home"
        self.asound = self.root / "asound.conf"
        self.pid: Optional[int] = None
        self.socket = self.runtime / "pulse" / "native"

    @property
    def env(self) -> Dict[str, str]:
        """Variables that point libpulse and ALSA (PortAudio) at this server."""
        system = os.environ.get("PCW_SYSTEM_ALSA_CONFIG", "/usr/share/alsa/alsa.conf")
        return {
            "PULSE_SERVER": f"unix:{self.socket}",
            "ALSA_CONFIG_PATH": f"{system}:{self.asound}",
        }

    def start(self, timeout: float = 15.0) -> None:
        for tool in ("pulseaudio", "pactl", "pacat", "parec"):
            if shutil.which(tool) is None:
                raise PulseError(f"{tool} is not installed (scripts/bootstrap.sh installs pulseaudio and "
                                 "pulseaudio-utils as root)")
        for folder in (self.runtime, self.home):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o700)
        entries = []
        for name in SPEAKERS:
            entries.append(_ASOUND.format(name=name, device=name, description=f"virtual speaker {name}"))
            entries.append(_ASOUND.format(name=f"{name}_monitor", device=f"{name}.monitor",
                                          description=f"what {name} plays"))
        for name in MICS:
            entries.append(_ASOUND.format(name=name, device=name, description=f"virtual microphone {name}"))
            entries.append(_ASOUND.format(name=f"{name}_feed", device=f"{name}_feed",
                                          description=f"plays into {name}"))
        self.asound.write_text("".join(entries))
        loads = ["module-native-protocol-unix"]
        for name in SPEAKERS:
            loads.append(f"module-null-sink sink_name={name} rate=48000 channels=1")
        for name in MICS:
            loads.append(f"module-null-sink sink_name={name}_feed rate=48000 channels=1")
            # Without an explicit mono map the remap source defaults to stereo and delivers nothing.
            loads.append(f"module-remap-source source_name={name} master={name}_feed.monitor channels=1 "
                         "channel_map=mono master_channel_map=mono remix=no")
        loads.append("module-always-sink")
        env = self._daemon_env()
        args = ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "--use-pid-file=yes",
                "--disallow-exit=no", "--log-target=stderr", *(f"--load={load}" for load in loads)]
        proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise PulseError(f"pulseaudio did not start (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            info = subprocess.run(["pactl", "info"], env=env, capture_output=True, text=True, timeout=timeout)
            if info.returncode == 0:
                break
            last = info.stderr.strip()
            if time.monotonic() > deadline:
                raise PulseError(f"pulseaudio started but does not answer `pactl info`: {last}")
            time.sleep(0.05)
        pid_file = self.runtime / "pulse" / "pid"
        try:
            self.pid = int(pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError) as exc:
            raise PulseError(f"pulseaudio wrote no pid file {pid_file}: {exc}") from exc
        self.pactl("set-default-sink", SPEAKERS[0])
        self.pactl("set-default-source", MICS[0])
        self._warm_up(timeout)

    def _warm_up(self, timeout: float) -> None:
        # A fresh server delays the first streams by ~1.5 s; make sure audio flows end to end
        # (feed -> virtual microphone) before any test relies on it.
        deadline = time.monotonic() + timeout
        with self.record(MICS[0]) as capture, self.play(tone(1000, timeout + 1), f"{MICS[0]}_feed"):
            while capture.seconds() < 0.2:
                if time.monotonic() > deadline:
                    raise PulseError(f"no audio reached the virtual microphone {MICS[0]} within {timeout} s")
                time.sleep(0.02)

    def _daemon_env(self) -> Dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(XDG_RUNTIME_DIR=str(self.runtime), HOME=str(self.home))
        return env

    def pactl(self, *args: str) -> str:
        proc = subprocess.run(["pactl", *args], env=self._daemon_env(), capture_output=True, text=True, timeout=15)
        if proc.returncode != 0:
            raise PulseError(f"pactl {' '.join(args)} failed: {proc.stderr.strip()}")
        return proc.stdout

    def stop(self) -> None:
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the daemon has used so far."""
        if self.pid is None:
            return 0.0
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    # -- playing and recording with pulseaudio-utils ---------------------------------------------

    def play(self, samples: np.ndarray, device: str, *, loop_seconds: float = 0.0) -> "Player":
        """Play int16 mono 48 kHz ``samples`` into sink ``device`` (e.g. ``pcw_mic_feed``) with pacat."""
        return Player(self, samples, device)

    def record(self, device: str) -> "Capture":
        """Record source ``device`` (e.g. ``pcw_speaker.monitor``) with parec until ``stop()``."""
        return Capture(self, device)


class Player:
    """``pacat`` playing samples into a sink; :meth:`stop` ends it."""

    def __init__(self, server: PulseServer, samples: np.ndarray, device: str) -> None:
        fd, self.path = tempfile.mkstemp(suffix=".raw", dir=server.root)
        with os.fdopen(fd, "wb") as f:
            f.write(np.asarray(samples, dtype="<i2").tobytes())
        self.proc = subprocess.Popen(
            ["pacat", "--playback", f"--device={device}", "--raw", "--rate=48000", "--channels=1",
             "--format=s16le", "--latency-msec=20", self.path],
            env=server._daemon_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self) -> "Player":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Capture:
    """``parec`` recording a source to memory on a reader thread (raw s16le mono 48 kHz)."""

    def __init__(self, server: PulseServer, device: str) -> None:
        self.proc = subprocess.Popen(
            ["parec", f"--device={device}", "--rate=48000", "--channels=1", "--format=s16le", "--raw",
             "--latency-msec=20"],
            env=server._daemon_env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._chunks: List[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, name="test-parec", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            chunk = self.proc.stdout.read1(9600)  # type: ignore[attr-defined]
            if not chunk:
                return
            with self._lock:
                self._chunks.append(chunk)

    def samples(self, last_seconds: Optional[float] = None) -> np.ndarray:
        with self._lock:
            data = b"".join(self._chunks)
        samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")
        if last_seconds is not None:
            samples = samples[-int(last_seconds * 48000):]
        return samples

    def seconds(self) -> float:
        with self._lock:
            return sum(len(c) for c in self._chunks) / 96000

    def stop(self) -> np.ndarray:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._thread.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.samples()

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def tone(frequency: float, seconds: float, amplitude: float = 0.3) -> np.ndarray:
    """An int16 48 kHz sine."""
    t = np.arange(int(seconds * 48000)) / 48000.0
    return np.rint(np.sin(2 * np.pi * frequency * t) * amplitude * 32767).astype(np.int16)


@pytest.fixture(scope="session")
def pulse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PulseServer]:
    """Start the private PulseAudio server and point this process and its children at it."""
    server = PulseServer(tmp_path_factory.mktemp("pulse"))
    try:
        server.start()
    except (PulseError, OSError, subprocess.SubprocessError) as exc:
        server.stop()
        pytest.fail(f"cannot start the private PulseAudio server the device tests need: {exc}", pytrace=False)
    saved = {key: os.environ.get(key) for key in server.env}
    os.environ.update(server.env)
    try:
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
