"""The LoRA blocks a decode step needs, packed for the engine's own forward.

A step's rows may speak as different NPCs; the blocks any of them uses (the union) are
packed into one A and one B per projection group (q, k and v together, as in the fused qkv
weight), so the LoRA of a whole step costs one matmul pair per group however many NPCs
share it, and blocks no row uses are never touched. Each row's gate weights scale its own
rank columns (zero for the blocks of other rows). Packs are cached per union, within a
byte budget.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn

from ..neeko.layer import DynamicLoraLinear
from ..quant import stored_weight

# A decoder layer's projection groups, each one matmul in the forward: per group, its
# member modules with the order the forward gives their output rows (None: as they are).
Groups = dict[str, list[tuple[nn.Module, torch.Tensor | None]]]


@dataclass(frozen=True)
class Pack:
    a: torch.Tensor  # (members * blocks * rank, in)
    b: torch.Tensor  # (out, members * blocks * rank), block diagonal over members
    members: int


class LoraPacks:
    def __init__(
        self,
        layers: list[Groups],
        rank: int,
        dtype: torch.dtype,
        budget_bytes: int = 256 * 2**20,
    ):
        """layers: each decoder layer's groups, in the forward's row order (q and k rows
        permuted for rotary embedding on complex pairs). dtype: what the LoRA is computed
        in (float32 for a bfloat16 model on a CPU, whose kernels for such thin bfloat16
        matmuls are slow)."""
        self.rank = rank
        self.dtype = dtype
        self.budget = budget_bytes
        self.modules = layers
        self.groups = [
            g
            for g, mods in self.modules[0].items()
            if any(isinstance(m, DynamicLoraLinear) for m, _ in mods)
        ]
        self._cache: OrderedDict[tuple[int, ...], list[dict[str, Pack]]] = OrderedDict()
        self._bytes = 0

    def members(self, group: str) -> int:
        return sum(isinstance(m, DynamicLoraLinear) for m, _ in self.modules[0][group])

    def clear(self) -> None:
        self._cache.clear()
        self._bytes = 0

    def get(self, blocks: tuple[int, ...]) -> list[dict[str, Pack]]:
        packs = self._cache.get(blocks)
        if packs is not None:
            self._cache.move_to_end(blocks)
            return packs
        packs = [{g: self._pack(layer[g], blocks) for g in self.groups} for layer in self.modules]
        size = _nbytes(packs)
        while self._cache and self._bytes + size > self.budget:
            _, old = self._cache.popitem(last=False)
            self._bytes -= _nbytes(old)
        self._cache[blocks] = packs
        self._bytes += size
        return packs

    def _pack(self, modules, blocks: tuple[int, ...]) -> Pack:
        a_parts, b_parts = [], []
        width = len(blocks) * self.rank
        targeted = sum(isinstance(m, DynamicLoraLinear) for m, _ in modules)
        col = 0
        for module, order in modules:
            if not isinstance(module, DynamicLoraLinear):
                device = stored_weight(module).device
                zeros = torch.zeros(module.out_features, targeted * width, device=device)
                b_parts.append(zeros.to(self.dtype))
                continue
            a_parts += [module.lora_A[i] for i in blocks]
            b = torch.cat([module.lora_B[i] for i in blocks], dim=1)
            if order is not None:
                b = b[order]
            full = b.new_zeros(b.shape[0], targeted * width)
            full[:, col : col + width] = b
            b_parts.append(full)
            col += width
        a, b = torch.cat(a_parts), torch.cat(b_parts)
        return Pack(a.to(self.dtype).contiguous(), b.to(self.dtype).contiguous(), targeted)


def _nbytes(packs: list[dict[str, Pack]]) -> int:
    return sum(p.a.nbytes + p.b.nbytes for layer in packs for p in layer.values())
