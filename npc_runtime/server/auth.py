"""Who may call what: an optional token for every call, an optional admin token for the
calls that change the cast or forget a session.

The rules live here, not in the gRPC interceptor, so every door onto the service (gRPC,
the WebSocket bridge) checks them the same way.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from .errors import ServiceError

ADMIN_METHODS = frozenset({"RegisterNpc", "ExpandNpc", "RemoveNpc", "ResetSession"})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AuthPolicy:
    token: str | None = None
    admin_token: str | None = None

    def check_bind(self, host: str) -> None:
        """Refuse to listen beyond this machine without a token."""
        if not is_loopback(host) and not self.token:
            raise ServiceError(
                "FAILED_PRECONDITION",
                f"listening on {host} (not loopback) requires a token: set NPC_RUNTIME_TOKEN "
                "or pass --token",
            )

    def check(self, method: str, authorization: str | None) -> None:
        """Raise UNAUTHENTICATED or PERMISSION_DENIED unless `authorization` (the
        'Bearer <token>' header value) may call `method`."""
        admin = method in ADMIN_METHODS and self.admin_token
        if not self.token and not admin:
            return
        given = _bearer(authorization)
        if admin:
            if _same(given, self.admin_token):
                return
            if given is not None and _same(given, self.token):
                raise ServiceError(
                    "PERMISSION_DENIED", f"{method} needs the admin token, not the client token"
                )
            raise ServiceError(
                "UNAUTHENTICATED", f"{method} needs 'authorization: Bearer <admin token>'"
            )
        if _same(given, self.token) or _same(given, self.admin_token):
            return
        raise ServiceError(
            "UNAUTHENTICATED",
            "missing or wrong token: send metadata 'authorization: Bearer <token>'",
        )

    def accepts(self, authorization: str | None) -> bool:
        """Whether the token may call anything at all (always, when none is set)."""
        given = _bearer(authorization)
        return not self.token or _same(given, self.token) or _same(given, self.admin_token)

    def is_admin(self, authorization: str | None) -> bool:
        return bool(self.admin_token) and _same(_bearer(authorization), self.admin_token)


def _bearer(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _same(given: str | None, expected: str | None) -> bool:
    return bool(given and expected) and hmac.compare_digest(given.encode(), expected.encode())
