"""How many CPU threads a decode step computes with, and where heavy work outside it runs.

A step computes on all of torch's threads unless its matmul work is under
`EngineConfig.light_step_flops` (default 0: never), then on one. Light steps once ran on
one thread by default, from measurements that were in fact of the OpenMP pools below: with
them fixed, on a 2-core Xeon (AMX), the 135M model at int8 decodes one NPC in 21.6 ms a
step on two threads against 31.4 on one, and a tiny 2-layer model streams one NPC through
the daemon as fast on two threads as on one (700-747 tokens/s either way).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

from ..quant import Int4Linear, Int8Linear

T = TypeVar("T")


def set_threads(n: int) -> None:
    """torch.set_num_threads(n) for the calling thread, and so it stays: torch gives a
    thread the count last set in any thread on the thread's first use of it, which would
    undo a count set before that use."""
    torch.get_num_threads()
    torch.set_num_threads(n)


def matmul_flops_per_token(model: nn.Module) -> int:
    """Multiply-adds (x2) of every linear layer for one token: the step's work per token."""
    linear = (nn.Linear, Int8Linear, Int4Linear)
    return 2 * sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, linear))


class StepThreads:
    """Sets torch's thread count for each step (in the thread that runs the steps: the
    count is per thread). `most` is what heavy steps and everything between steps get."""

    def __init__(self, most: int, flops_per_token: int, light_step_flops: float):
        self.most = max(1, most)
        self.flops_per_token = flops_per_token
        self.light_step_flops = light_step_flops
        self._current = 0

    def fit(self, tokens: int) -> None:
        light = tokens * self.flops_per_token < self.light_step_flops
        self._set(1 if light else self.most)

    def all(self) -> None:
        """All threads, set even if this object thinks they are: a new decode thread
        starts from OpenMP's default."""
        self._current = 0
        self._set(self.most)

    def _set(self, n: int) -> None:
        if n != self._current:
            set_threads(n)
            self._current = n


# -- heavy work outside the decode thread ------------------------------------------------
# libgomp keeps a pool of worker threads for every thread that has run a parallel region,
# for as long as that thread lives. While the pooled threads outnumber the cores, it stops
# spinning between parallel regions, and every region of the decode thread then waits for
# a futex wake: measured on 2 cores, a 1-row int8 matmul took 147-153 us in a thread
# started after the main thread had computed in parallel, 51-63 us otherwise, and a
# 135M-model decode step 36 ms against 19. So work that computes on all cores outside the
# decode thread (loading a model, training a block) runs in a thread that ends with it
# (its pool goes with it), and long-lived threads beside a running engine compute on one.


def leave_cores_to_engine() -> Callable[[], None]:
    """The calling thread (an event loop beside a running engine) computes on one thread
    from now on; the function returned gives it back its count."""
    before = torch.get_num_threads()
    set_threads(1)
    return lambda: set_threads(before)


def in_passing_thread(fn: Callable[[], T]) -> T:
    """fn(), computed in a new thread with the caller's thread count; the thread (and its
    OpenMP pool) ends with it. Exceptions reach the caller."""
    threads = torch.get_num_threads()
    out: dict[str, object] = {}

    def run() -> None:
        set_threads(threads)
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread
            out["error"] = exc

    worker = threading.Thread(target=run, name="npc-runtime-compute")
    worker.start()
    worker.join()
    if "error" in out:
        raise out["error"]
    return out["result"]  # type: ignore[return-value]


def passing_future(fn: Callable[[], T], threads: int) -> asyncio.Future[T]:
    """fn() in a new thread of `threads` torch threads that ends with it, as a future of
    the running loop (cancelling the future does not stop fn)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result, error) -> None:
        if future.cancelled():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def run() -> None:
        set_threads(threads)
        try:
            result, error = fn(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the future
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="npc-runtime-compute", daemon=True).start()
    return future
