"""Errors the service answers with, independent of the door (gRPC, WebSocket) they leave by."""

from __future__ import annotations

import errno

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


# What a failed disk tells the client: a full disk can be freed, a read-only folder needs
# its owner, a busy or failing disk may recover.
_STORE_CODES = {
    "full": "RESOURCE_EXHAUSTED",
    "read-only": "FAILED_PRECONDITION",
    "version": "FAILED_PRECONDITION",
    "busy": "UNAVAILABLE",
    "io": "UNAVAILABLE",
    "damaged": "DATA_LOSS",
}
_OS_CODES = {
    errno.ENOSPC: "RESOURCE_EXHAUSTED",
    errno.EDQUOT: "RESOURCE_EXHAUSTED",
    errno.EFBIG: "RESOURCE_EXHAUSTED",
    errno.EROFS: "FAILED_PRECONDITION",
    errno.EACCES: "FAILED_PRECONDITION",
    errno.EPERM: "FAILED_PRECONDITION",
}


def from_store(exc: Exception, what: str) -> ServiceError:
    """A session store failure (sessions.StoreError, with its `reason`)."""
    return ServiceError(_STORE_CODES.get(getattr(exc, "reason", ""), "INTERNAL"), f"{what}: {exc}")


def from_os_error(exc: Exception, what: str) -> ServiceError:
    code = _OS_CODES.get(exc.errno, "INTERNAL") if isinstance(exc, OSError) else "INTERNAL"
    return ServiceError(code, f"{what}: {exc}")
