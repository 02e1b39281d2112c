"""The gRPC door onto the service: authorisation from metadata, ServiceError to status
codes, and nothing else. Behaviour belongs in service.py, shared with other doors."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from ..v1 import npc_runtime_pb2_grpc as pb_grpc
from .auth import AuthPolicy
from .errors import ServiceError
from .service import NpcService

log = logging.getLogger("npc_runtime.server")


def _authorization(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    """End the call with the error's status; a bug's details stay in the server log."""
    if isinstance(exc, ServiceError):
        await context.abort(grpc.StatusCode[exc.code], exc.message)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error: see the server log")


def _unary(name: str, call: Callable) -> Callable:
    async def handler(self: NpcRuntimeServicer, request, context):
        try:
            self.authorize(name, context)
            return await call(self.service, request)
        except Exception as exc:
            await _abort(context, exc)

    handler.__name__ = name
    return handler


def _stream(name: str, call: Callable) -> Callable:
    async def handler(self: NpcRuntimeServicer, request, context) -> AsyncIterator:
        try:
            self.authorize(name, context)
            # aclosing: when the client goes away this task is cancelled, and closing the
            # service's stream is what cancels the reply or the training behind it.
            async with contextlib.aclosing(call(self.service, request)) as events:
                async for event in events:
                    yield event
        except Exception as exc:
            await _abort(context, exc)

    handler.__name__ = name
    return handler


class NpcRuntimeServicer(pb_grpc.NpcRuntimeServicer):
    def __init__(self, service: NpcService, auth: AuthPolicy):
        self.service = service
        self.auth = auth

    def authorize(self, method: str, context: grpc.aio.ServicerContext) -> None:
        try:
            self.auth.check(method, _authorization(context))
        except ServiceError as exc:
            self.service.metrics.requests.labels(method, exc.code).inc()
            log.warning("%s refused: %s", method, exc.message)
            raise

    Speak = _stream("Speak", NpcService.speak)
    Cancel = _unary("Cancel", NpcService.cancel)
    RegisterNpc = _unary("RegisterNpc", NpcService.register_npc)
    ExpandNpc = _stream("ExpandNpc", NpcService.expand_npc)
    ListNpcs = _unary("ListNpcs", NpcService.list_npcs)
    GetNpc = _unary("GetNpc", NpcService.get_npc)
    RemoveNpc = _unary("RemoveNpc", NpcService.remove_npc)
    GetSession = _unary("GetSession", NpcService.get_session)
    ListSessions = _unary("ListSessions", NpcService.list_sessions)
    ResetSession = _unary("ResetSession", NpcService.reset_session)
    GetStatus = _unary("GetStatus", NpcService.get_status)
