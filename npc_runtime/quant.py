"""Weight-only int8 and int4 for the base model on CPU: a quarter (an eighth) of float32's
memory and bandwidth.

Every linear weight of the decoder layers (and the embedding, with the output head that
shares it) is stored as int8 with one float scale per output row (symmetric, absmax/127).
The matmul is torch's own `_weight_int8pack_mm` (the kernel torchao and gpt-fast use for
weight-only int8), which takes bfloat16 activations: on an AVX2 CPU it decodes a token of
SmolLM2-135M's layers about 3x faster than float32 (benchmarks/engine.py). Weights are
quantised in place, so the model holds no float copy; LoRA blocks stay float32.

The int8 kernel computes each row on its own, so a row's result does not depend on what
shares its matmul: the same text whether a reply runs alone or batched, and whether its
prompt was read at once or partly from the prefix cache. That costs prompt reading (the
kernel reads the weights once per row: at 512 rows it is 2x slower than a GEMM), so only
training, where gradients flow and no such promise is made, multiplies many rows by the
weights converted to float32 (an ordinary GEMM).

The transformers forward keeps working (training, expansion, the transformers runner):
the modules take and give float32, and gradients flow to their inputs (not their weights,
which are frozen like every base weight here).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def quantize_rows(weight: torch.Tensor, chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 weight, float32 scale per row) with weight ~= q * scale[:, None]; `chunk` rows
    at a time, so a large embedding never has a float32 copy."""
    q = torch.empty(weight.shape, dtype=torch.int8, device=weight.device)
    scales = torch.empty(weight.shape[0], dtype=torch.float32, device=weight.device)
    for start in range(0, weight.shape[0], chunk):
        w = weight[start : start + chunk].detach().float()
        s = w.abs().amax(dim=1) / 127.0
        s = torch.where(s > 0, s, torch.ones_like(s))
        q[start : start + chunk] = torch.round(w / s[:, None]).clamp_(-127, 127)
        scales[start : start + chunk] = s
    return q, scales


GEMM_ROWS = 32  # from this many rows on, training multiplies through a float32 GEMM


def int8_matmul(
    x: torch.Tensor,
    q: torch.Tensor,
    scales: torch.Tensor,
    scales_bf16: torch.Tensor,
    training: bool = False,
) -> torch.Tensor:
    """x (rows, in) times (q * scales[:, None])^T, in x's dtype."""
    if not training or x.shape[0] < GEMM_ROWS:
        y = torch.ops.aten._weight_int8pack_mm(x.to(torch.bfloat16), q, scales_bf16)
    else:
        y = F.linear(x.float(), q.float()).mul_(scales)
    return y.to(x.dtype)


def _int8_kernel() -> bool:
    from .engine.kernels import usable

    return usable("int8", torch.int8)


class _Int8Matmul(torch.autograd.Function):
    """int8_matmul with a gradient for x (the weights are frozen)."""

    @staticmethod
    def forward(ctx, x, q, scales, scales_bf16, training):
        ctx.save_for_backward(q, scales)
        return int8_matmul(x, q, scales, scales_bf16, training)

    @staticmethod
    def backward(ctx, grad):
        q, scales = ctx.saved_tensors
        return (grad.float() * scales) @ q.float(), None, None, None, None


class Int8Linear(nn.Module):
    """A frozen nn.Linear stored as int8 rows and their scales."""

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.out_features, self.in_features = q.shape
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scales.float())
        self.register_buffer("scales_bf16", scales.to(torch.bfloat16))
        self.bias = None if bias is None else nn.Parameter(bias.float(), requires_grad=False)
        self.fast = _int8_kernel()

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        q, scales = quantize_rows(linear.weight)
        return cls(q, scales, linear.bias)

    def dequantized(self) -> torch.Tensor:
        return self.qweight.float() * self.scales[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        flat = x.reshape(-1, self.in_features)
        if self.fast:
            training = torch.is_grad_enabled()
            y = _Int8Matmul.apply(flat, self.qweight, self.scales, self.scales_bf16, training)
        else:  # no int8 kernel on this CPU: correct, not fast
            y = F.linear(flat, self.dequantized().to(x.dtype))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


INT4_GROUP = 32  # weights per scale and zero point along the input (Q4_1's block)


def int4_fits(linear: nn.Linear) -> bool:
    """The int4 kernel's shapes: output rows in multiples of 16, inputs of the group."""
    return linear.out_features % 16 == 0 and linear.in_features % INT4_GROUP == 0


def quantize_groups(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed int4, scales and zero points) in the layout of torch's int4 CPU kernel:
    w ~= (q - 8) * scale + zero per group of INT4_GROUP inputs, q in 0..15 (asymmetric, as
    llama.cpp's Q4_1: a model shipped as Q4_1 comes back on its own grid)."""
    q, scales_zeros = int4_values(weight)
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1), scales_zeros


def int4_values(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q (out, in) int32 in 0..15, scales and zero points (in / group, out, 2) bfloat16)."""
    w = weight.detach().float()
    n, k = w.shape
    groups = w.reshape(n, k // INT4_GROUP, INT4_GROUP)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=1e-8)
    q = ((groups - low[..., None]) / scale[..., None]).round_().clamp_(0, 15)
    zero = low + 8 * scale
    scales_zeros = torch.stack([scale, zero], -1).transpose(0, 1).contiguous()
    return q.to(torch.int32).reshape(n, k), scales_zeros.to(torch.bfloat16)


def int4_reference(q: torch.Tensor, scales_zeros: torch.Tensor) -> torch.Tensor:
    """The float32 weight that int4 values stand for (what the kernel computes with)."""
    n, k = q.shape
    scale, zero = scales_zeros.float().transpose(0, 1).unbind(-1)  # (out, in / group)
    groups = (q.float() - 8).reshape(n, k // INT4_GROUP, INT4_GROUP)
    return (groups * scale[..., None] + zero[..., None]).reshape(n, k)


def int4_matmul(x: torch.Tensor, packed: torch.Tensor, scales_zeros: torch.Tensor) -> torch.Tensor:
    """x (rows, in) times the int4 weight^T, in x's dtype (bfloat16 inside)."""
    y = torch.ops.aten._weight_int4pack_mm_for_cpu(
        x.to(torch.bfloat16), packed, INT4_GROUP, scales_zeros
    )
    return y.to(x.dtype)


class _Int4Matmul(torch.autograd.Function):
    """int4_matmul with a gradient for x: the weight, dequantised by the kernel itself (the
    identity through it gives W^T), is only made when a backward pass needs it."""

    @staticmethod
    def forward(ctx, x, packed, scales_zeros):
        ctx.save_for_backward(packed, scales_zeros)
        return int4_matmul(x, packed, scales_zeros)

    @staticmethod
    def backward(ctx, grad):
        packed, scales_zeros = ctx.saved_tensors
        k = scales_zeros.shape[0] * INT4_GROUP
        eye = torch.eye(k, dtype=torch.float32, device=grad.device)
        weight_t = int4_matmul(eye, packed, scales_zeros)  # (in, out)
        return grad.float() @ weight_t.t(), None, None


class Int4Linear(nn.Module):
    """A frozen nn.Linear stored as packed int4 groups, their scales and zero points."""

    def __init__(self, packed: torch.Tensor, scales_zeros: torch.Tensor, bias, out_features: int):
        super().__init__()
        self.in_features = scales_zeros.shape[0] * INT4_GROUP
        self.out_features = out_features
        self.register_buffer("qweight", packed)
        self.register_buffer("scales_zeros", scales_zeros)
        self.bias = None if bias is None else nn.Parameter(bias.float(), requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int4Linear:
        packed, scales_zeros = quantize_groups(linear.weight)
        return cls(packed, scales_zeros, linear.bias, linear.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        y = _Int4Matmul.apply(x.reshape(-1, self.in_features), self.qweight, self.scales_zeros)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int4"


class Int8Embedding(nn.Module):
    """An embedding table as int8 rows and their scales (the layout of a tied lm_head)."""

    def __init__(self, q: torch.Tensor, scales: torch.Tensor, padding_idx: int | None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = q.shape
        self.padding_idx = padding_idx
        self.register_buffer("qweight", q)
        self.register_buffer("scales", scales.float())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.qweight).float() * self.scales[ids].unsqueeze(-1)


def quantize_model(
    model: nn.Module, bits: int = 8, load: Callable[[str], torch.Tensor] | None = None
) -> None:
    """Replace, in place, the decoder's linear weights (by int8, or int4 where the shapes
    fit the kernel), the input embedding and the output head by int8 (a tied head shares
    the embedding's int8 rows: the head is the most sensitive matrix, so it stays int8).

    load(name) gives a parameter's float tensor by its name in the model; with it, the
    model's parameters may be on the meta device (checkpoint.skeleton) and each is read,
    quantised and dropped in turn. Without it, they are the model's own."""
    own = dict(model.named_parameters())
    load = load or own.__getitem__
    names = {id(module): name for name, module in model.named_modules()}

    def linear(module: nn.Module) -> nn.Linear:
        """The module as a plain float nn.Linear (its weights loaded), to quantise."""
        prefix = names[id(module)]
        bias = load(f"{prefix}.bias") if module.bias is not None else None
        float_linear = nn.Linear(module.in_features, module.out_features, device="meta")
        float_linear.weight = nn.Parameter(load(f"{prefix}.weight"), requires_grad=False)
        float_linear.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        return float_linear

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    q, scales = quantize_rows(load(f"{names[id(embed)]}.weight"))
    model.set_input_embeddings(Int8Embedding(q, scales, embed.padding_idx))
    if head is not None:
        bias = load(f"{names[id(head)]}.bias") if head.bias is not None else None
        new_head = Int8Linear(q, scales, bias) if tied else Int8Linear.from_linear(linear(head))
        model.set_output_embeddings(new_head)
    inner = model.get_decoder() if hasattr(model, "get_decoder") else model
    for parent in list(inner.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                four = bits == 4 and int4_fits(child)
                kind = Int4Linear if four else Int8Linear
                setattr(parent, name, kind.from_linear(linear(child)))
                _trim_heap()  # else the float weights' freed memory piles up: 1.3 GB at 1.5B
    model.config.tie_word_embeddings = False  # nothing for transformers to re-tie
    # The float weights were views of the checkpoint file, mapped into memory; the file
    # stays mapped (and counted in RSS) while any tensor of it lives, so the few float
    # tensors that remain (norms, biases) get memory of their own, in float32 whatever
    # the checkpoint's dtype: around the int8 matmuls everything computes in float32.
    for prefix, module in model.named_modules():
        for pname, _ in list(module.named_parameters(recurse=False)):
            value = load(f"{prefix}.{pname}" if prefix else pname)
            module._parameters[pname] = nn.Parameter(value.to(torch.float32, copy=True), False)
        for bname, buf in module.named_buffers(recurse=False):
            if buf.is_floating_point() and not bname.startswith("scales"):
                module._buffers[bname] = buf.to(torch.float32, copy=True)
    _release_freed_memory()


def _release_freed_memory() -> None:
    """Give the float weights' freed heap back to the system (glibc keeps freed memory for
    reuse, so it would still count in RSS)."""
    gc.collect()
    _trim_heap()


def _trim_heap() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to do
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def dequantized(module: nn.Module) -> torch.Tensor:
    """A linear's weight in float32, whatever it is stored as."""
    if isinstance(module, Int8Linear):
        return module.dequantized()
    if isinstance(module, Int4Linear):
        eye = torch.eye(module.in_features, device=module.qweight.device)
        return int4_matmul(eye, module.qweight, module.scales_zeros).t().contiguous()
    return module.weight.float()


def stored_weight(module: nn.Module) -> torch.Tensor:
    """The tensor a linear keeps its weight in (int8/int4 ones: packed): its device, dtype."""
    return module.qweight if isinstance(module, (Int8Linear, Int4Linear)) else module.weight
