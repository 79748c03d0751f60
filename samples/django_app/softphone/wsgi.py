"""WSGI entry point for a real server (gunicorn, uWSGI, mod_wsgi): one SDK per worker process.

Each worker imports this module after the fork (do not use gunicorn ``--preload``), so each starts its
own SDK; it is closed when the worker exits.  With several workers, each is a separate softphone client
of the same user: every worker gets ringing proposals, and outbound calls are answered by the worker that
placed them (the service proposes them to all, with auto-answer; see README "Scaling out").
"""

import atexit
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "softphone.settings")
application = get_wsgi_application()

from . import sdk  # noqa: E402  (needs the settings configured above)

sdk.start()
atexit.register(sdk.stop)
