"""Where work computes around a running engine (engine/threads.py): heavy work outside the
decode thread runs in a thread that ends with it, and the thread hosting an engine's event
loop computes on one thread, so the decode thread's OpenMP pool is the only one."""

from __future__ import annotations

import asyncio
import threading

import pytest
import torch

from npc_runtime import load_cast
from npc_runtime.engine import engine as engine_module
from npc_runtime.engine.threads import in_passing_thread, passing_future
from npc_runtime.neeko.prompt import Turn
from npc_runtime.speak import GREEDY, LocalEngine

many = pytest.mark.skipif(torch.get_num_threads() < 2, reason="one thread: nothing to tell")


def where() -> tuple[threading.Thread, int]:
    return threading.current_thread(), torch.get_num_threads()


@many
def test_a_passing_thread_computes_with_the_callers_threads_and_ends():
    before = torch.get_num_threads()
    torch.set_num_threads(before - 1 or 1)
    try:
        thread, threads = in_passing_thread(where)
        assert thread is not threading.current_thread() and not thread.is_alive()
        assert threads == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ZeroDivisionError):
        in_passing_thread(lambda: 1 / 0)


def test_a_passing_future_settles_with_the_result_or_the_error():
    async def body():
        thread, threads = await passing_future(where, 1)
        assert thread is not threading.current_thread() and threads == 1
        with pytest.raises(KeyError):
            await passing_future(lambda: {}["missing"], 1)

    asyncio.run(body())


@many
def test_an_engine_packs_its_weights_elsewhere_and_its_host_leaves_it_the_cores(
    trained_cast_dir, monkeypatch
):
    cast = load_cast(trained_cast_dir)
    built_in: list[threading.Thread] = []
    make_runner = engine_module.make_runner

    def recording(*args):
        built_in.append(threading.current_thread())
        return make_runner(*args)

    monkeypatch.setattr(engine_module, "make_runner", recording)
    most = torch.get_num_threads()
    with LocalEngine(cast) as local:
        assert torch.get_num_threads() == 1  # the event loop's thread, while it serves
        assert local.engine.cores == most
        threads_in_step = []
        forward = local.engine.runner.forward

        def step(decode, prefill):
            threads_in_step.append(torch.get_num_threads())
            return forward(decode, prefill)

        local.engine.runner.forward = step
        local.generate("brann", (Turn("Player", "Hello there."),), GREEDY)
    assert built_in and built_in[0] is not threading.current_thread()
    assert threads_in_step and set(threads_in_step) == {most}
    assert torch.get_num_threads() == most  # given back when the engine closes
