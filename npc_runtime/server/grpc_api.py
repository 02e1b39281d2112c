"""The gRPC door onto the service: requests parsed, authorisation from metadata,
ServiceError to status codes, and nothing else. Behaviour belongs in service.py, shared
with other doors.

Handlers are made from the service descriptor, like the bridge's (frames.METHODS), so a
method added to the proto reaches both doors the same way.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.message import DecodeError

from .auth import AuthPolicy
from .errors import ServiceError, invalid
from .frames import METHODS, SERVICE, Method
from .service import NpcService

log = logging.getLogger("npc_runtime.server")


class _Malformed:
    """Request bytes that did not parse. gRPC would answer a deserializer's exception with
    INTERNAL; the handler answers this with INVALID_ARGUMENT instead."""

    def __init__(self, method: Method, error: Exception):
        self.message = f"malformed {method.request_class.DESCRIPTOR.name}: {error}"


def _parser(method: Method) -> Callable[[bytes], object]:
    def parse(data: bytes) -> object:
        try:
            return method.request_class.FromString(data)
        except DecodeError as exc:  # bad UTF-8 in a string field, truncated bytes
            return _Malformed(method, exc)

    return parse


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


class GrpcDoor:
    def __init__(self, service: NpcService, auth: AuthPolicy):
        self.service = service
        self.auth = auth

    def _admit(self, method: Method, request: object, context) -> None:
        """Authorise first (a stranger learns nothing about request parsing), then
        refuse what did not parse."""
        try:
            self.auth.check(method.name, _authorization(context))
        except ServiceError as exc:
            self.service.metrics.requests.labels(method.name, exc.code).inc()
            log.warning("%s refused: %s", method.name, exc.message)
            raise
        if isinstance(request, _Malformed):
            self.service.metrics.requests.labels(method.name, "INVALID_ARGUMENT").inc()
            raise invalid(request.message)

    def _unary(self, method: Method) -> Callable:
        async def handler(request, context):
            try:
                self._admit(method, request, context)
                return await getattr(self.service, method.attribute)(request)
            except Exception as exc:
                await _abort(context, exc)

        return handler

    def _stream(self, method: Method) -> Callable:
        async def handler(request, context) -> AsyncIterator:
            try:
                self._admit(method, request, context)
                # aclosing: when the client goes away this task is cancelled, and closing
                # the service's stream is what cancels the reply or the training behind it.
                call = getattr(self.service, method.attribute)
                async with contextlib.aclosing(call(request)) as events:
                    async for event in events:
                        yield event
            except Exception as exc:
                await _abort(context, exc)

        return handler

    def add_to(self, server: grpc.aio.Server) -> None:
        handlers = {}
        for method in METHODS.values():
            make = grpc.unary_stream_rpc_method_handler
            if not method.streaming:
                make = grpc.unary_unary_rpc_method_handler
            handler = self._stream(method) if method.streaming else self._unary(method)
            handlers[method.name] = make(
                handler,
                request_deserializer=_parser(method),
                response_serializer=lambda message: message.SerializeToString(),
            )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
        )
        server.add_registered_method_handlers(SERVICE.full_name, handlers)
