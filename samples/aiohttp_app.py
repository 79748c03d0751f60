"""An aiohttp app on the asyncio twin: the SDK lives with the app, events arrive on the app's loop.

    python samples/aiohttp_app.py                      # against a private emulator, on a free port
    GENESYS_ACCESS_TOKEN=... python samples/aiohttp_app.py --port 8000

The same endpoints as the Flask and Django samples (``POST /calls``, ``GET /sessions``,
``DELETE /calls/{conversation_id}``), written with :class:`~purecloud_webrtc.aio.AsyncPureCloudWebrtcSdk`:
every SDK call is awaited (it never blocks the loop) and an ``async for`` task logs every SDK event.
The SDK is created in ``on_startup`` (inside the running loop) and closed in ``on_cleanup``.
Configuration: the ``GENESYS_*`` environment variables of samples/flask_app/app.py.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any, Dict

from aiohttp import web

import purecloud_webrtc as pcw
from purecloud_webrtc.aio import AsyncPureCloudWebrtcSdk
from purecloud_webrtc.media import NullSink

log = logging.getLogger("softphone.aiohttp")
SDK = web.AppKey("sdk", AsyncPureCloudWebrtcSdk)
EVENT_LOGGER = web.AppKey("event_logger", asyncio.Task)


def sdk_options() -> Dict[str, Any]:
    env = os.environ
    source = env.get("GENESYS_SOURCE", "tone:660")
    options: Dict[str, Any] = {"environment": env.get("GENESYS_ENVIRONMENT", "mypurecloud.com"),
                               "default_source": source,  # a spec: a source of its own per call
                               "default_sink": NullSink(),
                               "auto_answer_outbound_calls": "own"}
    for key, option in (("GENESYS_API_BASE_URL", "api_base_url"),
                        ("GENESYS_STREAMING_BASE_URL", "streaming_base_url")):
        if env.get(key):
            options[option] = env[key]
    if env.get("GENESYS_ICE_HOST_ADDRESSES"):
        options["ice_host_addresses"] = [a.strip() for a in env["GENESYS_ICE_HOST_ADDRESSES"].split(",")]
    return options


async def log_events(sdk: AsyncPureCloudWebrtcSdk) -> None:
    """Log every SDK event but traces, on the app's loop, until the SDK closes."""
    names = [n for n in ("pendingSession", "sessionStarted", "sessionEnded", "ready", "connected",
                         "disconnected", "error")]
    async with sdk.events(*names) as events:
        async for event in events:
            log.info("sdk event %s %s", event.name, event.args)


async def start_sdk(app: web.Application) -> None:
    sdk = AsyncPureCloudWebrtcSdk(os.environ["GENESYS_ACCESS_TOKEN"], **sdk_options())
    app[SDK] = sdk
    app[EVENT_LOGGER] = asyncio.create_task(log_events(sdk))
    await asyncio.sleep(0)  # let the logger subscribe before the first event
    await sdk.initialize(timeout=30)


async def stop_sdk(app: web.Application) -> None:
    await app[SDK].close()  # ends every call; the event logger's ``async for`` ends with it
    await asyncio.wait_for(app[EVENT_LOGGER], 10)
    print("sdk closed", flush=True)


async def place_call(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = {}
    number = body.get("phone_number") if isinstance(body, dict) else None
    if not number:
        return web.json_response({"error": "phone_number is required"}, status=400)
    conversation_id = await request.app[SDK].start_softphone_session(phone_number=number)
    return web.json_response({"conversation_id": conversation_id}, status=201)


async def sessions(request: web.Request) -> web.Response:
    return web.json_response([{"id": s.id, "conversation_id": s.conversation_id, "state": s.state,
                               "connection_state": s.connection_state, "muted": s.muted,
                               "frames_received": s.frames_received} for s in request.app[SDK].sessions])


async def hang_up(request: web.Request) -> web.Response:
    try:
        await request.app[SDK].end_session(conversation_id=request.match_info["conversation_id"])
    except pcw.SessionNotFoundError:
        return web.json_response({"error": "no such call"}, status=404)
    return web.Response(status=204)


def create_app() -> web.Application:
    app = web.Application()
    app.on_startup.append(start_sdk)
    app.on_cleanup.append(stop_sdk)
    app.add_routes([web.post("/calls", place_call), web.get("/sessions", sessions),
                    web.delete("/calls/{conversation_id}", hang_up)])
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(create_app())
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        print(f"listening on http://127.0.0.1:{bound}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="aiohttp softphone sample (asyncio twin)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    if os.environ.get("GENESYS_ACCESS_TOKEN"):
        asyncio.run(serve(args.port))
        return
    from purecloud_webrtc.emulator import Emulator

    with Emulator() as emu:  # no token: a private emulator on this machine
        os.environ.update(GENESYS_ACCESS_TOKEN=emu.access_token, GENESYS_API_BASE_URL=emu.api_base_url,
                          GENESYS_STREAMING_BASE_URL=emu.streaming_base_url,
                          GENESYS_ICE_HOST_ADDRESSES="127.0.0.1")
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
