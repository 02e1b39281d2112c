"""The dynamic LoRA layer: one base linear plus per-character rank blocks.

h = W0 x + (alpha / r) * sum_k g_k B_k A_k x, with g a gate vector per row. Only the
blocks active in the current routing are computed (sparse gating): a batch whose rows
speak as different NPCs costs one extra matmul pair over the union of their blocks,
never a pass over every block of the cast.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..quant import stored_weight

_PACK_CACHE_SIZE = 64


@dataclass(frozen=True)
class Routing:
    """Which blocks a forward pass uses and how much each row weighs them.

    row_scale has shape (rows, 1, K * rank) (or anything broadcastable against the
    LoRA activations): the gate weight of each active block, times alpha / r, repeated
    over that block's rank columns. It is built once per forward, not per layer.

    Training routes by ownership instead (`tokens` set, row_scale the scalar alpha / r):
    each block owns the real (unpadded) tokens of its own rows; `tokens` holds their
    indices into the flattened (rows * width) positions, block after block, `sizes` how
    many each block owns. Its products are computed on those tokens alone, so its
    gradients come from the same tensors, of the same shapes, whatever other characters'
    rows share the batch and however far they pad it. `house`, if set, is a frozen
    block that every token passes through beside its own (the cast's house block), the
    way every NPC of such a cast speaks.
    """

    blocks: tuple[int, ...]
    row_scale: torch.Tensor | float
    tokens: torch.Tensor | None = None
    sizes: tuple[int, ...] = ()
    house: int | None = None


class Router(threading.local):
    """The routing that every DynamicLoraLinear of one model reads during a forward.

    Thread-local, so a block can be trained in one thread (expansion on a live server)
    while another thread decodes other NPCs through the same model.
    """

    def __init__(self) -> None:
        self.current: Routing | None = None


class DynamicLoraLinear(nn.Module):
    def __init__(self, base_layer: nn.Linear, rank: int, dropout: float, router: Router):
        super().__init__()
        self.base_layer = base_layer
        self.rank = rank
        self.router = router
        self.lora_A = nn.ParameterList()
        self.lora_B = nn.ParameterList()
        self.dropout = dropout
        self._packed: dict[tuple[int, ...], tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def num_blocks(self) -> int:
        return len(self.lora_A)

    def add_block(self) -> int:
        """Append a fresh block (A random, B zero, so it starts as a no-op)."""
        # Blocks take the base weight's float dtype; over int8 weights they are float32.
        weight = stored_weight(self.base_layer)
        dtype = weight.dtype if weight.is_floating_point() else torch.float32
        a = torch.empty(self.rank, self.base_layer.in_features, dtype=dtype)
        nn.init.kaiming_uniform_(a, a=math.sqrt(5))
        b = torch.zeros(self.base_layer.out_features, self.rank, dtype=dtype)
        self.lora_A.append(nn.Parameter(a.to(weight.device), requires_grad=False))
        self.lora_B.append(nn.Parameter(b.to(weight.device), requires_grad=False))
        self._packed.clear()
        return self.num_blocks - 1

    def remove_block(self, index: int) -> None:
        keep = [i for i in range(self.num_blocks) if i != index]
        self.lora_A = nn.ParameterList([self.lora_A[i] for i in keep])
        self.lora_B = nn.ParameterList([self.lora_B[i] for i in keep])
        self._packed.clear()

    def invalidate(self) -> None:
        """Forget packed weights: call after changing block values in place."""
        self._packed.clear()

    def _weights(self, blocks: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(blocks) == 1:
            return self.lora_A[blocks[0]], self.lora_B[blocks[0]]
        if torch.is_grad_enabled():
            return (
                torch.cat([self.lora_A[i] for i in blocks], dim=0),
                torch.cat([self.lora_B[i] for i in blocks], dim=1),
            )
        packed = self._packed.get(blocks)
        if packed is None:
            if len(self._packed) >= _PACK_CACHE_SIZE:
                self._packed.clear()
            packed = (
                torch.cat([self.lora_A[i] for i in blocks], dim=0),
                torch.cat([self.lora_B[i] for i in blocks], dim=1),
            )
            self._packed[blocks] = packed
        return packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        routing = self.router.current
        if routing is None or not routing.blocks:
            return out
        if routing.tokens is not None:
            return self._owned(x, out, routing)
        a, b = self._weights(routing.blocks)
        # Dropout only where gradients flow: a block can train in one thread while another
        # thread decodes through the same (eval-mode) modules.
        if self.dropout and torch.is_grad_enabled():
            x = F.dropout(x, self.dropout, training=True)
        xa = F.linear(x.to(a.dtype), a) * routing.row_scale
        return out + F.linear(xa, b).to(out.dtype)

    def _owned(self, x: torch.Tensor, out: torch.Tensor, routing: Routing) -> torch.Tensor:
        """Each block's delta on the tokens it owns (training; see Routing). One gather
        and one scatter for all blocks: the token sets are disjoint, so each position
        receives exactly one delta, as if each block were added alone."""
        dtype = self.lora_A[routing.blocks[0]].dtype
        owned = x.reshape(-1, x.shape[-1]).index_select(0, routing.tokens).to(dtype)
        if self.dropout:
            owned = F.dropout(owned, self.dropout, training=True)
        parts = owned.split(routing.sizes)
        deltas = []
        for block, part in zip(routing.blocks, parts):
            pair = (block,) if routing.house is None else tuple(sorted((block, routing.house)))
            a, b = self._weights(pair)  # the same packing as a blend of the two speaks through
            deltas.append(F.linear(F.linear(part, a) * routing.row_scale, b))
        flat = out.reshape(-1, out.shape[-1])
        return flat.index_add(0, routing.tokens, torch.cat(deltas).to(flat.dtype)).view_as(out)
