"""Training blocks: pre-tuning (one block per character) and expansion (one new block).

A forward pass holds the rows of several characters (`batch_size` rows in all), each
row routed through its own character's block alone (`NeekoModel.owned_routing`), so the
cast trains at the batch size, and so the speed, of one shared adapter. Each block
still takes its own optimiser steps on its own samples only:

- its samples are shuffled and cut into updates of `block_batch_size` rows by a random
  generator of its own (seeded from the seed and its id), so which rows it sees when does
  not depend on which other characters train beside it;
- its loss is the mean over its own reply tokens, never over the batch, so its step
  size does not depend on other characters' token counts;
- its learning rate decays over its own updates, and AdamW skips a block that has no
  rows in a step (its gradient is None: no momentum, no weight decay);
- its LoRA products touch only its own real tokens, and attention runs row by row
  (`attention.per_row`), so nothing depends on how far other rows pad the batch.

In a cast with a house block, every row also passes through the house, frozen, the way
its NPC will speak; the house itself is trained first, alone, on every character's rows
(`tuning.pretune`). So a block ends bitwise the same whether it trains alone or beside
any other blocks (tests/test_training.py). With LoRA dropout above 0 the masks come from the global
random generator, and that one guarantee is lost.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .attention import per_row
from .cast import Cast
from .config import TrainConfig
from .data import Sample
from .loss import pad_batch, reply_nll
from .profile import NpcProfile

Example = tuple[list[int], list[int]]


@dataclass(frozen=True)
class Progress:
    step: int
    total_steps: int
    blocks: tuple[str, ...]  # the blocks this step updated
    loss: float  # the mean of their losses
    eta_seconds: float


@dataclass
class TrainReport:
    steps: int = 0
    seconds: float = 0.0
    samples: int = 0
    final_loss: dict[str, float] = field(default_factory=dict)

    def after(self, first: TrainReport) -> TrainReport:
        """This run and the one before it (the house block's), as one."""
        return TrainReport(
            first.steps + self.steps,
            first.seconds + self.seconds,
            first.samples + self.samples,
            {**first.final_loss, **self.final_loss},
        )


def selected(
    samples: Sequence[Sample], block_id: str, config: TrainConfig
) -> tuple[list[Sample], random.Random]:
    """The samples a block trains on (at most `max_samples_per_character`, drawn by the
    block's own random generator), and that generator, to shuffle its epochs with."""
    rng = random.Random(f"{config.seed}/{block_id}")
    rows = list(samples)
    rng.shuffle(rows)
    if config.max_samples_per_character:
        rows = rows[: config.max_samples_per_character]
    return rows, rng


def _block_updates(
    cast: Cast,
    block_id: str,
    samples: Sequence[Sample],
    profiles: Mapping[str, NpcProfile],
    config: TrainConfig,
    check: Callable[[], None],
) -> list[list[Example]]:
    """One block's updates, in order. Within pools of rows, sorted by length: blocks that
    progress together then meet in a batch with rows of similar length (little padding).
    Each sample is prompted with its own character's profile (a block may serve several
    characters)."""
    rows, rng = selected(samples, block_id, config)
    encoded = []
    for s in rows:
        check()  # preparing thousands of records takes a while: it can be stopped too
        context = s.context[-config.max_context_turns :] if config.max_context_turns else ()
        encoded.append(cast.prompts.example(profiles[s.character], context, s.reply))
    stream: list[Example] = []
    for _ in range(math.ceil(config.epochs)):
        order = encoded[:]
        rng.shuffle(order)
        stream.extend(order)
    stream = stream[: max(1, round(len(encoded) * config.epochs))]
    size, pool = config.rows_per_update, config.batch_size * 8
    updates = []
    for start in range(0, len(stream), pool):
        chunk = sorted(stream[start : start + pool], key=lambda e: len(e[0]))
        updates.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    return updates


def _plan(updates: Mapping[str, list[list[Example]]], per_step: int) -> list[list[str]]:
    """Which blocks update at each step: the least advanced ones (by share of their own
    updates done), at most `per_step`, so every block runs through its data at the same
    pace and the steps stay full."""
    done = dict.fromkeys(updates, 0)
    order = list(updates)
    steps = []
    while True:
        open_ = [b for b in order if done[b] < len(updates[b])]
        if not open_:
            return steps
        chosen = sorted(open_, key=lambda b: done[b] / len(updates[b]))[:per_step]
        for b in chosen:
            done[b] += 1
        steps.append(chosen)


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
    neeko = cast.neeko
    cast.prompts.max_length = config.max_length
    updates = {
        b: _block_updates(cast, b, rows, profiles, config, check) for b, rows in samples.items()
    }
    plan = _plan(updates, max(1, config.batch_size // config.rows_per_update))
    house = cast.house.id if cast.house is not None and cast.house.id not in updates else None
    neeko.set_trainable(list(updates))
    optimizer = torch.optim.AdamW(
        [{"params": neeko.block_parameters(b)} for b in updates],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
    )
    group = dict(zip(updates, optimizer.param_groups))
    done = dict.fromkeys(updates, 0)
    device = next(cast.model.parameters()).device
    pad_id = cast.tokenizer.pad_token_id
    total = len(plan)
    report = TrainReport(samples=sum(len(u) for us in updates.values() for u in us))
    smoothed: dict[str, float] = {}
    started = time.perf_counter()
    bar = tqdm(total=total, disable=not show_progress, unit="step", desc="training")
    try:
        for step, blocks in enumerate(plan, 1):
            parts = [updates[b][done[b]] for b in blocks]
            examples = [e for part in parts for e in part]
            owners = [b for b, part in zip(blocks, parts) for _ in part]
            ids, mask, labels = pad_batch(examples, pad_id, device)
            lengths = mask.sum(dim=1).tolist()
            routing = neeko.owned_routing(owners, lengths, ids.shape[1], house)
            optimizer.zero_grad(set_to_none=True)
            with neeko.routed(routing), per_row(cast.model, lengths):
                nll, count = reply_nll(cast.model, ids, mask, labels)
            losses, first = [], 0
            for part in parts:  # each block's own mean: its step size is its own
                rows = slice(first, first + len(part))
                losses.append(nll[rows].sum() / count[rows].sum().clamp(min=1))
                first += len(part)
            sum(losses).backward()
            for b in blocks:
                group[b]["lr"] = config.learning_rate * (1.0 - done[b] / len(updates[b]))
                done[b] += 1
            optimizer.step()
            values = [loss.detach().item() for loss in losses]
            for b, value in zip(blocks, values):
                smoothed[b] = 0.9 * smoothed.get(b, value) + 0.1 * value
            value = sum(values) / len(values)
            eta = (time.perf_counter() - started) / step * (total - step)
            bar.set_postfix(loss=f"{value:.3f}", blocks=len(blocks))
            bar.update()
            if on_step:
                on_step(Progress(step, total, tuple(blocks), value, eta))
    finally:
        bar.close()
        neeko.set_trainable([])
        neeko.invalidate()
    report.steps = total
    report.seconds = time.perf_counter() - started
    report.final_loss = smoothed
    return report
