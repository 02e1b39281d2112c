"""The engine on a GPU against plain transformers and peft, on random weights of the
shapes game developers pick (configs in benchmarks/configs; nothing downloaded).

    python benchmarks/gpu.py [--device cuda] [--configs llama-3.2-1b,llama-3.2-3b]
                             [--npcs 1,8,32,64] [--tokens 32] [--dry-run]

For each config: a cast of max(--npcs) block NPCs (random LoRA blocks), then, measured in
one run with every system taking turns (benchmarks/engine.py's `rates`: best of the
rounds, the prompt's reading cancelled out):
- single-stream and aggregate decode tokens/s of ours with a different NPC per request,
  of ours with the base model alone (no LoRA), of transformers `generate` (base only,
  batched) and of peft multi-adapter `generate(adapter_names=...)`;
- time to first token of one request, and peak GPU memory of ours.
Targets (issue 15, a data-centre GPU, bfloat16): single stream at least 1.5x transformers;
64 NPCs at least 5x peft and at least 0.85x ours without LoRA.

--dry-run runs the same steps on a tiny model (2 layers, hidden size 64), 1 and 2 NPCs
and 4 tokens, so the script is checked where there is no GPU: `--device cpu --dry-run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "benchmarks" / "configs"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from engine import batch, hf_run, rates  # noqa: E402  (benchmarks/engine.py)

from npc_runtime.base_model import load_base, load_tokenizer  # noqa: E402
from npc_runtime.engine import Engine, EngineConfig  # noqa: E402
from npc_runtime.neeko import Cast, GateConfig, LoraConfig  # noqa: E402
from npc_runtime.neeko.export import export_peft  # noqa: E402
from npc_runtime.neeko.profile import profile_from_dict  # noqa: E402
from npc_runtime.neeko.prompt import scene_messages  # noqa: E402

TINY = {
    "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 1024, "tie_word_embeddings": True, "hidden_act": "silu",
}  # fmt: skip


def model_folder(name: str, work: Path, dry_run: bool) -> Path:
    """Random weights of the config's shape (bfloat16), with the embedded tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM

    tokenizer = load_tokenizer(None)
    values = dict(TINY) if dry_run else json.loads((CONFIGS / f"{name}.json").read_text())
    values["vocab_size"] = max(values.get("vocab_size", 0), len(tokenizer))
    model_type = values.pop("model_type")
    values.pop("architectures", None)
    config = AutoConfig.for_model(model_type, **values)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    folder = work / name
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def cast_of(folder: Path, device: str, dtype: str, npcs: int) -> tuple[Cast, list[str]]:
    cast = Cast(load_base(folder, device=device, dtype=dtype), LoraConfig(), GateConfig())
    rng = np.random.default_rng(0)
    ids = []
    for i in range(npcs):
        text = f"Villager {i} of Emberfall, who talks about work and weather."
        profile = profile_from_dict({"id": f"npc{i}", "name": f"Villager {i}", "profile": text})
        cast.add_block_npc(profile, rng.standard_normal(384).astype(np.float32))
        ids.append(profile.id)
    with torch.no_grad():  # blocks start with B = 0: give them work to do
        for layer in cast.neeko.layers.values():
            for b in layer.lora_B:
                b.add_(torch.randn_like(b) * 0.01)
    cast.neeko.invalidate()
    return cast, ids


async def one_config(name: str, args, work: Path) -> list[str]:
    sizes = [1, 2] if args.dry_run else [int(n) for n in args.npcs.split(",")]
    tokens = 4 if args.dry_run else args.tokens
    dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    started = time.perf_counter()
    folder = model_folder(name, work, args.dry_run)
    cast, npcs = cast_of(folder, args.device, dtype, max(sizes))
    from npc_runtime.engine.api import GenerationRequest, SamplingParams
    from npc_runtime.neeko.prompt import Turn

    line = (Turn("Player", "Evening! What news do you have for a traveller tonight?"),)
    prompts = [cast.prompts.prompt_ids(scene_messages(cast.npc(i).profile, line)) for i in npcs]
    pad = cast.tokenizer.pad_token_id
    import peft

    plain = load_base(folder, device=args.device, dtype=dtype).model
    adapters = {npc: export_peft(cast, npc, work / "peft" / name / npc) for npc in npcs}
    multi = peft.PeftModel.from_pretrained(
        load_base(folder, device=args.device, dtype=dtype).model, adapters[npcs[0]], npcs[0]
    )
    for npc in npcs[1:]:
        multi.load_adapter(adapters[npc], adapter_name=npc)
    multi.eval()
    config = EngineConfig(cache_budget_bytes=0, max_active=max(sizes))
    engine = Engine(cast, config)
    cuda = args.device.startswith("cuda")
    async with engine:
        cases = {}
        for k in sizes:
            cases[f"ours {k}"] = (k, lambda t, k=k: batch(engine, npcs[:k], t))
            cases[f"nolora {k}"] = (k, lambda t, k=k: batch(engine, npcs[:k], t, lora=False))
            cases[f"base {k}"] = (k, hf_run(plain, prompts[:k], pad, args.device))
            cases[f"peft {k}"] = (k, hf_run(multi, prompts[:k], pad, args.device,
                                             adapter_names=npcs[:k]))  # fmt: skip
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        r = await rates(cases, tokens, 1 if args.dry_run else args.repeat)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        greedy = SamplingParams(max_tokens=2, temperature=0.0)
        request = GenerationRequest("ttft", npcs[0], line, greedy)
        final = [x async for x in engine.submit(request)][-1]
    single = "  (no single-stream row in this run)"
    if sizes[0] == 1:
        ours, base = r["ours 1"], r["base 1"]
        single = f"  single stream: ours {ours:.1f} tok/s vs transformers {base:.1f}: "
        single += f"{ours / base:.2f}x (target >= 1.5x)"
    out = [
        f"{name} ({dtype} on {args.device}, {engine.runner.kernel} kernels; built and loaded "
        f"in {time.perf_counter() - started:.0f} s)",
        single,
        "  NPCs    ours  ours no LoRA  transformers base  peft multi-adapter  ours/peft  "
        "ours/no-LoRA",
    ]
    for k in sizes:
        o, nl, b, p = r[f"ours {k}"], r[f"nolora {k}"], r[f"base {k}"], r[f"peft {k}"]
        out.append(f"  {k:4d} {o:7.1f} {nl:13.1f} {b:18.1f} {p:19.1f} {o / p:10.2f} {o / nl:13.2f}")
    out.append(
        f"  time to first token {final.time_to_first_token_s * 1000:.0f} ms "
        f"({final.prompt_tokens} prompt tokens); peak GPU memory {peak:.2f} GiB"
        f" (targets at 64 NPCs: ours/peft >= 5, ours/no-LoRA >= 0.85)"
    )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--configs", default="llama-3.2-1b,llama-3.2-3b")
    parser.add_argument("--npcs", default="1,8,32,64")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="tiny model, same steps")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu.py: no CUDA device here; use --device cpu --dry-run", file=sys.stderr)
        return 2
    names = ["tiny"] if args.dry_run else args.configs.split(",")
    with tempfile.TemporaryDirectory(prefix="npc-gpu-") as tmp:
        for name in names:
            for line in asyncio.run(one_config(name, args, Path(tmp))):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
