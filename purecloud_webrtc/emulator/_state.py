"""Shared state of one emulator: users, channels, wire and REST logs.

Everything here is mutated on the emulator's loop thread only; other threads
read copies under :attr:`EmulatorState.cond`, the one condition variable that
every waiter of the emulator (``wait_for_connection``, ``wait_state``…)
sleeps on and that the loop notifies after each change.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from .party import EmulatedCall

__all__ = ["EmulatedUser", "EmulatorError", "EmulatorState", "WireEntry", "UserRef"]


class EmulatorError(RuntimeError):
    """A scenario command that cannot be carried out (wrong call state, stopped emulator, wrong thread)."""


@dataclass(frozen=True)
class EmulatedUser:
    """A user of the emulated organisation.

    :ivar id: the user id (a UUID, as ``GET /users/me`` returns it).
    :ivar name: display name.
    :ivar jid: bare JID, ``{24 hex}@{org}.orgspan.com`` (``chat.jabberId``).
    :ivar domain: domain part of :attr:`jid`.
    :ivar access_token: the bearer token (and SASL ``authKey:``) of this user.
    :ivar station_id: id of the user's WebRTC station.
    """

    id: str
    name: str
    jid: str
    domain: str
    access_token: str = field(repr=False)
    station_id: str = ""

    @property
    def local(self) -> str:
        """Local part of the bare JID."""
        return self.jid.split("@", 1)[0]


#: Where a user can be given: the object, its id, its bare JID, or ``None`` (the default user).
UserRef = Union[EmulatedUser, str, None]


@dataclass(frozen=True)
class WireEntry:
    """One XML frame on one WebSocket, in global order."""

    seq: int
    connection: int
    user_id: Optional[str]
    direction: str  # "in" (client -> emulator) | "out"
    text: str


def new_user(name: str, domain: str, access_token: Optional[str] = None) -> EmulatedUser:
    """Make a user with fresh ids (a 24-hex-digit JID local part, like the real service)."""
    return EmulatedUser(
        id=str(uuid.uuid4()),
        name=name,
        jid=f"{secrets.token_hex(12)}@{domain}",
        domain=domain,
        access_token=access_token or f"emulator-token-{secrets.token_hex(8)}",
        station_id=str(uuid.uuid4()),
    )


@dataclass
class RestFault:
    """One scripted REST fault: requests whose method and path match answer ``status`` or hang."""

    method: str
    path: str
    status: Optional[int]
    retry_after: Optional[float]
    hang: Optional[float]
    times: Optional[int]
    served: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper()) and self.path in path
                and (self.times is None or self.served < self.times))


class EmulatorState:
    """Users, channels, calls and logs of one emulator (mutated on its loop only).

    :param org_name: organisation name; user JIDs live in ``{org_name}.orgspan.com``.
    """

    def __init__(self, org_name: str) -> None:
        self.org_name = org_name
        self.org_id = str(uuid.uuid4())
        self.domain = f"{org_name}.orgspan.com"
        self.gateway_domain = "gjoll.us-east-1.emulator.local"
        self.cond = threading.Condition(threading.RLock())
        self.users: list[EmulatedUser] = []
        self.channels: dict[str, EmulatedUser] = {}
        self.calls: list["EmulatedCall"] = []
        self.wire: list[WireEntry] = []
        self.rest_log: list[tuple[str, str, int]] = []
        #: fault injection: a SASL condition every login fails with, and a streaming outage flag.
        self.refuse_sasl: Optional[str] = None
        self.refuse_connections = False
        #: REST faults still to be served (see Emulator.rest_fault), checked in order.
        self.rest_faults: list[RestFault] = []
        self._seq = itertools.count(1)

    # -- users -------------------------------------------------------------

    def add_user(self, user: EmulatedUser) -> EmulatedUser:
        """Register ``user``; its token must be unique."""
        with self.cond:
            if any(u.access_token == user.access_token for u in self.users):
                raise ValueError("access token already used by another emulated user")
            self.users.append(user)
        return user

    def user_by_token(self, token: str) -> Optional[EmulatedUser]:
        """The user owning ``token`` (constant-time compare per user)."""
        with self.cond:
            users = list(self.users)
        found = None
        for user in users:
            if secrets.compare_digest(user.access_token.encode(), token.encode()):
                found = user
        return found

    def user_by_jid(self, bare_jid: str) -> Optional[EmulatedUser]:
        """The user whose bare JID is ``bare_jid`` (case-insensitive, as JIDs compare)."""
        wanted = bare_jid.lower()
        with self.cond:
            return next((u for u in self.users if u.jid.lower() == wanted), None)

    def resolve_user(self, ref: UserRef) -> EmulatedUser:
        """Turn a :data:`UserRef` into a user.

        :raises LookupError: for an unknown id or JID.
        """
        with self.cond:
            if ref is None:
                return self.users[0]
            if isinstance(ref, EmulatedUser):
                if ref not in self.users:
                    raise LookupError(f"user {ref.id} does not belong to this emulator")
                return ref
            for user in self.users:
                if ref in (user.id, user.jid):
                    return user
        raise LookupError(f"no emulated user with id or JID {ref!r}")

    # -- logs --------------------------------------------------------------

    def log_wire(self, connection: int, user_id: Optional[str], direction: str, text: str) -> None:
        """Append one frame to the wire log (loop thread)."""
        with self.cond:
            self.wire.append(WireEntry(next(self._seq), connection, user_id, direction, text))

    def log_rest(self, method: str, path: str, status: int) -> None:
        """Append one HTTP exchange to the REST log (loop thread)."""
        with self.cond:
            self.rest_log.append((method, path, status))

    # -- waiting -----------------------------------------------------------

    def changed(self) -> None:
        """Wake every waiter (loop thread, after a change)."""
        with self.cond:
            self.cond.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
        """Block the calling (non-loop) thread until ``predicate()`` holds.

        :param what: builds the message of the :class:`TimeoutError`.
        :raises TimeoutError: when ``timeout`` seconds pass first.
        """
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise TimeoutError(what())
