"""One NPC's reply on its way through the engine, the part Speak and React share: the
request in flight, its token and sentence events as they come, its result, the stored
Final. Speak streams one of these; React streams several at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field

from ..engine.api import EngineError, FinalResult, GenerationRequest, TokenDelta
from ..sessions import NPC, NewTurn
from ..v1 import npc_runtime_pb2 as pb
from .errors import ServiceError, from_engine
from .metrics import Metrics
from .sentences import SentenceSplitter

log = logging.getLogger("npc_runtime.server")

FINISH = {
    "stop": pb.FINISH_REASON_STOP,
    "length": pb.FINISH_REASON_LENGTH,
    "cancelled": pb.FINISH_REASON_CANCELLED,
}


@dataclass
class Flight:
    """A Speak or React in progress: what Cancel, RemoveNpc and ResetSession need to
    know. engine_ids: its requests in the engine (one per NPC that replies)."""

    request_id: str
    npc_ids: tuple[str, ...]
    session_id: str
    owner: object
    engine_ids: list[str] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class Generation:
    """One NPC's reply: the engine request, its sentence splitter, and the result."""

    npc_name: str
    request: GenerationRequest
    splitter: SentenceSplitter = field(default_factory=SentenceSplitter)
    final: FinalResult | None = None

    @property
    def npc_id(self) -> str:
        return self.request.npc_id

    @property
    def text(self) -> str:
        return self.final.text.strip() if self.final is not None else ""

    @property
    def completed(self) -> bool:
        """Finished as a reply that is stored (not cancelled)."""
        return self.final is not None and self.final.finish_reason in ("stop", "length")

    @property
    def actions(self) -> list[pb.NpcAction]:
        calls = self.final.actions if self.final is not None else ()
        return [
            pb.NpcAction(index=i, name=c.name, arguments_json=c.arguments)
            for i, c in enumerate(calls)
        ]

    def turn(self) -> NewTurn | None:
        """The reply as its session stores it; None for one that said and did nothing."""
        calls = self.final.actions if self.final is not None else ()
        if not (self.text or calls):
            return None
        actions = [{"name": c.name, "arguments": json.loads(c.arguments)} for c in calls]
        stored = json.dumps(actions, ensure_ascii=False) if actions else ""
        return NewTurn(NPC, self.npc_id, self.npc_name, self.text, actions=stored)


async def generate(
    engine, metrics: Metrics, flight: Flight, gen: Generation
) -> AsyncIterator[pb.TokenDelta | pb.Sentence]:
    """The reply's Token and Sentence messages as the engine makes them; gen.final is set
    when it ends. Closing this early cancels the request in the engine."""
    started = time.perf_counter()
    last_token: float | None = None
    try:
        stream = await _submit(engine, flight, gen.request)
        async with contextlib.aclosing(stream):
            async for item in stream:
                if not isinstance(item, TokenDelta):
                    gen.final = item
                    continue
                if item.token_ids:  # not the text a finished reply had held back
                    now = time.perf_counter()
                    if last_token is None:
                        metrics.ttft.observe(now - started)
                    else:  # a delta of n tokens after a gap: n gaps of gap / n
                        gap = (now - last_token) / len(item.token_ids)
                        for _ in item.token_ids:
                            metrics.inter_token.observe(gap)
                    last_token = now
                yield pb.TokenDelta(text=item.text, token_ids=item.token_ids)
                for index, sentence in gen.splitter.feed(item.text):
                    yield pb.Sentence(index=index, text=sentence)
    except EngineError as exc:
        raise from_engine(exc) from None
    if gen.final is None or gen.final.finish_reason == "error":
        raise ServiceError("INTERNAL", "the engine failed on this reply; nothing was stored")
    metrics.tokens.labels("prompt").inc(gen.final.prompt_tokens)
    metrics.tokens.labels("cached_prompt").inc(gen.final.cached_prompt_tokens)
    metrics.tokens.labels("completion").inc(gen.final.completion_tokens)


def last_sentences(gen: Generation) -> list[pb.Sentence]:
    """The sentences the stream has not sent yet (the last one, usually)."""
    return [pb.Sentence(index=i, text=s) for i, s in gen.splitter.finish(gen.text)]


def final_message(gen: Generation, stored: bool) -> pb.Final:
    final = gen.final
    if final is None:  # cancelled before the engine had it
        return pb.Final(finish_reason=pb.FINISH_REASON_CANCELLED)
    return pb.Final(
        text=gen.text,
        finish_reason=FINISH[final.finish_reason],
        prompt_tokens=final.prompt_tokens,
        completion_tokens=final.completion_tokens,
        cached_prompt_tokens=final.cached_prompt_tokens,
        time_to_first_token_seconds=final.time_to_first_token_s,
        total_seconds=final.total_time_s,
        stored=stored,
        actions=gen.actions,
    )


def log_reply(method: str, flight: Flight, gen: Generation, stored: bool) -> None:
    final = gen.final
    if final is None:
        return
    ttft = final.time_to_first_token_s
    log.info(
        "%s %s npc=%s session=%s: %s, %d tokens, ttft %s, %.2f s%s",
        method,
        flight.request_id,
        gen.npc_id,
        flight.session_id,
        final.finish_reason,
        final.completion_tokens,
        "-" if ttft is None else f"{ttft:.3f} s",
        final.total_time_s,
        ", stored" if stored else "",
    )


async def commit(write: Awaitable) -> None:
    """Wait for a session write that runs on in its thread whatever happens here: a
    cancellation now (a bridge cancel frame, a client leaving) comes too late, so the
    caller sends the stored Final, never CANCELLED, which says nothing was stored."""
    task = asyncio.ensure_future(write)
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            asyncio.current_task().uncancel()
    task.result()


async def _submit(engine, flight: Flight, request: GenerationRequest):
    """engine.submit in a worker thread: building a long session's prompt takes
    tokenising it, and no other client waits for that. A reply cancelled meanwhile (a
    Cancel, a client gone) is cancelled in the engine as soon as it is there."""
    flight.engine_ids.append(request.request_id)
    submit = asyncio.ensure_future(asyncio.to_thread(engine.submit, request))
    try:
        stream = await asyncio.shield(submit)
    except asyncio.CancelledError:
        rid = request.request_id
        submit.add_done_callback(lambda f: f.cancelled() or f.exception() or engine.cancel(rid))
        raise
    if flight.cancelled:
        engine.cancel(request.request_id)
    return stream


def as_event(kind, part: pb.TokenDelta | pb.Sentence, **fields):
    """A Token or Sentence message as a SpeakEvent or ReactEvent."""
    if isinstance(part, pb.TokenDelta):
        return kind(token=part, **fields)
    return kind(sentence=part, **fields)
