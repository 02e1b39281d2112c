"""`npc-runtime eval`: compare ways of voicing characters on one base model and data set.

Every system is scored on the same held-out replies with the same prompt (the
character's profile as system prompt, the scene as chat turns); only the LoRA routing
differs, so differences in perplexity are the adapters' doing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..neeko.cast import Cast
from ..neeko.data import Sample, read_profiles, read_samples
from ..neeko.store import load_cast
from ..neeko.train import TrainConfig
from ..neeko.tuning import pretune
from .perplexity import Scored, mean_perplexity, score_samples


@dataclass
class EvalConfig:
    data: Path
    out: Path
    cast: Path | None = None
    base: str | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    max_test_per_character: int | None = None
    seed: int = 0


def _test_subset(data: Path, limit: int | None, seed: int) -> dict[str, list[Sample]]:
    test = read_samples(data, "test")
    rng = random.Random(seed)
    subset = {}
    for char, rows in test.items():
        rows = list(rows)
        rng.shuffle(rows)
        subset[char] = rows[:limit] if limit else rows
    return subset


def _per_character(scores: Sequence[Scored], samples: Sequence[Sample]) -> dict[str, float]:
    grouped: dict[str, list[Scored]] = {}
    for s, sample in zip(scores, samples):
        grouped.setdefault(sample.character, []).append(s)
    return {c: mean_perplexity(v) for c, v in grouped.items()}


def run_core(config: EvalConfig) -> dict:
    """Own block vs no LoRA (profile in the prompt) vs a wrong character's block."""
    results: dict = {"data": str(config.data), "train": config.train.__dict__}
    started = time.perf_counter()
    if config.cast:
        cast = load_cast(config.cast, base=config.base)
        results["train_seconds"] = None
    else:
        cast, report = pretune(config.data, base=config.base, train=config.train)
        cast.save(config.out / "cast")
        results["train_seconds"] = report.seconds
        results["train_steps"] = report.steps
    results["setup_seconds"] = time.perf_counter() - started
    profiles = read_profiles(config.data)
    test = _test_subset(config.data, config.max_test_per_character, config.seed)
    chars = [c for c in test if c in cast.blocks]
    samples = [s for c in chars for s in test[c]]
    wrong_of = {c: chars[(i + 1) % len(chars)] for i, c in enumerate(chars)}
    own = {c: cast.routing([c]) for c in chars}
    wrong = {c: cast.routing([wrong_of[c]]) for c in chars}
    systems = {
        "own_block": lambda s: own[s.character],
        "no_lora_profile_prompt": lambda s: None,
        "wrong_block": lambda s: wrong[s.character],
    }
    table = {}
    for name, routing_of in systems.items():
        scores = score_samples(
            cast,
            samples,
            lambda s: profiles[s.character],
            routing_of,
            max_length=config.train.max_length,
            max_context_turns=config.train.max_context_turns,
            desc=name,
        )
        table[name] = {"mean": mean_perplexity(scores), **_per_character(scores, samples)}
    results["perplexity"] = table
    results["wrong_block_of"] = wrong_of
    results["test_replies"] = len(samples)
    results["fusion_ms"] = _time_fusion(cast, profiles[chars[0]])
    return results


def _time_fusion(cast: Cast, like) -> float:
    from ..neeko.profile import NpcProfile

    cast.embed_profile(like)  # warm the encoder: loading it is not part of fusion
    probe = NpcProfile(id="eval-fusion-probe", name="A newcomer", profile=like.profile)
    started = time.perf_counter()
    cast.fuse(probe)
    took = (time.perf_counter() - started) * 1000
    cast.remove_npc(probe.id)
    return took


def write_core_report(results: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    table = results["perplexity"]
    chars = [c for c in table["own_block"] if c != "mean"]
    lines = [
        "| character | own block | no LoRA, profile prompt | wrong block |",
        "|---|---|---|---|",
    ]
    for c in ["mean", *chars]:
        row = [f"{table[s][c]:.2f}" for s in ("own_block", "no_lora_profile_prompt", "wrong_block")]
        label = "**mean**" if c == "mean" else c
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
