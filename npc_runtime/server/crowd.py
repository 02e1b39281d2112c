"""React's replies: several NPCs' generations for one player line, all at once (one
batch in the engine, events interleaved as they come) or one after another (each NPC
hearing the replies before its own). The service holds the flight and stores the turns;
this module only runs the generations and tags their events with whose they are."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

from ..neeko.prompt import Turn
from ..v1 import npc_runtime_pb2 as pb
from .replies import Flight, Generation, as_event, generate

_ENDED = object()  # a generation's end, in the queue of all_at_once


def started(flight: Flight, gen: Generation) -> pb.ReactEvent:
    message = pb.Started(
        request_id=flight.request_id,
        session_id=flight.session_id,
        npc_id=gen.npc_id,
        npc_name=gen.npc_name,
    )
    return pb.ReactEvent(npc_id=gen.npc_id, started=message)


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
