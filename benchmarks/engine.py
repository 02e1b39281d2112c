"""Engine benchmark: the table of issue 3, measured in one run so its ratios hold on a
noisy machine.

    python benchmarks/engine.py [--cast DIR] [--base PATH] [--tokens N] [--quick]

Decode rates (tokens/s) are measured the same way for every system: a run that generates
one token per request and a run that generates N (end-of-turn suppressed), both from the
same prompts; rate = requests * (N - 1) / (time_N - time_1), so prompt reading cancels
out. Aggregate rates count every request of the batch. The prefix cache is off for (a),
(b) and (d), on for the warm half of (c).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from npc_runtime import load_cast  # noqa: E402
from npc_runtime.base_model import load_base  # noqa: E402
from npc_runtime.engine import (  # noqa: E402
    Engine,
    EngineConfig,
    FinalResult,
    GenerationRequest,
    SamplingParams,
)
from npc_runtime.neeko.export import export_peft  # noqa: E402
from npc_runtime.neeko.profile import profile_from_dict  # noqa: E402
from npc_runtime.neeko.prompt import Turn, scene_messages  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CAST = ROOT / "npc_runtime" / "assets" / "village" / "cast"
LINE = (Turn("Player", "Evening! What news do you have for a traveller tonight?"),)
TRADES = [
    "baker", "fisher", "herbalist", "weaver", "miner", "shepherd", "scribe", "potter",
    "hunter", "brewer", "tanner", "carpenter", "minstrel", "guard", "farmer", "cartographer",
]  # fmt: skip


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cast_with_npcs(path: str, base: str | None, count: int, dtype: str = "float32"):
    """The cast, plus fused NPCs until it has `count` NPCs; also one fused NPC that blends
    three blocks (for d)."""
    cast = load_cast(path, base=base, dtype=dtype)
    blocks = [n for n in cast.npc_ids() if cast.npc(n).kind == "block"]
    i = 0
    while len(cast.npc_ids()) < count or not any(len(cast.npc(n).blend) == 3 for n in cast.npcs):
        trade = TRADES[i % len(TRADES)]
        text = f"A {trade} of Emberfall, gruff but fair, who talks about work and weather."
        cast.fuse(profile_from_dict({"id": f"{trade}{i}", "name": trade, "profile": text}))
        i += 1
    fused3 = next(n for n in cast.npc_ids() if len(cast.npc(n).blend) == 3)
    return cast, blocks, fused3


# -- ours ------------------------------------------------------------------------------------
async def _batch(engine: Engine, npcs: list[str], n: int, turns=LINE) -> list:
    params = SamplingParams(max_tokens=n, min_tokens=n, temperature=0.0)
    tag = time.perf_counter_ns()

    async def one(i: int, npc: str):
        req = GenerationRequest(f"{tag}-{i}", npc, turns, params)
        return [x async for x in engine.submit(req)][-1]

    return await asyncio.gather(*(one(i, npc) for i, npc in enumerate(npcs)))


async def _timed(engine: Engine, npcs: list[str], n: int) -> float:
    t = time.perf_counter()
    await _batch(engine, npcs, n)
    return time.perf_counter() - t


REPEAT = 2  # each timing is the best of this many runs (other processes only add time)


def rate(requests: int, n: int, t1: list[float], tn: list[float]) -> float:
    return requests * (n - 1) / max(min(tn) - min(t1), 1e-9)


async def ours_rate(engine: Engine, npcs: list[str], n: int) -> float:
    await _batch(engine, npcs, 2)  # warm-up: packs, allocator
    t1, tn = [], []
    for _ in range(REPEAT):
        t1.append(await _timed(engine, npcs, 1))
        tn.append(await _timed(engine, npcs, n))
    return rate(len(npcs), n, t1, tn)


async def ttft_after_turns(cast, npc: str, turns: int) -> tuple[FinalResult, FinalResult]:
    """The same turn, with the conversation's cache (built by playing it) and without."""
    history: list[Turn] = []
    last = GenerationRequest("last", npc, (), SamplingParams(max_tokens=4))
    async with Engine(cast, EngineConfig()) as engine:
        for i in range(turns // 2):
            history.append(Turn("Player", f"Tell me more about the old mill, part {i + 1}."))
            reply = (await _batch(engine, [npc], 24, tuple(history)))[0].text
            history.append(Turn(cast.npc(npc).name, reply.strip() or "Aye."))
        history.append(Turn("Player", "And what happened after that?"))
        last = replace(last, turns=tuple(history))
        warm = [x async for x in engine.submit(last)][-1]
    async with Engine(cast, EngineConfig(cache_budget_bytes=0)) as engine:
        await _batch(engine, [npc], 2)  # the same warm-up as the warm engine had
        cold = [x async for x in engine.submit(last)][-1]
    return warm, cold


# -- transformers and peft --------------------------------------------------------------------
def hf_rate(model, prompts: list[list[int]], n: int, pad: int, **kwargs) -> float:
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])

    def run(tokens: int) -> float:
        t = time.perf_counter()
        with torch.inference_mode():
            model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                do_sample=False, pad_token_id=pad, **kwargs,
            )  # fmt: skip
        return time.perf_counter() - t

    run(2)
    t1, tn = [], []
    for _ in range(REPEAT):
        t1.append(run(1))
        tn.append(run(n))
    return rate(len(prompts), n, t1, tn)


def llama_cpp_rows(cast, npcs, prompts, sizes, n, adapters: dict, mine: dict) -> list[str]:
    """(f): llama.cpp on the GGUF file the base model came from, base alone batched and
    the same NPCs as per-request LoRA adapters (served one after another)."""
    gguf = cast.base.path
    if gguf.suffix != ".gguf":
        return ["(f) llama.cpp: skipped: the base model is not a GGUF file"]
    try:
        import llama_cpp
    except ImportError:
        return ["(f) llama.cpp: skipped: llama-cpp-python is not installed (pip install "
                "'npc-runtime[bench]'; it compiles llama.cpp, which takes minutes)"]  # fmt: skip
    from llama_cpp_peer import LlamaCpp, peft_to_gguf

    cfg = cast.model.config
    peer = LlamaCpp(gguf, torch.get_num_threads(), sequences=max(sizes))

    def timed(batch: list[list[int]]) -> float:
        peer.generate(batch, 2)
        t1 = [peer.generate(batch, 1) for _ in range(REPEAT)]
        tn = [peer.generate(batch, n) for _ in range(REPEAT)]
        return rate(len(batch), n, t1, tn)

    batched = {k: timed(prompts[:k]) for k in sizes}
    per_npc = []  # each NPC alone with its adapter: llama.cpp cannot mix adapters in a batch
    for npc, prompt in zip(npcs, prompts):
        path = peft_to_gguf(adapters[npc], adapters[npc] / "lora.gguf", cfg.num_attention_heads,
                            cfg.num_key_value_heads)  # fmt: skip
        peer.load_adapter(npc, path)
        peer.use(npc)
        per_npc.append(timed([prompt]))
    peer.use(None)
    rows = [
        f"(f) llama.cpp {llama_cpp.__version__} on {gguf.name} (AVX-512 kernels; its AMX "
        "repacking crashes in this build):",
        "    requests   base batched   per-request LoRA   ours   ours/llama.cpp LoRA",
    ]
    for k in sizes:
        lora = k / sum(1 / r for r in per_npc[:k])  # served one after another
        rows.append(
            f"    {k:8d} {batched[k]:14.1f} {lora:18.1f} {mine[k]:6.1f} {mine[k] / lora:21.2f}"
        )
    return rows


# -- the table -----------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cast", default=str(DEFAULT_CAST))
    parser.add_argument("--base", default=None)
    parser.add_argument("--tokens", type=int, default=64, help="decoded tokens per request")
    parser.add_argument("--repeat", type=int, default=2, help="best of this many timings")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args()
    global REPEAT
    REPEAT = 1 if args.quick else args.repeat
    n = 8 if args.quick else args.tokens
    sizes = [1, 4] if args.quick else [1, 4, 8, 16]
    turns = 4 if args.quick else 20
    if not (Path(args.cast) / "cast.json").exists():
        print(f"no cast at {args.cast}: pass --cast DIR", file=sys.stderr)
        return 2

    started = time.perf_counter()
    cast, blocks, fused3 = cast_with_npcs(args.cast, args.base, max(sizes))
    npcs = (blocks + [i for i in cast.npc_ids() if i not in blocks])[: max(sizes)]
    out = [
        f"engine benchmark: {cast.base.name}, cast {args.cast} ({len(blocks)} blocks), "
        f"{torch.get_num_threads()} threads, {n} decoded tokens per request, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    ]

    async def ours() -> dict:
        res = {}
        async with Engine(cast, EngineConfig(cache_budget_bytes=0)) as engine:
            res["single"] = await ours_rate(engine, npcs[:1], n)
            res["fused"] = await ours_rate(engine, [fused3], n)
            res["block"] = await ours_rate(engine, [blocks[0]], n)
            for k in sizes:
                res[k] = await ours_rate(engine, npcs[:k], n)
        res["warm"], res["cold"] = await ttft_after_turns(cast, blocks[0], turns)
        return res

    mine = asyncio.run(ours())
    peak_ours = rss_mib()
    half = {}
    if not args.quick:  # the same engine on bfloat16 weights (AMX on recent Xeons)
        cast16 = cast_with_npcs(args.cast, args.base, max(sizes), "bfloat16")[0]

        async def ours16() -> None:
            async with Engine(cast16, EngineConfig(cache_budget_bytes=0)) as engine:
                half[1] = await ours_rate(engine, npcs[:1], n)
                half[8] = await ours_rate(engine, npcs[:8], n)

        asyncio.run(ours16())
        del cast16

    prompts = [cast.prompts.prompt_ids(scene_messages(cast.npc(i).profile, LINE)) for i in npcs]
    pad = cast.tokenizer.pad_token_id
    plain = load_base(args.base or cast.base.path)
    base_single = hf_rate(plain.model, prompts[:1], n, pad)
    base = {k: hf_rate(plain.model, prompts[:k], n, pad) for k in sizes}

    import peft

    with tempfile.TemporaryDirectory() as tmp:
        model = None
        for npc in npcs:
            folder = export_peft(cast, npc, Path(tmp) / npc)
            if model is None:
                model = peft.PeftModel.from_pretrained(plain.model, folder, adapter_name=npc)
            else:
                model.load_adapter(folder, adapter_name=npc)
        model.eval()
        multi = {k: hf_rate(model, prompts[:k], n, pad, adapter_names=npcs[:k]) for k in sizes}
        del model
        adapters = {npc: Path(tmp) / npc for npc in npcs}
        peer_rows = llama_cpp_rows(cast, npcs, prompts, sizes, n, adapters, mine)

    cold, warm = mine["cold"], mine["warm"]
    out += [
        f"(a) single stream, NPC {npcs[0]!r}: ours {mine['single']:.1f} tok/s | plain "
        f"transformers generate (base only) {base_single:.1f} | ratio "
        f"{mine['single'] / base_single:.2f} (target >= 1.0)",
        "(b) aggregate decode tok/s, one NPC per request:",
        "    requests   ours   peft multi-adapter   base alone   ours/peft   ours/base",
    ]
    for k in sizes:
        out.append(
            f"    {k:8d} {mine[k]:6.1f} {multi[k]:20.1f} {base[k]:12.1f} "
            f"{mine[k] / multi[k]:11.2f} {mine[k] / base[k]:11.2f}"
        )
    out += [
        "    (targets at 8: ours/peft >= 2.0, ours/base >= 0.9)",
        f"(c) TTFT of a turn after {turns} earlier turns ({cold.prompt_tokens} prompt tokens): "
        f"cold {cold.time_to_first_token_s * 1000:.0f} ms | warm "
        f"{warm.time_to_first_token_s * 1000:.0f} ms ({warm.cached_prompt_tokens} tokens "
        f"cached) | warm/cold {warm.time_to_first_token_s / cold.time_to_first_token_s:.2f} "
        "(target <= 0.3)",
        f"(d) decode, fused NPC {fused3!r} (blend of {len(cast.npc(fused3).blend)} blocks) "
        f"{mine['fused']:.1f} tok/s vs block NPC {mine['block']:.1f} | ratio "
        f"{mine['fused'] / mine['block']:.2f} (target >= 0.9)",
        f"(e) peak RSS: {peak_ours:.0f} MiB after our engine's runs (model, cast, encoder, "
        f"caches); {rss_mib():.0f} MiB at the end (plus the transformers and peft baselines)",
    ]
    if half:
        out.append(
            f"(a/b) ours on bfloat16 weights (not float32-exact): single stream "
            f"{half[1]:.1f} tok/s ({half[1] / base_single:.2f}x plain transformers), 8 NPCs "
            f"{half[8]:.1f} tok/s ({half[8] / base[8]:.2f}x base alone, "
            f"{half[8] / multi[8]:.2f}x peft)"
        )
    out += peer_rows
    out.append(f"(total benchmark time {time.perf_counter() - started:.0f} s)")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
