"""The engine's own forward against transformers, and what the scheduler feeds it."""

from __future__ import annotations

import asyncio

import pytest
import torch

from npc_runtime import load_cast
from npc_runtime.engine import Engine, EngineConfig, FinalResult, GenerationRequest, SamplingParams
from npc_runtime.engine.llama import LlamaRunner
from npc_runtime.engine.runner import Segment
from npc_runtime.neeko.profile import profile_from_dict
from npc_runtime.neeko.prompt import Turn

NPCS = ["brann", "marla", "pip", "tess"]


@pytest.fixture(scope="module")
def cast(trained_cast_dir):
    cast = load_cast(trained_cast_dir)
    cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A loud cook."}))
    return cast


def blend(cast, npc):
    return tuple(sorted(cast.npc(npc).blend.items()))


def reference(cast, npc, ids):
    with torch.no_grad(), cast.speaking(npc):
        return cast.model(torch.tensor([ids])).logits[0]


def prompts(cast, n):
    text = "Well met, traveller. The road from the north is long and the inn is warm tonight."
    ids = cast.tokenizer.encode(text)
    return [ids[: len(ids) - 3 * i] for i in range(n)]


def test_forward_equals_transformers_at_every_step(cast):
    """Rows of different NPCs (one fused) and lengths, decoded together while a new prompt
    is read in the same forward: every row's logits are its transformers logits."""
    runner = LlamaRunner(cast, slots=6, context=128)
    runner.invalidate()
    ids = prompts(cast, 5)
    refs = [reference(cast, npc, p) for npc, p in zip(NPCS, ids)]
    with torch.no_grad():
        head = [
            Segment(i, 0, tuple(p[:-4]), blend(cast, n), True)
            for i, (n, p) in enumerate(zip(NPCS, ids))
        ]
        out = runner.forward([], head)
        for i, p in enumerate(ids[:4]):
            torch.testing.assert_close(out[i], refs[i][len(p) - 5], atol=1e-4, rtol=0)
        late = ids[4]
        late_ref = reference(cast, "marla", late)
        for step in range(4):
            decode = [
                Segment(i, len(p) - 4 + step, (p[len(p) - 4 + step],), blend(cast, n), True)
                for i, (n, p) in enumerate(zip(NPCS, ids))
            ]
            prefill = []
            if step < 2:  # the late prompt, in two chunks, alongside the decode rows
                half = len(late) // 2
                part = late[:half] if step == 0 else late[half:]
                prefill = [
                    Segment(
                        5, 0 if step == 0 else half, tuple(part), blend(cast, "marla"), step == 1
                    )
                ]
            out = runner.forward(decode, prefill)
            for i, p in enumerate(ids[:4]):
                torch.testing.assert_close(out[i], refs[i][len(p) - 4 + step], atol=1e-4, rtol=0)
            if step == 1:
                torch.testing.assert_close(out[4], late_ref[-1], atol=1e-4, rtol=0)


def test_slot_moves_keep_the_cache(cast):
    runner = LlamaRunner(cast, slots=3, context=64)
    runner.invalidate()
    ids = prompts(cast, 1)[0]
    ref = reference(cast, "pip", ids)
    with torch.no_grad():
        runner.forward([], [Segment(2, 0, tuple(ids[:-1]), blend(cast, "pip"), False)])
        runner.move(2, 0, len(ids) - 1)
        kv = runner.read_kv(0, 0, len(ids) - 1)
        runner.write_kv(1, 0, kv)
        runner.swap(0, 1, len(ids) - 1, len(ids) - 1)
        out = runner.forward([Segment(0, len(ids) - 1, (ids[-1],), blend(cast, "pip"), True)], [])
    torch.testing.assert_close(out[0], ref[-1], atol=1e-4, rtol=0)


def test_cache_on_and_off_give_the_same_text(cast):
    greedy = SamplingParams(max_tokens=8, temperature=0.0)

    async def conversation(config):
        results = []
        async with Engine(cast, config) as engine:
            history: list[Turn] = []
            for i in range(3):
                history.append(Turn("Player", f"Question number {i}: any news?"))
                req = GenerationRequest(f"t{i}", "marla", tuple(history), greedy)
                items = [x async for x in engine.submit(req)]
                results.append(items[-1])
                history.append(Turn("Marla", items[-1].text, "marla"))
            other = GenerationRequest("o", "marla", (Turn("Pip", "Hi!"),), greedy)
            results.append([x async for x in engine.submit(other)][-1])
            return results, engine.stats()

    warm, stats = asyncio.run(conversation(EngineConfig()))
    cold, cold_stats = asyncio.run(conversation(EngineConfig(cache_budget_bytes=0)))
    assert all(isinstance(r, FinalResult) for r in warm)
    assert [r.text for r in warm] == [r.text for r in cold]
    assert all(r.cached_prompt_tokens == 0 for r in cold)
    # later turns read only their new tokens; another conversation shares the profile
    assert warm[0].cached_prompt_tokens == 0
    for prev, r in zip(warm, warm[1:3]):
        # the reply's first token may merge with the template's newline when re-encoded
        assert r.cached_prompt_tokens >= prev.prompt_tokens - 1
    assert warm[3].cached_prompt_tokens > 20
    assert stats.cache_hits == 3 and stats.cache_bytes > 0 and cold_stats.cache_budget_bytes == 0


def test_a_long_prompt_is_read_in_chunks_beside_running_streams(cast):
    from npc_runtime.engine.scheduler import Scheduler, Sequence

    config = EngineConfig(max_active=4, step_tokens=16, cache_budget_bytes=0)
    runner = LlamaRunner(cast, slots=4, context=512)
    runner.invalidate()
    steps = []
    forward = runner.forward

    def recording(decode, prefill):
        steps.append((len(decode), [len(s.tokens) for s in prefill]))
        return forward(decode, prefill)

    runner.forward = recording
    vocab = cast.model.get_output_embeddings().weight.shape[0]
    sched = Scheduler(runner, cast.tokenizer, config, [], vocab, torch.device("cpu"))

    def seq(rid, prompt, max_tokens):
        req = GenerationRequest(rid, "brann", (), SamplingParams(max_tokens, temperature=0.0))
        return Sequence(req, prompt, 0, blend(cast, "brann"), None, 0.0)

    short = prompts(cast, 1)[0]
    sched.add(seq("a", short, 100))
    sched.step()  # an idle engine reads a whole prompt at once
    assert steps == [(0, [len(short)])]
    sched.add(seq("b", short * 8, 5))
    with torch.no_grad():
        while len(sched.decoding) < 2:
            sched.step()
    chunks = steps[1:]
    assert len(chunks) >= len(short) * 8 // 15
    assert all(d == 1 and d + sum(p) <= 16 for d, p in chunks)


def test_bfloat16_forward_follows_transformers(trained_cast_dir):
    """The GPU configuration's numerics (bfloat16 weights and cache), checked on the CPU."""
    cast = load_cast(trained_cast_dir, dtype="bfloat16")
    runner = LlamaRunner(cast, slots=2, context=64)
    runner.invalidate()
    ids = prompts(cast, 1)[0]
    ref = reference(cast, "marla", ids).float()
    with torch.no_grad():
        head = runner.forward([], [Segment(0, 0, tuple(ids[:-1]), blend(cast, "marla"), True)])
        tail = runner.forward(
            [Segment(0, len(ids) - 1, (ids[-1],), blend(cast, "marla"), True)], []
        )
    scale = ref.abs().max().item()
    assert (head[0] - ref[-2]).abs().max().item() < 0.05 * scale
    assert (tail[0] - ref[-1]).abs().max().item() < 0.05 * scale


def test_garbage_in_unused_cache_memory_never_reaches_the_logits(cast):
    """The cache is allocated, not zeroed: a batch that reads past a short row's end
    (under the mask) must not see whatever the memory held, NaN included."""
    runner = LlamaRunner(cast, slots=2, context=64)
    runner.invalidate()
    runner.kv.fill_(float("nan"))
    long, short = prompts(cast, 2)
    with torch.no_grad():
        runner.forward([], [Segment(0, 0, tuple(long[:-1]), blend(cast, "brann"), False)])
        runner.forward([], [Segment(1, 0, tuple(short[:-1]), blend(cast, "pip"), False)])
        out = runner.forward(
            [
                Segment(0, len(long) - 1, (long[-1],), blend(cast, "brann"), True),
                Segment(1, len(short) - 1, (short[-1],), blend(cast, "pip"), True),
            ],
            [],
        )
    torch.testing.assert_close(out[0], reference(cast, "brann", long)[-1], atol=1e-4, rtol=0)
    torch.testing.assert_close(out[1], reference(cast, "pip", short)[-1], atol=1e-4, rtol=0)
