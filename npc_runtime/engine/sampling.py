"""Choosing the next token of every row of a batch, each row with its own settings.

The order is transformers' (repetition penalty, temperature, top-k, top-p), so a request
means the same here as in `generate`. The work on the (rows, vocab) logits is batched over
the rows, and no step sorts the vocabulary (a sort of 49k tokens took 5-8 ms a row, the
multinomial draw after it 1.6 ms):

- the repetition penalty is computed on the seen tokens' logits only (a gather and a
  scatter, the arithmetic of transformers' processor), then one division per row for the
  temperature and one softmax for all rows;
- a row draws one uniform number from its own torch.Generator and takes the token where
  it falls in the running sum of its probabilities (vocabulary order, two levels: blocks,
  then tokens of one block). Top-p is then a rejection: a token outside the nucleus (the
  most likely tokens, in a stable descending order, while the mass before each is below
  top_p) is drawn again, at most _TRIES times, then drawn from the nucleus itself. The
  nucleus holds at least top_p of the mass, so one draw nearly always does;
- whether a token is in the nucleus is read from one masked sum over its row, decided
  exactly when the sum is further from top_p than float32 rounding can reach, and else by
  `Nucleus`: a radix select on the probabilities' bits (4096 buckets of mass per row, in
  float64) that sorts only the few tokens of the bucket where the nucleus ends. Both agree
  with the definition, `nucleus_by_sort`, which the tests hold them to.

Each row's arithmetic is its own (reductions that a thread split could round differently
only ever decide with a margin wider than the rounding), so a seeded request draws the
same tokens whatever else shares its batch.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .api import SamplingParams

_BUCKET_BITS = 12  # 4096 buckets per row for the nucleus's radix select
_BLOCK = 256  # tokens per block of the two-level running sum of a draw
_TRIES = 16  # draws from the whole row before drawing from the nucleus itself


class RowSampler:
    """One request's sampling state: its settings, generator and the tokens it has seen."""

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
        self.device = device
        self.greedy = params.temperature == 0
        self.generator: torch.Generator | None = None
        if not self.greedy:
            self.generator = torch.Generator(device=device)
            seed = params.seed if params.seed is not None else secrets.randbits(63)
            self.generator.manual_seed(seed)
        self.penalised = params.repetition_penalty != 1.0
        self.seen: set[int] = set(prompt) if self.penalised else set()
        self._ids = torch.tensor(sorted(self.seen), dtype=torch.long, device=device)
        self._new: list[int] = []

    def observe(self, token: int) -> None:
        self.count += 1
        if self.penalised and token not in self.seen:
            self.seen.add(token)
            self._new.append(token)

    def seen_ids(self) -> torch.Tensor:
        """The distinct token ids this row has seen (prompt and reply), as a tensor."""
        if self._new:
            new = torch.tensor(self._new, dtype=torch.long, device=self.device)
            self._ids = torch.cat([self._ids, new])
            self._new = []
        return self._ids


def _adjust(
    target: torch.Tensor,
    logits: torch.Tensor,
    at: list[int],
    rows: list[RowSampler],
    temps: torch.Tensor | None = None,
) -> None:
    """Apply, in place on `target` (rows `at` of `logits`, divided by `temps` when given),
    the repetition penalty and min_tokens' held-back stop tokens. The penalty is computed
    on the seen tokens' raw logits only, with the same arithmetic as on the whole row."""
    pen_rows = [j for j, r in enumerate(rows) if r.penalised]
    if pen_rows:
        device = logits.device
        ids = [rows[j].seen_ids() for j in pen_rows]
        local = torch.cat([torch.full((len(t),), k, device=device) for k, t in enumerate(ids)])
        line = torch.tensor(pen_rows, device=device)[local]
        cols = torch.cat(ids)
        pens = [rows[j].params.repetition_penalty for j in pen_rows]
        pen = torch.tensor(pens, device=device)[local]
        raw = logits[torch.tensor(at, device=device)[line], cols]
        value = torch.where(raw < 0, raw * pen, raw / pen)
        if temps is not None:
            value = value / temps[line]
        target[line, cols] = value
    for j, r in enumerate(rows):
        if r.count < r.params.min_tokens and r.stop_ids:
            target[j, list(r.stop_ids)] = float("-inf")


def _needs_adjusting(rows: list[RowSampler]) -> bool:
    return any(r.penalised or (r.count < r.params.min_tokens and r.stop_ids) for r in rows)


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


def nucleus_by_sort(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """The nucleus of one row of probabilities by a full stable sort (the definition): a
    bool mask of the tokens kept. Slow; `Nucleus` is what sampling uses, tested against it."""
    values, ids = probs.sort(descending=True, stable=True)  # ties: the lower id first
    before = values.double().cumsum(0) - values.double()  # mass of the more likely tokens
    keep = before < top_p
    keep[0] = True
    mask = torch.zeros_like(probs, dtype=torch.bool)
    mask[ids[keep]] = True
    return mask


class Nucleus:
    """The nuclei of rows of probabilities (rows, vocab), each for its own top_p in (0, 1),
    without sorting the vocabulary: the same sets as `nucleus_by_sort`.

    A radix select on the probabilities' bits: each row's mass goes into 4096 buckets by a
    monotone function of the probability, and the running mass from the top bucket down
    puts the nucleus's edge in one bucket. Every token of a higher bucket is in the nucleus
    (less than top_p lies before it), none of a lower one; only the edge bucket's few
    tokens need sorting, and only when asked about one of them. Masses add up in float64
    in a fixed order per row, so a row's answer does not depend on the other rows.
    """

    def __init__(self, probs: torch.Tensor, top_ps: list[float]):
        rows, vocab = probs.shape
        device = probs.device
        buckets = 1 << _BUCKET_BITS
        self.probs = probs
        self.top_ps = top_ps
        key = probs.view(torch.int32)  # non-negative floats: the bits order as the values
        hi = key.amax(dim=1)
        # Tokens under (1 - top_p) / vocab, which the nucleus never reaches, share the
        # lowest bucket, so the buckets resolve the likelier ones finely. Only the speed
        # depends on this: every bucket is treated the same way.
        floor = torch.tensor([(1 - p) / vocab for p in top_ps], dtype=torch.float32)
        lo = torch.maximum(key.amin(dim=1), floor.to(device).view(torch.int32))
        lo = torch.minimum(lo, hi)
        shift = [max(0, s.bit_length() - _BUCKET_BITS) for s in (hi - lo).tolist()]
        shift = torch.tensor(shift, dtype=torch.int32, device=device)[:, None]
        self.bucket = (
            torch.clamp(key, min=lo[:, None]).sub_(lo[:, None]).bitwise_right_shift_(shift)
        )
        offset = torch.arange(rows, device=device, dtype=torch.int32)[:, None] * buckets
        mass = torch.bincount(
            (self.bucket + offset).view(-1), weights=probs.double().view(-1),
            minlength=rows * buckets,
        ).view(rows, buckets)  # fmt: skip
        at_least = torch.zeros(rows, buckets + 1, dtype=torch.float64, device=device)
        at_least[:, :buckets] = mass.flip(1).cumsum(1).flip(1)  # mass of buckets >= b
        top_p = torch.tensor(top_ps, dtype=torch.float64, device=device)
        # The edge: the highest bucket whose mass and all above reach top_p.
        edge = ((at_least[:, :buckets] >= top_p[:, None]).sum(1) - 1).clamp_(min=0)
        above = at_least.gather(1, (edge + 1)[:, None]).squeeze(1)
        self.edge = edge.tolist()
        self.above = above.tolist()
        self._edges: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _edge_tokens(self, row: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The edge bucket's tokens of a row, most likely first (ties: lower id first),
        and which of them are in the nucleus."""
        if row not in self._edges:
            ids = (self.bucket[row] == self.edge[row]).nonzero().squeeze(1)
            values, order = self.probs[row, ids].double().sort(descending=True, stable=True)
            before = self.above[row] + values.cumsum(0) - values
            keep = before < self.top_ps[row]
            if self.above[row] == 0:
                keep[0] = True  # the most likely token always stays
            self._edges[row] = (ids[order], keep)
        return self._edges[row]

    def contains(self, row: int, token: int) -> bool:
        bucket = int(self.bucket[row, token])
        if bucket != self.edge[row]:
            return bucket > self.edge[row]
        ids, keep = self._edge_tokens(row)
        return bool(keep[(ids == token).nonzero()[0, 0]])

    def mask(self, row: int) -> torch.Tensor:
        """The row's nucleus as a bool mask over the vocabulary."""
        kept = self.bucket[row] > self.edge[row]
        ids, keep = self._edge_tokens(row)
        kept[ids[keep]] = True
        return kept


def _inverse_cdf(weights: torch.Tensor, uniform: torch.Tensor) -> torch.Tensor:
    """Per row of non-negative weights (rows, vocab), the token where uniform * (the row's
    total) falls in the running sum in vocabulary order; never a token of weight 0.

    The running sum is two-level (sums of blocks of _BLOCK tokens, then the tokens of the
    block the number falls in), which is much cheaper than a scan over the vocabulary;
    each row's arithmetic is its own, whatever the other rows."""
    rows, vocab = weights.shape
    blocks = -(-vocab // _BLOCK)
    if blocks * _BLOCK != vocab:
        weights = torch.cat([weights, weights.new_zeros(rows, blocks * _BLOCK - vocab)], 1)
    running = weights.view(rows, blocks, _BLOCK).sum(2).cumsum(1)
    total = running[:, -1:].contiguous()
    target = uniform.view(-1, 1).to(running.dtype) * total
    block = torch.minimum(
        torch.searchsorted(running, target, right=True), torch.searchsorted(running, total)
    )  # the second: the last block with any weight, should rounding carry the number past
    start = block * _BLOCK
    passed = torch.where(block > 0, running.gather(1, (block - 1).clamp(min=0)), 0.0)
    inner = weights.gather(1, start + torch.arange(_BLOCK, device=weights.device)).cumsum(1)
    rest = target - passed
    at = torch.minimum(
        torch.searchsorted(inner, rest, right=True),
        torch.searchsorted(inner, inner[:, -1:].contiguous()),
    )
    return (start + at).squeeze(1)


def _margin(vocab: int) -> float:
    """How far a float32 sum of one row's probabilities (about 1 in all) may be from the
    exact sum, whatever the order of the additions: (n - 1) half-units in the last place,
    doubled."""
    return 2 * vocab * 2.0**-24


def draw(
    probs: torch.Tensor,
    generators: list[torch.Generator],
    top_ps: list[float],
    exact: Callable[[int], Nucleus],
) -> list[int]:
    """One token per row from its nucleus, renormalised: draw from the whole row (one
    uniform number from the row's generator, placed in the cumulative mass in vocabulary
    order) until the token is in the nucleus (top_p 1 takes any), at most _TRIES times,
    then once from the nucleus itself. Exact either way, and cheap: the nucleus holds at
    least top_p of the mass.

    Whether a token is in is read from the mass of the tokens at least as likely, a float32
    sum over the row: when that sum is further from top_p than its rounding could move it,
    the answer is the exact one; otherwise `exact(row)` (a Nucleus of that row) decides.
    So no answer depends on how a sum was split, nor on the other rows."""
    rows, vocab = probs.shape
    device = probs.device
    margin = _margin(vocab)
    out: list[int | None] = [None] * rows
    pending = list(range(rows))
    for _ in range(_TRIES):
        uniform = torch.cat(
            [torch.rand(1, generator=generators[i], device=device) for i in pending]
        )
        picks = _inverse_cdf(probs if len(pending) == rows else probs[pending], uniform)
        cut = [n for n, i in enumerate(pending) if top_ps[i] < 1.0]
        verdict: dict[int, bool] = {}
        for n, t in zip(cut, picks[cut].tolist() if cut else []):
            row, top = probs[pending[n]], top_ps[pending[n]]
            value = row[t]
            p = float(value)
            # before(t) lies between the mass of the likelier tokens and that of the
            # tokens at least as likely, t itself left out (ties: lower ids come first).
            below = float(torch.nextafter(value, value.new_tensor(-math.inf)))
            if float(F.threshold(row, below, 0.0).sum()) - p < top - margin:
                verdict[n] = True
            elif float(F.threshold(row, p, 0.0).sum()) > top + margin:
                verdict[n] = False
            else:
                verdict[n] = exact(pending[n]).contains(0, t)
        left = []
        for n, (i, t) in enumerate(zip(pending, picks.tolist())):
            if verdict.get(n, True):
                out[i] = t
            else:
                left.append(i)
        pending = left
        if not pending:
            return out
    for i in pending:  # a nucleus with little of the mass: from it directly
        weights = torch.where(exact(i).mask(0), probs[i], 0.0)
        uniform = torch.rand(1, generator=generators[i], device=device)
        out[i] = int(_inverse_cdf(weights[None], uniform)[0])
    return out


def sample(logits: torch.Tensor, rows: list[RowSampler]) -> list[int]:
    """One next token per row of `logits` (rows, vocab), float32; `logits` is not changed."""
    logits = logits.float()
    device = logits.device
    out = [0] * len(rows)
    greedy = [i for i, r in enumerate(rows) if r.greedy]
    drawn = [i for i, r in enumerate(rows) if not r.greedy]
    if greedy:
        part = logits if not drawn else logits[greedy]
        samplers = [rows[i] for i in greedy]
        if _needs_adjusting(samplers):
            part = part.clone() if part is logits else part
            _adjust(part, logits, greedy, samplers)
        for i, t in zip(greedy, part.argmax(dim=-1).tolist()):
            out[i] = t
    if not drawn:
        return out
    samplers = [rows[i] for i in drawn]
    part = logits if not greedy else logits[drawn]
    temps = [r.params.temperature for r in samplers]
    scale = None
    if any(t != 1.0 for t in temps):
        scale = torch.tensor(temps, device=device)
        part = part / scale.unsqueeze(1)
    if _needs_adjusting(samplers):
        part = part.clone() if part is logits else part
        _adjust(part, logits, drawn, samplers, scale)
    part = _top_k(part, [r.params.top_k for r in samplers])
    probs = torch.softmax(part, dim=-1)
    top_ps = [r.params.top_p for r in samplers]
    exact: dict[int, Nucleus] = {}

    def nucleus(j: int) -> Nucleus:
        if j not in exact:
            exact[j] = Nucleus(probs[j : j + 1], [top_ps[j]])
        return exact[j]

    tokens = draw(probs, [r.generator for r in samplers], top_ps, nucleus)
    for i, t in zip(drawn, tokens):
        out[i] = t
    return out
