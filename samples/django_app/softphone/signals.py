"""The app's Django signal: every event of the process's SDK is re-sent as :data:`sdk_event`."""

from django.dispatch import Signal

#: Sent with ``sender=PureCloudWebrtcSdk`` and keyword arguments ``sdk``, ``name`` (the canonical event
#: name) and ``args`` (the payload).  Receivers run on the SDK's events thread, never in a request.
sdk_event = Signal()
