"""Shared set-up for the samples: a real org when --token is given, else the bundled emulator."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from typing import Any, Iterator, Optional, Tuple

import purecloud_webrtc as pcw


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--token", default=os.environ.get("GENESYS_ACCESS_TOKEN"),
                   help="user access token of a real org (default: $GENESYS_ACCESS_TOKEN; none = run the emulator)")
    p.add_argument("--environment", default=os.environ.get("GENESYS_ENVIRONMENT", "mypurecloud.com"),
                   help="Genesys Cloud environment of the real org (default mypurecloud.com)")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    return p


@contextlib.contextmanager
def connect(args: argparse.Namespace, **options: Any) -> Iterator[Tuple[pcw.PureCloudWebrtcSdk, Optional[Any]]]:
    """Yield ``(sdk, emulator)``; ``emulator`` is ``None`` against a real org."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    if args.token:
        with pcw.PureCloudWebrtcSdk(args.token, environment=args.environment, **options) as sdk:
            sdk.initialize()
            yield sdk, None
        return
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emulator:
        print(f"(no --token: using the bundled emulator at {emulator.api_base_url})")
        options.setdefault("ice_host_addresses", ["127.0.0.1"])
        with pcw.PureCloudWebrtcSdk(emulator.access_token, api_base_url=emulator.api_base_url,
                                    streaming_base_url=emulator.streaming_base_url, **options) as sdk:
            sdk.initialize()
            yield sdk, emulator
