"""Attention over each row's own tokens, for training batches that mix characters.

torch's fused CPU attention splits keys into blocks whose size follows the padded
width, so a row's attention output changes in its last bits with the longest row of
its batch. A block trained beside other characters would then drift from the same
block trained alone. Inside `per_row`, attention runs row by row on exactly that row's
real tokens (causal, and windowed where the model slides a window), so a row's result
depends on the row alone; it also skips the padding's work. Outside it (other threads,
other uses of the model) the same registered function is plain SDPA.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

ROWS = "npc_rows"


class _Lengths(threading.local):
    def __init__(self) -> None:
        self.current: Sequence[int] | None = None


_lengths = _Lengths()


def _window_mask(module: nn.Module, length: int, device) -> torch.Tensor | None:
    window = getattr(module, "sliding_window", None)
    if not window or length <= window:
        return None  # plain causal attention
    q = torch.arange(length, device=device)[:, None]
    k = torch.arange(length, device=device)[None, :]
    return ((k <= q) & (k > q - window))[None, None]


def rows_attention(module, query, key, value, attention_mask, **kwargs):
    lengths = _lengths.current
    if lengths is None or key.shape[2] != query.shape[2]:  # not a training batch
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    width, outs = query.shape[2], []
    for row, length in enumerate(lengths):
        q, k, v = (t[row : row + 1, :, :length] for t in (query, key, value))
        mask = _window_mask(module, length, query.device)
        out, _ = sdpa_attention_forward(module, q, k, v, mask, **kwargs)
        outs.append(F.pad(out, (0, 0, 0, 0, 0, width - length)))
    return torch.cat(outs), None


AttentionInterface.register(ROWS, rows_attention)
ALL_MASK_ATTENTION_FUNCTIONS.register(ROWS, sdpa_mask)


@contextmanager
def per_row(model: nn.Module, lengths: Sequence[int]) -> Iterator[None]:
    """Forward passes of this thread attend row by row (`lengths[r]` real tokens of row
    r, right-padded). Models whose attention is not SDPA (eager, which pads exactly, or
    a model's own kernel) are left as they are; the model is SDPA again afterwards."""
    configs = {
        id(m.config): m.config
        for m in model.modules()
        if getattr(getattr(m, "config", None), "_attn_implementation", None) == "sdpa"
    }
    for config in configs.values():
        config._attn_implementation = ROWS  # the same as SDPA in every other thread
    _lengths.current = [int(n) for n in lengths]
    try:
        yield
    finally:
        _lengths.current = None
        for config in configs.values():
            config._attn_implementation = "sdpa"
