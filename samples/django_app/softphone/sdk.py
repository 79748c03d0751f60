"""One PureCloudWebrtcSdk per process: :func:`start` it in the serving process, :func:`stop` it at exit.

Never create it before a fork (gunicorn ``--preload``, a module imported by a forking parent): threads
and sockets do not survive ``fork()``; each worker process makes its own.
"""

import logging
import threading
from typing import Any, Optional

from django.conf import settings

import purecloud_webrtc as pcw
from purecloud_webrtc.events import SDK_EVENTS
from purecloud_webrtc.media import NullSink

from .signals import sdk_event

log = logging.getLogger("softphone")
_lock = threading.Lock()
_sdk: Optional[pcw.PureCloudWebrtcSdk] = None


def start() -> pcw.PureCloudWebrtcSdk:
    """Create and connect this process's SDK (idempotent)."""
    global _sdk
    with _lock:
        if _sdk is not None:
            return _sdk
        conf = settings.PURECLOUD
        if not conf["access_token"]:
            raise RuntimeError("set GENESYS_ACCESS_TOKEN")
        options = {k: conf[k] for k in ("api_base_url", "streaming_base_url", "ice_host_addresses") if conf[k]}
        sdk = pcw.PureCloudWebrtcSdk(conf["access_token"], environment=conf["environment"],
                                     default_source=conf["source"], default_sink=NullSink(),
                                     auto_answer_outbound_calls="own",  # each worker answers the calls it placed
                                     **options)

        def forward(name: str) -> Any:
            return lambda *args: sdk_event.send(sender=pcw.PureCloudWebrtcSdk, sdk=sdk, name=name, args=args)

        for name in SDK_EVENTS:
            if name != "trace":
                sdk.on(name, forward(name))
        sdk.on("sessionStarted", lambda session: [session.on(n, forward(n))
                                                  for n in ("change:connectionState", "terminated")])
        try:
            sdk.initialize(timeout=30)
        except BaseException:
            sdk.close()
            raise
        _sdk = sdk
        return sdk


def get_sdk() -> pcw.PureCloudWebrtcSdk:
    """This process's SDK.

    :raises RuntimeError: before :func:`start`.
    """
    if _sdk is None:
        raise RuntimeError("the softphone SDK is not started in this process (softphone.sdk.start())")
    return _sdk


def stop() -> None:
    """End every call and close the SDK (idempotent)."""
    global _sdk
    with _lock:
        sdk, _sdk = _sdk, None
    if sdk is not None:
        sdk.close()
        log.info("sdk closed")
