"""The daemon's behaviour, whatever door a request comes in by (gRPC or the WebSocket
bridge): npc_runtime.v1 messages in, messages or event streams out, ServiceError (a gRPC
status name and what to fix) for everything refused. Replies (Speak, React, Converse)
live here; the cast's calls in cast_calls.py, the sessions' in session_calls.py.

All state of the service lives on one asyncio event loop: a check and the bookkeeping
that follows it run without an `await` between them, so no other request can slip in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator

from .. import __version__
from ..engine.actions import ACTIONS_MARKER, with_npc_actions
from ..engine.api import EngineError, GenerationRequest
from ..neeko.cast import Cast
from ..neeko.lore import LoreBook
from ..neeko.names import same_name
from ..neeko.prompt import HISTORY_CHUNK, Turn
from ..sessions import NPC, PLAYER, NewTurn, SessionStore, StoredTurn
from ..v1 import npc_runtime_pb2 as pb
from . import convert, crowd
from .calls import LOCAL, Caller
from .cast_calls import CastCalls
from .config import ServiceConfig
from .errors import ServiceError, from_engine, invalid, not_found, precondition
from .live_cast import LiveCast
from .memory import SessionMemory, window_start
from .metrics import Metrics
from .replies import (
    Flight,
    Generation,
    as_event,
    commit,
    final_message,
    generate,
    last_sentences,
    log_reply,
)
from .session_calls import SessionCalls

log = logging.getLogger("npc_runtime.server")

# The most NPCs one React or Converse call may ask, and the most turns of a scene.
MAX_REACTING = 8
MAX_SCENE_TURNS = 32


class NpcService(CastCalls, SessionCalls):
    """Every call of the API (the cast's and the sessions' in the base classes)."""

    def __init__(
        self,
        cast: Cast,
        engine,
        store: SessionStore,
        config: ServiceConfig,
        max_tokens_limit: int,
        lore: LoreBook | None = None,
    ):
        self.cast = cast
        self.engine = engine
        self.store = store
        self.config = config
        self.max_tokens_limit = max_tokens_limit
        self.live = LiveCast(cast, engine, config.max_npcs)
        self.lore = lore or LoreBook.empty()
        self.memory = SessionMemory(store, engine, self.lore, cast, config.max_history_turns)
        self.metrics = Metrics(engine.stats)
        self.closing = False
        self._flights: dict[str, Flight] = {}
        self._busy_sessions: dict[str, str] = {}  # session id -> why it is busy
        self._speaking: Counter[str] = Counter()
        self._started = time.monotonic()

    async def _check_room(self, session_id: str) -> None:
        """A new session only while there are fewer than max_sessions (counted without
        the new sessions of replies in flight, so it may be passed by a few)."""
        limit = self.config.max_sessions
        if self.store.session_count >= limit and not await self._stored(
            "cannot read the session", self.store.exists, session_id
        ):
            raise ServiceError(
                "RESOURCE_EXHAUSTED",
                f"{self.store.session_count} sessions are stored, the limit (--max-sessions): "
                "ResetSession the ones no longer needed",
            )

    # -- Speak and React -------------------------------------------------------------
    async def speak(
        self, request: pb.SpeakRequest, caller: Caller = LOCAL
    ) -> AsyncIterator[pb.SpeakEvent]:
        """Callers must close the iterator (contextlib.aclosing) when they stop early:
        closing it cancels the reply in the engine."""
        received = time.perf_counter()
        with self.observe("Speak") as call:
            self._accepting()
            npc_id = convert.checked_id(request.npc_id, "npc_id")
            shape = await self._reply_shape(request)
            flight, (npc,), text, speaker, sampling = await self._admit(request, (npc_id,), caller)
            async with self._flying(flight):
                shape = await self._npc_shape(shape, npc, request.sampling.stop)
                async for event in self._reply(flight, npc.name, speaker, text, sampling, shape):
                    event.elapsed_seconds = time.perf_counter() - received
                    call.done = event.HasField("final")
                    yield event

    async def react(
        self, request: pb.ReactRequest, caller: Caller = LOCAL
    ) -> AsyncIterator[pb.ReactEvent]:
        """Several NPCs answer one line (see the proto); close the iterator like speak's."""
        received = time.perf_counter()
        with self.observe("React") as call:
            self._accepting()
            npc_ids = _crowd(request.npc_ids, 1)
            shape = await self._reply_shape(request)
            flight, npcs, text, speaker, sampling = await self._admit(request, npc_ids, caller)
            async with self._flying(flight):
                history = await self._history(flight.session_id)
                stop = request.sampling.stop
                shapes = [await self._npc_shape(shape, n, stop) for n in npcs]
                notes = [await self.memory.notes(flight.session_id, n.id, text) for n in npcs]
                gens = [
                    Generation(
                        npc.name,
                        GenerationRequest(
                            f"{flight.request_id}/{npc.id}",
                            npc.id,
                            (),
                            sampling,
                            **npc_shape,
                            notes=note,
                        ),  # fmt: skip
                    )
                    for npc, npc_shape, note in zip(npcs, shapes, notes)
                ]
                events = crowd.react(
                    self.engine,
                    self.metrics,
                    flight,
                    gens,
                    history,
                    NewTurn(PLAYER, "", speaker, text),
                    request.hear_earlier_replies,
                    lambda turns: self._store_exchange(flight, turns),
                )
                async with contextlib.aclosing(events):
                    async for event in events:
                        event.elapsed_seconds = time.perf_counter() - received
                        if event.HasField("done"):
                            event.done.total_seconds = event.elapsed_seconds
                            call.done = True
                        yield event

    async def converse(
        self, request: pb.ConverseRequest, caller: Caller = LOCAL
    ) -> AsyncIterator[pb.ConverseEvent]:
        """NPCs talk among themselves (see the proto); close the iterator like speak's."""
        received = time.perf_counter()
        with self.observe("Converse") as call:
            self._accepting()
            npc_ids = _crowd(request.npc_ids, 2)
            if request.turns > MAX_SCENE_TURNS:
                raise invalid(f"turns must be at most {MAX_SCENE_TURNS}, not {request.turns}")
            flight, npcs, text, speaker, sampling = await self._admit(request, npc_ids, caller)
            async with self._flying(flight):
                history = await self._history(flight.session_id)
                scene = crowd.converse(
                    self.engine,
                    self.metrics,
                    flight,
                    npcs,
                    request.turns or len(npcs),
                    history,
                    NewTurn(PLAYER, "", speaker, text),
                    sampling,
                    lambda turns: self._store_exchange(flight, turns),
                    {n.id: await self.memory.notes(flight.session_id, n.id, text) for n in npcs},
                )
                async with contextlib.aclosing(scene):
                    async for event in scene:
                        event.elapsed_seconds = time.perf_counter() - received
                        if event.HasField("done"):
                            event.done.total_seconds = event.elapsed_seconds
                            call.done = True
                        yield event

    async def _reply_shape(self, request: pb.SpeakRequest | pb.ReactRequest) -> dict:
        """The request's actions or response schema, checked (INVALID_ARGUMENT) before
        anything starts, but for an action_choice that may name an NPC's own action."""
        shape = convert.reply_shape(request)
        await self._check_shape(dict(shape, action_choice="auto"), request.sampling.stop)
        return shape

    async def _npc_shape(self, shape: dict, npc, stop) -> dict:
        """The call's shape with the NPC's own actions (its profile's) beside the call's,
        checked whole: INVALID_ARGUMENT before the reply starts."""
        if npc.profile.actions and not shape["response_schema"]:
            shape = dict(shape, actions=with_npc_actions(npc.profile.actions, shape["actions"]))
        await self._check_shape(shape, stop)
        return shape

    async def _check_shape(self, shape: dict, stop) -> None:
        """In a worker thread: compiling a grammar takes milliseconds."""
        try:
            await asyncio.to_thread(self.engine.grammar, **shape, stop=tuple(stop))
        except EngineError as exc:
            raise from_engine(exc) from None

    async def _admit(self, request, npc_ids: tuple[str, ...], caller: Caller):
        """The checks Speak and React share, then the flight that holds the session."""
        session_id = convert.checked_id(request.session_id, "session_id")
        text = convert.player_text(request.text, self.config.max_text_bytes)
        speaker = convert.speaker_name(request)
        sampling = convert.sampling(request.sampling, self.max_tokens_limit)
        request_id = request.request_id or uuid.uuid4().hex
        convert.checked_id(request_id, "request_id")
        await self._check_room(session_id)
        npcs = [self.live.check_speakable(npc_id) for npc_id in npc_ids]
        for npc_id in npc_ids:
            self._check_speaker(speaker, npc_id)
        if request_id in self._flights:
            raise ServiceError("ALREADY_EXISTS", f"request_id {request_id!r} is in flight")
        if session_id in self._busy_sessions:
            raise precondition(
                f"session {session_id!r} {self._busy_sessions[session_id]}: one reply at a "
                "time per session; wait for its Final event or cancel it"
            )
        if len(self._flights) >= self.config.max_streams:
            raise ServiceError(
                "RESOURCE_EXHAUSTED",
                f"{len(self._flights)} streams in flight, the limit: retry shortly",
            )
        return Flight(request_id, npc_ids, session_id, caller), npcs, text, speaker, sampling

    @contextlib.asynccontextmanager
    async def _flying(self, flight: Flight):
        """The flight's hold on its session, its NPCs and a stream slot, for its life.
        Taken with no await after _admit's checks, so no other call slips in between."""
        self._flights[flight.request_id] = flight
        self._busy_sessions[flight.session_id] = (
            f"has a reply in flight (request {flight.request_id})"
        )
        self._speaking.update(flight.npc_ids)
        self.metrics.active_streams.inc()
        try:
            yield
        finally:
            del self._flights[flight.request_id]
            del self._busy_sessions[flight.session_id]
            self._speaking.subtract(flight.npc_ids)
            for npc_id in flight.npc_ids:
                if not self._speaking[npc_id]:
                    del self._speaking[npc_id]
            self.metrics.active_streams.dec()

    def _check_speaker(self, speaker: str, npc_id: str) -> None:
        """Players speak under names of their own: a player line shown under an NPC's
        name would read, in every other NPC's prompt, as that NPC's words."""
        for npc in self.cast.npcs.values():
            if not (same_name(speaker, npc.name) or same_name(speaker, npc.id)):
                continue
            if npc.id == npc_id:
                raise invalid(f"speaker_name {speaker!r} is the NPC's own name: use another")
            raise invalid(
                f"speaker_name {speaker!r} is the name of NPC {npc.id!r}: a player "
                "cannot speak as an NPC of the cast; use another name"
            )

    async def _history(self, session_id: str) -> tuple[Turn, ...]:
        limit = self.config.max_history_turns
        history = await self._stored(
            "cannot read the session", self.store.recent_turns, session_id, limit + HISTORY_CHUNK
        )
        return tuple(_prompt_turn(t) for t in _window(history, limit))

    async def _store_exchange(self, flight: Flight, exchange: list[NewTurn]) -> list[int]:
        seqs = await self._stored(
            "the reply was not stored, nor the player's line",
            self.store.append,
            flight.session_id,
            flight.request_id,
            exchange,
        )
        self.memory.after_commit(flight.session_id)  # turns may have left the window
        return seqs

    async def _reply(self, flight: Flight, npc_name, speaker, text, sampling, shape: dict):
        turns = await self._history(flight.session_id) + (Turn(speaker, text),)
        (npc_id,) = flight.npc_ids
        yield pb.SpeakEvent(
            started=pb.Started(
                request_id=flight.request_id,
                session_id=flight.session_id,
                npc_id=npc_id,
                npc_name=npc_name,
            )
        )
        if flight.cancelled:  # Cancel arrived before the engine had the request
            yield pb.SpeakEvent(final=pb.Final(finish_reason=pb.FINISH_REASON_CANCELLED))
            return
        notes = await self.memory.notes(flight.session_id, npc_id, text)
        request = GenerationRequest(
            flight.request_id, npc_id, turns, sampling, **shape, notes=notes
        )
        gen = Generation(npc_name, request)
        async with contextlib.aclosing(generate(self.engine, self.metrics, flight, gen)) as parts:
            async for part in parts:
                yield as_event(pb.SpeakEvent, part)
        stored = gen.completed
        if stored:
            for sentence in last_sentences(gen):
                yield pb.SpeakEvent(sentence=sentence)
            said = gen.turn()  # an NPC that says and does nothing leaves no turn
            exchange = [NewTurn(PLAYER, "", speaker, text), *([said] if said else [])]
            await commit(self._store_exchange(flight, exchange))
            for action in gen.actions:
                yield pb.SpeakEvent(action=action)
        log_reply("Speak", flight, gen, stored)
        yield pb.SpeakEvent(final=final_message(gen, stored))

    async def cancel(self, request: pb.CancelRequest, caller: Caller = LOCAL) -> pb.CancelResponse:
        with self.observe("Cancel"):
            flight = self._flights.get(request.request_id)
            if flight is None or not (caller.admin or flight.owner.connection == caller.connection):
                # Another connection's reply is not there for this caller: NOT_FOUND, so
                # no one learns which request ids others have in flight.
                raise not_found(
                    f"no reply in flight with request_id {request.request_id!r} on this "
                    "connection (a reply is cancelled from the connection that started it, "
                    "or with the admin token)"
                )
            flight.cancelled = True
            for engine_id in flight.engine_ids:
                self.engine.cancel(engine_id)
            return pb.CancelResponse()

    # -- status ---------------------------------------------------------------------
    async def get_status(self, request: pb.GetStatusRequest, caller: Caller = LOCAL) -> pb.Status:
        with self.observe("GetStatus"):
            stats = self.engine.stats()
            return pb.Status(
                version=__version__,
                base_model=self.cast.base.name,
                base_model_path=str(self.cast.base.path),
                device=str(next(self.cast.model.parameters()).device),
                cast_path=str(self.cast.path),
                npc_count=len(self.cast.npcs),
                block_count=len(self.cast.blocks),
                active_streams=len(self._flights),
                max_streams=self.config.max_streams,
                queued=stats.queued,
                cache_bytes=stats.cache_bytes,
                cache_budget_bytes=stats.cache_budget_bytes,
                cache_hits=stats.cache_hits,
                cache_misses=stats.cache_misses,
                training_npc_id=self.live.training or "",
                uptime_seconds=time.monotonic() - self._started,
            )


def _crowd(npc_ids, least: int) -> tuple[str, ...]:
    """React's and Converse's npc_ids: least to MAX_REACTING well-formed ids, each once."""
    npc_ids = tuple(npc_ids)
    if not least <= len(npc_ids) <= MAX_REACTING:
        raise invalid(f"npc_ids must name {least} to {MAX_REACTING} NPCs, not {len(npc_ids)}")
    for i, npc_id in enumerate(npc_ids):
        convert.checked_id(npc_id, f"npc_ids[{i}]")
    if len(set(npc_ids)) < len(npc_ids):
        twice = next(i for i in npc_ids if npc_ids.count(i) > 1)
        raise invalid(f"npc_ids names {twice!r} twice: each NPC takes part once")
    return npc_ids


def _window(history: list[StoredTurn], limit: int) -> list[StoredTurn]:
    """The latest turns, at most `limit`, from a seq just after a multiple of
    HISTORY_CHUNK: the window moves a chunk at a time, not a turn at a time, so the
    prompts of consecutive replies begin alike (seqs count from 1 in each session)."""
    if not history:
        return history
    start = window_start(history[-1].seq, limit)
    return [t for t in history if t.seq >= start]


def _prompt_turn(turn: StoredTurn) -> Turn:
    """A stored turn under the name it had when spoken; an NPC's by its id too, which is
    what makes it that NPC's own turn in its prompt (a player's never is). The actions an
    NPC took follow its words as it wrote them, so it remembers what it did."""
    text = turn.text + (ACTIONS_MARKER + turn.actions if turn.actions else "")
    return Turn(turn.speaker_name, text, turn.npc_id if turn.speaker_kind == NPC else "")
