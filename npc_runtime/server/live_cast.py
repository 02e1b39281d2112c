"""Changing the cast while it speaks: fusion, expansion and removal, live and on disk.

Every change of what the engine reads (the NPC table, the blocks in the layers) happens
in `engine.run_exclusive`, between two decode steps; everything slow happens outside it:
profile embeddings and saving in worker threads, training in a thread of its own.

Expansion trains a block that the engine cannot see yet: the block is added to the
layers (`cast.neeko`) only, not to `cast.blocks` or `cast.npcs`, so no NPC can route to
it, fusion cannot blend it and saving does not write it. Routing is thread-local, so the
training thread routes its batches through the new block while the engine thread keeps
decoding other NPCs through the same layers. Once training ends, the block and its NPC
join the cast's tables in one exclusive step and the cast is saved. Until then the id is
reserved: Speak to it is FAILED_PRECONDITION, registering it is ALREADY_EXISTS.

Changes are saved under one lock, so saves never interleave. A save that fails undoes
its change in memory too, so the live cast and the folder never disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import numpy as np

from ..engine.threads import passing_future
from ..neeko.cast import KIND_BLOCK, KIND_FUSED, Block, Cast, CastError, Npc
from ..neeko.config import TrainConfig
from ..neeko.names import same_name
from ..neeko.profile import NpcProfile
from ..neeko.train import Progress, TrainReport, train_blocks
from .errors import ServiceError, from_os_error, not_found, precondition

T = TypeVar("T")


class TrainingCancelled(Exception):
    """Raised from the training thread's step callback to stop an expansion."""


class LiveCast:
    def __init__(self, cast: Cast, engine, max_npcs: int):
        self.cast = cast
        self.engine = engine
        self.max_npcs = max_npcs
        self._busy: dict[str, str] = {}  # NPC id -> what is being done to it
        self._new: dict[str, NpcProfile] = {}  # the NPCs being added, by id
        self._save_lock = asyncio.Lock()
        self.training: str | None = None

    # -- what may be used now ---------------------------------------------------
    def check_speakable(self, npc_id: str) -> Npc:
        if npc_id in self._busy:
            raise precondition(f"NPC {npc_id!r} is {self._busy[npc_id]}: try again when done")
        try:
            return self.cast.npc(npc_id)
        except KeyError:
            raise not_found(f"no NPC {npc_id!r}: ListNpcs shows the NPCs there are") from None

    def ready(self, npc_id: str) -> bool:
        return npc_id in self.cast.npcs and npc_id not in self._busy

    def _claim(self, profile: NpcProfile, doing: str) -> None:
        """Reserve a new id and name. Synchronous, so two coroutines can never both claim
        one id, or two names that read the same."""
        npc_id = profile.id
        if npc_id in self._busy or npc_id in self.cast.npcs or npc_id in self.cast.blocks:
            raise ServiceError(
                "ALREADY_EXISTS", f"an NPC or block with id {npc_id!r} exists or is being added"
            )
        adding = sum(1 for i in self._busy if i not in self.cast.npcs)
        if len(self.cast.npcs) + adding >= self.max_npcs:
            raise ServiceError(
                "RESOURCE_EXHAUSTED",
                f"the cast has {len(self.cast.npcs)} NPCs (and {adding} being added), the "
                "limit (--max-npcs): remove some first",
            )
        twin = self.cast.namesake(profile)
        other = (
            twin.profile
            if twin
            else next((p for p in self._new.values() if same_name(p.name, profile.name)), None)
        )
        if other is not None:
            raise ServiceError(
                "ALREADY_EXISTS",
                f"NPC {other.id!r} is named {other.name!r}: names must differ, or one NPC's "
                "lines read as the other's in every prompt",
            )
        self._busy[npc_id] = doing
        self._new[npc_id] = profile

    def _release(self, npc_id: str) -> None:
        del self._busy[npc_id]
        del self._new[npc_id]

    # -- fusion -------------------------------------------------------------------
    async def register(self, profile: NpcProfile) -> Npc:
        self._claim(profile, "being registered")
        try:
            if not self.cast.blocks:
                raise precondition("fusion needs at least one trained block in the cast")
            emb = await asyncio.to_thread(self.cast.embed_profile, profile)
            return await _settle(
                self._commit(
                    lambda: self._add_fused(profile, emb),
                    undo=lambda: self.cast.npcs.pop(profile.id),
                )
            )
        finally:
            self._release(profile.id)

    def _add_fused(self, profile: NpcProfile, emb: np.ndarray) -> Npc:
        # Cast.fuse would embed the profile again, inside the engine's exclusive step.
        npc = Npc(profile, KIND_FUSED, self.cast.blend_for(emb), emb)
        self.cast.npcs[profile.id] = npc
        return npc

    # -- expansion ----------------------------------------------------------------
    async def expand(
        self,
        profile: NpcProfile,
        samples: list,
        config: TrainConfig,
        on_progress: Callable[[Progress], None],
    ) -> tuple[Npc, TrainReport]:
        if self.training is not None:
            raise ServiceError(
                "RESOURCE_EXHAUSTED",
                f"NPC {self.training!r} is training: one expansion at a time, retry after it",
            )
        self._claim(profile, "training")
        self.training = profile.id
        try:
            emb = await asyncio.to_thread(self.cast.embed_profile, profile)
            neeko = self.cast.neeko
            await _settle(self._exclusive(lambda: neeko.add_block(profile.id)))
            try:
                report = await self._train(profile, samples, config, on_progress)
            except BaseException:
                await _settle(self._exclusive(lambda: neeko.remove_block(profile.id)))
                raise
            # Training is done: finishing takes milliseconds, so it completes even if the
            # client goes away now.
            npc = await _settle(
                self._commit(
                    lambda: self._attach(profile, emb),
                    undo=lambda: self.cast.remove_npc(profile.id),
                )
            )
            return npc, report
        finally:
            self.training = None
            self._release(profile.id)

    async def _train(self, profile, samples, config, on_progress) -> TrainReport:
        loop = asyncio.get_running_loop()
        stop = threading.Event()

        def check() -> None:
            if stop.is_set():
                raise TrainingCancelled()

        def on_step(progress: Progress) -> None:
            check()
            loop.call_soon_threadsafe(on_progress, progress)

        def run() -> TrainReport:
            return train_blocks(
                self.cast,
                {profile.id: samples},
                {profile.id: profile},
                config,
                on_step=on_step,
                show_progress=False,
                check=check,
            )

        # On every core, in a thread that ends with the training (see engine/threads.py)
        future = passing_future(run, self.engine.cores)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The thread cannot be killed: ask it to stop at its next step, and wait, so
            # the block is removed only once nothing trains it any more.
            stop.set()
            with contextlib.suppress(TrainingCancelled):
                await future
            raise

    def _attach(self, profile: NpcProfile, emb: np.ndarray) -> Npc:
        block = Block(profile.id, np.asarray(emb, dtype=np.float32))
        self.cast.blocks[profile.id] = block
        npc = Npc(profile, KIND_BLOCK, self.cast.block_blend(profile.id), block.role_embedding)
        self.cast.npcs[profile.id] = npc
        return npc

    # -- removal ------------------------------------------------------------------
    async def remove(self, npc_id: str, speaking: Callable[[str], bool]) -> Npc:
        """Remove an NPC that is not speaking (refused, not queued, when it is)."""
        npc = self.check_speakable(npc_id)
        if speaking(npc_id):
            raise precondition(
                f"NPC {npc_id!r} has a reply in flight: cancel it or wait for its Final event"
            )
        try:
            self.cast.check_removable(npc_id)
        except CastError as exc:
            raise precondition(str(exc)) from None
        if npc.kind == KIND_BLOCK and self.training is not None:
            raise precondition(
                f"NPC {self.training!r} is training: block NPCs can be removed after it"
            )
        self._busy[npc_id] = "being removed"
        try:
            state = None
            if npc.kind == KIND_BLOCK:
                state = {k: v.clone() for k, v in self.cast.neeko.block_state(npc_id).items()}
            block = self.cast.blocks.get(npc_id)
            await _settle(
                self._commit(
                    lambda: self.cast.remove_npc(npc_id),
                    undo=lambda: self._restore(npc, block, state),
                )
            )
            return npc
        finally:
            del self._busy[npc_id]

    def _restore(self, npc: Npc, block: Block | None, state) -> None:
        if block is not None:
            self.cast.neeko.add_block(block.id)
            self.cast.neeko.load_block_state(block.id, state)
            self.cast.blocks[block.id] = block
        self.cast.npcs[npc.id] = npc

    # -- saving -------------------------------------------------------------------
    async def _exclusive(self, change: Callable[[], T]) -> T:
        """A change that is not saved (the hidden training block), still never during a
        save, which reads the layers' blocks from another thread."""
        async with self._save_lock:
            return await self.engine.run_exclusive(change)

    async def _commit(self, change: Callable[[], T], undo: Callable[[], object]) -> T:
        """Apply a change between decode steps and save the cast; a failed save undoes it."""
        async with self._save_lock:
            try:
                result = await self.engine.run_exclusive(change)
            except CastError as exc:  # the cast's own checks, against its state right now
                raise precondition(str(exc)) from None
            try:
                await asyncio.to_thread(self.cast.save)
            except (OSError, CastError) as exc:
                await self.engine.run_exclusive(undo)
                raise from_os_error(
                    exc, f"could not save the cast to {self.cast.path}; nothing changed"
                ) from exc
            return result


async def _settle(awaitable: Awaitable[T]) -> T:
    """Await to the end even if the caller is cancelled meanwhile: a change of the live
    cast must not stop halfway (applied in memory but not saved, or the reverse)."""
    task = asyncio.ensure_future(awaitable)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
