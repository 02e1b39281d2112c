"""`npc-runtime demo`: a short scripted scene in the village of Emberfall.

Several NPCs answer the player in turn, each hearing the last lines of the scene; then a
bard who has no training data is registered by fusion and joins in.
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable
from pathlib import Path

from .engine import SamplingParams
from .neeko.profile import load_profile
from .neeko.prompt import Turn
from .neeko.store import load_cast
from .speak import LocalEngine

ASSETS = Path(__file__).parent / "assets" / "village"
CONTEXT_TURNS = 3


def play(
    cast_dir: str | None,
    base: str | None,
    max_tokens: int,
    seed: int,
    write: Callable[[str], None],
    dtype: str = "auto",
) -> int:
    scene = tomllib.loads((ASSETS / "scene.toml").read_text(encoding="utf-8"))
    started = time.perf_counter()
    cast = load_cast(cast_dir or ASSETS / "cast", base=base, dtype=dtype)
    write(
        f"== {scene['title']} ==  ({len(cast.npc_ids())} NPCs loaded "
        f"in {time.perf_counter() - started:.1f} s)\n\n"
    )
    with LocalEngine(cast) as local:
        history: list[Turn] = []
        for number, turn in enumerate(scene["turn"]):
            if "register" in turn:
                profile = load_profile(ASSETS / turn["register"])
                _ = cast.encoder  # load the role encoder first: fusion itself is what we time
                t0 = time.perf_counter()
                npc = cast.fuse(profile)  # in memory only: the bundled cast stays as shipped
                took = (time.perf_counter() - t0) * 1000
                blend = ", ".join(f"{cast.npc(b).name} {w:.2f}" for b, w in npc.blend.items())
                write(
                    f"* {npc.name} walks in. Registered by fusion in {took:.0f} ms "
                    f"as a blend of: {blend}\n\n"
                )
                continue
            npc = cast.npc(turn["npc"])
            write(f"You: {turn['player']}\n")
            history.append(Turn("Player", turn["player"]))
            write(f"{npc.name}: ")
            sampling = SamplingParams(max_tokens=max_tokens, seed=seed + number)
            result = local.generate(npc.id, history[-CONTEXT_TURNS:], sampling, on_text=write)
            text = result.text.strip()
            write("\n\n")
            history.append(Turn(npc.name, text, npc.id))
    write(f"(scene played in {time.perf_counter() - started:.0f} s)\n")
    return 0
