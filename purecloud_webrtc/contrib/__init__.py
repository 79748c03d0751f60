"""Integrations with other frameworks, each behind an extra (``purecloud_webrtc.contrib.pipecat``: ``[pipecat]``)."""
