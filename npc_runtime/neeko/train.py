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

With `contrast` above 0, each update of a block also carries as many other characters'
replies (drawn from a pool given to `train_blocks`, by the block's own generator, each
prompted with its own character's profile, as scoring does), and a margin term pushes
the block's likelihood of them below that of its own rows: a block then has to carry
who speaks, not only how the world talks. The pool is part of the block's data: a block
trained with the same pool still ends the same, whatever shares its batches.

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
from .data import Sample
from .loss import pad_batch, reply_nll
from .profile import NpcProfile

Example = tuple[list[int], list[int]]
Update = tuple[list[Example], list[Example]]  # a block's own rows, other characters' rows


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 2.0
    learning_rate: float = 5e-4
    batch_size: int = 8  # rows per forward pass, of any characters
    block_batch_size: int = 1  # rows of one character per update of its block (<= batch_size)
    weight_decay: float = 0.01
    max_length: int = 384
    max_context_turns: int = 4
    max_samples_per_character: int | None = None
    seed: int = 0
    contrast: float = 0.0  # weight of the margin term on other characters' replies; 0: off
    contrast_margin: float = 0.4  # nats a token by which own replies should beat others'

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch size and learning rate must be positive")
        if self.block_batch_size < 1:
            raise ValueError("block batch size must be positive")
        if self.contrast < 0 or self.contrast_margin < 0:
            raise ValueError("contrast and its margin must not be negative")

    @property
    def rows_per_update(self) -> int:
        return min(self.block_batch_size, self.batch_size)


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
    negatives: Sequence[Sample],
    profiles: Mapping[str, NpcProfile],
    config: TrainConfig,
    check: Callable[[], None],
) -> list[Update]:
    """One block's updates, in order. Within pools of rows, sorted by length: blocks that
    progress together then meet in a batch with rows of similar length (little padding).
    Each sample is prompted with its own character's profile (a block may serve several
    characters). With contrast, each update draws as many rows of other characters from
    `negatives`, by a generator of the block's own."""
    rows, rng = selected(samples, block_id, config)

    def encode(s: Sample) -> Example:
        check()  # preparing thousands of records takes a while: it can be stopped too
        context = s.context[-config.max_context_turns :] if config.max_context_turns else ()
        return cast.prompts.example(profiles[s.character], context, s.reply)

    encoded = [encode(s) for s in rows]
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
    mine = {s.character for s in samples}
    others = [s for s in negatives if s.character not in mine] if config.contrast else []
    if not others:
        return [(u, []) for u in updates]
    draw = random.Random(f"{config.seed}/{block_id}/contrast")
    contrasted = []
    for u in updates:
        contrasted.append((u, [encode(s) for s in draw.sample(others, min(len(u), len(others)))]))
    return contrasted


def _plan(updates: Mapping[str, list[Update]], per_step: int) -> list[list[str]]:
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
    negatives: Sequence[Sample] = (),
) -> TrainReport:
    """Train the named blocks (keys of `samples`), each on the samples listed under it,
    and, with `config.contrast`, against the replies of other characters in `negatives`.
    `check` runs before each record is prepared and may raise to stop before training."""
    neeko = cast.neeko
    cast.prompts.max_length = config.max_length
    updates = {
        b: _block_updates(cast, b, rows, negatives, profiles, config, check)
        for b, rows in samples.items()
    }
    contrasted = any(neg for us in updates.values() for _, neg in us)
    rows_per_update = config.rows_per_update * (2 if contrasted else 1)
    plan = _plan(updates, max(1, config.batch_size // rows_per_update))
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
    report = TrainReport(samples=sum(len(u) for us in updates.values() for u, _ in us))
    smoothed: dict[str, float] = {}
    started = time.perf_counter()
    bar = tqdm(total=total, disable=not show_progress, unit="step", desc="training")
    try:
        for step, blocks in enumerate(plan, 1):
            parts = [updates[b][done[b]] for b in blocks]
            examples = [e for own, neg in parts for e in own + neg]
            owners = [b for b, (own, neg) in zip(blocks, parts) for _ in own + neg]
            ids, mask, labels = pad_batch(examples, pad_id, device)
            lengths = mask.sum(dim=1).tolist()
            routing = neeko.owned_routing(owners, lengths, ids.shape[1], house)
            optimizer.zero_grad(set_to_none=True)
            with neeko.routed(routing), per_row(cast.model, lengths):
                nll, count = reply_nll(cast.model, ids, mask, labels)
            losses, terms, first = [], [], 0
            for own, neg in parts:  # each block's own mean: its step size is its own
                loss = _mean(nll, count, first, len(own))
                losses.append(loss)
                if neg:  # other characters' replies: at least the margin less likely
                    gap = _mean(nll, count, first + len(own), len(neg)) - loss
                    loss = loss + config.contrast * torch.relu(config.contrast_margin - gap)
                terms.append(loss)
                first += len(own) + len(neg)
            sum(terms).backward()
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


def _mean(nll: torch.Tensor, count: torch.Tensor, first: int, rows: int) -> torch.Tensor:
    """The mean loss a token over `rows` rows from `first` on."""
    part = slice(first, first + rows)
    return nll[part].sum() / count[part].sum().clamp(min=1)
