"""Pre-tuning a cast vs one shared LoRA: training time, and what the blocks learn.

    python benchmarks/training.py [--data ../shared/data/shakespeare] [--characters 8]
        [--samples 24] [--epochs 1] [--lr 1e-3] [--block-batch 1,2,8] [--house off,on] [--dev 12]
        [--rank 8] [--targets q_proj,k_proj,v_proj,qkv_proj,o_proj] [--bare-profiles]
        [--peft-loop]

Trains, from the same base (the embedded model unless --base) and the same samples:
one shared LoRA of the cast's total rank (batches of --batch-size rows, one update per
batch), then a Neeko cast once per --block-batch value (batches of --batch-size rows of
several characters, each block updated on its own rows: block batch 8 is one block a
batch, the old recipe), with and without a house block (--house: trained first on every
character's samples as the shared LoRA is, then frozen while the blocks train through
it; its rank is one block's, so that cast has one block's rank more in all). Prints, per
system, the training seconds and their ratio to the shared LoRA's (target of issue 14:
at most 1.1x), the optimiser steps, held-out perplexity of each character's dev replies
under its own block (or the shared LoRA), and how much worse a wrong character's block
does (mean ratio; target 1.3x).

--peft-loop adds the peer of issue 14: one peft LoRA of the cast's total rank (same
targets and alpha/rank) trained by a plain loop, one sample a step (batch 1, AdamW at
lr 2e-4, the same epochs, the same prompts), then merged into the base and scored like
the others. With `npc-runtime train`'s defaults (--epochs 2 --block-batch 1 --house on)
the cast should be at least as good as it.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from npc_runtime.base_model import load_base, resolve_dtype  # noqa: E402
from npc_runtime.evaluation.perplexity import mean_perplexity, score_samples  # noqa: E402
from npc_runtime.neeko import Cast, GateConfig, LoraConfig  # noqa: E402
from npc_runtime.neeko.cast import HOUSE  # noqa: E402
from npc_runtime.neeko.config import DEFAULT_TARGETS, TrainConfig  # noqa: E402
from npc_runtime.neeko.data import read_profiles, read_samples  # noqa: E402
from npc_runtime.neeko.loss import pad_batch, reply_nll  # noqa: E402
from npc_runtime.neeko.prompt import PromptEncoder  # noqa: E402
from npc_runtime.neeko.train import train_blocks  # noqa: E402
from npc_runtime.neeko.tuning import train_house  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "shakespeare"))
    parser.add_argument("--base")
    parser.add_argument("--characters", type=int, default=8)
    parser.add_argument("--samples", type=int, default=24, help="training replies a character")
    parser.add_argument("--dev", type=int, default=12, help="dev replies a character")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument(
        "--lr",
        type=float,
        default=TrainConfig.learning_rate,
        help="the shared LoRA's and the blocks' learning rate (the peft loop keeps 2e-4)",
    )
    parser.add_argument("--block-batch", default="1,2,8")
    parser.add_argument("--house", default="off,on", help="off, on, or both (off,on)")
    parser.add_argument(
        "--bare-profiles",
        action="store_true",
        help="train the character blocks with the name alone in the system prompt",
    )
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--rank", type=int, default=LoraConfig().rank, help="rank a block")
    parser.add_argument("--targets", default=",".join(DEFAULT_TARGETS), help="LoRA target modules")
    parser.add_argument(
        "--peft-loop",
        action="store_true",
        help="also train one peft LoRA of the total rank, batch 1, lr 2e-4 (issue 14's peer)",
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    profiles = read_profiles(args.data)
    train = read_samples(args.data, "train")
    chars = [c for c in train if c in profiles][: args.characters]
    train = {c: train[c][: args.samples] for c in chars}
    dev_all = read_samples(args.data, "dev")
    dev = [s for c in chars for s in dev_all.get(c, [])[: args.dev]]
    config = TrainConfig(
        epochs=args.epochs,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        max_length=args.max_length,
    )
    lora = LoraConfig(rank=args.rank, target_modules=tuple(args.targets.split(",")))
    print(
        f"{len(chars)} characters, {args.samples} replies each, {args.epochs:g} epoch(s), "
        f"batch {args.batch_size}, lr {args.lr:g}, rank {lora.rank} a block on {args.targets}; "
        f"{len(dev)} dev replies; "
        f"{torch.get_num_threads()} threads"
    )

    def fresh(rank: int, blocks: list[str]) -> Cast:
        base = load_base(args.base, dtype=resolve_dtype("auto", training=True))
        torch.manual_seed(0)
        cast = Cast(base, replace(lora, rank=rank), GateConfig())
        for b in blocks:
            cast.neeko.add_block(b)
        return cast

    def score(cast: Cast, routes: dict) -> list:
        """Each dev reply scored under routes[its character]."""
        return score_samples(
            cast,
            dev,
            lambda s: profiles[s.character],
            lambda s: routes[s.character],
            max_length=args.max_length,
            show_progress=False,
        )

    print(
        f"{'system':<31} {'seconds':>8} {'x shared':>9} {'steps':>6} {'dev ppl':>8} "
        f"{'wrong/own':>9}",
        flush=True,
    )
    shared = fresh(lora.rank * len(chars), ["shared"])
    started = time.perf_counter()
    report = train_blocks(
        shared,
        {"shared": [s for c in chars for s in train[c]]},
        profiles,
        replace(config, block_batch_size=args.batch_size),
        show_progress=False,
    )
    shared_s = time.perf_counter() - started
    route = shared.neeko.routing([{"shared": 1.0}])
    shared_ppl = mean_perplexity(score(shared, dict.fromkeys(chars, route)))
    _row("shared LoRA", shared_s, shared_s, report.steps, shared_ppl, "-")

    if args.peft_loop:
        base = load_base(args.base, dtype=resolve_dtype("auto", training=True))
        started = time.perf_counter()
        steps = _peft_loop(base, lora, len(chars), train, profiles, config, lr=2e-4)
        seconds = time.perf_counter() - started
        merged = Cast(base, lora, GateConfig())  # no blocks: the merged weights alone
        ppl = mean_perplexity(score(merged, dict.fromkeys(chars)))
        _row("peft loop, batch 1", seconds, shared_s, steps, ppl, "-")

    houses = [{"off": False, "on": True}[v.strip()] for v in args.house.split(",")]
    # Character blocks may train under bare profiles (the name only), so that the block,
    # not the prompt, has to carry who speaks; scoring always prompts the full profile.
    block_profiles = (
        {c: replace(p, profile="", style="", examples=[]) for c, p in profiles.items()}
        if args.bare_profiles
        else profiles
    )
    for size in (int(v) for v in args.block_batch.split(",")):
        for house in houses:
            cast = fresh(lora.rank, [])
            started = time.perf_counter()
            steps = 0
            if house:
                steps += train_house(cast, train, profiles, config, show_progress=False).steps
            for c in chars:
                cast.neeko.add_block(c)
            steps += train_blocks(
                cast,
                {c: train[c] for c in chars},
                block_profiles,
                replace(config, block_batch_size=size),
                show_progress=False,
            ).steps
            seconds = time.perf_counter() - started
            extra = {HOUSE: 1.0} if house else {}
            own = {c: cast.neeko.routing([{c: 1.0, **extra}]) for c in chars}
            wrong = {c: own[chars[(i + 1) % len(chars)]] for i, c in enumerate(chars)}
            mine = score(cast, own)
            other = score(cast, wrong)
            ratios = [math.exp((o.nll - m.nll) / max(1, m.tokens)) for m, o in zip(mine, other)]
            ratio = f"{sum(ratios) / len(ratios):.3f}"
            _row(
                f"Neeko{', house' if house else ''}, block batch {size}",
                seconds,
                shared_s,
                steps,
                mean_perplexity(mine),
                ratio,
            )


def _peft_loop(base, lora, characters: int, train, profiles, config, lr: float) -> int:
    """Train one peft LoRA of `characters` blocks' rank on every sample, one a step, the
    samples shuffled each epoch; merge it into base.model and return the steps taken."""
    from peft import LoraConfig as PeftConfig
    from peft import get_peft_model

    names = {n.rsplit(".", 1)[-1] for n, _ in base.model.named_modules()}
    rank = lora.rank * characters
    peft = get_peft_model(
        base.model,
        PeftConfig(
            r=rank,
            lora_alpha=lora.scaling * rank,
            lora_dropout=0.0,
            target_modules=[t for t in lora.target_modules if t in names],
        ),
    )
    prompts = PromptEncoder(base.tokenizer, config.max_length)
    examples = [
        prompts.example(profiles[c], s.context[-config.max_context_turns :], s.reply)
        for c, samples in train.items()
        for s in samples
    ]
    order = random.Random(config.seed)
    params = [p for p in peft.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=config.weight_decay)
    peft.train()
    steps = 0
    for epoch in range(math.ceil(config.epochs)):
        picks = list(range(len(examples)))
        order.shuffle(picks)
        if epoch + 1 > config.epochs:  # a fractional last epoch
            picks = picks[: round(len(picks) * (config.epochs - epoch))]
        for i in picks:
            ids, mask, labels = pad_batch([examples[i]], base.tokenizer.pad_token_id, "cpu")
            nll, count = reply_nll(peft, ids, mask, labels)
            (nll.sum() / count.sum()).backward()
            optimiser.step()
            optimiser.zero_grad(set_to_none=True)
            steps += 1
    base.model = peft.merge_and_unload().eval()
    base.model.requires_grad_(False)
    return steps


def _row(name: str, seconds: float, shared: float, steps: int, ppl: float, ratio: str) -> None:
    print(
        f"{name:<24} {seconds:8.1f} {seconds / shared:8.2f}x {steps:6d} {ppl:8.2f} {ratio:>9}",
        flush=True,
    )


if __name__ == "__main__":
    main()
