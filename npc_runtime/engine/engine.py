"""The engine: many NPCs speaking at once from one model, as async token streams.

Interface (what the daemon relies on)::

    engine = Engine(cast, EngineConfig(...))       # config optional
    async with engine:                             # or: await engine.start() / engine.stop()
        async for item in engine.submit(request):  # GenerationRequest
            ...                                    # TokenDelta*, then one FinalResult
        engine.cancel(request_id) -> bool          # False when not in flight
        await engine.run_exclusive(fn)            # fn() between two decode steps
        engine.stats() -> EngineStats

submit() builds the prompt (tokenising the scene: call it from a worker thread where
other work must not wait) and raises EngineError: NOT_FOUND (no such NPC),
INVALID_ARGUMENT (sampling out of range, or a profile longer than the context),
ALREADY_EXISTS (that request_id is in flight), RESOURCE_EXHAUSTED (max_active + max_queued
requests in flight), UNAVAILABLE (engine not started). The stream then yields TokenDeltas
(a delta's text may be empty while a character is incomplete or might begin a stop string)
and ends with a FinalResult; the deltas' texts add up to the result's text. The first
delta holds the first token; each later one the tokens made since the one before: about
stream_interval_s of them, more when the reader falls behind (tickets.py says why).
cancel() frees the request's capacity at once and its slot before the next decode step;
its stream ends with finish_reason 'cancelled'. Leaving the stream early (break, aclose)
cancels too. run_exclusive is how the cast may change under a running engine (register or
remove an NPC): caches that depend on the changed blocks are dropped, and requests whose
blocks are gone end with finish_reason 'error'.

One thread owns the model and runs the decode loop (torch releases the GIL in its kernels);
results reach asyncio through one call_soon_threadsafe per handover (each step's, or
every stream_interval_s while replies stream).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

import torch

from ..neeko.cast import Cast
from ..neeko.profile import NpcProfile
from ..neeko.prompt import HISTORY_CHUNK, scene_messages, stop_token_ids
from . import actions as act
from . import llama
from .api import (
    Action,
    EngineConfig,
    EngineError,
    EngineStats,
    FinalResult,
    GenerationRequest,
    SamplingParams,
    TokenDelta,
    Voice,
)
from .runner import Blend, Runner, TransformersRunner
from .scheduler import Scheduler, Sequence
from .threads import StepThreads, in_passing_thread, matmul_flops_per_token
from .tickets import Ticket

log = logging.getLogger(__name__)
ROOM_FOR_A_LINE = 64  # tokens a profile must leave for the player's line
T = TypeVar("T")


def make_runner(cast: Cast, config: EngineConfig, context: int) -> Runner:
    fast = llama.supports(cast.model)
    if config.backend == "llama" and not fast:
        raise ValueError(f"no engine forward for {cast.model.config.model_type!r} models")
    if fast and config.backend != "transformers":
        return llama.LlamaRunner(cast, config.max_active, context, config.kernel)
    return TransformersRunner(cast)


def block_versions(cast: Cast) -> dict[str, int]:
    """An identity per block that changes when its tensors are replaced or edited."""
    out = {}
    for i, block_id in enumerate(cast.neeko.block_ids):
        parts = []
        for layer in cast.neeko.layers.values():
            a, b = layer.lora_A[i], layer.lora_B[i]
            parts += [id(a), a._version, id(b), b._version]
        out[block_id] = hash(tuple(parts))
    return out


class Engine:
    def __init__(self, cast: Cast, config: EngineConfig | None = None):
        self.cast = cast
        self.config = config or EngineConfig()
        self.device = next(cast.model.parameters()).device
        model_limit = getattr(cast.model.config, "max_position_embeddings", None)
        self.context = min(self.config.max_context, model_limit or self.config.max_context)
        # packing the weights computes in parallel: in a thread that ends with it, so the
        # decode thread's OpenMP pool is the only one (see threads.py)
        self.runner = in_passing_thread(lambda: make_runner(cast, self.config, self.context))
        self.scheduler = Scheduler(
            self.runner,
            cast.tokenizer,
            replace(self.config, max_context=self.context),
            stop_token_ids(cast.tokenizer),
            cast.model.get_output_embeddings().out_features,
            self.device,
            StepThreads(
                torch.get_num_threads(),
                matmul_flops_per_token(cast.model),
                self.config.light_step_flops,
            ),
        )
        self._lock = threading.Lock()
        self._inbox: deque[tuple[str, Any]] = deque()
        self._flushed = 0.0  # when the decode thread last handed results over
        self._wake = threading.Event()
        self._inflight: dict[str, Ticket] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- life cycle ------------------------------------------------------------------
    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="npc-engine", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    # -- requests ------------------------------------------------------------------
    def _voice(self, request: GenerationRequest) -> Voice:
        if request.voice is None:
            try:
                npc = self.cast.npc(request.npc_id)
            except KeyError:
                raise EngineError("NOT_FOUND", f"no NPC {request.npc_id!r} in this cast") from None
            return Voice(npc.profile, npc.blend)
        unknown = sorted(set(request.voice.blend) - set(self.cast.neeko.block_ids))
        if unknown:
            raise EngineError("NOT_FOUND", f"no block {', '.join(map(repr, unknown))} in this cast")
        return request.voice

    def grammar(
        self,
        actions: tuple[Action, ...] = (),
        action_choice: str = "auto",
        response_schema: str = "",
        stop: tuple[str, ...] = (),
    ) -> str | None:
        """The grammar of a reply with these actions or this response schema (None: free
        speech); raises EngineError INVALID_ARGUMENT for a bad declaration or schema. The
        first call reads the tokenizer for the grammar compiler (about half a second)."""
        if response_schema:
            if actions or stop:
                raise EngineError(
                    "INVALID_ARGUMENT", "response_schema takes no actions and no stop strings"
                )
            grammar = act.structured_grammar(response_schema)
        else:
            act.check_actions(actions, action_choice)
            grammar = act.actions_grammar(actions, action_choice)
        if grammar is not None:
            self.scheduler.grammars.check(grammar)
        return grammar

    def _prompt(
        self, request: GenerationRequest, grammar: str | None
    ) -> tuple[list[int], int, Blend]:
        voice = self._voice(request)
        prompts = self.cast.prompts
        tail = act.ACTION_TOKENS if grammar is not None and not request.response_schema else 0
        budget = self.context - request.sampling.max_tokens - tail
        rules = act.instructions(request.actions, request.action_choice)
        ids, _ = prompts.fit(
            voice.profile, request.turns, budget, HISTORY_CHUNK, rules=rules, notes=request.notes
        )
        if len(ids) > budget:
            actions = f" and the actions' {tail} tokens" if tail else ""
            raise EngineError(
                "INVALID_ARGUMENT",
                f"the profile of {request.npc_id!r} and the latest line ({len(ids)} tokens) "
                f"and max_tokens ({request.sampling.max_tokens}){actions} exceed the context "
                f"({self.context})",
            )
        system = prompts.prompt_ids(scene_messages(voice.profile, [], rules)[:1])
        system_len = next(
            (i for i, (a, b) in enumerate(zip(ids, system)) if a != b), min(len(ids), len(system))
        )
        blend = tuple(sorted((b, float(w)) for b, w in voice.blend.items() if w))
        return ids, system_len, blend

    def check_profile(self, profile: NpcProfile) -> None:
        """INVALID_ARGUMENT unless the profile leaves room in the context for a reply of
        the default length and a player's line: an NPC accepted now must be speakable."""
        own = act.with_npc_actions(profile.actions, ())
        self.grammar(own)  # INVALID_ARGUMENT for a bad name or schema
        rules = act.instructions(own, "auto")
        need = len(self.cast.prompts.prompt_ids(scene_messages(profile, [], rules)))
        room = SamplingParams().max_tokens + ROOM_FOR_A_LINE
        if need + room > self.context:
            raise EngineError(
                "INVALID_ARGUMENT",
                f"the profile of {profile.id!r} makes a prompt of {need} tokens: with room for "
                f"a reply ({SamplingParams().max_tokens} tokens) and a player's line "
                f"({ROOM_FOR_A_LINE}) it must be at most {self.context - room} tokens for "
                f"this model's context of {self.context}; shorten it",
            )

    def submit(self, request: GenerationRequest) -> AsyncIterator[TokenDelta | FinalResult]:
        """Start a reply; raises EngineError at once when the request cannot be served."""
        submitted = time.perf_counter()
        if self._thread is None:
            raise EngineError("UNAVAILABLE", "the engine is not running")
        request.sampling.validate(self.config.max_tokens_limit)
        grammar = self.grammar(
            request.actions, request.action_choice, request.response_schema, request.sampling.stop
        )
        prompt, system_len, blend = self._prompt(request, grammar)
        ticket = Ticket(request.request_id)
        with self._lock:
            if request.request_id in self._inflight:
                raise EngineError(
                    "ALREADY_EXISTS", f"request {request.request_id!r} is in flight already"
                )
            if len(self._inflight) >= self.config.max_active + self.config.max_queued:
                raise EngineError(
                    "RESOURCE_EXHAUSTED",
                    f"{len(self._inflight)} requests in flight: try again later",
                )
            self._inflight[request.request_id] = ticket
        seq = Sequence(request, prompt, system_len, blend, ticket, submitted, grammar_text=grammar)
        self._post("submit", seq)
        return self._stream(ticket)

    async def _stream(self, ticket: Ticket) -> AsyncIterator[TokenDelta | FinalResult]:
        try:
            while True:
                for item in await ticket.take():
                    yield item
                    if isinstance(item, FinalResult):
                        return
        finally:
            if not ticket.done:
                self.cancel(ticket.request_id)

    def cancel(self, request_id: str) -> bool:
        with self._lock:
            ticket = self._inflight.pop(request_id, None)
        if ticket is None:
            return False
        self._post("cancel", request_id)
        return True

    @property
    def cores(self) -> int:
        """The threads a heavy decode step computes on (torch's count where the engine
        was made): what other work that should use every core asks for."""
        return self.scheduler.threads.most

    async def run_exclusive(self, fn: Callable[[], T]) -> T:
        if self._thread is None:
            raise EngineError("UNAVAILABLE", "the engine is not running")
        future = self._loop.create_future()
        self._post("exclusive", (fn, future))
        return await future

    def stats(self) -> EngineStats:
        s = self.scheduler
        cache = s.cache
        return EngineStats(
            active=len(s.decoding) + len(s.prefilling),
            queued=len(s.waiting),
            cache_bytes=cache.bytes if cache else 0,
            cache_budget_bytes=cache.budget if cache else 0,
            cache_hits=cache.hits if cache else 0,
            cache_misses=cache.misses if cache else 0,
            steps=s.steps,
            slots_free=len(s.free),
            in_flight=len(self._inflight),
        )

    # -- the decode thread -------------------------------------------------------------
    def _post(self, kind: str, payload: Any) -> None:
        self._inbox.append((kind, payload))
        self._wake.set()

    def _deliver(self, items: list[tuple[Ticket, TokenDelta | FinalResult]]) -> None:
        for ticket, item in items:
            if isinstance(item, FinalResult):
                ticket.done = True
                with self._lock:
                    if self._inflight.get(ticket.request_id) is ticket:
                        del self._inflight[ticket.request_id]
            ticket.put(item)

    def _flush(self, now: bool = False) -> None:
        """Hand the outbox to the event loop: at once when a reply begins or ends (or
        `now`), otherwise once stream_interval_s has passed since the last handover."""
        out = self.scheduler.outbox
        if not out:
            return
        clock = time.perf_counter()
        due = now or clock - self._flushed >= self.config.stream_interval_s
        if not due and all(t.opened and isinstance(i, TokenDelta) for t, i in out):
            return
        for ticket, _ in out:
            ticket.opened = True
        self.scheduler.outbox, self._flushed = [], clock
        self._loop.call_soon_threadsafe(self._deliver, out)

    def _drain_inbox(self) -> None:
        while self._inbox:
            kind, payload = self._inbox.popleft()
            if kind == "submit":
                self.scheduler.add(payload)
            elif kind == "cancel":
                self.scheduler.cancel(payload)
            else:
                self._exclusive(*payload)

    def _exclusive(self, fn: Callable[[], Any], future: asyncio.Future) -> None:
        self.scheduler.threads.all()
        try:
            result, error = fn(), None
        except BaseException as exc:  # handed to the caller, whatever it is
            result, error = None, exc
        self.runner.invalidate()
        self.scheduler.set_versions(block_versions(self.cast))
        blocks = set(self.cast.neeko.block_ids)
        for seq in self.scheduler.sequences():
            if any(b not in blocks for b, _ in seq.blend):
                self.scheduler.finish(seq, "error")

        def settle() -> None:
            if future.cancelled():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self._loop.call_soon_threadsafe(settle)

    def _run(self) -> None:
        # OpenMP's thread count is per thread: a new thread would compute on one core.
        self.scheduler.threads.all()
        self.scheduler.set_versions(block_versions(self.cast))
        while True:
            self._drain_inbox()
            if self._stopping:
                break
            if not self.scheduler.busy:
                self._flush(now=True)
                self._wake.wait()
                self._wake.clear()
                continue
            try:
                with torch.inference_mode():
                    self.scheduler.step()
            except Exception:
                log.exception("decode step failed: ending the requests in it")
                for seq in self.scheduler.sequences():
                    self.scheduler.finish(seq, "error")
            self._flush()
        for seq in self.scheduler.sequences():
            self.scheduler.finish(seq, "cancelled")
        self._flush(now=True)
