"""What the scheduler asks of a model runner, and the runner for any architecture.

The scheduler keeps the sequences that are decoding in slots 0..B-1, in order, so a
runner can read their key/value caches as one contiguous batch; sequences still reading
their prompt sit in higher slots until they join.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol

import torch

from ..neeko.cast import Cast

Blend = tuple[tuple[str, float], ...]  # (block id, gate weight), sorted by block id


@dataclass(frozen=True)
class Segment:
    """Tokens of one sequence for one forward: they sit at positions start, start+1, ..."""

    slot: int
    start: int
    tokens: tuple[int, ...]
    blend: Blend
    logits: bool  # whether the scheduler needs the logits of the last token


class Runner(Protocol):
    supports_prefix_cache: bool

    def forward(self, decode: list[Segment], prefill: list[Segment]) -> torch.Tensor:
        """Logits (float32) of the last token of every decode segment, in order, then of
        every prefill segment that asks for them."""

    def move(self, src: int, dst: int, length: int) -> None:
        """Move the first `length` cached positions of slot src to slot dst."""

    def swap(self, a: int, b: int, length_a: int, length_b: int) -> None: ...

    def read_kv(self, slot: int, start: int, end: int) -> torch.Tensor: ...

    def write_kv(self, slot: int, start: int, kv: torch.Tensor) -> None: ...

    def release(self, slot: int) -> None: ...

    def invalidate(self) -> None:
        """Block weights or indices may have changed: forget anything derived from them."""


class TransformersRunner:
    """Any causal LM through its own transformers forward, one sequence at a time.

    For architectures the engine has no forward of its own for: correct, not fast (one
    forward per sequence per step, no prefix cache).
    """

    supports_prefix_cache = False

    def __init__(self, cast: Cast):
        self.cast = cast
        self.caches: dict[int, object] = {}
        # transformers 5.x calls the KV cache `cache` (`past_key_values` is deprecated)
        forward = inspect.signature(cast.model.forward).parameters
        self._cache = "cache" if "cache" in forward else "past_key_values"

    def forward(self, decode: list[Segment], prefill: list[Segment]) -> torch.Tensor:
        neeko = self.cast.neeko
        device = next(self.cast.model.parameters()).device
        out = []
        for seg in decode + prefill:
            ids = torch.tensor([seg.tokens], device=device)
            with neeko.routed(neeko.routing([dict(seg.blend)])):
                result = self.cast.model(
                    input_ids=ids,
                    **{self._cache: self.caches.get(seg.slot)},
                    use_cache=True,
                    logits_to_keep=1,
                )
            self.caches[seg.slot] = getattr(result, self._cache)
            if seg.logits:
                out.append(result.logits[0, -1].float())
        return torch.stack(out) if out else torch.empty(0)

    def move(self, src: int, dst: int, length: int) -> None:
        self.caches[dst] = self.caches.pop(src)

    def swap(self, a: int, b: int, length_a: int, length_b: int) -> None:
        self.caches[a], self.caches[b] = self.caches.get(b), self.caches.get(a)

    def read_kv(self, slot: int, start: int, end: int) -> torch.Tensor:
        raise NotImplementedError("the transformers runner keeps no prefix cache")

    def write_kv(self, slot: int, start: int, kv: torch.Tensor) -> None:
        raise NotImplementedError("the transformers runner keeps no prefix cache")

    def release(self, slot: int) -> None:
        self.caches.pop(slot, None)

    def invalidate(self) -> None:
        """Nothing derived: routing is built from block ids at every forward."""
