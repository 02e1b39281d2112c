"""Engine parts without the engine: streamed text, sampling, the prefix cache."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from npc_runtime.engine import SamplingParams
from npc_runtime.engine.prefix_cache import PrefixCache
from npc_runtime.engine.sampling import RowSampler, sample
from npc_runtime.engine.text import TextStream


class _NoBackend:
    """A tokenizer without a Rust backend: TextStream falls back to window decoding."""

    def __init__(self, tokenizer):
        self.decode = tokenizer.decode


@pytest.mark.parametrize("backend", [True, False])
def test_text_stream_never_emits_broken_characters(real_tokenizer, backend):
    text = "Hé 😀 wörld — naïve ☕ done"
    ids = real_tokenizer.encode(text, add_special_tokens=False)
    stream = TextStream(real_tokenizer if backend else _NoBackend(real_tokenizer))
    pieces = [stream.push(i) for i in ids] + [stream.flush()]
    assert "".join(pieces) == text
    assert not any("\ufffd" in p for p in pieces)


def test_stop_string_split_across_tokens_is_never_shown(real_tokenizer):
    text = "The smith said: hammer and tongs, then left."
    ids = real_tokenizer.encode(text, add_special_tokens=False)
    stream = TextStream(real_tokenizer, stop=("and tongs", "xyz"))
    shown = ""
    for i in ids:
        shown += stream.push(i)
        assert "and t" not in shown  # nothing that later turns out to be the stop string
        if stream.stopped:
            break
    assert stream.stopped and shown == "The smith said: hammer "
    assert stream.text == shown and stream.flush() == ""


def test_held_back_tail_is_released_when_it_does_not_stop(real_tokenizer):
    ids = real_tokenizer.encode("a b c ab", add_special_tokens=False)
    stream = TextStream(real_tokenizer, stop=("abx",))
    shown = "".join(stream.push(i) for i in ids)
    assert not stream.stopped and shown + stream.flush() == "a b c ab"


def _rows(*params: SamplingParams, vocab: int = 50) -> list[RowSampler]:
    return [RowSampler(p, [3, 4], vocab, torch.device("cpu")) for p in params]


def test_sampling_settings_per_row():
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    rows = _rows(
        SamplingParams(temperature=0.0, repetition_penalty=1.0),
        SamplingParams(temperature=1.0, top_k=1, seed=1),
        SamplingParams(temperature=1.0, top_p=1e-6, seed=2),
        SamplingParams(temperature=0.7, seed=3),
    )
    picks = sample(logits, rows)
    top = logits.argmax(dim=-1).tolist()
    assert picks[:3] == top[:3]
    again = sample(logits, _rows(*(r.params for r in rows)))
    assert again == picks  # same seeds, same draws


def test_repetition_penalty_is_transformers():
    from transformers.generation.logits_process import RepetitionPenaltyLogitsProcessor

    logits = torch.randn(1, 50)
    logits[0, 3], logits[0, 4] = 5.0, -5.0
    row = _rows(SamplingParams(temperature=0.0, repetition_penalty=1.3))[0]
    expected = RepetitionPenaltyLogitsProcessor(1.3)(torch.tensor([[3, 4]]), logits.clone())
    assert sample(logits, [row]) == [int(expected.argmax())]
    logits[0, 7] = 4.5  # below the raw 3 (5), above the penalised one (5 / 1.3)
    assert sample(logits, [row]) == [7]


def test_prefix_cache_shares_parents_and_evicts_lru_leaves():
    def reader(tokens):
        return lambda a, b: torch.arange(a, b, dtype=torch.float32)[:, None].repeat(1, 4)

    cache = PrefixCache(budget_bytes=16 * 40)  # 40 cached positions
    system = list(range(10))
    cache.insert("k", system, reader(system))
    one, two = system + [11, 12, 13, 14, 15], system + [21, 22, 23, 24, 25]
    cache.insert("k", one, reader(one))
    cache.insert("k", two, reader(two))
    assert cache.bytes == 16 * 20  # the system prompt once, then five positions each
    pieces = cache.lookup("k", system + [21, 22, 99], limit=100)
    assert [(s, kv.shape[0]) for s, kv in pieces] == [(0, 10), (10, 2)]
    assert cache.lookup("other", system, limit=100) == []
    assert cache.lookup("k", system, limit=4)[0][1].shape[0] == 4
    three = system + list(range(30, 55))
    cache.insert("k", three, reader(three))  # 25 more: evicts the least recently used leaf
    assert cache.bytes <= cache.budget
    assert [kv.shape[0] for _, kv in cache.lookup("k", two, limit=100)] == [10, 5]
    assert sum(kv.shape[0] for _, kv in cache.lookup("k", one, limit=100)) == 10
    cache.drop(lambda key: key == "k")
    assert cache.bytes == 0 and cache.lookup("k", system, limit=100) == []


def test_an_evicted_entry_frees_its_memory_at_once():
    """Without waiting for the cycle collector: an entry in a reference cycle kept its
    key/value tensor until a full collection, so memory grew far past the budget."""
    held: list[weakref.ref] = []

    def read(a, b):
        kv = torch.zeros(b - a, 4)
        held.append(weakref.ref(kv))
        return kv

    cache = PrefixCache(budget_bytes=16 * 40)
    gc.disable()
    try:
        for n in range(6):  # 20 positions each: two fit
            cache.insert("k", [100 + n] * 20, read)
        alive = [ref() is not None for ref in held]
        cache.drop(lambda key: True)
        dropped = [ref() is not None for ref in held]
    finally:
        gc.enable()
    assert alive == [False] * 4 + [True] * 2
    assert dropped == [False] * 6 and cache.bytes == 0


def test_min_tokens_holds_back_the_end_of_turn():
    logits = torch.zeros(2, 50)
    logits[:, 2] = 10.0  # the end-of-turn token is by far the most likely
    params = SamplingParams(temperature=0.0, repetition_penalty=1.0, min_tokens=1)
    rows = [RowSampler(params, [], 50, torch.device("cpu"), stop_ids=(2,)) for _ in range(2)]
    rows[1].observe(7)  # this row has its one token already
    assert sample(logits, rows) == [0, 2]
