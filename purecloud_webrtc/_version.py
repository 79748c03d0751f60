"""Version of the purecloud_webrtc distribution (read by setup.cfg via ``attr:``)."""

__version__ = "0.1.0"
