"""JSON endpoints: place a call, list live sessions, hang up."""

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

import purecloud_webrtc as pcw

from .sdk import get_sdk


@csrf_exempt
@require_POST
def place_call(request: HttpRequest) -> HttpResponse:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        body = {}
    number = body.get("phone_number") if isinstance(body, dict) else None
    if not number:
        return JsonResponse({"error": "phone_number is required"}, status=400)
    conversation_id = get_sdk().start_softphone_session(phone_number=number)
    return JsonResponse({"conversation_id": conversation_id}, status=201)


@require_GET
def sessions(request: HttpRequest) -> HttpResponse:
    return JsonResponse([{"id": s.id, "conversation_id": s.conversation_id, "state": s.state,
                          "connection_state": s.connection_state, "muted": s.muted,
                          "frames_received": s.frames_received} for s in get_sdk().sessions], safe=False)


@csrf_exempt
@require_http_methods(["DELETE"])
def hang_up(request: HttpRequest, conversation_id: str) -> HttpResponse:
    try:
        get_sdk().end_session(conversation_id=conversation_id)
    except pcw.SessionNotFoundError:
        return JsonResponse({"error": "no such call"}, status=404)
    return HttpResponse(status=204)
