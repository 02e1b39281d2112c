"""Which matmul kernel computes the engine's projections, chosen once at load time.

A decode step multiplies a few rows by every weight of the model, so it is bound by how
fast a kernel streams the weights, and the best kernel depends on the CPU. Kernels:

- ``onednn``: the weight prepacked once in oneDNN's blocked layout. Float32 on any x86
  CPU (oneDNN picks AVX2, AVX-512 or AMX code itself); bfloat16 only where oneDNN has a
  bfloat16 path (AVX-512 BW/VL/DQ, AVX-NE-CONVERT or AMX), elsewhere it refuses at packing
  time. Costs a second copy of each weight.
- ``mkl``: float32 weights prepacked for MKL's sgemm (Intel builds of torch only). Also a
  second copy.
- ``int8``: weight-only int8 (per output channel scales, see ``npc_runtime.quant``) through
  torch's ``_weight_int8pack_mm``, with bfloat16 activations, each row computed on its own;
  reads the model's own int8 weights, no copy.
- ``int4``: weight-only int4 (groups of 32 with a scale and zero point each) through torch's
  ``_weight_int4pack_mm_for_cpu``, bfloat16 activations, rows computed on their own; half
  of int8's bytes per token.
- ``plain``: ``F.linear`` on the weights as they are. Works everywhere.

``choose`` takes what torch reports (``torch.backends.cpu.get_cpu_capability()``,
``torch.backends.mkldnn``, ``torch._C.has_mkl``) and then probes the kernel on a small
matrix against ``F.linear``: a kernel that raises or disagrees is never used, so a CPU
without some instruction set gets a slower path, never a crash.
"""

from __future__ import annotations

import functools
import logging
from typing import Literal

import torch
import torch.nn.functional as F

from ..quant import (
    INT4_GROUP,
    int4_matmul,
    int4_reference,
    int4_values,
    int8_matmul,
    quantize_rows,
)

log = logging.getLogger(__name__)

Kernel = Literal["auto", "onednn", "mkl", "int8", "int4", "plain"]
INT4 = torch.quint4x2  # stands for packed int4 weights in choose() and usable()
FLOAT_PREFERENCE = ("onednn", "mkl", "plain")


def cpu_capability() -> str:
    """What torch's own CPU kernels were dispatched to: 'AVX512', 'AVX2', 'DEFAULT', ..."""
    return torch.backends.cpu.get_cpu_capability()


def _has_bf16_packing() -> bool:
    """oneDNN packs bfloat16 weights with AVX-512 BW/VL/DQ, AVX-NE-CONVERT or AMX."""
    return cpu_capability() == "AVX512" or torch.cpu._is_amx_tile_supported()


def _available(kind: str, dtype: torch.dtype) -> bool:
    """What torch reports: whether the kernel exists for this dtype on this CPU."""
    if kind == "plain":
        return True
    if kind == "int8":
        return dtype == torch.int8 and hasattr(torch.ops.aten, "_weight_int8pack_mm")
    if kind == "int4":
        return dtype == INT4 and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")
    if dtype in (torch.int8, INT4):
        return False
    if kind == "mkl":
        return dtype == torch.float32 and torch._C.has_mkl
    if kind == "onednn":
        if not torch.backends.mkldnn.is_available():
            return False
        return dtype == torch.float32 or (dtype == torch.bfloat16 and _has_bf16_packing())
    raise ValueError(f"unknown kernel {kind!r}: choose one of {', '.join(Kernel.__args__)}")


@functools.cache
def _probe(kind: str, dtype: torch.dtype) -> bool:
    """Run the kernel once on a small matrix; True when it works and agrees with F.linear."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(48, 64, generator=gen)
    x = torch.randn(3, 64, generator=gen)
    try:
        if dtype == torch.int8:
            q, scales = quantize_rows(weight)
            dense = Dense.int8(q, scales, None, kind)
            expected = F.linear(x, q.float() * scales.float()[:, None])
        elif dtype == INT4:
            q, scales_zeros = int4_values(weight)
            packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1)
            dense = Dense.int4([(packed, scales_zeros)], None, None)
            expected = F.linear(x, int4_reference(q, scales_zeros))
        else:
            dense = Dense(weight.to(dtype), None, kind)
            expected = F.linear(x.to(dtype), weight.to(dtype)).float()
        got = dense(x.to(dense.input_dtype)).float()
    except (RuntimeError, NotImplementedError) as exc:
        log.info("kernel %s for %s does not run here: %s", kind, dtype, exc)
        return False
    ok = torch.allclose(got, expected, atol=0.05, rtol=0.02)
    if not ok:
        log.warning("kernel %s for %s gives wrong results here: not used", kind, dtype)
    return ok


def usable(kind: str, dtype: torch.dtype) -> bool:
    return _available(kind, dtype) and _probe(kind, dtype)


def choose(dtype: torch.dtype, device: torch.device, requested: str = "auto") -> str:
    """The kernel for weights of `dtype` on `device`: `requested` if it works here, else
    the best that does (a request that cannot run is logged, never fatal)."""
    if device.type != "cpu":
        return "plain"
    preference = {torch.int8: ("int8", "plain"), INT4: ("int4",)}.get(dtype, FLOAT_PREFERENCE)
    if requested != "auto":
        if usable(requested, dtype):
            return requested
        log.warning(
            "kernel %r cannot run %s weights on this CPU: choosing another", requested, dtype
        )
    chosen = next((k for k in preference if usable(k, dtype)), None)
    if chosen is None:  # int4 has no fallback: base_model does not quantise to it then
        raise RuntimeError(f"no kernel runs {dtype} weights on this CPU")
    return chosen


def join_int4(
    parts: list[tuple[torch.Tensor, torch.Tensor]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Packed int4 weights of several modules as one, when concatenating their packed
    rows is the packing of their concatenation, else kept apart. It is so when each part
    but the last fills whole row blocks of the kernel's layout, whose height depends on the
    CPU (64 rows with AVX-512: 32-row k and v projections of a small model do not join);
    decided by computing both ways on a probe, so no layout is assumed."""
    if len(parts) == 1:
        return parts
    packed = torch.cat([p for p, _ in parts])
    scales = torch.cat([s for _, s in parts], dim=1)
    k = scales.shape[0] * INT4_GROUP
    probe = torch.randn(2, k, generator=torch.Generator().manual_seed(0)).to(packed.device)
    apart = torch.cat([int4_matmul(probe, p, s) for p, s in parts], 1)
    return [(packed, scales)] if torch.equal(int4_matmul(probe, packed, scales), apart) else parts


class Dense:
    """One projection: x W^T + b through the chosen kernel.

    `input_dtype` is what the kernel computes in (the int8 kernel takes bfloat16
    activations); a call converts its input to it and the result back to the input's.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, kind: str):
        self.kind = kind
        self.bias = bias
        self.weight = weight.contiguous()
        # int8: (float32, bfloat16) scales per row; int4: scales and zero points per group
        self.scales: tuple[torch.Tensor, torch.Tensor] | torch.Tensor | None = None
        self.packed = None
        self.input_dtype = weight.dtype
        self.out_features = weight.shape[0]
        if kind == "mkl":
            self.packed = torch.ops.mkl._mkl_reorder_linear_weight(self.weight, 8)
        elif kind == "onednn":
            self.packed = torch.ops.mkldnn._reorder_linear_weight(self.weight)
        elif kind != "plain":
            raise ValueError(f"kernel {kind!r} does not take {weight.dtype} weights")

    @classmethod
    def int8(
        cls, weight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None, kind: str
    ) -> Dense:
        """Weight-only int8: `weight` (out, in) int8, `scales` (out,) per output row."""
        dense = cls.__new__(cls)
        dense.kind, dense.bias, dense.packed = kind, bias, None
        dense.out_features = weight.shape[0]
        dense.input_dtype = torch.float32
        if kind == "int8":
            dense.weight = weight.contiguous()
            dense.scales = (scales.float(), scales.to(torch.bfloat16))
        else:  # no int8 kernel: dequantise once and compute in float32
            dense.weight = weight.float() * scales.float()[:, None]
            dense.scales = None
        if dense.bias is not None:
            dense.bias = dense.bias.to(dense.input_dtype)
        return dense

    @classmethod
    def int4(
        cls,
        parts: list[tuple[torch.Tensor, torch.Tensor]],
        bias: torch.Tensor | None,
        out_order: torch.Tensor | None,
    ) -> Dense:
        """Weight-only int4 in the kernel's packed layout, from the (packed, scales and
        zero points) of one or more modules whose outputs are concatenated (a fused qkv),
        joined into one matmul where the layout allows (see join_int4). The packing cannot
        reorder rows, so `out_order` (if given) reorders the output columns instead."""
        dense = cls.__new__(cls)
        dense.kind, dense.packed, dense.input_dtype = "int4", None, torch.float32
        dense.weight, dense.scales = None, None
        dense.int4_parts = join_int4(parts)
        dense.out_order = out_order
        dense.out_features = sum(s.shape[1] for _, s in parts)
        dense.bias = None if bias is None else bias.float()
        return dense

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == self.input_dtype:
            return self._matmul(x)
        return self._matmul(x.to(self.input_dtype)).to(x.dtype)

    def _matmul(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "int8":
            y = int8_matmul(x, self.weight, *self.scales)
            return y if self.bias is None else y.add_(self.bias)
        if self.kind == "int4":
            ys = [int4_matmul(x, packed, scales) for packed, scales in self.int4_parts]
            y = ys[0] if len(ys) == 1 else torch.cat(ys, 1)
            if self.out_order is not None:
                y = y[:, self.out_order]
            return y if self.bias is None else y.add_(self.bias)
        if self.kind == "mkl":
            return torch.ops.mkl._mkl_linear(x, self.packed, self.weight, self.bias, x.shape[0])
        if self.kind == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)
