"""Several NPCs' generations in one call. React: replies to one player line, all at once
(one batch in the engine, events interleaved as they come) or one after another (each
NPC hearing the replies before its own). Converse: a scene, turn after turn, each turn
stored as it completes. The service admits the call and holds its flight; this module
runs the generations and tags their events with whose they are."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

from ..engine.api import GenerationRequest
from ..neeko.prompt import Turn
from ..sessions import NewTurn
from ..v1 import npc_runtime_pb2 as pb
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

_ENDED = object()  # a generation's end, in the queue of all_at_once


def _started(flight: Flight, gen: Generation) -> pb.Started:
    return pb.Started(
        request_id=flight.request_id,
        session_id=flight.session_id,
        npc_id=gen.npc_id,
        npc_name=gen.npc_name,
    )


def started(flight: Flight, gen: Generation) -> pb.ReactEvent:
    return pb.ReactEvent(npc_id=gen.npc_id, started=_started(flight, gen))


async def all_at_once(
    engine, metrics, flight: Flight, gens: list[Generation], history, player: Turn
) -> AsyncIterator[pb.ReactEvent]:
    """Every NPC's reply in the engine at once; returns when all have ended. An engine
    failure of one fails the call (nothing is stored), after the others are cancelled."""
    for gen in gens:
        gen.request = dataclasses.replace(gen.request, turns=history + (player,))
        yield started(flight, gen)
    if flight.cancelled:
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(gen: Generation) -> None:
        try:
            async with contextlib.aclosing(generate(engine, metrics, flight, gen)) as parts:
                async for part in parts:
                    queue.put_nowait((gen, part))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, raised there
            queue.put_nowait((gen, exc))
            return
        queue.put_nowait((gen, _ENDED))

    tasks = [asyncio.ensure_future(pump(gen)) for gen in gens]
    try:
        running = len(tasks)
        while running:
            gen, part = await queue.get()
            if isinstance(part, Exception):
                raise part
            if part is _ENDED:
                running -= 1
            else:
                yield as_event(pb.ReactEvent, part, npc_id=gen.npc_id)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def one_by_one(
    engine, metrics, flight: Flight, gens: list[Generation], history, player: Turn
) -> AsyncIterator[pb.ReactEvent]:
    """Each NPC in turn, hearing the player and the replies before its own."""
    for gen in gens:
        yield started(flight, gen)
    heard = history + (player,)
    for gen in gens:
        if flight.cancelled:
            return
        gen.request = dataclasses.replace(gen.request, turns=heard)
        async with contextlib.aclosing(generate(engine, metrics, flight, gen)) as parts:
            async for part in parts:
                yield as_event(pb.ReactEvent, part, npc_id=gen.npc_id)
        if gen.text:
            heard += (Turn(gen.npc_name, gen.text, gen.npc_id),)


async def react(
    engine,
    metrics,
    flight: Flight,
    gens: list[Generation],
    history,
    opening: NewTurn,
    hear_earlier_replies: bool,
    store: Callable[[list[NewTurn]], Awaitable],
) -> AsyncIterator[pb.ReactEvent]:
    """A React call: the replies (all at once, or one by one when each hears the ones
    before), then, when every reply completed, the player's line and the replies stored
    together in order, then each NPC's last sentences, actions and reply, then Done."""
    run = one_by_one if hear_earlier_replies else all_at_once
    player = Turn(opening.speaker_name, opening.text)
    async with contextlib.aclosing(run(engine, metrics, flight, gens, history, player)) as events:
        async for event in events:
            yield event
    stored = not flight.cancelled and all(g.completed for g in gens)
    said = [t for g in gens if (t := g.turn()) is not None]
    if stored:
        await commit(store([opening, *said]))
    for gen in gens:
        log_reply("React", flight, gen, stored)
        for sentence in last_sentences(gen) if stored else ():
            yield pb.ReactEvent(npc_id=gen.npc_id, sentence=sentence)
        for action in gen.actions if stored else ():
            yield pb.ReactEvent(npc_id=gen.npc_id, action=action)
        yield pb.ReactEvent(npc_id=gen.npc_id, reply=final_message(gen, stored))
    turns = 1 + len(said) if stored else 0
    yield pb.ReactEvent(done=pb.ReactDone(stored=stored, turns_stored=turns))


async def converse(
    engine,
    metrics,
    flight: Flight,
    npcs: list,
    turns: int,
    history,
    opening: NewTurn,
    sampling,
    store: Callable[[list[NewTurn]], Awaitable],
    notes: dict[str, str],
) -> AsyncIterator[pb.ConverseEvent]:
    """A scene of `turns` turns, npcs speaking in order, round after round. The opening
    line is stored with the first reply; each reply once complete (then its events).
    notes: each NPC's (see server/memory.py), for every turn of the scene."""
    heard = history + (Turn(opening.speaker_name, opening.text),)
    unstored = [opening]
    stored = 0
    for turn in range(turns):
        npc = npcs[turn % len(npcs)]
        if flight.cancelled:
            break
        request = GenerationRequest(
            f"{flight.request_id}/{turn}", npc.id, heard, sampling, notes=notes[npc.id]
        )
        gen = Generation(npc.name, request)
        tag = {"npc_id": npc.id, "turn": turn}
        yield pb.ConverseEvent(started=_started(flight, gen), **tag)
        async with contextlib.aclosing(generate(engine, metrics, flight, gen)) as parts:
            async for part in parts:
                yield as_event(pb.ConverseEvent, part, **tag)
        if not gen.completed:
            log_reply("Converse", flight, gen, False)
            yield pb.ConverseEvent(reply=final_message(gen, False), **tag)
            break
        if (said := gen.turn()) is not None:
            unstored.append(said)
            heard += (Turn(npc.name, gen.text, npc.id),)
        await commit(store(unstored))
        stored += len(unstored)
        unstored = []
        log_reply("Converse", flight, gen, True)
        for sentence in last_sentences(gen):
            yield pb.ConverseEvent(sentence=sentence, **tag)
        yield pb.ConverseEvent(reply=final_message(gen, True), **tag)
    yield pb.ConverseEvent(done=pb.ConverseDone(turns_stored=stored, cancelled=flight.cancelled))
