"""The service's calls that change or show the cast: RegisterNpc, ExpandNpc, ListNpcs,
GetNpc, RemoveNpc. A part of `NpcService` (its base class), kept apart from the replies:
these calls ask `LiveCast`, which owns every change of the cast, and translate."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator

from ..engine.api import EngineError
from ..neeko.cast import Cast
from ..neeko.lore import LoreBook
from ..v1 import npc_runtime_pb2 as pb
from . import convert
from .calls import LOCAL, Caller, Observed
from .config import ServiceConfig
from .errors import from_engine
from .live_cast import LiveCast

log = logging.getLogger("npc_runtime.server")


class CastCalls(Observed):
    cast: Cast
    engine: object
    config: ServiceConfig
    live: LiveCast
    lore: LoreBook
    _speaking: Counter[str]

    async def register_npc(self, request: pb.RegisterNpcRequest, caller: Caller = LOCAL) -> pb.Npc:
        with self.observe("RegisterNpc"):
            self._accepting()
            profile = convert.profile(request.profile)
            await self._check_profile(profile)
            started = time.perf_counter()
            npc = await self.live.register(profile)
            log.info(
                "registered %s by fusion in %.0f ms: %s",
                npc.id,
                (time.perf_counter() - started) * 1000,
                ", ".join(f"{b} {w:.2f}" for b, w in npc.blend.items()),
            )
            return convert.npc_message(npc, self.lore)

    async def expand_npc(
        self, request: pb.ExpandNpcRequest, caller: Caller = LOCAL
    ) -> AsyncIterator[pb.ExpandEvent]:
        """Like speak(): close the iterator when stopping early; that cancels training."""
        with self.observe("ExpandNpc") as call:
            self._accepting()
            profile = convert.profile(request.profile)
            samples = convert.samples(
                profile.id,
                request.records,
                self.config.max_expand_records,
                self.config.max_text_bytes,
            )
            await self._check_profile(profile)
            config = convert.train_config(request.training)
            progress: asyncio.Queue = asyncio.Queue()
            task = asyncio.ensure_future(
                self.live.expand(profile, samples, config, progress.put_nowait)
            )
            task.add_done_callback(lambda _: progress.put_nowait(None))
            log.info("expanding %s on %d records", profile.id, len(samples))
            try:
                while (step := await progress.get()) is not None:
                    yield pb.ExpandEvent(
                        progress=pb.ExpandProgress(
                            step=step.step,
                            total_steps=step.total_steps,
                            loss=step.loss,
                            eta_seconds=step.eta_seconds,
                        )
                    )
                npc, report = task.result()
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.wait([task])
                    log.info("expansion of %s cancelled", profile.id)
            log.info("expanded %s: %d steps in %.1f s", npc.id, report.steps, report.seconds)
            call.done = True
            yield pb.ExpandEvent(
                done=pb.ExpandDone(
                    npc=convert.npc_message(npc, self.lore),
                    steps=report.steps,
                    seconds=report.seconds,
                    final_loss=report.final_loss.get(npc.id, 0.0),
                )
            )

    async def _check_profile(self, profile) -> None:
        try:
            await asyncio.to_thread(self.engine.check_profile, profile)
        except EngineError as exc:
            raise from_engine(exc) from None

    async def list_npcs(
        self, request: pb.ListNpcsRequest, caller: Caller = LOCAL
    ) -> pb.ListNpcsResponse:
        with self.observe("ListNpcs"):
            npcs = [n for n in self.cast.npcs.values() if self.live.ready(n.id)]
            return pb.ListNpcsResponse(npcs=[convert.npc_message(n, self.lore) for n in npcs])

    async def get_npc(self, request: pb.GetNpcRequest, caller: Caller = LOCAL) -> pb.Npc:
        with self.observe("GetNpc"):
            npc_id = convert.checked_id(request.npc_id, "npc_id")
            return convert.npc_message(self.live.check_speakable(npc_id), self.lore)

    async def remove_npc(
        self, request: pb.RemoveNpcRequest, caller: Caller = LOCAL
    ) -> pb.RemoveNpcResponse:
        with self.observe("RemoveNpc"):
            npc_id = convert.checked_id(request.npc_id, "npc_id")
            npc = await self.live.remove(npc_id, speaking=lambda i: self._speaking[i] > 0)
            log.info("removed %s (%s)", npc.id, npc.kind)
            return pb.RemoveNpcResponse(removed=convert.npc_message(npc, self.lore))
