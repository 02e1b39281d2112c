"""Sampling without sorts, checked against the definitions it replaces: the nucleus by a
full stable sort, the draw by the same generator numbers, each row alone or batched."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
)

from npc_runtime.engine import SamplingParams
from npc_runtime.engine import sampling as S
from npc_runtime.engine.sampling import Nucleus, RowSampler, nucleus_by_sort, sample

CPU = torch.device("cpu")


def _cases(count: int, seed: int = 0):
    """(probs (rows, vocab), top_ps): flat and peaked rows, ties (bfloat16 logits), rows
    with most tokens cut to probability 0 (top-k), top_p from tiny to nearly 1."""
    gen = torch.Generator().manual_seed(seed)
    for n in range(count):
        vocab = (50, 1000, 49152)[n % 3]
        rows = 1 + n % 4
        logits = torch.randn(rows, vocab, generator=gen) * (0.05, 1.0, 4.0, 10.0)[n % 4]
        if n % 7 == 0:
            logits = logits.bfloat16().float()  # many equal probabilities
        if n % 5 == 0:
            logits[:, : vocab // 2] = float("-inf")
        top_ps = [float(torch.rand(1, generator=gen)) * 0.999 + 0.001 for _ in range(rows)]
        if n % 6 == 0:
            top_ps = [0.95] * rows
        if n % 13 == 0:
            top_ps[-1] = 1e-4  # a nucleus of one or a few tokens
        yield torch.softmax(logits, dim=-1), top_ps


def test_nucleus_is_the_full_sort_one():
    for probs, top_ps in _cases(48):
        nucleus = Nucleus(probs, top_ps)
        for row, top_p in enumerate(top_ps):
            expected = nucleus_by_sort(probs[row], top_p)
            assert torch.equal(nucleus.mask(row), expected)
            some = torch.randperm(probs.shape[1])[:50].tolist()
            some += expected.nonzero()[:5, 0].tolist() + (~expected).nonzero()[:5, 0].tolist()
            assert all(nucleus.contains(row, t) == bool(expected[t]) for t in some)
            alone = Nucleus(probs[row : row + 1], [top_p])  # the same, whatever the batch
            assert torch.equal(alone.mask(0), expected)


def test_nucleus_ties_keep_the_lower_ids():
    probs = torch.tensor([[0.1, 0.3, 0.2, 0.2, 0.2]])
    assert Nucleus(probs, [0.55]).mask(0).tolist() == [False, True, True, True, False]
    assert nucleus_by_sort(probs[0], 0.55).tolist() == [False, True, True, True, False]


def _by_sort(probs: torch.Tensor, top_p: float, generator: torch.Generator) -> int:
    """The draw, defined with the full-sort nucleus: from the whole row until the token is
    in the nucleus, at most _TRIES times, then from the nucleus itself."""
    keep = nucleus_by_sort(probs, top_p) if top_p < 1 else torch.ones_like(probs, dtype=bool)
    for _ in range(S._TRIES):
        token = int(S._inverse_cdf(probs[None], torch.rand(1, generator=generator))[0])
        if keep[token]:
            return token
    weights = torch.where(keep, probs, 0.0)
    return int(S._inverse_cdf(weights[None], torch.rand(1, generator=generator))[0])


def test_draws_are_the_full_sort_ones_for_the_same_numbers(monkeypatch):
    asked = {"member": 0, "mask": 0}  # how often the edge bucket and the last resort ran
    for name in asked:
        real = getattr(Nucleus, "contains" if name == "member" else "mask")

        def counted(self, *args, real=real, name=name):
            asked[name] += 1
            return real(self, *args)

        monkeypatch.setattr(Nucleus, "contains" if name == "member" else "mask", counted)
    for n, (probs, top_ps) in enumerate(_cases(120, seed=1)):
        if n % 11 == 0:
            top_ps[0] = 1.0
        seeds = list(range(100 * n, 100 * n + len(top_ps)))
        generators = [torch.Generator().manual_seed(s) for s in seeds]

        def exact(j, probs=probs, top_ps=top_ps):
            return Nucleus(probs[j : j + 1], [top_ps[j]])

        got = S.draw(probs, generators, top_ps, exact)
        for row, (seed, top_p) in enumerate(zip(seeds, top_ps)):
            reference = torch.Generator().manual_seed(seed)
            assert got[row] == _by_sort(probs[row], top_p, reference)
            used = generators[row].get_state()  # the same count of numbers drawn
            assert torch.equal(used, reference.get_state())
            keep = nucleus_by_sort(probs[row], top_p) if top_p < 1 else None
            assert keep is None or keep[got[row]]
    assert asked["member"] and asked["mask"]  # both exact paths were taken and agreed


def test_the_fallback_draw_is_exact():
    probs = torch.softmax(torch.zeros(1, 1000), dim=-1)  # flat: top_p 1e-4 keeps one token
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        got = S.draw(probs, [generator], [1e-4], lambda j: Nucleus(probs, [1e-4]))
        assert got == [0]  # ties: the lowest id is the most likely


def test_inverse_cdf_follows_the_running_sum():
    gen = torch.Generator().manual_seed(3)
    for vocab in (7, 256, 1000, 49152):
        weights = torch.rand(3, vocab, generator=gen)
        weights[:, ::3] = 0.0  # never drawn
        uniform = torch.rand(3, generator=gen)
        tokens = S._inverse_cdf(weights, uniform)
        exact = weights.double().cumsum(1)
        for row, t in enumerate(tokens.tolist()):
            assert weights[row, t] > 0
            target = float(uniform[row]) * float(exact[row, -1])
            low = float(exact[row, t - 1]) if t else 0.0
            slack = 1e-5 * float(exact[row, -1])
            assert low - slack <= target <= float(exact[row, t]) + slack
        edges = torch.tensor([0.0, 1 - 2**-24]).repeat(3, 1)
        firsts = S._inverse_cdf(weights, edges[:, 0])
        lasts = S._inverse_cdf(weights, edges[:, 1])
        nonzero = [(w > 0).nonzero()[:, 0] for w in weights]
        assert firsts.tolist() == [int(z[0]) for z in nonzero]
        assert lasts.tolist() == [int(z[-1]) for z in nonzero]


def test_draws_follow_the_distribution():
    probs = torch.tensor([[0.5, 0.0, 0.3, 0.15, 0.05]])
    counts = torch.zeros(5)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4000):
        counts[S.draw(probs, [generator], [0.9], lambda j: Nucleus(probs, [0.9]))[0]] += 1
    # the nucleus of 0.9 is {0, 2, 3} (0.05 lies after 0.95 of the mass): renormalised
    expected = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.0]) / 0.95
    assert torch.allclose(counts / counts.sum(), expected, atol=0.03)
    assert counts[1] == 0 and counts[4] == 0


def _rows(params: list[SamplingParams], vocab: int, seen: list[int]) -> list[RowSampler]:
    rows = [RowSampler(p, seen, vocab, CPU, stop_ids=(2,)) for p in params]
    for r in rows:
        for t in (11, 12, 11):
            r.observe(t)
    return rows


SETTINGS = [
    SamplingParams(seed=5),  # the defaults
    SamplingParams(temperature=0.0),
    SamplingParams(temperature=1.3, top_p=0.5, top_k=40, seed=6, repetition_penalty=1.3),
    SamplingParams(temperature=0.7, top_p=1.0, seed=7, repetition_penalty=1.0),
    SamplingParams(temperature=0.9, top_p=0.2, seed=8, min_tokens=10, max_tokens=20),
    SamplingParams(temperature=0.0, repetition_penalty=1.0),
]


@pytest.mark.parametrize("scale", [0.05, 3.0])
def test_a_row_samples_the_same_alone_or_in_any_batch(scale):
    vocab = 49152
    logits = torch.randn(len(SETTINGS), vocab, generator=torch.Generator().manual_seed(2)) * scale
    prompt = [3, 4, 5, 900]
    batched = sample(logits, _rows(SETTINGS, vocab, prompt))
    alone = [
        sample(logits[i : i + 1], _rows([p], vocab, prompt))[0] for i, p in enumerate(SETTINGS)
    ]
    assert batched == alone
    order = [3, 0, 5, 1, 4, 2]
    shuffled = sample(logits[order], _rows([SETTINGS[i] for i in order], vocab, prompt))
    assert shuffled == [batched[i] for i in order]


def test_processing_is_transformers():
    """Penalty, temperature and top-k as transformers' processors compute them: the
    probabilities a row is drawn from are theirs."""
    vocab = 300
    logits = torch.randn(1, vocab, generator=torch.Generator().manual_seed(4)) * 3
    params = SamplingParams(temperature=0.7, top_k=20, repetition_penalty=1.4, top_p=1.0, seed=1)
    row = RowSampler(params, [3, 4, 250], vocab, CPU)
    row.observe(9)
    seen = torch.tensor([[3, 4, 250, 9]])
    expected = RepetitionPenaltyLogitsProcessor(1.4)(seen, logits.clone())
    expected = TemperatureLogitsWarper(0.7)(seen, expected)
    expected = torch.softmax(TopKLogitsWarper(20)(seen, expected), dim=-1)
    captured = {}
    real = S.draw

    def spy(probs, *args):
        captured["probs"] = probs.clone()
        return real(probs, *args)

    S.draw = spy
    try:
        sample(logits, [row])
    finally:
        S.draw = real
    assert torch.allclose(captured["probs"], expected, atol=1e-6)
    assert torch.equal(captured["probs"] > 0, expected > 0)
