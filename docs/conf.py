"""Sphinx configuration: the reference is built from the package's docstrings (``make docs``, warnings fail)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from purecloud_webrtc import __version__  # noqa: E402
from purecloud_webrtc.events import _DOCS, SDK_EVENTS, SESSION_EVENTS  # noqa: E402

project = "purecloud_webrtc"
author = "purecloud_webrtc contributors"
copyright = "purecloud_webrtc contributors"
version = release = __version__

extensions = ["sphinx.ext.autodoc"]
# The Pipecat transport is documented without Pipecat installed (it is an extra; make docs does not add it).
autodoc_mock_imports = ["pipecat", "pydantic"]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Type hints stay in the signatures; the prose says what the arguments mean.
autodoc_typehints = "signature"
exclude_patterns = ["_build", "_setup_notes.rst"]
html_theme = "alabaster"
html_static_path: list = []
nitpicky = False


def _event_table(events: dict, signal_sender: str) -> str:
    rows = []
    for name, args in events.items():
        payload = ", ".join(f"``{a}``" for a in args) or "(none)"
        rows.append(f"   * - ``{name}``\n     - {payload}\n     - {_DOCS[name]}")
    return (f".. list-table::\n   :header-rows: 1\n   :widths: 22 28 50\n\n"
            f"   * - event\n     - callback arguments (blinker keyword arguments; sender: {signal_sender})\n"
            f"     - when\n" + "\n".join(rows) + "\n")


# The events page includes tables made from the SDK's own event tables, so they cannot drift.
(HERE / "_sdk_events.inc").write_text(_event_table(SDK_EVENTS, "the SDK"), encoding="utf-8")
(HERE / "_session_events.inc").write_text(_event_table(SESSION_EVENTS, "the session"), encoding="utf-8")
os.environ.setdefault("PURECLOUD_WEBRTC_DOCS", "1")
