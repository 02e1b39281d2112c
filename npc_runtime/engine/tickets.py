"""Where a request's output waits between the decode thread and its reader.

The decode thread hands results to the event loop in one call, a reply's first token and
its end at once, the rest at most every EngineConfig.stream_interval_s; each request's
Ticket holds them until its stream asks, and hands over everything that has come since in
one take, a run of token deltas merged into one. So a stream's per-event costs (a gRPC
write, a WebSocket frame) are paid once an interval, not once a token, and a reader that
falls behind gets its backlog as one delta instead of falling further behind (vLLM's
output collector merges a slow reader's outputs the same way).
"""

from __future__ import annotations

import asyncio
from collections import deque

from .api import FinalResult, TokenDelta


def _merged(deltas: list[TokenDelta]) -> TokenDelta:
    """Consecutive deltas of one reply as one."""
    if len(deltas) == 1:
        return deltas[0]
    ids = tuple(t for d in deltas for t in d.token_ids)
    return TokenDelta(deltas[0].request_id, "".join(d.text for d in deltas), ids)


class Ticket:
    """A request's end of the handover from the decode thread: _deliver puts its items on
    the event loop, its stream takes everything that has come at once."""

    def __init__(self, request_id: str):
        self.request_id = request_id
        self.items: deque[TokenDelta | FinalResult] = deque()
        self.ready = asyncio.Event()
        self.opened = False  # (decode thread) something was handed over already
        self.done = False

    def put(self, item: TokenDelta | FinalResult) -> None:
        self.items.append(item)
        self.ready.set()

    async def take(self) -> list[TokenDelta | FinalResult]:
        """The items since the last take, each run of deltas merged into one."""
        while not self.items:
            self.ready.clear()
            await self.ready.wait()
        out: list[TokenDelta | FinalResult] = []
        deltas: list[TokenDelta] = []
        while self.items:
            item = self.items.popleft()
            if isinstance(item, TokenDelta):
                deltas.append(item)
                continue
            if deltas:
                out.append(_merged(deltas))
                deltas = []
            out.append(item)
        if deltas:
            out.append(_merged(deltas))
        return out
