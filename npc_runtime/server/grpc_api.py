"""The gRPC door onto the service: request bytes parsed, the token read from metadata,
errors as status codes, and nothing else: the rules are door.py's, the behaviour
service.py's, shared with the bridge.

Handlers are made from the service descriptor, like the bridge's (frames.METHODS), so a
method added to the proto reaches both doors the same way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

import grpc
from google.protobuf.message import DecodeError

from .calls import Caller
from .door import DoorCore
from .frames import METHODS, SERVICE, Method

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


async def _abort(context: grpc.aio.ServicerContext, exc: Exception, method: Method) -> None:
    error = DoorCore.failure(exc, f"{method.name} on gRPC")
    await context.abort(grpc.StatusCode[error.code], error.message)


class GrpcDoor:
    def __init__(self, core: DoorCore):
        self.core = core

    def _admit(self, method: Method, request: object, context) -> Caller:
        """Authorise first (a stranger learns nothing about request parsing), then
        refuse what did not parse."""
        caller = self.core.admit(method, _authorization(context), f"grpc:{context.peer()}")
        if isinstance(request, _Malformed):
            raise self.core.malformed(method, request.message)
        return caller

    def _unary(self, method: Method) -> Callable:
        async def handler(request, context):
            try:
                caller = self._admit(method, request, context)
                return await self.core.unary(method, request, caller)
            except Exception as exc:
                await _abort(context, exc, method)

        return handler

    def _stream(self, method: Method) -> Callable:
        async def handler(request, context) -> AsyncIterator:
            try:
                caller = self._admit(method, request, context)
                # When the client goes away this task is cancelled, which closes the stream.
                async for event in self.core.stream(method, request, caller):
                    # gRPC sends an event once the generator is resumed after yielding it;
                    # a client that reads nothing leaves it suspended here: end it then.
                    with self.core.watchdog():
                        yield event
            except Exception as exc:
                await _abort(context, exc, method)

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
