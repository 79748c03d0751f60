"""A Flask app that places softphone calls: one SDK per process, created with the app, closed on shutdown.

    python samples/flask_app/app.py                      # against a private emulator, on a free port
    GENESYS_ACCESS_TOKEN=... GENESYS_ENVIRONMENT=mypurecloud.ie python samples/flask_app/app.py --port 8000

Endpoints:

``POST /calls``  ``{"phone_number": "+13175550123"}``
    places a call (this process's SDK answers it with the configured audio) and answers
    ``201 {"conversation_id": ..., "worker": PID}``.
``GET /sessions``
    this process's live sessions with their state, connection state, mute and received audio frames.
``DELETE /calls/<conversation_id>``
    hangs up (``204``), ``404`` when there is no such call.

Every SDK event is re-sent as the Flask-style blinker signal :data:`sdk_event` (inside an app context, so
receivers may use ``current_app``) and logged on ``app.logger``.

Configuration (``app.config`` keys, or the same names in the environment): ``GENESYS_ACCESS_TOKEN``,
``GENESYS_ENVIRONMENT``, ``GENESYS_API_BASE_URL``, ``GENESYS_STREAMING_BASE_URL``,
``GENESYS_ICE_HOST_ADDRESSES`` (comma separated), ``GENESYS_SOURCE`` (a WAV path, ``tone:HZ`` or
``silence``).  Errors are JSON: ``{"error": ..., "message": ...}``.

Process model: the SDK owns threads and sockets, so create the app (and its SDK) in each worker process
*after* any fork: with gunicorn, do not use ``--preload``; the development server used here is one process.
With several workers, each answers the calls it placed (``auto_answer_outbound_calls="own"``), so
``GET /sessions`` and ``DELETE /calls/<id>`` see the calls of the worker that serves the request.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import signal
import sys
from typing import Any, Dict, Iterator, Optional

from blinker import Namespace
from flask import Flask, abort, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

import purecloud_webrtc as pcw
from purecloud_webrtc.events import SDK_EVENTS
from purecloud_webrtc.media import NullSink

#: Signals of this app, as Flask extensions define theirs (Flask's own signals are blinker signals too).
signals = Namespace()
#: Sent for every SDK event with ``name`` and ``args``; the sender is the Flask app.
sdk_event = signals.signal("purecloud-sdk-event", doc="An event of the app's PureCloudWebrtcSdk.")

_CONFIG_KEYS = ("GENESYS_ACCESS_TOKEN", "GENESYS_ENVIRONMENT", "GENESYS_API_BASE_URL",
                "GENESYS_STREAMING_BASE_URL", "GENESYS_ICE_HOST_ADDRESSES", "GENESYS_SOURCE")


def make_sdk(config: Dict[str, Any]) -> pcw.PureCloudWebrtcSdk:
    """Build the app's SDK from its configuration (not connected yet: wire its events first)."""
    options: Dict[str, Any] = {"environment": config.get("GENESYS_ENVIRONMENT") or "mypurecloud.com",
                               # A spec: each call gets a source of its own (silence, tone:HZ, a WAV path).
                               "default_source": config.get("GENESYS_SOURCE") or "tone:660",
                               "default_sink": NullSink(),
                               # Several workers of one user: each answers the calls it placed.
                               "auto_answer_outbound_calls": "own"}
    for key, option in (("GENESYS_API_BASE_URL", "api_base_url"),
                        ("GENESYS_STREAMING_BASE_URL", "streaming_base_url")):
        if config.get(key):
            options[option] = config[key]
    if config.get("GENESYS_ICE_HOST_ADDRESSES"):
        options["ice_host_addresses"] = [a.strip() for a in config["GENESYS_ICE_HOST_ADDRESSES"].split(",")]
    return pcw.PureCloudWebrtcSdk(config["GENESYS_ACCESS_TOKEN"], **options)


def get_sdk() -> pcw.PureCloudWebrtcSdk:
    """The current app's SDK (in a request or app context)."""
    return current_app.extensions["purecloud_webrtc"]


def create_app(config: Optional[Dict[str, Any]] = None) -> Flask:
    """The application factory: configures the app, connects its SDK and wires events and shutdown."""
    app = Flask(__name__)
    app.config.update({key: os.environ.get(key) for key in _CONFIG_KEYS})
    app.config.update(config or {})
    if not app.config["GENESYS_ACCESS_TOKEN"]:
        raise RuntimeError("set GENESYS_ACCESS_TOKEN (or run this file without it to use an emulator)")
    sdk = make_sdk(app.config)
    app.extensions["purecloud_webrtc"] = sdk
    # Closing ends every call and stops the SDK's threads; atexit covers servers that just exit.
    atexit.register(sdk.close)

    def forward(name: str) -> Any:
        def receiver(*args: Any) -> None:  # runs on the SDK's events thread, not in a request
            if name in ("audioLevel", "trace"):
                return
            with app.app_context():
                app.logger.info("sdk event %s %s", name, args)
                sdk_event.send(app, name=name, args=args)
        return receiver

    for name in SDK_EVENTS:
        if name != "trace":
            sdk.on(name, forward(name))
    sdk.on("sessionStarted", lambda session: [session.on(n, forward(n)) for n in
                                              ("change:connectionState", "terminated")])
    # Connect only now: events emitted while connecting (connected, ready) reach the receivers above.
    try:
        sdk.initialize(timeout=30)
    except BaseException:
        sdk.close()
        raise

    @app.errorhandler(HTTPException)
    def json_error(exc: HTTPException) -> Any:  # a JSON API answers errors in JSON, not Flask's HTML pages
        return jsonify(error=exc.name, message=exc.description), exc.code

    @app.errorhandler(pcw.PureCloudWebrtcError)
    def sdk_error(exc: pcw.PureCloudWebrtcError) -> Any:
        status = 400 if isinstance(exc, (pcw.UsageError, pcw.ConfigurationError, pcw.MediaSpecError)) else 502
        return jsonify(error=type(exc).__name__, message=str(exc)), status

    @app.post("/calls")
    def place_call() -> Any:
        body = request.get_json(silent=True) or {}
        number = body.get("phone_number")
        if not number:
            abort(400, "phone_number is required")
        conversation_id = get_sdk().start_softphone_session(phone_number=number)
        return jsonify(conversation_id=conversation_id, worker=os.getpid()), 201

    @app.get("/sessions")
    def sessions() -> Any:
        return jsonify([{"id": s.id, "conversation_id": s.conversation_id, "state": s.state,
                         "connection_state": s.connection_state, "muted": s.muted,
                         "frames_received": s.frames_received, "worker": os.getpid()} for s in get_sdk().sessions])

    @app.delete("/calls/<conversation_id>")
    def hang_up(conversation_id: str) -> Any:
        try:
            get_sdk().end_session(conversation_id=conversation_id)
        except pcw.SessionNotFoundError:
            abort(404, f"no call {conversation_id} in this process")
        return "", 204

    return app


@contextlib.contextmanager
def private_emulator_if_needed() -> Iterator[None]:
    """Without a token, run against a private emulator (a demo on this machine only)."""
    if os.environ.get("GENESYS_ACCESS_TOKEN"):
        yield
        return
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emu:
        os.environ.update(GENESYS_ACCESS_TOKEN=emu.access_token, GENESYS_API_BASE_URL=emu.api_base_url,
                          GENESYS_STREAMING_BASE_URL=emu.streaming_base_url,
                          GENESYS_ICE_HOST_ADDRESSES="127.0.0.1")
        yield


def main() -> None:
    from werkzeug.serving import make_server

    parser = argparse.ArgumentParser(description="Flask softphone sample")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # leave serve_forever() so the finally blocks close the SDK

    signal.signal(signal.SIGTERM, stop)
    with private_emulator_if_needed():
        app = create_app()
        server = make_server("127.0.0.1", args.port, app, threaded=True)
        print(f"listening on http://127.0.0.1:{server.port}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
            app.extensions["purecloud_webrtc"].close()
            print("sdk closed", flush=True)


if __name__ == "__main__":
    main()
