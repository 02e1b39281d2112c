"""How many CPU threads a decode step computes with.

A light step (one NPC's next token on a small model) gains nothing from a second thread:
its matmuls are too small to split well, and on a machine with few cores each parallel
region must wait for a worker that the daemon's own threads (the event loop, gRPC's
poller) keep preempting. Measured on a 2-core EPYC through the engine's own thread: a tiny
2-layer model decoded one NPC at 416-450 tokens/s on one thread against 252-261 on two;
the 135M model at int8 ran 1-4 rows up to 1.1x faster on one thread and 8 rows 1.4x faster
on two. So steps whose matmul work is under `light_step_flops` run on one thread, heavier
ones (batches, prompt chunks, bigger models) on all of torch's threads.
"""

from __future__ import annotations

import torch
from torch import nn

from ..quant import Int4Linear, Int8Linear


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
            torch.set_num_threads(n)
            self._current = n
