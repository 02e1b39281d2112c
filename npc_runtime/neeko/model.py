"""Putting dynamic LoRA layers into a causal LM and addressing blocks across them.

A block is one character's slice of rank in every target module. This class keeps the
bookkeeping (which index is which block, which tensors belong to it) out of the layer
math, the way peft keeps its model and layer classes apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..quant import Int4Linear, Int8Linear
from .config import LoraConfig
from .layer import DynamicLoraLinear, Router, Routing


class NeekoModel:
    def __init__(self, model: nn.Module, config: LoraConfig):
        self.model = model
        self.config = config
        self.router = Router()
        self.layers: dict[str, DynamicLoraLinear] = {}
        self.block_ids: list[str] = []
        self._inject()

    def _inject(self) -> None:
        targets = set(self.config.target_modules)
        found: list[tuple[nn.Module, str, str, nn.Module]] = []
        for name, module in self.model.named_modules():
            for child_name, child in module.named_children():
                if child_name in targets and isinstance(child, (nn.Linear, Int8Linear, Int4Linear)):
                    full = f"{name}.{child_name}" if name else child_name
                    found.append((module, child_name, full, child))
        if not found:
            raise ValueError(
                f"none of the target modules {sorted(targets)} is a linear layer of this model"
            )
        for parent, child_name, full, child in found:
            layer = DynamicLoraLinear(child, self.config.rank, self.config.dropout, self.router)
            setattr(parent, child_name, layer)
            self.layers[full] = layer

    # -- blocks ---------------------------------------------------------------
    def block_index(self, block_id: str) -> int:
        try:
            return self.block_ids.index(block_id)
        except ValueError:
            raise KeyError(f"no block {block_id!r}") from None

    def add_block(self, block_id: str) -> int:
        if block_id in self.block_ids:
            raise ValueError(f"block {block_id!r} exists already")
        for layer in self.layers.values():
            layer.add_block()
        self.block_ids.append(block_id)
        return len(self.block_ids) - 1

    def remove_block(self, block_id: str) -> None:
        index = self.block_index(block_id)
        for layer in self.layers.values():
            layer.remove_block(index)
        del self.block_ids[index]

    def block_parameters(self, block_id: str) -> list[nn.Parameter]:
        i = self.block_index(block_id)
        return [p for layer in self.layers.values() for p in (layer.lora_A[i], layer.lora_B[i])]

    def set_trainable(self, block_ids: Sequence[str]) -> None:
        """Freeze every block but these (the base model is always frozen)."""
        wanted = {self.block_index(b) for b in block_ids}
        for layer in self.layers.values():
            for i in range(layer.num_blocks):
                layer.lora_A[i].requires_grad_(i in wanted)
                layer.lora_B[i].requires_grad_(i in wanted)

    def block_state(self, block_id: str) -> dict[str, torch.Tensor]:
        i = self.block_index(block_id)
        state = {}
        for name, layer in self.layers.items():
            state[f"{name}.lora_A"] = layer.lora_A[i].detach()
            state[f"{name}.lora_B"] = layer.lora_B[i].detach()
        return state

    def load_block_state(self, block_id: str, state: Mapping[str, torch.Tensor]) -> None:
        i = self.block_index(block_id)
        expected = {f"{n}.lora_{ab}" for n in self.layers for ab in "AB"}
        missing, extra = expected - set(state), set(state) - expected
        if missing or extra:
            raise ValueError(
                f"tensors do not fit this model: missing {sorted(missing)[:3]}, "
                f"unexpected {sorted(extra)[:3]}"
            )
        with torch.no_grad():
            for name, layer in self.layers.items():
                for ab, params in (("A", layer.lora_A), ("B", layer.lora_B)):
                    tensor = state[f"{name}.lora_{ab}"]
                    if tensor.shape != params[i].shape:
                        raise ValueError(
                            f"{name}.lora_{ab} has shape {tuple(tensor.shape)}, "
                            f"expected {tuple(params[i].shape)}"
                        )
                    params[i].copy_(tensor)
                layer.invalidate()

    def invalidate(self) -> None:
        for layer in self.layers.values():
            layer.invalidate()

    # -- routing --------------------------------------------------------------
    def routing(self, blends: Sequence[Mapping[str, float]]) -> Routing:
        """Per-row routing from blends (block id -> weight), one blend per row.

        A single blend applies to every row of the batch.
        """
        active = sorted({self.block_index(b) for blend in blends for b, w in blend.items() if w})
        weight = next(iter(self.layers.values())).lora_A
        dtype = weight[0].dtype if len(weight) else torch.float32
        device = next(self.model.parameters()).device
        table = torch.zeros(len(blends), len(active), dtype=torch.float64)
        column = {block: j for j, block in enumerate(active)}
        for row, blend in enumerate(blends):
            for block_id, w in blend.items():
                if w:
                    table[row, column[self.block_index(block_id)]] = float(w)
        scale = (table * self.config.scaling).repeat_interleave(self.config.rank, dim=1)
        return Routing(tuple(active), scale[:, None, :].to(device=device, dtype=dtype))

    def owned_routing(
        self,
        owners: Sequence[str],
        lengths: Sequence[int],
        width: int,
        house: str | None = None,
    ) -> Routing:
        """Training routing for a padded batch: row r (`lengths[r]` real tokens of
        `width`) goes through block `owners[r]` alone (and the frozen `house` block, if
        given). Blocks are listed in cast order and their tokens in row order, so a
        block's tensors do not depend on what else the batch holds."""
        device = next(self.model.parameters()).device
        rows: dict[int, list[torch.Tensor]] = {}
        for row, (block_id, length) in enumerate(zip(owners, lengths)):
            start = row * width
            rows.setdefault(self.block_index(block_id), []).append(
                torch.arange(start, start + int(length))
            )
        blocks = tuple(sorted(rows))
        owned = [torch.cat(rows[b]) for b in blocks]
        tokens = torch.cat(owned).to(device)
        sizes = tuple(len(t) for t in owned)
        shared = None if house is None else self.block_index(house)
        return Routing(blocks, self.config.scaling, tokens, sizes, shared)

    @contextmanager
    def routed(self, routing: Routing | None) -> Iterator[None]:
        previous = self.router.current
        self.router.current = routing
        try:
            yield
        finally:
            self.router.current = previous
