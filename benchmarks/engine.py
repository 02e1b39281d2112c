"""Engine benchmark: the table of issue 3, measured in one run so its ratios hold on a
noisy machine.

    python benchmarks/engine.py [--cast DIR] [--base PATH] [--dtype auto] [--tokens N]
                                [--repeat R] [--quick]

"ours" is the engine at --dtype (auto: int8 weights on CPU); plain transformers and peft
run the float32 model as their users would. llama.cpp runs the same GGUF at its own
quantisation and requantised to Q8_0, driven through its low-level batch API.

Decode rates (tokens/s) are measured the same way for every system: a run that generates
one token per request and a run that generates N (end of turn suppressed), from the same
prompts; rate = requests * (N - 1) / (time_N - time_1), so reading the prompts cancels
out. Aggregate rates count every request of the batch. The systems take turns: every
round times each of them once, and each keeps its best time over the rounds, so a burst
of load from other processes cannot favour one side. The prefix cache is off for the
rates and on for the warm half of (c). Peak memory (e) is that of a separate process in
which one engine serves 16 requests at once and then a 20-turn conversation.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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
    Voice,
    kernels,  # noqa: E402
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
Run = Callable[[int], object]  # generate this many tokens per request (maybe a coroutine)


def cast_with_npcs(path: str, base: str | None, count: int, dtype: str = "float32"):
    """The cast plus fused NPCs until it has `count` NPCs and one that blends 3 blocks."""
    cast = load_cast(path, base=base, dtype=dtype)
    blocks = [n for n in cast.npc_ids() if cast.npc(n).kind == "block"]
    i = 0
    while len(cast.npc_ids()) < count or not any(len(cast.npc(n).blend) == 3 for n in cast.npcs):
        trade = TRADES[i % len(TRADES)]
        text = f"A {trade} of Emberfall, gruff but fair, who talks about work and weather."
        cast.fuse(profile_from_dict({"id": f"{trade}{i}", "name": trade, "profile": text}))
        i += 1
    fused3 = next(n for n in cast.npc_ids() if len(cast.npc(n).blend) == 3)
    npcs = (blocks + [n for n in cast.npc_ids() if n not in blocks])[:count]
    return cast, npcs, fused3


async def batch(
    engine: Engine, npcs: list[str], n: int, turns=LINE, lora: bool = True
) -> list[FinalResult]:
    """Greedy replies of n tokens, one per NPC, at once (lora=False: their profiles through
    the base model alone)."""
    params = SamplingParams(max_tokens=n, min_tokens=n, temperature=0.0, repetition_penalty=1.0)
    tag = time.perf_counter_ns()
    cast = engine.cast

    async def one(i: int, npc: str) -> FinalResult:
        voice = None if lora else Voice(cast.npc(npc).profile, {})
        req = GenerationRequest(f"{tag}-{i}", npc, turns, params, voice)
        return [x async for x in engine.submit(req)][-1]

    return await asyncio.gather(*(one(i, npc) for i, npc in enumerate(npcs)))


def hf_run(model, prompts: list[list[int]], pad: int, device: str = "cpu", **kwargs) -> Run:
    """transformers generate of these prompts at once (left-padded), greedy; on a GPU it
    waits for the device, so the time is the work's."""
    width = max(map(len, prompts))
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)

    def run(tokens: int) -> None:
        with torch.inference_mode():
            model.generate(
                input_ids=ids, attention_mask=mask, max_new_tokens=tokens, min_new_tokens=tokens,
                do_sample=False, pad_token_id=pad, **kwargs,
            )  # fmt: skip
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    return run


async def rates(cases: dict[str, tuple[int, Run]], n: int, rounds: int) -> dict[str, float]:
    async def timed(run: Run, tokens: int) -> float:
        # Every timing starts after a pause: the OpenMP threads of the last run (torch's or
        # llama.cpp's) go idle, instead of spinning on the cores the next system needs
        # (without it llama.cpp lost a third of its single-stream rate after torch runs).
        await asyncio.sleep(0.3)
        t = time.perf_counter()
        result = run(tokens)
        if inspect.isawaitable(result):
            await result
        return time.perf_counter() - t

    t1 = {name: [] for name in cases}
    tn = {name: [] for name in cases}
    for _, run in cases.values():
        await timed(run, 2)  # warm-up: LoRA packs, allocator, kernels
    for _ in range(rounds):
        for name, (_, run) in cases.items():
            t1[name].append(await timed(run, 1))
            tn[name].append(await timed(run, n))
    rate: dict[str, float] = {}
    for name, (k, run) in cases.items():
        # On a loaded machine the n-token run can come out no slower than the 1-token one;
        # such a difference measures the load, not the decode: time again, then give up.
        for _ in range(rounds + 2):
            if min(tn[name]) > min(t1[name]):
                break
            t1[name].append(await timed(run, 1))
            tn[name].append(await timed(run, n))
        gap = min(tn[name]) - min(t1[name])
        rate[name] = k * (n - 1) / gap if gap > 0 else float("nan")
    return rate


async def ttft_after_turns(cast, npc: str, turns: int) -> tuple[FinalResult, FinalResult]:
    """The same turn with the conversation's cache (built by playing it) and without."""
    history: list[Turn] = []
    async with Engine(cast, EngineConfig()) as engine:
        for i in range(turns // 2):
            history.append(Turn("Player", f"Tell me more about the old mill, part {i + 1}."))
            reply = (await batch(engine, [npc], 24, tuple(history)))[0].text
            history.append(Turn(cast.npc(npc).name, reply.strip() or "Aye.", npc))
        history.append(Turn("Player", "And what happened after that?"))
        last = GenerationRequest("last", npc, tuple(history), SamplingParams(max_tokens=4))
        warm = [x async for x in engine.submit(last)][-1]
    async with Engine(cast, EngineConfig(cache_budget_bytes=0)) as engine:
        await batch(engine, [npc], 2)  # the same warm-up as the warm engine had
        cold = [x async for x in engine.submit(replace(last, request_id="cold"))][-1]
    return warm, cold


def memory_only(args) -> int:
    """(e), in its own process: one engine serving 16 NPCs at once, then a conversation of
    20 turns with its prefix cache."""
    cast, npcs, _ = cast_with_npcs(args.cast, args.base, 16, args.dtype)
    loaded = rss_now()
    engine = Engine(cast)
    built = rss_now()

    async def serve() -> None:
        async with engine:
            await batch(engine, npcs, args.tokens)
            history: list[Turn] = []
            for i in range(10):
                history.append(Turn("Player", f"Tell me more about the old mill, part {i + 1}."))
                reply = (await batch(engine, [npcs[0]], 24, tuple(history)))[0].text
                history.append(Turn(cast.npc(npcs[0]).name, reply.strip() or "Aye.", npcs[0]))

    asyncio.run(serve())
    # VmHWM, not ru_maxrss: a child's ru_maxrss keeps the peak of the parent it was
    # forked from (Linux carries it across execve), VmHWM is this process's own.
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    print(loaded, built, int(status.split()[0]) / 1024)
    return 0


def rss_now() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss(args, n: int) -> list[float]:
    cmd = [sys.executable, __file__, "--memory-only", "--cast", args.cast, "--tokens", str(n)]
    cmd += ["--dtype", args.dtype]
    if args.base:
        cmd += ["--base", args.base]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [float(x) for x in out.split()[-3:]]


def llama_cpp_cases(cast, npcs, prompts, sizes, adapters: dict, tmp: Path) -> tuple[dict, str]:
    """(f) cases for the GGUF's own quantisation and Q8_0, or none and why."""
    gguf = cast.base.path
    if gguf.suffix != ".gguf":
        return {}, "skipped: the base model is not a GGUF file"
    try:
        import llama_cpp
    except ImportError:
        why = "llama-cpp-python is not installed (pip install 'npc-runtime[bench]')"
        return {}, f"skipped: {why}; it compiles llama.cpp, which takes minutes"
    from llama_cpp_peer import LlamaCpp, peft_to_gguf, requantize

    cfg = cast.model.config
    own = gguf.stem.rsplit(".", 1)[-1] if "." in gguf.stem else "own"
    files = {own: gguf, "Q8_0": requantize(gguf, tmp / "q8_0.gguf", "Q8_0")}
    loras = {
        npc: peft_to_gguf(
            adapters[npc],
            adapters[npc] / "lora.gguf",
            cfg.num_attention_heads,
            cfg.num_key_value_heads,
        )  # fmt: skip
        for npc in npcs
    }
    cases = {}
    for quant, path in files.items():
        peer = LlamaCpp(path, torch.get_num_threads(), sequences=max(sizes))
        for k in sizes:
            cases[f"llama.cpp {quant} base {k}"] = (
                k, lambda t, k=k, p=peer: p.generate(prompts[:k], t)
            )  # fmt: skip
        for npc, prompt in zip(npcs, prompts):  # one NPC at a time, with its own adapter
            peer.load_adapter(npc, loras[npc])

            def run(tokens: int, npc=npc, prompt=prompt, peer=peer) -> float:
                peer.use(npc)
                return peer.generate([prompt], tokens)

            cases[f"llama.cpp {quant} lora {npc}"] = (1, run)
    note = f"llama.cpp {llama_cpp.__version__} on {gguf.name} ({own}) and requantised to Q8_0"
    return cases, note


async def measure(args, n: int, sizes: list[int], rounds: int) -> list[str]:
    cast, npcs, fused3 = cast_with_npcs(args.cast, args.base, max(sizes), args.dtype)
    block = npcs[0]
    prompts = [cast.prompts.prompt_ids(scene_messages(cast.npc(i).profile, LINE)) for i in npcs]
    pad = cast.tokenizer.pad_token_id
    base_path = args.base or cast.base.path
    plain = load_base(base_path).model
    import peft

    tmp = tempfile.TemporaryDirectory()
    adapters = {npc: export_peft(cast, npc, Path(tmp.name) / npc) for npc in npcs}
    multi = peft.PeftModel.from_pretrained(load_base(base_path).model, adapters[npcs[0]], npcs[0])
    for npc in npcs[1:]:
        multi.load_adapter(adapters[npc], adapter_name=npc)
    multi.eval()
    peer_cases, peer_note = llama_cpp_cases(cast, npcs, prompts, sizes, adapters, Path(tmp.name))
    engine = Engine(cast, EngineConfig(cache_budget_bytes=0))
    others = {}  # the same engine at other precisions
    for dtype in [] if args.quick else args.compare.split(","):
        if dtype and dtype != cast.base.dtype:
            other = cast_with_npcs(args.cast, args.base, 8, dtype)[0]
            others[other.base.dtype] = Engine(other, EngineConfig(cache_budget_bytes=0))
    async with engine:
        cases: dict[str, tuple[int, Run]] = {
            "ours fused": (1, lambda t: batch(engine, [fused3], t)),
            "ours block": (1, lambda t: batch(engine, [block], t)),
        }
        for k in sizes:
            cases[f"ours {k}"] = (k, lambda t, k=k: batch(engine, npcs[:k], t))
            cases[f"ours nolora {k}"] = (k, lambda t, k=k: batch(engine, npcs[:k], t, lora=False))
            cases[f"base {k}"] = (k, hf_run(plain, prompts[:k], pad))
            cases[f"peft {k}"] = (k, hf_run(multi, prompts[:k], pad, adapter_names=npcs[:k]))
        cases.update(peer_cases)
        for dtype, other in others.items():
            await other.start()
            for k in (1, 8):
                cases[f"{dtype} {k}"] = (k, lambda t, k=k, e=other: batch(e, npcs[:k], t))
        r = await rates(cases, n, rounds)
        for other in others.values():
            await other.stop()
    warm, cold = await ttft_after_turns(cast, block, 4 if args.quick else 20)
    tmp.cleanup()

    out = [
        f"(a) single stream, NPC {block!r}: ours ({cast.base.dtype}, {engine.runner.kernel} "
        f"kernels) {r['ours 1']:.1f} tok/s | plain transformers generate (float32), base only "
        f"{r['base 1']:.1f} | ratio {r['ours 1'] / r['base 1']:.2f}",
        "(b) aggregate decode tok/s, a different NPC per request:",
        "    requests    ours  ours no LoRA  peft multi-adapter  transformers base  "
        "ours/peft  ours/ours-no-LoRA",
    ]
    for k in sizes:
        o, nl, p, b = r[f"ours {k}"], r[f"ours nolora {k}"], r[f"peft {k}"], r[f"base {k}"]
        out.append(
            f"    {k:8d} {o:7.1f} {nl:13.1f} {p:19.1f} {b:18.1f} {o / p:10.2f} {o / nl:18.2f}"
        )
    ttft_w, ttft_c = warm.time_to_first_token_s, cold.time_to_first_token_s
    fused, blk = r["ours fused"], r["ours block"]
    out += [
        "    (targets at 8: ours/peft >= 2.0, ours/ours-no-LoRA >= 0.9)",
        f"(c) TTFT of a turn after {4 if args.quick else 20} earlier turns "
        f"({cold.prompt_tokens} prompt tokens): cold {ttft_c * 1000:.0f} ms | warm "
        f"{ttft_w * 1000:.0f} ms ({warm.cached_prompt_tokens} cached) | warm/cold "
        f"{ttft_w / ttft_c:.2f} (target <= 0.3)",
        f"(d) decode, fused NPC {fused3!r} ({len(cast.npc(fused3).blend)} blocks) {fused:.1f} "
        f"tok/s vs block NPC {blk:.1f} | ratio {fused / blk:.2f} (target >= 0.9)",
    ]
    for dtype, other in others.items():
        out.append(
            f"(a/b) ours at {dtype} ({other.runner.kernel} kernels): single stream "
            f"{r[f'{dtype} 1']:.1f} tok/s, 8 NPCs {r[f'{dtype} 8']:.1f}"
        )
    if not peer_cases:
        out.append(f"(f) llama.cpp: {peer_note}")
        return out
    out += [f"(f) {peer_note}, CPU {kernels.cpu_capability()}:"]
    quants = sorted({name.split()[1] for name in peer_cases})
    out.append(
        "    requests    ours"
        + "".join(f"  {q} batched  {q} LoRA serial  ours/{q}-LoRA" for q in quants)
    )
    for k in sizes:
        line = f"    {k:8d} {r[f'ours {k}']:7.1f}"
        for q in quants:
            lora = k / sum(1 / r[f"llama.cpp {q} lora {npc}"] for npc in npcs[:k])
            b = r[f"llama.cpp {q} base {k}"]
            line += f" {b:11.1f} {lora:15.1f} {r[f'ours {k}'] / lora:15.2f}"
        out.append(line)
    for q in quants:
        alone = r[f"llama.cpp {q} base 1"]
        out.append(
            f"    one NPC alone: ours {r['ours 1']:.1f} tok/s vs llama.cpp {q} {alone:.1f}: "
            f"{r['ours 1'] / alone:.2f}x (target >= 0.8)"
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cast", default=str(DEFAULT_CAST))
    parser.add_argument("--base", default=None)
    parser.add_argument("--dtype", default="auto", help="ours: the base model's precision")
    parser.add_argument("--compare", default="float32,int4", help="ours at these as well")
    parser.add_argument("--tokens", type=int, default=64, help="decoded tokens per request")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; each keeps its best")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (Path(args.cast) / "cast.json").exists():
        print(f"no cast at {args.cast}: pass --cast DIR", file=sys.stderr)
        return 2
    if args.memory_only:
        return memory_only(args)
    n = 16 if args.quick else args.tokens
    sizes = [1, 4] if args.quick else [1, 4, 8, 16]
    started = time.perf_counter()
    head = (
        f"engine benchmark: cast {args.cast}, {torch.get_num_threads()} threads, {n} decoded "
        f"tokens per request, best of {1 if args.quick else args.repeat} rounds, "
        f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}"
    )
    out = asyncio.run(measure(args, n, sizes, 1 if args.quick else args.repeat))
    loaded, built, peak = peak_rss(args, n)
    at = next(i for i, line in enumerate(out) if line.startswith("(f)"))
    out.insert(
        at,
        f"(e) peak RSS of one engine ({args.dtype}) serving 16 NPCs at once, then a 20-turn "
        f"conversation: {peak:.0f} MiB (model and cast {loaded:.0f}; engine's packed weight "
        f"copies +{built - loaded:.0f}; caches and work +{peak - built:.0f})",
    )
    print("\n".join([head] + out + [f"(total {time.perf_counter() - started:.0f} s)"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
