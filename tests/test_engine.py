"""The engine end to end on the tiny model: batching, cancel, errors, seeds, stop strings."""

from __future__ import annotations

import asyncio

import pytest
import torch

from npc_runtime import load_cast
from npc_runtime.engine import (
    Engine,
    EngineConfig,
    EngineError,
    FinalResult,
    GenerationRequest,
    SamplingParams,
    TokenDelta,
)
from npc_runtime.engine.threads import matmul_flops_per_token
from npc_runtime.neeko.profile import profile_from_dict
from npc_runtime.neeko.prompt import Turn

BACKENDS = ["llama", "transformers"]
SCENE = (Turn("Player", "Good evening! What news from the road?"),)
GREEDY = SamplingParams(max_tokens=12, temperature=0.0)


@pytest.fixture(scope="module")
def cast(trained_cast_dir):
    cast = load_cast(trained_cast_dir)
    cast.fuse(profile_from_dict({"id": "tess", "name": "Tess", "profile": "A loud cook."}))
    return cast


def request(rid: str, npc: str = "brann", sampling: SamplingParams = GREEDY, turns=SCENE):
    return GenerationRequest(rid, npc, turns, sampling)


async def collect(engine: Engine, req: GenerationRequest) -> list:
    return [item async for item in engine.submit(req)]


def run(cast, config: EngineConfig, body):
    async def main():
        async with Engine(cast, config) as engine:
            return await body(engine)

    return asyncio.run(main())


def final(items: list) -> FinalResult:
    assert isinstance(items[-1], FinalResult)
    assert all(isinstance(i, TokenDelta) for i in items[:-1])
    assert "".join(i.text for i in items[:-1]) == items[-1].text
    return items[-1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_row_of_a_batch_matches_the_request_alone(cast, backend):
    """Rows finish at different steps, so the batch also compacts its slots midway."""
    npcs = {"brann": 12, "marla": 5, "pip": 9, "tess": 12}
    config = EngineConfig(backend=backend, cache_budget_bytes=0)

    def req(rid, npc):
        return request(rid, npc, SamplingParams(max_tokens=npcs[npc], temperature=0.0))

    async def body(engine):
        alone = [final(await collect(engine, req(f"a{n}", n))) for n in npcs]
        together = await asyncio.gather(*(collect(engine, req(f"b{n}", n)) for n in npcs))
        return alone, [final(t) for t in together]

    alone, together = run(cast, config, body)
    for a, b, n in zip(alone, together, npcs.values()):
        assert a.text == b.text and a.completion_tokens == b.completion_tokens == n
        assert a.finish_reason == "length" and a.time_to_first_token_s > 0
    assert len({a.text for a in alone}) > 1  # the NPCs really differ


@pytest.mark.parametrize("backend", BACKENDS)
def test_cancel_stops_and_frees_the_slot(cast, backend):
    config = EngineConfig(backend=backend, max_active=1, max_queued=0, step_tokens=8)
    long = SamplingParams(max_tokens=200, temperature=0.0)

    async def body(engine):
        stream = engine.submit(request("long", sampling=long))
        first = await anext(stream)
        assert isinstance(first, TokenDelta)
        with pytest.raises(EngineError) as full:
            engine.submit(request("other"))
        assert full.value.code == "RESOURCE_EXHAUSTED"
        assert engine.cancel("long") and not engine.cancel("long")
        nxt = engine.submit(request("other"))  # capacity is free at once
        rest = [item async for item in stream]
        return rest[-1], final([i async for i in nxt]), engine.stats()

    cancelled, other, stats = run(cast, config, body)
    assert cancelled.finish_reason == "cancelled" and cancelled.completion_tokens < 200
    assert other.finish_reason == "length"
    assert stats.active == 0 and stats.queued == 0


def test_leaving_the_stream_cancels(cast):
    async def body(engine):
        stream = engine.submit(request("gone", sampling=SamplingParams(max_tokens=200)))
        async for _ in stream:
            break
        await stream.aclose()
        for _ in range(100):
            if engine.stats().active == 0:
                break
            await asyncio.sleep(0.01)
        return engine.stats(), engine.cancel("gone")

    stats, still_there = run(cast, EngineConfig(), body)
    assert stats.active == 0 and not still_there


def test_request_errors(cast):
    async def body(engine):
        codes = []
        bad = [
            request("a", npc="nobody"),
            request("b", sampling=SamplingParams(temperature=-1)),
            request("c", sampling=SamplingParams(max_tokens=5000)),
        ]
        for req in bad:
            with pytest.raises(EngineError) as err:
                engine.submit(req)
            codes.append(err.value.code)
        stream = engine.submit(request("dup"))
        with pytest.raises(EngineError) as err:
            engine.submit(request("dup"))
        codes.append(err.value.code)
        await stream.aclose()
        return codes

    assert run(cast, EngineConfig(), body) == [
        "NOT_FOUND",
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "ALREADY_EXISTS",
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_seeds_reproduce_whatever_shares_the_batch(cast, backend):
    sampled = SamplingParams(max_tokens=12, temperature=1.0, top_p=0.9, top_k=50, seed=7)

    async def body(engine):
        alone = final(await collect(engine, request("s1", "pip", sampled)))
        again, *_ = await asyncio.gather(
            collect(engine, request("s2", "pip", sampled)),
            collect(engine, request("o1", "brann", SamplingParams(max_tokens=12, seed=1))),
            collect(engine, request("o2", "tess", GREEDY)),
        )
        other_seed = SamplingParams(max_tokens=12, temperature=1.0, seed=8)
        different = final(await collect(engine, request("s3", "pip", other_seed)))
        return alone, final(again), different

    alone, again, different = run(cast, EngineConfig(backend=backend), body)
    assert alone.text == again.text
    assert different.text != alone.text


def test_stop_strings_are_cut_even_across_tokens(cast):
    async def body(engine):
        plain = final(await collect(engine, request("p", "marla")))
        text = plain.text
        # a stop string that starts inside one token and ends inside a later one
        stop = text[len(text) // 2 - 2 : len(text) // 2 + 3]
        stopped = SamplingParams(max_tokens=12, temperature=0.0, stop=(stop, "never-seen"))
        cut = final(await collect(engine, request("s", "marla", stopped)))
        return text, stop, cut

    text, stop, cut = run(cast, EngineConfig(), body)
    assert cut.finish_reason == "stop"
    assert cut.text == text[: text.index(stop)]


def test_run_exclusive_changes_the_cast_under_a_running_engine(trained_cast_dir):
    cast = load_cast(trained_cast_dir)
    bard = profile_from_dict({"id": "lyra", "name": "Lyra", "profile": "A wandering bard."})

    async def body(engine):
        before = final(await collect(engine, request("m1", "marla")))
        npc = await engine.run_exclusive(lambda: cast.fuse(bard))
        sung = final(await collect(engine, request("l1", "lyra")))
        with pytest.raises(RuntimeError):
            await engine.run_exclusive(lambda: cast.remove_npc("brann"))  # lyra uses it
        await engine.run_exclusive(lambda: cast.remove_npc("lyra"))
        await engine.run_exclusive(lambda: cast.remove_npc("brann"))
        after = final(await collect(engine, request("m2", "marla")))
        return npc, sung, before, after

    npc, sung, before, after = run(cast, EngineConfig(), body)
    assert npc.kind == "fused" and sung.finish_reason == "length"
    assert before.text == after.text  # removing a block renumbers the others: same voice


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one thread: nothing to choose")
def test_light_steps_compute_on_one_thread_and_heavy_ones_on_all(cast):
    """A prompt's step is heavy and each next token light under this threshold; what runs
    between steps (run_exclusive) gets every thread back."""
    per_token = matmul_flops_per_token(cast.model)
    config = EngineConfig(light_step_flops=per_token * 2, cache_budget_bytes=0)
    seen: list[tuple[int, int]] = []

    async def body(engine):
        forward = engine.runner.forward

        def recording(decode, prefill):
            tokens = sum(len(s.tokens) for s in decode + prefill)
            seen.append((tokens, torch.get_num_threads()))
            return forward(decode, prefill)

        engine.runner.forward = recording
        final(await collect(engine, request("t", sampling=SamplingParams(max_tokens=6))))
        return await engine.run_exclusive(torch.get_num_threads)

    most = torch.get_num_threads()
    between = run(cast, config, body)
    assert seen[0][0] > 2 and seen[0][1] == most
    assert len(seen) > 2 and all(threads == 1 for tokens, threads in seen[1:] if tokens == 1)
    assert between == most


def test_a_reply_streams_its_first_token_at_once_and_the_rest_each_interval(cast):
    """The first token comes alone, also when the last handover was just now (the second
    reply); later ones are handed over at most once per stream_interval_s (and with the
    end), merged into one delta that keeps their ids."""
    sampling = SamplingParams(max_tokens=12, min_tokens=12, temperature=0.0)

    async def body(engine):
        replies = []
        for rid in ("first", "second"):
            started = asyncio.get_running_loop().time()
            items = await collect(engine, request(rid, sampling=sampling))
            replies.append((items, asyncio.get_running_loop().time() - started))
        return replies

    replies = run(cast, EngineConfig(stream_interval_s=1.0), body)
    for items, elapsed in replies:
        result, deltas = final(items), items[:-1]
        assert len(deltas[0].token_ids) == 1
        assert sum(len(d.token_ids) for d in deltas) == result.completion_tokens == 12
        assert len(deltas) <= 2 + int(elapsed)  # the first, the end, one a second at most
    every_step = run(cast, EngineConfig(stream_interval_s=0.0), body)
    assert [final(items).text for items, _ in every_step] == [
        final(items).text for items, _ in replies
    ]
