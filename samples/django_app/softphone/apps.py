"""The app config: connects the logging receiver of :data:`softphone.signals.sdk_event`.

The SDK is *not* created in ``ready()``: that runs for every management command (and in the autoreloader's
parent process); it is started by the server that will serve requests (``manage.py serve`` or ``wsgi.py``).
"""

import logging
from typing import Any

from django.apps import AppConfig

log = logging.getLogger("softphone")


def log_sdk_event(sender: Any, *, name: str, args: Any, **kwargs: Any) -> None:
    log.info("sdk event %s %s", name, args)


class SoftphoneConfig(AppConfig):
    name = "softphone"

    def ready(self) -> None:
        from .signals import sdk_event

        sdk_event.connect(log_sdk_event, dispatch_uid="softphone-log-sdk-event")
