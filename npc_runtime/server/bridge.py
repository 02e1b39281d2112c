"""The engine bridge: a WebSocket door onto the same service as gRPC, for game engines
without a gRPC stack (Unity, Godot, browsers).

One frame is one message. A request frame names its `method` (a proto method name such
as "Speak"), an `id` the client chose and the proto `request`; every frame sent back
carries that `id`, with an `event` (streams), a `response` (unary calls) or an `error`
{code, message} (a gRPC status name and the same message as over gRPC), and the last
frame of a call says `done: true`. Text frames are JSON, binary frames msgpack; a reply
uses the codec of its request. Several calls run at once on one connection;
{"id": ..., "cancel": true} cancels one, and a closed connection cancels them all.

Authorisation is the gRPC rule (door.py, auth.py): 'Bearer <token>' from the handshake's
Authorization header, or from an `authorization` field of a request frame, which then
holds for the connection's later frames too; it is checked before the frame's `request`
is read. A request frame has exactly the keys id, method and optionally request and
authorization; a cancel frame id and cancel (and optionally authorization). Anything
else (unknown keys, both `cancel` and `method`, a key twice) is refused whole. A bad
frame is answered with an error frame and the connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from .door import ClientNotReading, DoorCore
from .errors import ServiceError, invalid
from .frames import (
    METHODS,
    Method,
    check_keys,
    decode,
    encode,
    error_frame,
    frame_id,
    from_dict,
    to_dict,
)

log = logging.getLogger("npc_runtime.server.bridge")

# Calls in flight on one connection; Speak streams are also bounded by --max-streams.
MAX_CALLS_PER_CONNECTION = 64
# The largest frame of a connection that has not shown a good token (when one is set).
STRANGER_FRAME_BYTES = 64 * 1024


class _Unread(Exception):
    """The client read nothing for the idle time; its connection is gone."""


def hard_frame_limit(max_frame_bytes: int) -> int:
    """Frames up to max_frame_bytes are read; larger ones, up to this size, are refused
    with an error frame (the connection stays); beyond it the connection closes (1009)."""
    return max(2 * max_frame_bytes, max_frame_bytes + 2**20)


class Bridge:
    def __init__(
        self,
        core: DoorCore,
        host: str,
        port: int,
        max_frame_bytes: int,
        origins: tuple[str, ...] = (),
        max_connections: int = 64,
    ):
        self.core = core
        self.max_connections = max_connections
        self.host = host
        self.port = port
        self.max_frame_bytes = max_frame_bytes
        # Browsers send Origin: pages from other sites must not reach a loopback daemon.
        # Native engine clients send none.
        self.origins = origins
        self.connections: set[_Connection] = set()
        self._server: Server | None = None

    async def start(self) -> int:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            max_size=hard_frame_limit(self.max_frame_bytes),
            origins=[None, *self.origins],
            compression=None,  # small frames, loopback: latency over bytes
            logger=log,
            process_request=self._admit_connection,
        )
        sockets = self._server.sockets
        self.port = sockets[0].getsockname()[1] if sockets else self.port
        return self.port

    async def stop(self, grace: float) -> None:
        """Let calls in flight finish for `grace` seconds (the service refuses new
        replies meanwhile), then close every connection, which cancels the rest."""
        if self._server is None:
            return
        tasks = [task for conn in self.connections for task in conn.calls.values()]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        self._server.close()
        await self._server.wait_closed()

    def _admit_connection(self, ws: ServerConnection, request):
        """At most max_connections at once: each may buffer up to a frame's limit."""
        if len(self.connections) >= self.max_connections:
            log.warning("bridge connection refused: %d open, the limit", len(self.connections))
            return ws.respond(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"{len(self.connections)} bridge connections are open, the limit "
                "(--bridge-max-connections): retry later\n",
            )
        # Before the first frame is read: its limit is set when its parsing starts.
        _limit_frames(ws, self, ws.request.headers.get("Authorization"))
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = _Connection(self, ws)
        self.connections.add(conn)
        try:
            await conn.run()
        finally:
            self.connections.discard(conn)


def _limit_frames(ws: ServerConnection, bridge: Bridge, authorization: str | None) -> None:
    """Until a connection has shown a good token, its frames (and the fragments of an
    unfinished one) may hold only a little memory: no stranger makes the daemon buffer
    megabytes. The limit holds from the next frame read."""
    trusted = bridge.core.auth.accepts(authorization)
    limit = hard_frame_limit(bridge.max_frame_bytes) if trusted else STRANGER_FRAME_BYTES
    # websockets 15 split max_size into message and fragment limits; 14 has max_size.
    name = "max_message_size" if hasattr(ws.protocol, "max_message_size") else "max_size"
    setattr(ws.protocol, name, limit)


class _Connection:
    def __init__(self, bridge: Bridge, ws: ServerConnection):
        self.bridge = bridge
        self.ws = ws
        self.calls: dict[str, asyncio.Task] = {}
        self.cancelled: set[str] = set()
        self.authorization: str | None = ws.request.headers.get("Authorization")
        self.name = f"bridge:{ws.id}"

    async def run(self) -> None:
        log.debug("bridge connection from %s", self.ws.remote_address)
        try:
            async for data in self.ws:
                await self.receive(data)
        except (ConnectionClosed, _Unread):
            pass
        finally:
            # Cancelling a call closes its service stream: the reply stops in the engine.
            for task in self.calls.values():
                task.cancel()
            if self.calls:
                await asyncio.wait(list(self.calls.values()))

    async def send(self, frame: dict[str, Any], binary: bool) -> None:
        """Send one frame; a client that reads nothing for the idle time loses its
        connection (and with it its calls), rather than holding them and their memory."""
        try:
            await self.bridge.core.deliver(self.ws.send(encode(frame, binary)))
        except ClientNotReading as exc:
            log.warning("bridge connection %s closed: %s", self.name, exc.message)
            self.ws.transport.abort()
            raise _Unread() from None

    async def receive(self, data: str | bytes) -> None:
        binary = isinstance(data, bytes)
        call_id = ""
        try:
            size = len(data) if binary else len(data.encode("utf-8"))
            limit = self.bridge.max_frame_bytes
            if size > limit:
                raise ServiceError(
                    "RESOURCE_EXHAUSTED",
                    f"frame of {size} bytes is over the limit of {limit} bytes "
                    "(--bridge-max-frame-bytes)",
                )
            frame = decode(data)
            call_id = frame_id(frame)
            check_keys(frame)
            if "authorization" in frame:
                if not isinstance(frame["authorization"], str):
                    raise invalid("'authorization' must be a string: 'Bearer <token>'")
                self.authorization = frame["authorization"]
                _limit_frames(self.ws, self.bridge, self.authorization)
            if frame.get("cancel") is True:
                self.cancel(call_id)
                return
            method = self._method(frame)
            if call_id in self.calls:
                raise ServiceError(
                    "ALREADY_EXISTS", f"id {call_id!r} is in flight on this connection"
                )
            if len(self.calls) >= MAX_CALLS_PER_CONNECTION:
                raise ServiceError(
                    "RESOURCE_EXHAUSTED",
                    f"{len(self.calls)} calls in flight on this connection, the limit",
                )
            caller = self.bridge.core.admit(method, self.authorization, self.name)
            try:
                request = from_dict(frame.get("request"), method)
            except ServiceError as exc:
                raise self.bridge.core.malformed(method, exc.message) from None
        except ServiceError as exc:
            await self.send(error_frame(call_id, exc), binary)
            return
        except Exception:
            # A bug in reading one frame must not close the connection and its other calls.
            log.exception("bridge frame failed")
            error = ServiceError("INTERNAL", "internal error: see the server log")
            await self.send(error_frame(call_id, error), binary)
            return
        self.calls[call_id] = asyncio.create_task(
            self._call(call_id, method, request, caller, binary)
        )

    @staticmethod
    def _method(frame: dict[str, Any]) -> Method:
        name = frame.get("method")
        if not isinstance(name, str) or not name:
            raise invalid("a request frame needs 'method' (such as \"Speak\"), or 'cancel': true")
        method = METHODS.get(name)
        if method is None:
            raise ServiceError(
                "UNIMPLEMENTED", f"unknown method {name!r}: one of {', '.join(METHODS)}"
            )
        return method

    def cancel(self, call_id: str) -> None:
        """Cancel a call in flight; an id not in flight (already done) is ignored."""
        task = self.calls.get(call_id)
        if task is not None:
            self.cancelled.add(call_id)
            task.cancel()

    async def _call(self, call_id: str, method: Method, request, caller, binary) -> None:
        core = self.bridge.core
        final: dict[str, Any] = {"id": call_id, "done": True}
        answered = False  # the stream's last event (Final, ExpandDone) has gone out
        try:
            if method.streaming:
                async with contextlib.aclosing(core.stream(method, request, caller)) as events:
                    async for event in events:
                        # Set before sending: websockets writes a frame at once and may
                        # then wait to drain, where a cancel can still land.
                        answered = core.is_last(event)
                        await self.send({"id": call_id, "event": to_dict(event)}, binary)
            else:
                final["response"] = to_dict(await core.unary(method, request, caller))
        except asyncio.CancelledError:
            if call_id not in self.cancelled:
                raise  # the connection is closing
            if not answered:  # a cancel after the Final changes nothing: a plain done
                final = error_frame(call_id, ServiceError("CANCELLED", "cancelled by the client"))
        except (ConnectionClosed, _Unread):
            return
        except Exception as exc:
            final = error_frame(call_id, core.failure(exc, f"{method.name} on the bridge"))
        finally:
            # Before the last frame goes out: the client may reuse the id once it has it.
            self.calls.pop(call_id, None)
            self.cancelled.discard(call_id)
        with contextlib.suppress(ConnectionClosed, _Unread):
            await self.send(final, binary)
