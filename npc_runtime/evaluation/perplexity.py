"""Held-out perplexity of replies under a given routing (a block, a blend, or none)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..neeko.cast import Cast
from ..neeko.data import Sample
from ..neeko.layer import Routing
from ..neeko.loss import pad_batch, reply_nll
from ..neeko.profile import NpcProfile


@dataclass(frozen=True)
class Scored:
    """Summed negative log-likelihood of one reply and its token count."""

    nll: float
    tokens: int


def mean_perplexity(scores: Sequence[Scored]) -> float:
    """Token-weighted: exp(total NLL / total tokens)."""
    tokens = sum(s.tokens for s in scores)
    return math.exp(sum(s.nll for s in scores) / max(1, tokens))


def score_samples(
    cast: Cast,
    samples: Sequence[Sample],
    profile_of: Callable[[Sample], NpcProfile],
    routing_of: Callable[[Sample], Routing | None],
    batch_size: int = 8,
    max_length: int = 384,
    max_context_turns: int = 4,
    desc: str = "scoring",
    show_progress: bool = True,
) -> list[Scored]:
    """Score each sample's reply with its own prompt and routing (batched by routing)."""
    cast.prompts.max_length = max_length
    encoded = [
        cast.prompts.example(
            profile_of(s), s.context[-max_context_turns:] if max_context_turns else (), s.reply
        )
        for s in samples
    ]
    routes = [routing_of(s) for s in samples]
    groups: dict[int, list[int]] = {}
    for i, r in enumerate(routes):
        groups.setdefault(id(r), []).append(i)
    device = next(cast.model.parameters()).device
    results: list[Scored | None] = [None] * len(samples)
    bar = tqdm(total=len(samples), desc=desc, disable=not show_progress, unit="reply")
    with torch.no_grad():
        for members in groups.values():
            members.sort(key=lambda i: len(encoded[i][0]))
            for start in range(0, len(members), batch_size):
                chunk = members[start : start + batch_size]
                ids, mask, labels = pad_batch(
                    [encoded[i] for i in chunk], cast.tokenizer.pad_token_id, device
                )
                with cast.neeko.routed(routes[chunk[0]]):
                    nll, count = reply_nll(cast.model, ids, mask, labels)
                for i, n, c in zip(chunk, nll.tolist(), count.tolist()):
                    results[i] = Scored(n, int(c))
                bar.update(len(chunk))
    bar.close()
    return results  # type: ignore[return-value]
