"""Training blocks: pre-tuning (one block per character) and expansion (one new block).

Every optimiser step uses the samples of one character and routes them through that
character's block alone, so only that block receives gradients. AdamW skips parameters
whose gradient is None (no momentum, no weight decay), which is what keeps every other
block bitwise unchanged, even though one optimiser holds them all.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .cast import Cast
from .data import Sample
from .loss import pad_batch, reply_nll
from .profile import NpcProfile


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 2.0
    learning_rate: float = 5e-4
    batch_size: int = 8
    weight_decay: float = 0.01
    max_length: int = 384
    max_context_turns: int = 4
    max_samples_per_character: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch size and learning rate must be positive")


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    block: str
    loss: float
    eta_seconds: float


@dataclass
class TrainReport:
    steps: int = 0
    seconds: float = 0.0
    samples: int = 0
    final_loss: dict[str, float] = field(default_factory=dict)


def _batches(
    cast: Cast,
    samples: Mapping[str, Sequence[Sample]],
    profiles: Mapping[str, NpcProfile],
    config: TrainConfig,
    rng: random.Random,
    check: Callable[[], None],
) -> list[tuple[str, list[tuple[list[int], list[int]]]]]:
    """Single-block batches, length-sorted within small pools to cut padding; each sample
    is prompted with its own character's profile (a block may serve several characters)."""
    cast.prompts.max_length = config.max_length
    batches = []
    for block_id, rows in samples.items():
        rows = list(rows)
        rng.shuffle(rows)
        if config.max_samples_per_character:
            rows = rows[: config.max_samples_per_character]
        encoded = []
        for s in rows:
            check()  # preparing thousands of records takes a while: it can be stopped too
            context = s.context[-config.max_context_turns :] if config.max_context_turns else ()
            encoded.append(cast.prompts.example(profiles[s.character], context, s.reply))
        epochs_whole = math.ceil(config.epochs)
        stream = []
        for _ in range(epochs_whole):
            order = encoded[:]
            rng.shuffle(order)
            stream.extend(order)
        stream = stream[: max(1, round(len(encoded) * config.epochs))]
        pool = config.batch_size * 8
        for start in range(0, len(stream), pool):
            chunk = sorted(stream[start : start + pool], key=lambda e: len(e[0]))
            for i in range(0, len(chunk), config.batch_size):
                batches.append((block_id, chunk[i : i + config.batch_size]))
    rng.shuffle(batches)
    return batches


def train_blocks(
    cast: Cast,
    samples: Mapping[str, Sequence[Sample]],
    profiles: Mapping[str, NpcProfile],
    config: TrainConfig,
    on_step: Callable[[Progress], None] | None = None,
    show_progress: bool = True,
    check: Callable[[], None] = lambda: None,
) -> TrainReport:
    """Train the named blocks (keys of `samples`), each on the samples listed under it.
    `check` runs before each record is prepared and may raise to stop before training."""
    rng = random.Random(config.seed)
    neeko = cast.neeko
    block_ids = list(samples)
    batches = _batches(cast, samples, profiles, config, rng, check)
    neeko.set_trainable(block_ids)
    params = [p for b in block_ids for p in neeko.block_parameters(b)]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    total = len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(1, total))
    )
    device = next(cast.model.parameters()).device
    pad_id = cast.tokenizer.pad_token_id
    report = TrainReport(samples=sum(len(b) for _, b in batches))
    routes = {b: neeko.routing([{b: 1.0}]) for b in block_ids}
    smoothed: dict[str, float] = {}
    started = time.perf_counter()
    bar = tqdm(total=total, disable=not show_progress, unit="step", desc="training")
    try:
        for step, (block_id, examples) in enumerate(batches, 1):
            ids, mask, labels = pad_batch(examples, pad_id, device)
            optimizer.zero_grad(set_to_none=True)
            with neeko.routed(routes[block_id]):
                nll, count = reply_nll(cast.model, ids, mask, labels)
            loss = nll.sum() / count.sum().clamp(min=1)
            loss.backward()
            optimizer.step()
            schedule.step()
            value = loss.detach().item()
            smoothed[block_id] = 0.9 * smoothed.get(block_id, value) + 0.1 * value
            elapsed = time.perf_counter() - started
            eta = elapsed / step * (total - step)
            bar.set_postfix(loss=f"{value:.3f}", block=block_id)
            bar.update()
            if on_step:
                on_step(Progress(step, total, block_id, value, eta))
    finally:
        bar.close()
        neeko.set_trainable([])
        neeko.invalidate()
    report.steps = total
    report.seconds = time.perf_counter() - started
    report.final_loss = smoothed
    return report
