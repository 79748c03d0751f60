"""The emulated Public API (``/api/v2/...``) on aiohttp (docs/protocol.rst §1).

Bearer-token auth per user, an ``inin-correlation-id`` header on every
response, JSON errors shaped like the real service's
(``{"message", "code", "status", "contextId"}``).  Handlers run on the
emulator's loop thread and change calls through the calls' own inboxes.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

from aiohttp import web

from ._state import EmulatedUser, EmulatorState, RestFault

if TYPE_CHECKING:  # pragma: no cover
    from .party import EmulatedCall
    from .server import Emulator

__all__ = ["build_app", "ApiError"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: Fields of ``POST /conversations/calls`` that say whom to call (at least one is needed).
DIAL_FIELDS = ("phoneNumber", "callUserId", "callQueueId", "conversationIds", "participants")


class ApiError(Exception):
    """An error response of the emulated API.

    :param status: HTTP status.
    :param code: the service's error code (``bad.credentials``, ``not.found``…).
    :param message: human-readable message.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error_response(status: int, code: str, message: str, correlation_id: str) -> web.Response:
    body = {
        "message": message,
        "code": code,
        "status": status,
        "contextId": correlation_id,
        "details": [],
        "errors": [],
    }
    return web.json_response(body, status=status)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


class RestApi:
    """Handlers of the emulated Public API.

    :param emulator: the emulator whose state and calls the API shows.
    """

    def __init__(self, emulator: "Emulator") -> None:
        self.emulator = emulator
        self.state: EmulatorState = emulator._state

    # -- plumbing ------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Correlation id, auth for ``/api/``, JSON errors and the REST log."""
        correlation_id = str(uuid.uuid4())
        response: web.StreamResponse
        if request.path.startswith("/stream/"):
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _error_response(exc.status, "bad.request", exc.reason, correlation_id)
                response.headers["inin-correlation-id"] = correlation_id
            self.state.log_rest(request.method, request.path, response.status)
            return response
        try:
            if request.path.startswith("/api/"):
                self._authenticate(request)
            fault = self._take_fault(request)
            if fault is not None and fault.hang is not None:
                await asyncio.sleep(fault.hang)
            if fault is not None and fault.status is not None:
                response = _error_response(fault.status, "scripted.fault", "scripted fault", correlation_id)
                if fault.retry_after is not None:
                    response.headers["Retry-After"] = f"{fault.retry_after:g}"
            else:
                response = await handler(request)
        except ApiError as err:
            response = _error_response(err.status, err.code, err.message, correlation_id)
        except web.HTTPException as exc:
            codes = {404: "not.found", 405: "method.not.allowed", 413: "request.entity.too.large"}
            code = codes.get(exc.status, "bad.request")
            response = _error_response(exc.status, code, exc.reason, correlation_id)
        response.headers["inin-correlation-id"] = correlation_id
        self.state.log_rest(request.method, request.path, response.status)
        return response

    def _take_fault(self, request: web.Request) -> "Optional[RestFault]":
        with self.state.cond:
            for fault in self.state.rest_faults:
                if fault.matches(request.method, request.path):
                    fault.served += 1
                    return fault
        return None

    def _authenticate(self, request: web.Request) -> EmulatedUser:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "bad.credentials", "No authentication bearer token specified in authorization header.")
        user = self.state.user_by_token(token.strip())
        if user is None:
            raise ApiError(401, "bad.credentials", "Invalid login credentials.")
        return user

    @staticmethod
    async def _json_body(request: web.Request) -> dict[str, Any]:
        raw = await request.text()
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            raise ApiError(
                400, "bad.request", "The request could not be understood by the server due to malformed syntax."
            ) from None
        if not isinstance(body, dict):
            raise ApiError(400, "bad.request", "The request body must be a JSON object.")
        return body

    def _call(self, request: web.Request) -> "EmulatedCall":
        cid = request.match_info["cid"]
        with self.state.cond:
            call = next((c for c in self.state.calls if c.conversation_id == cid), None)
        if call is None:
            raise ApiError(404, "not.found", f"Conversation {cid} not found.")
        return call

    def user_json(self, user: EmulatedUser, request: web.Request) -> dict[str, Any]:
        """``GET /users/{id}`` body of ``user``."""
        station = {"id": user.station_id, "selfUri": f"/api/v2/stations/{user.station_id}"}
        return {
            "id": user.id,
            "name": user.name,
            "division": {"id": self.state.org_id, "name": "Home"},
            "chat": {"jabberId": user.jid},
            "email": f"{user.local}@{self.state.org_name}.example",
            "state": "active",
            "username": f"{user.local}@{self.state.org_name}.example",
            "version": 1,
            "station": {"associatedStation": station, "effectiveStation": station, "defaultStation": station},
            "selfUri": f"/api/v2/users/{user.id}",
        }

    # -- handlers ------------------------------------------------------------

    async def users_me(self, request: web.Request) -> web.StreamResponse:
        """``GET /users/me`` (any ``expand``)."""
        return web.json_response(self.user_json(self._authenticate(request), request))

    async def user_by_id(self, request: web.Request) -> web.StreamResponse:
        """``GET /users/{id}``."""
        try:
            user = self.state.resolve_user(request.match_info["uid"])
        except LookupError:
            raise ApiError(404, "not.found", "User not found.") from None
        return web.json_response(self.user_json(user, request))

    async def organizations_me(self, request: web.Request) -> web.StreamResponse:
        """``GET /organizations/me``."""
        return web.json_response(
            {
                "id": self.state.org_id,
                "name": self.state.org_name,
                "thirdPartyOrgName": self.state.org_name,
                "domain": self.state.org_name,
                "state": "active",
                "selfUri": f"/api/v2/organizations/{self.state.org_id}",
            }
        )

    async def stations(self, request: web.Request) -> web.StreamResponse:
        """``GET /stations/{id}`` (the user's WebRTC station)."""
        sid = request.match_info["sid"]
        with self.state.cond:
            owner = next((u for u in self.state.users if u.station_id == sid), None)
        if owner is None:
            raise ApiError(404, "not.found", f"Station {sid} not found.")
        return web.json_response(
            {
                "id": sid,
                "name": f"WebRTC - {owner.name}",
                "status": "ASSOCIATED",
                "userId": owner.id,
                "type": "inin_webrtc_softphone",
                "webRtcPersistentEnabled": False,
                "webRtcForceTurn": False,
                "webRtcCallAppearances": 100,
                "selfUri": f"/api/v2/stations/{sid}",
            }
        )

    async def create_channel(self, request: web.Request) -> web.StreamResponse:
        """``POST /notifications/channels?connectionType=streaming``."""
        user: EmulatedUser = self._authenticate(request)
        channel_id = f"streaming-{uuid.uuid4().hex[:20]}"
        with self.state.cond:
            self.state.channels[channel_id] = user
        return web.json_response(
            {
                "id": channel_id,
                "connectUri": f"{self.emulator.streaming_base_url}/stream/channels/{channel_id}",
                "expires": _iso(time.time() + 24 * 3600),
            }
        )

    async def place_call(self, request: web.Request) -> web.StreamResponse:
        """``POST /conversations/calls``: an outbound call; its propose follows a few ms later."""
        user: EmulatedUser = self._authenticate(request)
        body = await self._json_body(request)
        present = [f for f in DIAL_FIELDS if body.get(f)]
        if not present:
            raise ApiError(
                400,
                "bad.request",
                "A call needs one of phoneNumber, callUserId, callQueueId, conversationIds or participants.",
            )
        if body.get("phoneNumber"):
            address = str(body["phoneNumber"])
        elif body.get("callUserId"):
            address = f"user:{body['callUserId']}"
        elif body.get("callQueueId"):
            address = f"queue:{body['callQueueId']}"
        elif body.get("participants"):
            first = body["participants"][0] if isinstance(body["participants"], list) else {}
            address = str((first or {}).get("address") or (first or {}).get("userId") or "participants")
        else:
            address = "conference"
        call = self.emulator._create_call(user, direction="outbound", address=address, auto_answer=True)
        # §3.6: the REST response and the propose race; no order is guaranteed.
        self.emulator._loop_or_fail().call_later(random.uniform(0.005, 0.03), call.enqueue, call.propose)
        cid = call.conversation_id
        return web.json_response({"id": cid, "selfUri": f"/api/v2/conversations/calls/{cid}"})

    def _conversation_json(self, call: "EmulatedCall", generic: bool) -> dict[str, Any]:
        participants = call.participants
        out = []
        for p in participants:
            entry = dict(p)
            if generic:
                entry["userId"] = (p.get("user") or {}).get("id")
                entry["calls"] = [
                    {
                        "id": f"{p['id']}-call",
                        "state": p["state"],
                        "direction": p["direction"],
                        "muted": p["muted"],
                        "held": p["held"],
                    }
                ]
            out.append(entry)
        prefix = "conversations" if generic else "conversations/calls"
        return {
            "id": call.conversation_id,
            "startTime": _iso(call.created_at),
            "participants": out,
            "recordingState": "none",
            "selfUri": f"/api/v2/{prefix}/{call.conversation_id}",
        }

    async def get_call(self, request: web.Request) -> web.StreamResponse:
        """``GET /conversations/calls/{cid}``."""
        return web.json_response(self._conversation_json(self._call(request), generic=False))

    async def get_conversation(self, request: web.Request) -> web.StreamResponse:
        """``GET /conversations/{cid}``."""
        return web.json_response(self._conversation_json(self._call(request), generic=True))

    async def patch_participant(self, request: web.Request) -> web.StreamResponse:
        """``PATCH /conversations[/calls]/{cid}/participants/{pid}``: state, muted, held."""
        call = self._call(request)
        body = await self._json_body(request)
        participant = call.participant(request.match_info["pid"])
        if participant is None:
            raise ApiError(404, "not.found", f"Participant {request.match_info['pid']} not found.")
        if not any(k in body for k in ("state", "muted", "held")):
            raise ApiError(400, "bad.request", "Nothing to change: give state, muted or held.")
        for key in ("muted", "held"):
            if key in body and not isinstance(body[key], bool):
                raise ApiError(400, "bad.request", f"{key} must be a boolean.")
        state = body.get("state")
        if state is not None and state != "disconnected":
            raise ApiError(400, "bad.request", f"The emulator cannot set a participant to state {state!r}.")
        with self.state.cond:
            for key in ("muted", "held"):
                if key in body:
                    participant[key] = body[key]
            self.state.cond.notify_all()
        if state == "disconnected":
            call.enqueue(call._hangup, "success")
        else:
            call.publish_update()
        return web.Response(status=202)

    async def post_digits(self, request: web.Request) -> web.StreamResponse:
        """``POST /conversations/calls/{cid}/participants/{pid}/digits`` ``{"digits": "123#"}`` (recorded)."""
        call = self._call(request)
        body = await self._json_body(request)
        if call.participant(request.match_info["pid"]) is None:
            raise ApiError(404, "not.found", f"Participant {request.match_info['pid']} not found.")
        digits = body.get("digits")
        if not isinstance(digits, str) or not digits or any(c not in "0123456789*#ABCDabcd" for c in digits):
            raise ApiError(400, "bad.request", "digits must be a non-empty string of 0-9, *, #, A-D.")
        call.rest_digits.append(digits)
        return web.Response(status=202)

    async def diagnostics_trace(self, request: web.Request) -> web.StreamResponse:
        """``POST /diagnostics/trace`` (SDK telemetry): accepted and dropped."""
        await request.read()
        return web.Response(status=202)

    async def not_found(self, request: web.Request) -> web.StreamResponse:
        """Any other ``/api/v2`` path."""
        raise ApiError(404, "not.found", f"No resource at {request.method} {request.path} in the emulator.")


def build_app(emulator: "Emulator") -> web.Application:
    """The aiohttp application serving REST under ``/api/v2`` and streaming under ``/stream/channels``."""
    api = RestApi(emulator)
    app = web.Application(middlewares=[api.middleware], client_max_size=1 << 20)
    r = app.router
    r.add_get("/api/v2/users/me", api.users_me)
    r.add_get("/api/v2/users/{uid}", api.user_by_id)
    r.add_get("/api/v2/organizations/me", api.organizations_me)
    r.add_get("/api/v2/stations/{sid}", api.stations)
    r.add_post("/api/v2/notifications/channels", api.create_channel)
    r.add_post("/api/v2/conversations/calls", api.place_call)
    r.add_get("/api/v2/conversations/calls/{cid}", api.get_call)
    r.add_get("/api/v2/conversations/{cid}", api.get_conversation)
    r.add_patch("/api/v2/conversations/calls/{cid}/participants/{pid}", api.patch_participant)
    r.add_patch("/api/v2/conversations/{cid}/participants/{pid}", api.patch_participant)
    r.add_post("/api/v2/diagnostics/trace", api.diagnostics_trace)
    r.add_post("/api/v2/conversations/calls/{cid}/participants/{pid}/digits", api.post_digits)
    r.add_route("*", "/api/v2/{tail:.*}", api.not_found)
    r.add_get("/stream/channels/{channel_id}", emulator._router_or_fail().handle_websocket)
    return app
