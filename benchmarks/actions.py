"""What constrained decoding costs: 8 NPCs decoding free text vs under a grammar, in one run.

    python benchmarks/actions.py [--tokens 48] [--rounds 3] [--dtype auto] [--tiny]

Loads the embedded model and the village cast (plus fused NPCs to make 8; --tiny: a
2-layer random model, where the forward costs almost nothing and the masking is all that
is left) into the engine and decodes 8 different NPCs at once, --tokens tokens each:
free speech (min_tokens = max_tokens, so no row ends early), then every token under a
grammar (a response schema that cannot close within --tokens: a list of at least 64
strings), so every row of every step computes and applies a token mask. The decode rate
is the tokens after each row's first over the time from the last first token to the last
reply, without the prefix cache, best of --rounds rounds (alternating the order).
Target (issue 17): the masking costs at most 15% of decode throughput at 8 NPCs.

Then 200 replies (25 batches of 8 NPCs, block and fused) with actions that must be
taken: how many emitted actions validate (jsonschema, not the grammar that made them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import DEFAULT_CAST, LINE, cast_with_npcs  # noqa: E402
from floor import tiny_cast  # noqa: E402

from npc_runtime import load_cast  # noqa: E402
from npc_runtime.engine import Engine, EngineConfig, GenerationRequest, SamplingParams  # noqa: E402
from npc_runtime.engine.api import Action  # noqa: E402

LONG_LIST = json.dumps({"type": "array", "items": {"type": "string"}, "minItems": 64})
VILLAGE = Path(__file__).resolve().parent.parent / "examples" / "village" / "actions.json"
ACTIONS = tuple(
    Action(a["name"], a["description"], json.dumps(a["parameters"]) if "parameters" in a else "")
    for a in json.loads(VILLAGE.read_text())
)


async def batch(engine: Engine, npcs: list[str], tokens: int, constrained: bool, tag: str):
    """Tokens per second of 8 rows decoding together (see the module's docstring)."""
    sampling = SamplingParams(max_tokens=tokens, min_tokens=tokens, seed=5)
    shape = {"response_schema": LONG_LIST} if constrained else {}
    reqs = [GenerationRequest(f"{tag}{i}", n, LINE, sampling, **shape) for i, n in enumerate(npcs)]

    async def one(req):
        return [item async for item in engine.submit(req)][-1]

    results = await asyncio.gather(*(one(r) for r in reqs))
    assert all(r.completion_tokens == tokens for r in results), [r.finish_reason for r in results]
    window = max(r.total_time_s for r in results) - max(r.time_to_first_token_s for r in results)
    return sum(r.completion_tokens - 1 for r in results) / window


async def validity(engine: Engine, npcs: list[str]) -> tuple[int, int, int]:
    import jsonschema

    schemas = {a.name: json.loads(a.parameters) if a.parameters else {} for a in ACTIONS}
    replies = emitted = valid = 0
    for n in range(25):
        reqs = [
            GenerationRequest(
                f"v{n}-{i}",
                npc,
                LINE,
                SamplingParams(max_tokens=8, temperature=1.0, seed=n),
                actions=ACTIONS,
                action_choice="required",
            )  # fmt: skip
            for i, npc in enumerate(npcs)
        ]

        async def one(req):
            return [item async for item in engine.submit(req)][-1]

        for result in await asyncio.gather(*(one(r) for r in reqs)):
            replies += 1
            for call in result.actions:
                emitted += 1
                try:
                    jsonschema.validate(json.loads(call.arguments), schemas[call.name] or {})
                    valid += 1
                except jsonschema.ValidationError:
                    pass
    return replies, emitted, valid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer random model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            path, base = tiny_cast(Path(tmp), 8)
            cast = load_cast(path, base=str(base))
            npcs = cast.npc_ids()[:8]
            model = "tiny 2-layer random model"
        else:
            cast, npcs, _ = cast_with_npcs(str(DEFAULT_CAST), None, 8, args.dtype)
            model = f"embedded SmolLM2-135M, {cast.base.dtype}"

        async def run():
            async with Engine(cast, EngineConfig(cache_budget_bytes=0)) as engine:
                await batch(engine, npcs, 4, True, "warm")  # grammar tokenizer, kernels
                free, ruled = [], []
                for r in range(args.rounds):
                    order = [(False, free), (True, ruled)][:: 1 if r % 2 == 0 else -1]
                    for constrained, out in order:
                        out.append(
                            await batch(engine, npcs, args.tokens, constrained, f"{r}{constrained}")
                        )
                return max(free), max(ruled), await validity(engine, npcs)

        free, ruled, (replies, emitted, valid) = asyncio.run(run())
    print(f"constrained decoding, 8 NPCs at once, {args.tokens} tokens each ({model}):")
    print(f"  free speech      {free:8.1f} tokens/s")
    print(f"  every token ruled {ruled:7.1f} tokens/s  ({ruled / free:.2f}x, masking costs "
          f"{100 * (1 - ruled / free):.1f}%; target at most 15%)")  # fmt: skip
    print(f"  {replies} replies with required actions: {emitted} actions emitted, "
          f"{valid} valid ({100 * valid / max(emitted, 1):.0f}%)")  # fmt: skip


if __name__ == "__main__":
    main()
