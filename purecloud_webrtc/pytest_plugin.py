"""pytest fixtures for your own test suite: an emulator and a connected SDK, one argument each.

Installed with the package and registered through the ``pytest11`` entry point, so nothing needs to be
configured: any test can ask for the fixtures.  They need the ``emulator`` extra
(``pip install purecloud_webrtc[emulator]``)::

    def test_my_bot_answers(purecloud_emulator, purecloud_sdk):
        with purecloud_sdk.expect_event("sessionStarted") as started:
            call = purecloud_emulator.inbound_call(auto_answer=True, tone_hz=440)
        call.wait_for_audio()
        assert abs(started.value.sink.dominant_frequency() - 440) < 5
        call.hangup()

Fixtures (all function-scoped):

``purecloud_emulator``
    A started :class:`~purecloud_webrtc.emulator.Emulator` on 127.0.0.1, stopped after the test.
``purecloud_sdk_factory``
    ``factory(user=None, initialize=True, **options)`` makes SDKs connected to that emulator (as
    ``user``, an :class:`~purecloud_webrtc.emulator.EmulatedUser`, or the default user), with ICE host
    candidates on 127.0.0.1 only, sending silence and collecting remote audio in a
    :class:`~purecloud_webrtc.media.BufferSink` unless told otherwise; all are closed after the test,
    and the test fails if one of your callbacks raised.
``purecloud_sdk``
    One initialized SDK from that factory.

Nothing here sends a packet beyond 127.0.0.1.  The fixtures run in the test's thread; callbacks of the
SDKs run on each SDK's events thread, as always.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Tuple

import pytest

__all__ = ["SdkFactory", "purecloud_emulator", "purecloud_sdk", "purecloud_sdk_factory"]


class SdkFactory:
    """Makes SDKs connected to one emulator and closes them all at :meth:`close`.

    :ivar emulator: the emulator the SDKs connect to.
    :ivar made: every SDK made so far.
    :ivar callback_errors: ``(error, details)`` of every exception raised by a user callback.
    """

    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.made: List[Any] = []
        self.callback_errors: List[Tuple[Any, Any]] = []

    def __call__(self, *, user: Any = None, initialize: bool = True, **options: Any) -> Any:
        """Make an SDK for ``user`` (default: the emulator's default user) and ``initialize`` it.

        :param options: any :class:`~purecloud_webrtc.PureCloudWebrtcSdk` option; these override the defaults.
        """
        import purecloud_webrtc as pcw
        from purecloud_webrtc.media import BufferSink, SilenceSource

        token = options.pop("access_token", None) or (user.access_token if user is not None
                                                      else self.emulator.access_token)
        options.setdefault("api_base_url", self.emulator.api_base_url)
        options.setdefault("streaming_base_url", self.emulator.streaming_base_url)
        options.setdefault("ice_host_addresses", ["127.0.0.1"])
        options.setdefault("default_source", SilenceSource())
        options.setdefault("default_sink", BufferSink())
        sdk = pcw.PureCloudWebrtcSdk(token, **options)
        self.made.append(sdk)

        def on_error(error: Any, details: Any) -> None:
            # Only user-callback failures fail the test; service errors are the test's business.
            if isinstance(details, dict) and "callback" in details:
                self.callback_errors.append((error, details))

        sdk.on("error", on_error)
        if initialize:
            sdk.initialize(timeout=20)
        return sdk

    def close(self) -> None:
        """Close every SDK made (idempotent)."""
        for sdk in self.made:
            sdk.close()


@pytest.fixture
def purecloud_emulator() -> Iterator[Any]:
    """A started Genesys Cloud emulator on 127.0.0.1 (:class:`~purecloud_webrtc.emulator.Emulator`)."""
    try:
        from purecloud_webrtc.emulator import Emulator
    except ImportError as exc:  # aiohttp is an extra
        pytest.fail(f"the purecloud_emulator fixture needs: pip install 'purecloud_webrtc[emulator]' ({exc})")
    with Emulator() as emulator:
        yield emulator


@pytest.fixture
def purecloud_sdk_factory(purecloud_emulator: Any) -> Iterator[SdkFactory]:
    """A factory of SDKs connected to ``purecloud_emulator``; all are closed after the test."""
    factory = SdkFactory(purecloud_emulator)
    try:
        yield factory
    finally:
        factory.close()
    if factory.callback_errors:
        pytest.fail(f"SDK callbacks raised: {factory.callback_errors}")


@pytest.fixture
def purecloud_sdk(purecloud_sdk_factory: SdkFactory) -> Any:
    """A :class:`~purecloud_webrtc.PureCloudWebrtcSdk` connected to ``purecloud_emulator``."""
    return purecloud_sdk_factory()
