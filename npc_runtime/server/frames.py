"""The engine bridge's frames: one WebSocket message each, JSON in text frames and
msgpack in binary frames, holding proto messages in the proto3 JSON mapping.

Both codecs carry the same dict: json_format turns a proto message into it and back,
generically from the descriptors, so no message needs translating by hand.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgpack
from google.protobuf import json_format, message_factory
from google.protobuf.message import Message

from ..neeko.profile import is_unicode
from ..v1 import npc_runtime_pb2 as pb
from .errors import ServiceError, invalid

SERVICE = pb.DESCRIPTOR.services_by_name["NpcRuntime"]
MAX_ID_CHARS = 128
# A JSON escape of a UTF-16 surrogate: the only way a text frame (valid UTF-8) can hold a
# string that is not valid Unicode ("\ud800" alone). Pairs (emoji) are fine.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class Method:
    """One RPC of npc_runtime.v1.NpcRuntime, as the descriptor describes it."""

    def __init__(self, descriptor):
        self.name: str = descriptor.name
        self.request_class = message_factory.GetMessageClass(descriptor.input_type)
        self.streaming: bool = descriptor.server_streaming
        # The service's coroutine (or async generator) of the same name: RegisterNpc ->
        # NpcService.register_npc.
        self.attribute = "".join(
            f"_{c.lower()}" if c.isupper() and i else c.lower()
            for i, c in enumerate(descriptor.name)
        )


METHODS: dict[str, Method] = {m.name: Method(m) for m in SERVICE.methods}


def to_dict(message: Message) -> dict[str, Any]:
    """Proto field names (snake_case); fields without presence always present, so a
    client reads `index: 0` or `stored: false` without defaults of its own."""
    return json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def from_dict(value: Any, method: Method) -> Message:
    """The request message of `method` from a frame's `request` (snake_case or
    lowerCamelCase names); INVALID_ARGUMENT for unknown fields or wrong types."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise invalid(f"'request' must be an object ({method.request_class.DESCRIPTOR.name})")
    try:
        return json_format.ParseDict(value, method.request_class())
    except Exception as exc:
        # Not only ParseError: protobuf raises OverflowError for an integer too large for a
        # double field and SystemError for a key that is not valid Unicode. Whatever fails
        # to parse here is the client's dict; nothing else runs.
        reason = f"a number out of range ({exc})" if isinstance(exc, OverflowError) else exc
        raise invalid(
            f"bad {method.request_class.DESCRIPTOR.name} in 'request': {reason}"
        ) from None


REQUEST_KEYS = frozenset({"id", "method", "request", "authorization"})
CANCEL_KEYS = frozenset({"id", "cancel", "authorization"})


class _DuplicateKey(ValueError):
    pass


def _unique(pairs: list[tuple[Any, Any]]) -> dict:
    """A map whose keys are all different: a key twice would be read by one decoder as
    its first value and by another as its last, so no frame may hold one."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise _DuplicateKey(f"the key {str(twice)[:64]!r} appears twice in one object")
    return out


def decode(data: str | bytes) -> dict[str, Any]:
    """A frame's dict: JSON from a text frame, msgpack from a binary one."""
    try:
        if isinstance(data, str):
            frame = json.loads(data, object_pairs_hook=_unique)
            if _SURROGATE_ESCAPE.search(data):
                # Strings with unpaired surrogates could not be sent back or stored.
                json.dumps(frame, ensure_ascii=False).encode("utf-8")
        else:
            frame = msgpack.unpackb(data, raw=False, strict_map_key=True, object_pairs_hook=_unique)
    except _DuplicateKey as exc:
        raise invalid(f"malformed frame: {exc}") from None
    except Exception as exc:  # json.JSONDecodeError, msgpack's errors, bad UTF-8
        kind = "JSON (text frame)" if isinstance(data, str) else "msgpack (binary frame)"
        if isinstance(exc, UnicodeEncodeError):
            reason = "a string escapes an unpaired UTF-16 surrogate (not valid Unicode)"
        else:
            reason = str(exc) or type(exc).__name__  # msgpack's StackError says nothing
        raise invalid(f"malformed frame: not {kind}: {reason}") from None
    if not isinstance(frame, dict):
        raise invalid("malformed frame: the frame must be an object (a map)")
    return frame


def encode(frame: dict[str, Any], binary: bool) -> str | bytes:
    if binary:
        return msgpack.packb(frame, use_bin_type=True)
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def check_keys(frame: dict[str, Any]) -> None:
    """A request frame or a cancel frame, whole: no key the protocol does not define, so
    nothing a client meant is silently ignored."""
    if "cancel" in frame:
        if "method" in frame or "request" in frame:
            raise invalid("a frame is a request ('method') or a cancel ('cancel'), not both")
        if frame["cancel"] is not True:
            raise invalid("'cancel' must be true")
        allowed = CANCEL_KEYS
    else:
        allowed = REQUEST_KEYS
    unknown = [k for k in frame if k not in allowed]
    if unknown:
        shown = ", ".join(repr(str(k)[:64]) for k in unknown[:5])
        raise invalid(f"unknown frame keys {shown}: a frame has only {', '.join(sorted(allowed))}")


def frame_id(frame: dict[str, Any]) -> str:
    """The frame's id; INVALID_ARGUMENT (sent back with id "") without a good one."""
    value = frame.get("id")
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_CHARS or not is_unicode(value):
        raise invalid(f"'id' must be a string of 1-{MAX_ID_CHARS} characters, chosen by the client")
    return value


def error_frame(call_id: str, exc: ServiceError) -> dict[str, Any]:
    # A message may quote what the client sent; whatever it quotes, the frame must encode.
    message = exc.message.encode("utf-8", "backslashreplace").decode("utf-8")
    return {"id": call_id, "error": {"code": exc.code, "message": message}, "done": True}
