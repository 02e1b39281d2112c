"""Replies for one caller at a time (`npc-runtime say`, the demo, evaluation), through the
daemon's own engine.

There is one generation path: the engine, with SamplingParams' defaults. `LocalEngine`
runs it on a private event loop, so the same scene, settings and seed give the same text
here as through gRPC or the bridge.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from .engine import Engine, EngineConfig, FinalResult, GenerationRequest, SamplingParams, Voice
from .engine.threads import leave_cores_to_engine
from .neeko.cast import Cast
from .neeko.prompt import Turn

DEFAULT = SamplingParams()  # what the daemon uses for a request that sets nothing
GREEDY = SamplingParams(temperature=0.0)


class LocalEngine:
    """An engine and the event loop it streams to, for synchronous code."""

    def __init__(self, cast: Cast, config: EngineConfig | None = None):
        self._loop = asyncio.new_event_loop()
        self.engine = Engine(cast, config or EngineConfig(max_active=4))
        self._loop.run_until_complete(self.engine.start())
        self._give_back_cores = leave_cores_to_engine()
        self._count = 0

    def generate(
        self,
        npc_id: str,
        turns: Sequence[Turn],
        sampling: SamplingParams = DEFAULT,
        on_text: Callable[[str], None] | None = None,
        voice: Voice | None = None,
    ) -> FinalResult:
        """One reply; `on_text` gets each piece of text as it is decoded."""
        self._count += 1
        request = GenerationRequest(f"local-{self._count}", npc_id, tuple(turns), sampling, voice)

        async def run() -> FinalResult:
            async for item in self.engine.submit(request):
                if isinstance(item, FinalResult):
                    return item
                if on_text and item.text:
                    on_text(item.text)
            raise AssertionError("the engine's stream ended without a result")

        return self._loop.run_until_complete(run())

    def close(self) -> None:
        self._loop.run_until_complete(self.engine.stop())
        self._loop.close()
        self._give_back_cores()

    def __enter__(self) -> LocalEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reply(
    cast: Cast,
    npc_id: str,
    context: Sequence[Turn],
    sampling: SamplingParams = DEFAULT,
    on_text: Callable[[str], None] | None = None,
) -> str:
    """One reply of a cast's NPC (an engine just for it), stripped as the daemon stores it."""
    with LocalEngine(cast, EngineConfig(max_active=1)) as local:
        return local.generate(npc_id, context, sampling, on_text).text.strip()
