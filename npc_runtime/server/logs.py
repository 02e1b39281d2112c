"""Secrets never reach the log: at --log-level debug, websockets logs every handshake
header and frame, and a frame may carry 'authorization: Bearer <token>'."""

from __future__ import annotations

import logging
import re

_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",;\\]+")
REDACTED = "<redacted>"


class RedactSecrets(logging.Filter):
    """Replaces bearer tokens, and the daemon's own tokens wherever they appear, in every
    record that passes the handler it is added to."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = _BEARER.sub(rf"\g<1>{REDACTED}", message)
        for secret in self.secrets:
            clean = clean.replace(secret, REDACTED)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_root_handlers(secrets: tuple[str, ...]) -> RedactSecrets:
    """Add the filter to every handler of the root logger (where the daemon's records,
    websockets' and grpc's end up); remove it with remove_from_root_handlers."""
    redact = RedactSecrets(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
    return redact


def remove_from_root_handlers(redact: RedactSecrets) -> None:
    for handler in logging.getLogger().handlers:
        handler.removeFilter(redact)
