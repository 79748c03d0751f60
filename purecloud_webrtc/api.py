"""REST client for the Genesys Cloud Public API (the calls the softphone needs).

One :class:`requests.Session` per SDK, bearer token, and retries on transient failures honouring
``Retry-After`` (docs/protocol.rst §1.2: 408/429/5xx are retried for idempotent methods, a refused
connection for any; 401/403 are final and raise :class:`~purecloud_webrtc.errors.AuthenticationError`).
``timeout`` on every method is a **deadline for the whole call**, retries and ``Retry-After`` waits
included: a wait that would end past it is not started.  Methods block; the SDK runs them on its one
REST thread (``pcw-rest-N``), so the session is only ever used from that thread.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from typing import Any, Dict, List, Optional

import requests

from ._version import __version__
from .errors import ApiError, AuthenticationError, ConnectionFailedError, TlsError

__all__ = ["ApiClient", "KNOWN_ENVIRONMENTS"]

log = logging.getLogger(__name__)

#: Environments the official SDKs know (docs/protocol.rst §1.1); others only warn.
KNOWN_ENVIRONMENTS = (
    "mypurecloud.com",
    "mypurecloud.com.au",
    "mypurecloud.jp",
    "mypurecloud.de",
    "mypurecloud.ie",
    "usw2.pure.cloud",
    "cac1.pure.cloud",
    "euw2.pure.cloud",
    "apne2.pure.cloud",
    "use2.us-gov-pure.cloud",
    "sae1.pure.cloud",
    "aps1.pure.cloud",
)


class ApiClient:
    """Blocking client of ``{base}/api/v2/...`` with a replaceable bearer token.

    :param base_url: ``https://api.{environment}`` or any URL (the emulator's, a proxy's).
    :param access_token: OAuth access token (``Bearer``).
    :param timeout: seconds per request.
    :param retries: retries for transient failures (0 disables them).
    """

    def __init__(self, base_url: str, access_token: str, *, timeout: float = 15.0, retries: int = 3,
                 verify: "bool | str" = True, adapter: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._token = access_token
        self._lock = threading.Lock()
        self.retries = retries
        self._session = requests.Session()
        if adapter is not None:  # a requests transport adapter (tests script the API with one)
            self._session.mount("http://", adapter)
            self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = f"purecloud-webrtc-python/{__version__}"
        # True: the system's trusted CAs; a path: a CA bundle (e.g. a company proxy's, or the emulator's).
        # Passed with every request: a session-level value loses to $REQUESTS_CA_BUNDLE in requests.
        self._verify = verify

    def __repr__(self) -> str:
        return f"<ApiClient {self.base_url} token=***>"

    def set_access_token(self, token: str) -> None:
        """Use ``token`` for every later request."""
        with self._lock:
            self._token = token

    @property
    def access_token(self) -> str:
        with self._lock:
            return self._token

    def url(self, path: str) -> str:
        """``{base}/api/v2/{path}`` with leading/trailing slashes of ``path`` trimmed (as the official client does)."""
        return f"{self.base_url}/api/v2/{path.strip('/')}"

    #: Statuses worth another try (for idempotent methods).
    RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
    IDEMPOTENT = frozenset({"GET", "PUT", "DELETE", "HEAD", "OPTIONS"})

    @staticmethod
    def _retry_after(response: requests.Response) -> Optional[float]:
        value = response.headers.get("Retry-After")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())

    def request(self, method: str, path: str, *, json: Any = None, params: Optional[Dict[str, str]] = None,
                timeout: Optional[float] = None) -> Any:
        """Send one request (with its retries) and return the decoded JSON body (``None`` for an empty body).

        :param timeout: seconds for the whole call, retries and ``Retry-After`` waits included (default: the
            client's per-request ``timeout``, with retries within three times that).
        :raises AuthenticationError: on 401/403.
        :raises ApiError: on any other error status or an undecodable body (after the retries that fit).
        :raises ConnectionFailedError: when the host cannot be reached (or the deadline passed).
        """
        url = self.url(path)
        start = time.monotonic()
        deadline = start + (timeout if timeout is not None else 3 * self.timeout)
        attempt = 0
        while True:
            attempt += 1
            left = deadline - time.monotonic()
            per_try = max(0.05, min(self.timeout, left))
            headers = {"Authorization": f"Bearer {self.access_token}"}
            try:
                response = self._session.request(method, url, json=json, params=params, headers=headers,
                                                 timeout=per_try, verify=self._verify)
            except requests.exceptions.SSLError as exc:
                raise TlsError(f"TLS failed for {url}: {exc}", url=url) from exc
            except requests.exceptions.ConnectionError as exc:
                # Nothing reached the server when the connection was refused: safe to try again for any method.
                refused = not isinstance(exc, requests.exceptions.ReadTimeout)
                if refused and self._can_wait(attempt, 0.5 * 2 ** (attempt - 1), deadline):
                    continue
                if isinstance(exc, requests.exceptions.ConnectTimeout):
                    raise ConnectionFailedError(f"{method} {url} timed out after {per_try:.1f} s", url=url) from exc
                raise ConnectionFailedError(f"cannot reach {url}: {exc}", url=url) from exc
            except requests.exceptions.Timeout as exc:
                raise ConnectionFailedError(f"{method} {url} timed out after {per_try:.1f} s", url=url) from exc
            except requests.exceptions.RequestException as exc:
                raise ConnectionFailedError(f"cannot reach {url}: {exc}", url=url) from exc
            if response.status_code in self.RETRY_STATUSES and method.upper() in self.IDEMPOTENT:
                delay = self._retry_after(response)
                if self._can_wait(attempt, 0.5 * 2 ** (attempt - 1) if delay is None else delay, deadline):
                    response.close()
                    continue
            break
        correlation_id = response.headers.get("inin-correlation-id")
        log.debug("%s %s -> %s (correlation %s)", method, url, response.status_code, correlation_id)
        body: Any = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = response.text
        if response.status_code in (401, 403):
            message = body.get("message") if isinstance(body, dict) else None
            raise AuthenticationError(
                f"{method} {path} was refused with HTTP {response.status_code}"
                + (f": {message}" if message else "") + " (is the access token valid and unexpired?)",
                status=response.status_code, method=method, url=url, correlation_id=correlation_id, body=body,
            )
        if response.status_code >= 400:
            message = body.get("message") if isinstance(body, dict) else (body or "")
            raise ApiError(
                f"{method} {path} failed with HTTP {response.status_code}" + (f": {message}" if message else ""),
                status=response.status_code, method=method, url=url, correlation_id=correlation_id, body=body,
            )
        if response.content and not isinstance(body, (dict, list)):
            raise ApiError(f"{method} {path} returned a body that is not JSON", status=response.status_code,
                           method=method, url=url, correlation_id=correlation_id, body=body)
        return body

    def _can_wait(self, attempt: int, delay: float, deadline: float) -> bool:
        """Sleep ``delay`` before another try when retries are left and it ends before ``deadline``."""
        if attempt > self.retries or time.monotonic() + delay >= deadline:
            return False
        time.sleep(delay)
        return True

    # -- the calls of the softphone ----------------------------------------------------

    def get_me(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``GET /users/me``: the user's ``id`` and ``chat.jabberId``."""
        body = self.request("GET", "users/me", timeout=timeout)
        if not isinstance(body, dict) or not body.get("id") or not (body.get("chat") or {}).get("jabberId"):
            raise ApiError("GET users/me returned no id or chat.jabberId", body=body, method="GET", url=self.url("users/me"))
        return body

    def get_organization(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``GET /organizations/me``."""
        return self.request("GET", "organizations/me", timeout=timeout)

    def create_streaming_channel(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``POST /notifications/channels?connectionType=streaming``: a new channel id."""
        body = self.request("POST", "notifications/channels", params={"connectionType": "streaming"}, timeout=timeout)
        if not isinstance(body, dict) or not body.get("id"):
            raise ApiError("POST notifications/channels returned no channel id", body=body, method="POST",
                           url=self.url("notifications/channels"))
        return body

    def get_conversation(self, conversation_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """``GET /conversations/calls/{id}``."""
        return self.request("GET", f"conversations/calls/{conversation_id}", timeout=timeout)

    def patch_participant(self, conversation_id: str, participant_id: str, body: Dict[str, Any],
                          timeout: Optional[float] = None) -> Any:
        """``PATCH /conversations/calls/{cid}/participants/{pid}``."""
        return self.request("PATCH", f"conversations/calls/{conversation_id}/participants/{participant_id}", json=body,
                            timeout=timeout)

    def place_call(self, body: Dict[str, Any], timeout: Optional[float] = None) -> Dict[str, Any]:
        """``POST /conversations/calls``: returns the new conversation (``id``)."""
        return self.request("POST", "conversations/calls", json=body, timeout=timeout)

    @staticmethod
    def my_participant(conversation: Dict[str, Any], user_id: str) -> Optional[Dict[str, Any]]:
        """This user's most recent participant that has not ended (alerting, connected, held...)."""
        participants: List[Dict[str, Any]] = conversation.get("participants") or []
        mine = [p for p in participants
                if (p.get("user") or {}).get("id") == user_id and p.get("state") not in ("disconnected", "terminated")]
        return mine[-1] if mine else None

    @staticmethod
    def my_connected_participant(conversation: Dict[str, Any], user_id: str) -> Optional[Dict[str, Any]]:
        """This user's participant in ``conversation`` that is ``connected`` (v1.3.0 rule, docs/protocol.rst §8 #8).

        When several match (re-joins), the last one listed is the most recent.
        """
        participants: List[Dict[str, Any]] = conversation.get("participants") or []
        mine = [p for p in participants
                if (p.get("user") or {}).get("id") == user_id and p.get("state") == "connected"]
        return mine[-1] if mine else None

    def close(self) -> None:
        self._session.close()
