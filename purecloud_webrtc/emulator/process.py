"""The emulator in a child process of its own, driven from the parent.

Two uses: measuring the SDK alone (the far ends' CPU and memory are then another process's), and faults
that only a separate process can give, such as the service dying at once (:meth:`EmulatorProcess.kill`
sends ``SIGKILL``: no FIN, no session-terminate, no more media)::

    with EmulatorProcess() as emu:
        sdk = PureCloudWebrtcSdk(emu.access_token, api_base_url=emu.api_base_url,
                                 streaming_base_url=emu.streaming_base_url, ice_host_addresses=["127.0.0.1"])
        sdk.initialize()
        call = emu.inbound_call(tone_hz=440)      # a RemoteCall: the same methods as EmulatedCall
        ...
        call.heard_frequency(1.0)

Every method of :class:`~purecloud_webrtc.emulator.Emulator` and of its calls is reachable through
:meth:`EmulatorProcess.emulator` and :class:`RemoteCall`; arguments and results cross the pipe pickled.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from typing import Any, Dict, Optional

__all__ = ["EmulatorProcess", "RemoteCall"]


class RemoteCall:
    """A call of the emulator in the child process; attribute access calls the method of the same name."""

    def __init__(self, owner: "EmulatorProcess", key: int, conversation_id: str) -> None:
        self._owner, self._key, self.conversation_id = owner, key, conversation_id

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def method(*args: Any, **kwargs: Any) -> Any:
            return self._owner._ask("call", self._key, name, args, kwargs)

        return method

    @property
    def state(self) -> str:
        return str(self._owner._ask("call_attr", self._key, "state", (), {}))

    def __repr__(self) -> str:
        return f"<RemoteCall {self.conversation_id}>"


class EmulatorProcess:
    """Start :class:`~purecloud_webrtc.emulator.Emulator` in a child process (``spawn``, so no thread of this
    process is inherited) and drive it through a pipe.

    :param options: keyword arguments for :class:`~purecloud_webrtc.emulator.Emulator`.
    :param timeout: seconds to wait for each answer of the child.
    """

    def __init__(self, timeout: float = 60.0, **options: Any) -> None:
        self.timeout = timeout
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(target=_serve, args=(child, options), name="pcw-emulator", daemon=True)
        self.process.start()
        child.close()
        ready = self._receive()
        self.access_token: str = ready["access_token"]
        self.api_base_url: str = ready["api_base_url"]
        self.streaming_base_url: str = ready["streaming_base_url"]
        self.port: int = ready["port"]

    def __enter__(self) -> "EmulatorProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> Optional[int]:
        return self.process.pid

    def _receive(self) -> Any:
        if not self._pipe.poll(self.timeout):
            raise TimeoutError(f"the emulator process did not answer within {self.timeout} s")
        ok, value = self._pipe.recv()
        if not ok:
            raise RuntimeError(f"emulator process: {value}")
        return value

    def _ask(self, *request: Any) -> Any:
        with self._lock:
            if not self.process.is_alive():
                raise RuntimeError("the emulator process is not running")
            self._pipe.send(request)
            return self._receive()

    def emulator(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``Emulator.<name>(*args, **kwargs)`` in the child; returns its (pickled) result."""
        return self._ask("emulator", name, args, kwargs)

    def inbound_call(self, **kwargs: Any) -> RemoteCall:
        """Ring the user (``Emulator.inbound_call``); returns the call's remote handle."""
        key, conversation_id = self._ask("inbound_call", kwargs)
        return RemoteCall(self, key, conversation_id)

    def forget_ended_calls(self) -> int:
        """``Emulator.forget_ended_calls`` (and the child's handles of them)."""
        return int(self._ask("forget"))

    def kill(self) -> None:
        """``SIGKILL`` the child: the service dies at once, with everything it held."""
        if self.process.is_alive() and self.process.pid:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(10)

    def stop(self) -> None:
        """Stop the emulator and the child (idempotent)."""
        if self.process.is_alive():
            try:
                self._ask("stop")
            except (RuntimeError, TimeoutError, OSError, EOFError):
                self.process.kill()
            self.process.join(10)
        self._pipe.close()


def _serve(pipe: Any, options: Dict[str, Any]) -> None:
    from .server import Emulator

    emulator = Emulator(**options).start()
    calls: Dict[int, Any] = {}
    pipe.send((True, {"access_token": emulator.access_token, "api_base_url": emulator.api_base_url,
                      "streaming_base_url": emulator.streaming_base_url, "port": emulator.port}))
    while True:
        try:
            command, *args = pipe.recv()
        except EOFError:  # the parent went away
            emulator.stop()
            return
        try:
            if command == "inbound_call":
                call = emulator.inbound_call(**args[0])
                calls[id(call)] = call
                result: Any = (id(call), call.conversation_id)
            elif command == "call":
                key, name, a, kw = args
                result = getattr(calls[key], name)(*a, **kw)
            elif command == "call_attr":
                result = getattr(calls[args[0]], args[1])
            elif command == "emulator":
                name, a, kw = args
                result = getattr(emulator, name)(*a, **kw)
            elif command == "forget":
                result = emulator.forget_ended_calls()
                live = {id(c) for c in emulator.calls}
                for key in [k for k in calls if k not in live]:
                    del calls[key]
            elif command == "stop":
                emulator.stop()
                pipe.send((True, None))
                return
            else:
                raise ValueError(f"unknown command {command!r}")
            pipe.send((True, result))
        except Exception as exc:  # the parent raises it
            pipe.send((False, f"{type(exc).__name__}: {exc}"))
