"""Every ``docs/protocol.rst §N`` that a comment or docstring cites is a section of that page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cited_protocol_sections_exist():
    page = (ROOT / "docs" / "protocol.rst").read_text(encoding="utf-8")
    sections = set(re.findall(r"^§([0-9]+(?:\.[0-9]+)?)", page, re.M))
    sections |= {s.split(".")[0] for s in sections}
    cited = {}
    for path in list((ROOT / "purecloud_webrtc").rglob("*.py")) + list((ROOT / "tests").rglob("*.py")):
        for number in re.findall(r"protocol\.rst §([0-9]+(?:\.[0-9]+)?)", path.read_text(encoding="utf-8")):
            cited.setdefault(number.rstrip("."), path.name)
    assert len(cited) >= 20
    missing = {n: where for n, where in cited.items() if n not in sections}
    assert not missing, f"cited but not in docs/protocol.rst: {missing}"


def test_no_comment_points_outside_the_repository():
    for path in list((ROOT / "purecloud_webrtc").rglob("*.py")) + list((ROOT / "docs").glob("*.rst")):
        text = path.read_text(encoding="utf-8")
        for name in ("PROTOCOL.md", "RECIPES.md", "SEED-API", "STYLE.md"):
            assert name not in text, f"{path} cites {name}, which is not in this repository"
