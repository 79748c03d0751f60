#!/usr/bin/env python3
"""Build the sdist and the wheel, install the wheel in a fresh virtualenv and smoke-test it (``make dist-check``).

Offline by design (CI and the tests run in a network namespace with only loopback): the build uses the
project venv's setuptools (``python -m build --no-isolation``), the wheel is installed with ``--no-deps
--no-index``, and the fresh venv reaches the already-installed dependencies through a ``.pth`` line naming
the project venv's site-packages (a plain path line: the editable install's import hook there is *not*
loaded, so ``purecloud_webrtc`` comes from the wheel).  Then, from an empty folder, it checks where the
package was imported from, the version, the typed marker, the entry points, and runs the demo (two real
calls against the bundled emulator) from the installed wheel.

Prints one ``dist-check: ...`` line per step and exits non-zero on the first failure.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def step(what: str) -> None:
    print(f"dist-check: {what}", flush=True)


def run(args: list, **kwargs: object) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"dist-check: FAILED: {' '.join(str(a) for a in args)} (exit {proc.returncode})")
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-demo", action="store_true", help="skip running the demo from the wheel")
    parser.add_argument("--keep", help="build in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from purecloud_webrtc._version import __version__

    with tempfile.TemporaryDirectory(prefix="pcw-dist-") as tmp_name:
        tmp = Path(args.keep or tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        dist = tmp / "dist"
        # Without --sdist/--wheel, build makes the sdist, then the wheel *from the sdist*: that proves the
        # sdist is complete.
        run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir", dist, ROOT], cwd=tmp)
        wheels = list(dist.glob("*.whl"))
        sdists = list(dist.glob("*.tar.gz"))
        assert len(wheels) == 1 and len(sdists) == 1, list(dist.iterdir())
        assert wheels[0].name.startswith(f"purecloud_webrtc-{__version__}-py3-none-any"), wheels[0].name
        step(f"built {sdists[0].name} and {wheels[0].name}")

        with zipfile.ZipFile(wheels[0]) as wheel:
            names = set(wheel.namelist())
            entry_points = wheel.read(f"purecloud_webrtc-{__version__}.dist-info/entry_points.txt").decode()
        for needed in ("purecloud_webrtc/py.typed", "purecloud_webrtc/aio.py", "purecloud_webrtc/pytest_plugin.py",
                       "purecloud_webrtc/emulator/server.py"):
            assert needed in names, f"{needed} missing from the wheel"
        assert not any(n.startswith(("tests/", "samples/")) for n in names), "tests or samples in the wheel"
        assert "pytest11" in entry_points and "purecloud_webrtc.pytest_plugin" in entry_points, entry_points
        with tarfile.open(sdists[0]) as sdist:
            members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
        for needed in ("setup.cfg", "pyproject.toml", "README.rst", "purecloud_webrtc/_version.py"):
            assert needed in members, f"{needed} missing from the sdist"
        step("wheel holds the package, py.typed and the pytest11 entry point; sdist holds the sources")

        venv = tmp / "venv"
        run([sys.executable, "-m", "venv", venv])
        python = venv / "bin" / "python"
        run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheels[0]])
        site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
        # Dependencies from the project venv (offline); a plain path line does not run its .pth hooks.
        (site / "_pcw_dist_check_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        step(f"installed the wheel in a fresh venv ({venv})")

        smoke = (
            "import importlib.metadata as md, pathlib, sys\n"
            "import purecloud_webrtc, purecloud_webrtc.aio, purecloud_webrtc.pytest_plugin, purecloud_webrtc.emulator\n"
            f"assert pathlib.Path(purecloud_webrtc.__file__).resolve().is_relative_to(pathlib.Path({str(site)!r}).resolve()), purecloud_webrtc.__file__\n"
            f"assert purecloud_webrtc.__version__ == md.version('purecloud_webrtc') == {__version__!r}\n"
            "assert (pathlib.Path(purecloud_webrtc.__file__).parent / 'py.typed').is_file()\n"
            "eps = md.entry_points()\n"
            "assert [e.value for e in eps.select(group='pytest11') if e.name == 'purecloud_webrtc'] == ['purecloud_webrtc.pytest_plugin']\n"
            "print(purecloud_webrtc.__file__)\n"
        )
        out = run([python, "-c", smoke], cwd=tmp).stdout.strip()
        step(f"imports from the wheel ({out}), version {__version__}, py.typed, pytest11 entry point")
        if not args.no_demo:
            demo = run([python, "-m", "purecloud_webrtc.demo", "--seconds", "1"], cwd=tmp, timeout=300)
            last = demo.stdout.strip().splitlines()[-1]
            assert "audio flowed both ways" in last, demo.stdout
            step(f"the demo ran from the wheel: {last}")
        check_missing_extras(wheels[0], tmp)
        step("OK")


#: Top-level names of what each extra installs (their absence is the point of the check).
WITHOUT = ("aiohttp", "pyaudio", "purecloud_webrtc", "__editable__")

#: command → the extra its one-line hint must name
NEEDS_EXTRA = {
    ("purecloud-webrtc", "demo"): "emulator",
    ("purecloud-webrtc", "doctor", "--emulator"): "emulator",
    ("purecloud-webrtc", "emulator"): "emulator",
    ("purecloud-webrtc-emulator",): "emulator",
    ("python", "-c", "from purecloud_webrtc.emulator import Emulator"): "emulator",
    ("purecloud-webrtc", "devices"): "audio",
}


def check_missing_extras(wheel: Path, tmp: Path) -> None:
    """The wheel alone, without the ``emulator`` and ``audio`` extras: every command that needs one says so
    in one line naming ``pip install 'purecloud_webrtc[EXTRA]'`` (no traceback).

    The fresh venv sees the project venv's packages *except* aiohttp and pyaudio through a folder of
    symbolic links: those two are really absent, not hidden by an import hook.
    """
    import os

    venv = tmp / "venv-bare"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel])
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    deps = tmp / "deps-without-extras"
    deps.mkdir()
    ours = Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(WITHOUT) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "_pcw_dist_check_deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GENESYS_ACCESS_TOKEN")}
    for command, extra in NEEDS_EXTRA.items():
        exe = [python] if command[0] == "python" else [venv / "bin" / command[0]]
        proc = subprocess.run([*exe, *command[1:]], capture_output=True, text=True, cwd=tmp, env=env,
                              timeout=120, stdin=subprocess.DEVNULL)
        output = (proc.stdout + proc.stderr).strip()
        hint = f"pip install 'purecloud_webrtc[{extra}]'"
        lines = [line for line in output.splitlines() if hint in line]
        # A command prints one line; an import in your own code raises MissingExtraError (an ImportError),
        # whose traceback ends in that line.
        bad = ("Traceback" in output) if command[0] != "python" else not output.splitlines()[-1:] == lines[-1:]
        # ``devices`` lists what there is (nothing) and exits 0; the others cannot do their job.
        if (proc.returncode == 0 and command[-1] != "devices") or bad or not lines:
            raise SystemExit(f"dist-check: FAILED: without the {extra} extra, {' '.join(command)} gave "
                             f"exit {proc.returncode}:\n{output}")
    step(f"without the extras, {len(NEEDS_EXTRA)} commands each name the extra they need in one line")


if __name__ == "__main__":
    main()
