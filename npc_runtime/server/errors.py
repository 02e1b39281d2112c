"""Errors the service answers with, independent of the door (gRPC, WebSocket) they leave by."""

from __future__ import annotations

from ..engine.api import EngineError


class ServiceError(Exception):
    """A request the service refuses; `code` is a gRPC status name, the message says what
    to fix. Raised before anything stored changes."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def from_engine(exc: EngineError) -> ServiceError:
    return ServiceError(exc.code, str(exc))


def invalid(message: str) -> ServiceError:
    return ServiceError("INVALID_ARGUMENT", message)


def not_found(message: str) -> ServiceError:
    return ServiceError("NOT_FOUND", message)


def precondition(message: str) -> ServiceError:
    return ServiceError("FAILED_PRECONDITION", message)
