"""The Pipecat lane: a real Pipecat pipeline (PyPI ``pipecat-ai``) on calls with the emulator.

It runs in a venv of its own (``make test-pipecat``, part of ``make test``): Pipecat needs Python 3.11+ and
brings heavy dependencies that stay out of the SDK's other extras.  Elsewhere the folder is skipped.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if sys.version_info < (3, 11):  # pragma: no cover
    collect_ignore_glob = ["test_*.py"]
else:
    try:
        import pipecat.frames.frames  # noqa: F401
    except ImportError:
        collect_ignore_glob = ["test_*.py"]


_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):  # type: ignore[no-untyped-def]
    for item in items:  # (the hook sees the whole session's items: only this folder's are marked)
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.pipecat)
