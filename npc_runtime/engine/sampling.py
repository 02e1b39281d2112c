"""Choosing the next token of every row of a batch, each row with its own settings.

The order is transformers' (repetition penalty, temperature, top-k, top-p), so a request
means the same here as in `generate`. The work on the (rows, vocab) logits is batched; only
the final draw runs per row, from that request's own torch.Generator, so a seeded request
draws the same numbers whatever else shares its batch.
"""

from __future__ import annotations

import secrets

import torch

from .api import SamplingParams

# Top-p first looks at this many most likely tokens: when they hold top_p of the mass
# (nearly always), the nucleus lies inside them and sorting the vocabulary is skipped.
_NUCLEUS_CANDIDATES = 1024


class RowSampler:
    """One request's sampling state: its settings, generator and seen-token mask."""

    def __init__(
        self,
        params: SamplingParams,
        prompt: list[int],
        vocab: int,
        device,
        stop_ids: tuple[int, ...] = (),
    ):
        self.params = params
        self.stop_ids = stop_ids
        self.count = 0  # tokens drawn so far
        self.greedy = params.temperature == 0
        self.generator: torch.Generator | None = None
        if not self.greedy:
            self.generator = torch.Generator(device=device)
            seed = params.seed if params.seed is not None else secrets.randbits(63)
            self.generator.manual_seed(seed)
        self.seen = torch.zeros(vocab, dtype=torch.bool, device=device)
        if params.repetition_penalty != 1.0 and prompt:
            self.seen[torch.tensor(prompt, device=device)] = True

    def observe(self, token: int) -> None:
        self.count += 1
        if self.params.repetition_penalty != 1.0:
            self.seen[token] = True


def _penalise(logits: torch.Tensor, rows: list[RowSampler]) -> torch.Tensor:
    early = [i for i, r in enumerate(rows) if r.count < r.params.min_tokens and r.stop_ids]
    if early:
        logits = logits.clone()
        for i in early:
            logits[i, list(rows[i].stop_ids)] = float("-inf")
    idx = [i for i, r in enumerate(rows) if r.params.repetition_penalty != 1.0]
    if not idx:
        return logits
    sel = torch.tensor(idx, device=logits.device)
    part = logits[sel]
    seen = torch.stack([rows[i].seen for i in idx])
    pen = torch.tensor(
        [rows[i].params.repetition_penalty for i in idx], device=logits.device
    ).unsqueeze(1)
    penalised = torch.where(part < 0, part * pen, part / pen)
    logits = logits.clone()
    logits[sel] = torch.where(seen, penalised, part)
    return logits


def _top_k(logits: torch.Tensor, ks: list[int]) -> torch.Tensor:
    if not any(ks):
        return logits
    vocab = logits.shape[-1]
    kmax = min(max(ks), vocab)
    kth = logits.topk(kmax, dim=-1).values
    col = torch.tensor([min(k, vocab) - 1 if k else kmax - 1 for k in ks], device=logits.device)
    threshold = kth.gather(1, col.unsqueeze(1))
    cut = torch.tensor([k > 0 for k in ks], device=logits.device).unsqueeze(1)
    return logits.masked_fill(cut & (logits < threshold), float("-inf"))


def _nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(candidate token ids, their probabilities renormalised) for one row."""
    k = min(_NUCLEUS_CANDIDATES, probs.numel())
    values, ids = probs.topk(k)
    if top_p < 1.0 and values.sum() < top_p and k < probs.numel():
        values, ids = probs.sort(descending=True, stable=True)  # ties: bfloat16 logits
    if top_p < 1.0:
        before = values.cumsum(0) - values  # mass of the more likely tokens
        keep = before < top_p
        keep[0] = True
        values, ids = values[keep], ids[keep]
    elif k < probs.numel():
        values, ids = probs, torch.arange(probs.numel(), device=probs.device)
    return ids, values / values.sum()


def sample(logits: torch.Tensor, rows: list[RowSampler]) -> list[int]:
    """One next token per row of `logits` (rows, vocab), float32."""
    logits = _penalise(logits.float(), rows)
    greedy = [i for i, r in enumerate(rows) if r.greedy]
    out = [0] * len(rows)
    if len(greedy) == len(rows):
        return logits.argmax(dim=-1).tolist()
    for i, t in zip(greedy, logits[greedy].argmax(dim=-1).tolist()):
        out[i] = t
    drawn = [i for i, r in enumerate(rows) if not r.greedy]
    if drawn:
        part = logits[drawn]
        temps = torch.tensor([rows[i].params.temperature for i in drawn], device=logits.device)
        part = _top_k(part / temps.unsqueeze(1), [rows[i].params.top_k for i in drawn])
        probs = torch.softmax(part, dim=-1)
        for j, i in enumerate(drawn):
            ids, p = _nucleus(probs[j], rows[i].params.top_p)
            choice = torch.multinomial(p, 1, generator=rows[i].generator)
            out[i] = int(ids[choice])
    return out
