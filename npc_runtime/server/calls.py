"""What every call of the service shares: who is calling, counting each call by its
final status, refusing new work while shutting down, and session store calls off the
event loop with their failures as statuses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from ..sessions import StoreError
from .errors import ServiceError, from_store
from .metrics import Metrics

log = logging.getLogger("npc_runtime.server")


@dataclass
class Call:
    done: bool = False


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as the service needs to know: the connection a call came in
    on (a reply may be cancelled only from the connection that started it) and whether
    it holds the admin token (which may cancel any). The doors say who (door.py)."""

    connection: str
    admin: bool = False


LOCAL = Caller("local", admin=True)  # the process itself: tests, the daemon's own calls


class Observed:
    """The base of the service's parts: `metrics` and `closing` are the service's."""

    metrics: Metrics
    closing: bool

    @contextlib.contextmanager
    def observe(self, method: str) -> Iterator[Call]:
        """Count one call by method and final status. A stream closed by its client
        after its last event (`call.done`) counts as OK, not CANCELLED."""
        call = Call()
        code = "OK"
        try:
            yield call
        except ServiceError as exc:
            code = exc.code
            raise
        except (asyncio.CancelledError, GeneratorExit):
            code = "OK" if call.done else "CANCELLED"
            raise
        except Exception:
            code = "INTERNAL"
            log.exception("%s failed", method)
            raise
        finally:
            self.metrics.requests.labels(method, code).inc()

    def _accepting(self) -> None:
        if self.closing:
            raise ServiceError("UNAVAILABLE", "the server is shutting down")

    async def _stored(self, what: str, call, *args):
        """A session store call off the event loop; its failures as statuses that say
        whether to free disk space, fix permissions or retry."""
        try:
            return await asyncio.to_thread(call, *args)
        except StoreError as exc:
            log.error("%s: %s", what, exc)
            raise from_store(exc, what) from None
