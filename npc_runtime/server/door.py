"""What every door onto the service (gRPC, the WebSocket bridge) decides the same way:
who may call (the token, checked before anything of the request is read), how a refused
or malformed call is counted, what a failure becomes on the wire, and which event ends a
stream. The doors only move bytes; each rule here has one owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator

from .auth import AuthPolicy
from .calls import Caller
from .errors import ServiceError, invalid
from .frames import Method
from .service import NpcService

log = logging.getLogger("npc_runtime.server")

# The events that end a stream: Speak's Final, ExpandNpc's ExpandDone, React's ReactDone.
LAST_EVENTS = ("final", "done")
INTERNAL = "internal error: see the server log"


class ClientNotReading(ServiceError):
    def __init__(self, seconds: float):
        super().__init__(
            "DEADLINE_EXCEEDED",
            f"the client read nothing for {seconds:g} s (--stream-idle-seconds): call ended",
        )


class DoorCore:
    def __init__(self, service: NpcService, auth: AuthPolicy, idle_seconds: float = 60.0):
        self.service = service
        self.auth = auth
        self.idle_seconds = idle_seconds

    async def deliver(self, write: Awaitable) -> None:
        """Wait for a write to reach the client; ClientNotReading after idle_seconds, so
        a client that stops reading holds no session, stream slot or memory for long."""
        try:
            await asyncio.wait_for(write, self.idle_seconds)
        except TimeoutError:
            raise ClientNotReading(self.idle_seconds) from None

    def admit(self, method: Method, authorization: str | None, connection: str) -> Caller:
        """The caller, or UNAUTHENTICATED / PERMISSION_DENIED, counted and logged."""
        try:
            self.auth.check(method.name, authorization)
        except ServiceError as exc:
            self.count(method, exc.code)
            log.warning("%s refused: %s", method.name, exc.message)
            raise
        return Caller(connection, self.auth.is_admin(authorization))

    def malformed(self, method: Method, message: str) -> ServiceError:
        """A request that did not parse: counted like every other refusal."""
        self.count(method, "INVALID_ARGUMENT")
        return invalid(message)

    def count(self, method: Method, code: str) -> None:
        self.service.metrics.requests.labels(method.name, code).inc()

    @contextlib.contextmanager
    def watchdog(self) -> Iterator[None]:
        """Cancel the current task unless the block ends within idle_seconds."""
        timer = asyncio.get_running_loop().call_later(
            self.idle_seconds, asyncio.current_task().cancel
        )
        try:
            yield
        finally:
            timer.cancel()

    async def unary(self, method: Method, request, caller: Caller):
        return await getattr(self.service, method.attribute)(request, caller)

    async def stream(self, method: Method, request, caller: Caller) -> AsyncIterator:
        """The service's events; leaving early closes the service's stream, which is
        what cancels the reply or the training behind it."""
        call = getattr(self.service, method.attribute)
        async with contextlib.aclosing(call(request, caller)) as events:
            async for event in events:
                yield event

    @staticmethod
    def is_last(event) -> bool:
        return event.WhichOneof("event") in LAST_EVENTS

    @staticmethod
    def failure(exc: Exception, where: str) -> ServiceError:
        """What a failure becomes on the wire: a ServiceError as it is, anything else
        INTERNAL, with its details in the server log only."""
        if isinstance(exc, ServiceError):
            return exc
        log.error("%s failed", where, exc_info=exc)
        return ServiceError("INTERNAL", INTERNAL)
