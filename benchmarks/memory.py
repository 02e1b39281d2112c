"""Memory of a bigger model: random weights of a real model's shape, serving NPCs on CPU.

    python benchmarks/memory.py [--config benchmarks/configs/qwen2.5-1.5b.json]
                                [--dtype int8] [--npcs 8] [--tokens 32]

Builds the model once from the config (random bfloat16 weights, nothing downloaded; kept
under $NPC_RUNTIME_CACHE/bench), then, in a fresh process, loads it at --dtype, adds one
LoRA block per NPC (rank 8 on q, k, v, o, like `train`), serves the NPCs at once through
the engine and prints the process's RSS after loading, after the engine is built and while
serving, and its peak (VmHWM, loading included: int8 and int4 read one weight at a time,
so the peak is no longer the float model's size). Target for Qwen2.5-1.5B at int8 with 8
NPCs: at most 2.5 GB while serving.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parent
DEFAULT_CONFIG = ROOT / "configs" / "qwen2.5-1.5b.json"


def rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) / 1024


def build(config_path: Path) -> Path:
    """The random-weight model folder for this config (made once)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from npc_runtime.base_model import cache_dir, load_tokenizer

    folder = cache_dir() / "bench" / config_path.stem
    if (folder / "config.json").exists():
        return folder
    config = AutoConfig.from_pretrained(config_path)
    torch.manual_seed(0)
    started = time.perf_counter()
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    load_tokenizer(None).save_pretrained(tmp)  # the embedded tokenizer: ids fit any vocab
    tmp.rename(folder)
    print(f"built {folder} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return folder


def serve(folder: Path, dtype: str, npcs: int, tokens: int) -> None:
    import numpy as np
    import torch

    from npc_runtime.base_model import load_base
    from npc_runtime.engine import Engine, EngineConfig, GenerationRequest, SamplingParams
    from npc_runtime.neeko import Cast, GateConfig, LoraConfig
    from npc_runtime.neeko.profile import profile_from_dict
    from npc_runtime.neeko.prompt import Turn

    torch.set_num_threads(2)
    start = rss_mib()
    base = load_base(folder, dtype=dtype)
    cast = Cast(base, LoraConfig(), GateConfig())
    rng = np.random.default_rng(0)
    for i in range(npcs):
        profile = profile_from_dict({"id": f"npc{i}", "name": f"Npc {i}", "profile": "A villager."})
        cast.add_block_npc(profile, rng.standard_normal(384).astype(np.float32))
    for layer in cast.neeko.layers.values():  # trained-looking blocks: B not zero
        for b in layer.lora_B:
            b.data.normal_(0, 0.01)
    loaded = rss_mib()
    engine = Engine(cast, EngineConfig(max_active=npcs))
    built = rss_mib()
    params = SamplingParams(max_tokens=tokens, min_tokens=tokens, temperature=0.0)
    scene = (Turn("Player", "Evening! What news do you have for a traveller tonight?"),)

    async def run() -> float:
        async with engine:
            t = time.perf_counter()

            async def one(i: int) -> None:
                req = GenerationRequest(f"r{i}", f"npc{i}", scene, params)
                [x async for x in engine.submit(req)]

            await asyncio.gather(*(one(i) for i in range(npcs)))
            return time.perf_counter() - t

    took = asyncio.run(run())
    serving = rss_mib()
    print(
        f"{folder.name} at {base.dtype} ({engine.runner.kernel} kernels), {npcs} NPCs x "
        f"{tokens} tokens in {took:.1f} s: RSS {start:.0f} MiB at start, {loaded:.0f} loaded, "
        f"{built:.0f} with the engine, {serving:.0f} after serving; peak {peak_mib():.0f} MiB "
        "(loading included)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--dtype", default="int8")
    parser.add_argument("--npcs", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(Path(args.serve), args.dtype, args.npcs, args.tokens)
        return
    folder = build(Path(args.config))
    cmd = [sys.executable, __file__, "--serve", str(folder), "--dtype", args.dtype]
    cmd += ["--npcs", str(args.npcs), "--tokens", str(args.tokens)]
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT.parent))
    main()
