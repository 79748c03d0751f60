"""A Celery worker whose every process owns one PureCloudWebrtcSdk for its Genesys user.

    # one worker (one pool process) per agent, each on its own queue, with a Redis broker on loopback:
    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    GENESYS_ACCESS_TOKEN=$AGENT1_TOKEN celery -A tasks worker -Q agent1 -n agent1@%h --concurrency 1
    # then, from anywhere:
    python -c "import tasks; print(tasks.place_call.apply_async(('+13175550123',), queue='agent1').get())"

Per process, never across a fork: the SDK owns threads, sockets and peer connections, none of which
survive ``fork()``.  So it is created in ``worker_process_init`` (in each pool child, after the fork)
and never at import time in the parent.  Before the child exits (``worker_process_shutdown``, on a warm
shutdown), :func:`drain` waits up to ``GENESYS_DRAIN_SECONDS`` for live calls to end, hangs up the
rest by REST, then closes the SDK.

Configuration (environment): ``CELERY_BROKER_URL`` (also the result backend), ``GENESYS_ACCESS_TOKEN``,
``GENESYS_ENVIRONMENT``, ``GENESYS_API_BASE_URL``, ``GENESYS_STREAMING_BASE_URL``,
``GENESYS_ICE_HOST_ADDRESSES`` (comma separated), ``GENESYS_SOURCE`` (``tone:HZ`` or a WAV path),
``GENESYS_DRAIN_SECONDS`` (default 30).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, List, Optional

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

import purecloud_webrtc as pcw
from purecloud_webrtc.media import NullSink

log = logging.getLogger("softphone.worker")

BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
app = Celery("softphone", broker=BROKER, backend=BROKER)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                # One call at a time per process, and a task is acknowledged only once it is done, so a
                # worker that dies mid-call does not lose the job silently.
                worker_prefetch_multiplier=1, task_acks_late=True, broker_connection_retry_on_startup=True)

#: This process's SDK (``None`` in the parent process, and before ``worker_process_init``).
_sdk: Optional[pcw.PureCloudWebrtcSdk] = None


def _options() -> Dict[str, Any]:
    env = os.environ
    source = env.get("GENESYS_SOURCE", "tone:660")
    options: Dict[str, Any] = {
        "environment": env.get("GENESYS_ENVIRONMENT", "mypurecloud.com"),
        "default_source": source,  # a spec: a source of its own per call
        "default_sink": NullSink(),
        "auto_answer_outbound_calls": "own",  # each worker answers the calls it placed
    }
    for key, option in (("GENESYS_API_BASE_URL", "api_base_url"),
                        ("GENESYS_STREAMING_BASE_URL", "streaming_base_url")):
        if env.get(key):
            options[option] = env[key]
    if env.get("GENESYS_ICE_HOST_ADDRESSES"):
        options["ice_host_addresses"] = [a.strip() for a in env["GENESYS_ICE_HOST_ADDRESSES"].split(",")]
    return options


@worker_process_init.connect
def start_sdk(**kwargs: Any) -> None:
    """In each pool process, after the fork: connect this process's own SDK."""
    global _sdk
    sdk = pcw.PureCloudWebrtcSdk(os.environ["GENESYS_ACCESS_TOKEN"], **_options())
    sdk.on("sessionStarted", lambda s: log.info("pid %d: call %s started", os.getpid(), s.conversation_id))
    sdk.on("sessionEnded", lambda s, reason: log.info("pid %d: call %s ended (%s)", os.getpid(),
                                                       s.conversation_id, reason))
    sdk.initialize(timeout=30)
    _sdk = sdk
    log.info("pid %d: SDK connected as %s", os.getpid(), sdk.user and sdk.user.get("name"))


def drain(sdk: pcw.PureCloudWebrtcSdk, seconds: float) -> int:
    """Let live calls finish for up to ``seconds``, hang up the rest; returns how many were hung up."""
    deadline = time.monotonic() + seconds
    while sdk.sessions and time.monotonic() < deadline:
        time.sleep(0.1)
    left = sdk.sessions
    for session in left:
        try:
            sdk.end_session(id=session.id)
        except pcw.PureCloudWebrtcError as exc:  # it may have ended meanwhile; close() ends the rest
            log.warning("could not hang up %s: %s", session.id, exc)
    return len(left)


@worker_process_shutdown.connect
def stop_sdk(**kwargs: Any) -> None:
    """Before the pool process exits: drain calls, then close the SDK (no thread left behind)."""
    global _sdk
    sdk, _sdk = _sdk, None
    if sdk is None:
        return
    hung_up = drain(sdk, float(os.environ.get("GENESYS_DRAIN_SECONDS", "30")))
    sdk.close()
    log.info("pid %d: drained (%d call(s) hung up) and closed the SDK", os.getpid(), hung_up)


def _sdk_or_fail() -> pcw.PureCloudWebrtcSdk:
    if _sdk is None:
        raise RuntimeError("no SDK in this process: run the tasks in a worker (worker_process_init)")
    return _sdk


@app.task
def place_call(phone_number: str, seconds: float = 2.0, hang_up: bool = True) -> Dict[str, Any]:
    """Place a call from this worker's user, stay on it ``seconds``, hang up (unless ``hang_up`` is false).

    Returns the conversation id, the worker's pid and user id, and how many audio frames were received.
    """
    sdk = _sdk_or_fail()
    # The proposal may arrive before or after the REST answer (the seed's docs say so): wait for the
    # event around the request, then correlate by conversation id.  One task at a time per process
    # (concurrency 1 per SDK) keeps the first sessionStarted ours.
    with sdk.expect_event("sessionStarted", timeout=30):
        conversation_id = sdk.start_softphone_session(phone_number=phone_number)
    session = sdk.get_session(conversation_id=conversation_id)
    time.sleep(seconds)
    frames = session.frames_received
    if hang_up:
        sdk.end_session(conversation_id=conversation_id)
    return {"conversation_id": conversation_id, "pid": os.getpid(), "user_id": (sdk.user or {}).get("id"),
            "frames_received": frames}


@app.task
def live_sessions() -> List[Dict[str, Any]]:
    """The calls live in this worker process."""
    return [{"conversation_id": s.conversation_id, "state": s.state, "connection_state": s.connection_state}
            for s in _sdk_or_fail().sessions]
