"""A bridge (WebSocket) connection for tests, speaking JSON text or msgpack binary frames."""

from __future__ import annotations

import json

import msgpack
from websockets.sync.client import connect


class Conn:
    """One bridge connection; frames are dicts, sent as JSON text or msgpack binary."""

    def __init__(self, url: str, binary: bool = False, **kw):
        self.ws = connect(url, open_timeout=30, **kw).__enter__()
        self.binary = binary

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close()

    def send(self, frame: dict) -> None:
        self.ws.send(msgpack.packb(frame) if self.binary else json.dumps(frame))

    def recv(self) -> dict:
        data = self.ws.recv(timeout=60)
        assert isinstance(data, bytes) == self.binary, "replies use the request's codec"
        return msgpack.unpackb(data) if self.binary else json.loads(data)

    def until_done(self, ids: set[str]) -> list[dict]:
        """Every frame until each of `ids` has sent its `done` frame."""
        frames, waiting = [], set(ids)
        while waiting:
            frame = self.recv()
            frames.append(frame)
            if frame.get("done"):
                waiting.discard(frame["id"])
        return frames

    def call(self, method: str, request: dict, call_id: str = "c", **extra) -> list[dict]:
        self.send({"id": call_id, "method": method, "request": request, **extra})
        return self.until_done({call_id})

    def error(self, frame) -> dict:
        """The error of a frame that fails at once."""
        self.send(frame) if isinstance(frame, dict) else self.ws.send(frame)
        reply = self.recv()
        assert reply["done"] is True and "error" in reply, reply
        return reply
