"""``python -m purecloud_webrtc``: the command line (see :mod:`purecloud_webrtc.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
