"""Every Python example of README.rst and of the docs runs against the emulator, and passes ``mypy --strict``
(issue 15): the blocks are extracted from the files themselves, so a stale example fails the suite.

A block is a ``.. code-block:: python`` or a ``::`` literal block that compiles as Python (top-level ``await``
allowed).  What a block uses without defining (an ``sdk``, a live ``session``, a ringing ``pending`` call,
``TOKEN``, ``emu``) is given to it by the harness, from the bundled emulator: the emulator stands in for
the Genesys Cloud org (an ``environment=`` points at it) and the private PulseAudio devices for the
reader's ``"USB"`` microphone and ``"Headset"``.  ``input()`` rings the SDK once and returns when that call
has ended; an endless ``async for`` over incoming calls is cancelled once a call was answered.
"""

from __future__ import annotations

import ast
import asyncio
import re
import subprocess
import sys
import textwrap
import threading
import wave
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest

import purecloud_webrtc as pcw
from purecloud_webrtc.media import BufferSink, NullSink, SilenceSource, ToneSource

from helpers import answer_call, wait_until

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "README.rst", *sorted((ROOT / "docs").glob("*.rst"))]
FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT

#: Free names a block may use, and their types for mypy.
PROVIDED = {
    "TOKEN": "str",
    "sdk": "purecloud_webrtc.PureCloudWebrtcSdk",
    "session": "purecloud_webrtc.Session",
    "pending": "purecloud_webrtc.PendingSession",
    "emu": "purecloud_webrtc.emulator.Emulator",
    "on_ended": "typing.Callable[[purecloud_webrtc.aio.AsyncSession, str], None]",
}


def _blocks(path: Path) -> List[Tuple[str, str]]:
    """``(id, code)`` of every Python block in an reST file."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        python = line.strip() == ".. code-block:: python"
        if python or (line.rstrip().endswith("::") and not line.lstrip().startswith("..")):
            indent = len(line) - len(line.lstrip())
            j, body = i + 1, []
            while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
                body.append(lines[j])
                j += 1
            code = textwrap.dedent("\n".join(body)).strip("\n")
            if code and (python or _is_python(code)):
                found.append((f"{path.name}:{i + 1}", code + "\n"))
            i = j
            continue
        i += 1
    return found


def _is_python(code: str) -> bool:
    try:
        compile(code, "<block>", "exec", flags=FLAGS, dont_inherit=True)
    except SyntaxError:
        return False
    # A lone name or a ``make``/shell-looking line compiles too: a block must call or bind something.
    tree = ast.parse(code)
    return any(isinstance(node, (ast.Call, ast.Assign, ast.With, ast.AsyncWith, ast.FunctionDef, ast.Import,
                                 ast.ImportFrom)) for node in ast.walk(tree))


BLOCKS = [block for path in SOURCES for block in _blocks(path)]


def _has_pipecat() -> bool:
    try:
        import pipecat.frames.frames  # noqa: F401
    except ImportError:
        return False
    return True


#: Pipecat examples run (and are type-checked) in the Pipecat lane (make test-pipecat runs this module with
#: ``-m pipecat``); the main lane has no Pipecat.
HAVE_PIPECAT = _has_pipecat()
_PIPECAT_SKIP = pytest.mark.skipif(not HAVE_PIPECAT, reason="a Pipecat example: the Pipecat lane runs it")


def _params(blocks: List[Tuple[str, str]]) -> List[Any]:
    return [pytest.param(where, code, id=where, marks=[pytest.mark.pipecat, _PIPECAT_SKIP] if "pipecat" in code else [])
            for where, code in blocks]


def _free_names(code: str) -> List[str]:
    tree = ast.parse(code)
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del))}
    stored |= {a.arg for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
               for a in n.args.args + n.args.kwonlyargs}
    stored |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    stored |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
               for a in n.names}
    loaded = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    import builtins

    return sorted(name for name in loaded - stored if not hasattr(builtins, name))


def test_the_docs_have_examples_and_each_uses_only_what_the_harness_gives():
    assert len(BLOCKS) >= 8, [b[0] for b in BLOCKS]
    for where, code in BLOCKS:
        unknown = [n for n in _free_names(code) if n not in PROVIDED]
        assert not unknown, f"{where} uses {unknown}: define or import them in the example"


def _write_prompt(path: Path, hz: float = 523.0) -> None:
    t = np.arange(48000 * 2) / 48000.0
    pcm = (0.3 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(pcm.tobytes())


@pytest.fixture
def harness(emulator, tmp_path, monkeypatch, pulse_server):
    """Point every SDK an example makes at the emulator; devices named as in the docs; a prompt file."""
    monkeypatch.chdir(tmp_path)
    _write_prompt(tmp_path / "prompt.wav")
    made: List[pcw.PureCloudWebrtcSdk] = []
    real_init = pcw.PureCloudWebrtcSdk.__init__

    def init(self: Any, *args: Any, **options: Any) -> None:
        options.setdefault("api_base_url", emulator.api_base_url)  # the emulator stands in for the org
        options.setdefault("streaming_base_url", emulator.streaming_base_url)
        real_init(self, *args, **options)
        made.append(self)

    monkeypatch.setattr(pcw.PureCloudWebrtcSdk, "__init__", init)
    from purecloud_webrtc.media import _pyaudio

    real_find = _pyaudio.find_device
    names = {"USB": "pcw_mic", "Headset": "pcw_speaker"}  # the reader's devices, played by PulseAudio's

    def find_device(spec: Any, kind: Any, *args: Any, **kwargs: Any) -> Any:
        return real_find(names.get(spec, spec) if isinstance(spec, str) else spec, kind, *args, **kwargs)

    monkeypatch.setattr(_pyaudio, "find_device", find_device)
    yield made
    for sdk in made:
        sdk.close()


def _context(emulator: Any, code: str, made: List[pcw.PureCloudWebrtcSdk]) -> Dict[str, Any]:
    free = _free_names(code)
    ns: Dict[str, Any] = {"__name__": "__example__", "TOKEN": emulator.access_token, "emu": emulator}
    if {"sdk", "session", "pending", "emu"} & set(free):  # (an emu example talks to a connected SDK)
        sdk = pcw.PureCloudWebrtcSdk(emulator.access_token, default_source=SilenceSource(), default_sink=NullSink())
        sdk.initialize(timeout=15)
        ns["sdk"] = sdk
        if "session" in free:
            ns["session"], ns["_call"] = answer_call(sdk, emulator, source=ToneSource(880.0), sink=BufferSink())
        if "pending" in free:
            with sdk.expect_event("pendingSession") as ev:
                ns["_call"] = emulator.inbound_call(tone_hz=440)
            ns["pending"] = ev.value
    ended: List[str] = []
    ns["on_ended"] = lambda session, reason: ended.append(reason)
    ns["_ended"] = ended

    def input_(prompt: str = "") -> str:  # "press Enter to stop": one call rings, is answered and ends first
        call = emulator.inbound_call(tone_hz=440)
        call.wait_state("connected", timeout=15)
        call.wait_for_audio(timeout=15)
        assert abs(call.heard_frequency(0.5) - 523) <= 5, "the example's prompt.wav did not reach the caller"
        call.hangup()
        ns["_answered"] = call
        return ""

    ns["input"] = input_
    return ns


@pytest.mark.timeout(120)
@pytest.mark.parametrize("where, code", _params(BLOCKS))
def test_example_runs(harness, emulator, where, code):
    ns = _context(emulator, code, harness)
    compiled = compile(code, where, "exec", flags=FLAGS, dont_inherit=True)
    if compiled.co_flags & 0x80:  # CO_COROUTINE: top-level await (an asyncio example)
        async def run() -> None:
            task = asyncio.ensure_future(eval(compiled, ns))
            ring = threading.Thread(target=lambda: ns.__setitem__("_answered", _ring_until_answered(emulator)))
            ring.start()
            while ring.is_alive() and not task.done():
                await asyncio.sleep(0.05)
            if task.done():
                task.result()
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            ring.join()
        asyncio.run(run())
        assert ns.get("_answered") is not None, f"{where}: no call was answered"
    else:
        exec(compiled, ns)
    for name, value in list(ns.items()):
        if name.startswith("test_") and callable(value):  # a pytest example: run it with the plugin's fixtures
            value(purecloud_emulator=emulator, purecloud_sdk=ns.get("sdk") or _plugin_sdk(emulator))
    if "_call" in ns and ns["_call"].state not in ("ended", "retracted"):
        ns["_call"].hangup()


def _ring_until_answered(emulator: Any) -> Any:
    """Ring until the example answers (a call that rings before it listens is withdrawn and rung again)."""
    emulator.wait_for_connection(timeout=20)  # the example connects first
    for _ in range(6):
        call = emulator.inbound_call(tone_hz=440)
        try:
            call.wait_state("connected", timeout=5)
        except TimeoutError:
            if call.state == "proposed":
                call.retract()
                continue
            call.wait_state("connected", timeout=15)
        call.wait_for_audio(timeout=15)
        call.hangup()
        return call
    raise AssertionError("the example never answered")


def _plugin_sdk(emulator: Any) -> pcw.PureCloudWebrtcSdk:
    sdk = pcw.PureCloudWebrtcSdk(emulator.access_token, default_source=SilenceSource(), default_sink=BufferSink())
    sdk.initialize(timeout=15)
    return sdk


@pytest.mark.timeout(300)
@pytest.mark.parametrize("pipecat", [False, pytest.param(True, marks=[pytest.mark.pipecat, _PIPECAT_SKIP])],
                         ids=["sdk", "pipecat"])
def test_examples_pass_mypy_strict(tmp_path, pipecat):
    """Each example, with typed declarations of what the harness gives it, passes ``mypy --strict``."""
    files = []
    for n, (where, code) in enumerate(BLOCKS):
        if ("pipecat" in code) != pipecat:
            continue
        free = _free_names(code)
        prelude = ["import typing", "import purecloud_webrtc", "import purecloud_webrtc.aio",
                   "import purecloud_webrtc.emulator"]
        prelude += [f"{name}: {PROVIDED[name]}" for name in free if name in PROVIDED]
        body = code
        if compile(code, where, "exec", flags=FLAGS, dont_inherit=True).co_flags & 0x80:
            body = "async def _example() -> None:\n" + textwrap.indent(code, "    ")
        path = tmp_path / f"example_{n:02d}.py"
        path.write_text(f"# {where}\n" + "\n".join(prelude) + "\n\n" + body, encoding="utf-8")
        files.append(path)
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
                           "--no-error-summary", "--cache-dir", str(tmp_path / ".mypy_cache"), *map(str, files)],
                          capture_output=True, text=True, cwd=ROOT, timeout=280)
    report = proc.stdout + proc.stderr
    # Name each failure by its README/docs line, not the generated file's.
    for path in files:
        report = report.replace(str(path), path.read_text(encoding="utf-8").splitlines()[0][2:])
    assert proc.returncode == 0 and not re.search(r"error:", report), report
