"""Settings of the Django softphone sample: no database, JSON endpoints, logging to stdout.

The SDK is configured from ``PURECLOUD`` (read from the environment, as a deployment would):
``GENESYS_ACCESS_TOKEN``, ``GENESYS_ENVIRONMENT``, ``GENESYS_API_BASE_URL``,
``GENESYS_STREAMING_BASE_URL``, ``GENESYS_ICE_HOST_ADDRESSES`` (comma separated) and
``GENESYS_SOURCE`` (a WAV path or ``tone:HZ``).
"""

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "sample-only-not-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "softphone.urls"
INSTALLED_APPS = ["softphone.apps.SoftphoneConfig"]
MIDDLEWARE: list = []
DATABASES: dict = {}
USE_TZ = True
WSGI_APPLICATION = "softphone.wsgi.application"

PURECLOUD = {
    "access_token": os.environ.get("GENESYS_ACCESS_TOKEN", ""),
    "environment": os.environ.get("GENESYS_ENVIRONMENT", "mypurecloud.com"),
    "api_base_url": os.environ.get("GENESYS_API_BASE_URL") or None,
    "streaming_base_url": os.environ.get("GENESYS_STREAMING_BASE_URL") or None,
    "ice_host_addresses": [a.strip() for a in os.environ.get("GENESYS_ICE_HOST_ADDRESSES", "").split(",")
                           if a.strip()] or None,
    "source": os.environ.get("GENESYS_SOURCE", "tone:660"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "plain"}},
    "loggers": {
        "softphone": {"handlers": ["stdout"], "level": "INFO"},
        "purecloud_webrtc": {"handlers": ["stdout"], "level": "WARNING"},
    },
}
