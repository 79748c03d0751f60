"""``manage.py serve``: a threaded WSGI server on 127.0.0.1 that owns this process's SDK.

Unlike ``runserver`` it starts the SDK before serving and closes it on SIGTERM or Ctrl-C (``runserver``
has no shutdown hook and its autoreloader would run two processes).
"""

import signal
from typing import Any

from django.core.management.base import BaseCommand
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application

from ... import sdk


class Command(BaseCommand):
    help = "Serve the softphone sample on 127.0.0.1 with one SDK for this process."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")

    def handle(self, *args: Any, **options: Any) -> None:
        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt  # leave serve_forever() so the SDK is closed below

        signal.signal(signal.SIGTERM, stop)
        sdk.start()
        try:
            server = ThreadedWSGIServer(("127.0.0.1", options["port"]), WSGIRequestHandler)
            server.set_app(get_wsgi_application())
            self.stdout.write(f"listening on http://127.0.0.1:{server.server_address[1]}")
            self.stdout.flush()
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
        finally:
            sdk.stop()
            self.stdout.write("sdk closed")
