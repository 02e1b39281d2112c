"""The engine's own forward for Llama-family models (Llama, Mistral, Qwen2, Qwen3,
SmolLM3).

Same math as the transformers forward (logits agree to float rounding; a test checks
1e-4), laid out for serving many sequences on a CPU where per-op overhead, not arithmetic,
bounds a batch of one:

- tokens of all sequences of a step are packed into one (tokens, hidden) matrix: every
  projection is one 2-D matmul for the whole step, whatever mix of decode rows and
  prompt chunks it holds;
- q, k and v are one matmul (a fused copy of the three weights); their LoRA is one more
  pair over the step's union of blocks (see lora.py), scaled per token;
- q and k rows are stored in interleaved-pair order, so rotary embedding is one complex
  multiply in place (the q.k products are unchanged by that consistent permutation);
- the key/value cache is preallocated, one slot per sequence; decoding sequences sit in
  slots 0..B-1, so their attention is one batched call over a view of the cache, with a
  mask for their different lengths; grouped-query heads attend as a group, no copies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..neeko.cast import Cast
from ..neeko.layer import DynamicLoraLinear
from ..quant import Int4Linear, Int8Linear, dequantized
from . import kernels
from .kernels import Dense
from .lora import Groups, LoraPacks
from .runner import Segment

SUPPORTED = ("llama", "mistral", "qwen2", "qwen3", "smollm3", "phi3")


def rope_type(cfg) -> str:
    """The rope type, as transformers 5 (rope_parameters) and 4 (rope_scaling, where
    "type" is the older spelling) write it."""
    rope = getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}
    return rope.get("rope_type") or rope.get("type") or "default"


def sliding(cfg) -> bool:
    """Whether any layer attends through a sliding window (Qwen and SmolLM3 configs name
    a window they do not use unless use_sliding_window is set)."""
    if getattr(cfg, "sliding_window", None) is None:
        return False
    if not getattr(cfg, "use_sliding_window", True):
        return False
    return "sliding_attention" in (getattr(cfg, "layer_types", None) or ["sliding_attention"])


def supports(model: nn.Module) -> bool:
    cfg = model.config
    return (
        cfg.model_type in SUPPORTED
        and getattr(cfg, "hidden_act", "silu") == "silu"
        and rope_type(cfg) in ("default", "linear", "llama3")
        and not sliding(cfg)
        and (getattr(cfg, "rope_parameters", None) or {}).get("partial_rotary_factor", 1.0) == 1.0
        and hasattr(model, "model")
        and hasattr(model.model, "rotary_emb")
    )


def _base(module: nn.Module) -> nn.Linear:
    return module.base_layer if isinstance(module, DynamicLoraLinear) else module


def _pair_order(heads: int, head_dim: int) -> torch.Tensor:
    """Rows of a q or k projection in the order (0, d/2, 1, d/2+1, ...) within each head."""
    half = head_dim // 2
    within = torch.stack([torch.arange(half), torch.arange(half) + half], dim=1).reshape(-1)
    return (torch.arange(heads)[:, None] * head_dim + within[None, :]).reshape(-1)


def layer_groups(layer: nn.Module, q_order: torch.Tensor, k_order: torch.Tensor) -> Groups:
    """The layer's projections as the forward computes them: q, k and v in one matmul
    (their rows in one weight: a copy where the family keeps them apart), q and k rows in
    pair order; gate and up as the family keeps them, apart (Llama) or in one weight
    (Phi-3's gate_up_proj, whose output the forward splits), so the MLP, most of the
    weights, is never copied."""
    att, mlp = layer.self_attn, layer.mlp
    if hasattr(att, "qkv_proj"):
        q_dim, kv_dim = len(q_order), len(k_order)
        v_rows = torch.arange(q_dim + kv_dim, q_dim + 2 * kv_dim, device=q_order.device)
        qkv = [(att.qkv_proj, torch.cat([q_order, q_dim + k_order, v_rows]))]
    else:
        qkv = [(att.q_proj, q_order), (att.k_proj, k_order), (att.v_proj, None)]
    groups = {"qkv": qkv, "o": [(att.o_proj, None)]}
    if hasattr(mlp, "gate_up_proj"):
        groups["gate_up"] = [(mlp.gate_up_proj, None)]
    else:
        groups["gate"], groups["up"] = [(mlp.gate_proj, None)], [(mlp.up_proj, None)]
    groups["down"] = [(mlp.down_proj, None)]
    return groups


def _qk_norms(attention: nn.Module, within: torch.Tensor):
    """(weight, eps) of the q and k head norms (Qwen3), their weights in the pair order
    of the rows they scale; None for families without them."""
    q, k = getattr(attention, "q_norm", None), getattr(attention, "k_norm", None)
    if q is None or k is None:
        return None
    return tuple((n.weight[within], n.variance_epsilon) for n in (q, k))


def _cat(ts: list[torch.Tensor | None], dim: int = 0) -> torch.Tensor | None:
    if any(t is None for t in ts):
        return None
    return ts[0] if len(ts) == 1 else torch.cat(ts, dim)


class _Kernels:
    """The kernel of each kind of weight (chosen once per runner) and the Dense of a group
    of projections of one input, their output rows stacked (and reordered, for q and k)."""

    def __init__(self, float_dtype: torch.dtype, device: torch.device, requested: str):
        self.float = kernels.choose(float_dtype, device, requested)
        int8 = requested if requested in ("int8", "plain") else "auto"
        self.int8 = kernels.choose(torch.int8, device, int8)
        self.used: set[str] = set()

    def dense(self, parts: list[tuple[nn.Module, torch.Tensor | None]]) -> Dense:
        mods = [(_base(m), rows) for m, rows in parts]
        kinds = {type(m) for m, _ in mods}
        if len(kinds) > 1:  # mixed storage (a projection too small for int4): float32
            weight = torch.cat([_take(dequantized(m), rows) for m, rows in mods])
            bias = _cat([_take(m.bias, rows) for m, rows in mods])
            return self._used(Dense(weight, bias, self.float))
        bias = _cat([_take(m.bias, rows) for m, rows in mods])
        first = mods[0][0]
        if isinstance(first, Int4Linear):  # packed rows cannot move: reorder the outputs
            parts = [(m.qweight, m.scales_zeros) for m, _ in mods]
            order, offset = [], 0
            for m, rows in mods:
                own = torch.arange(m.out_features) if rows is None else rows.cpu()
                order.append(own + offset)
                offset += m.out_features
            order = torch.cat(order)
            device = first.qweight.device
            keep = None if torch.equal(order, torch.arange(offset)) else order.to(device)
            return self._used(Dense.int4(parts, bias, keep))
        if isinstance(first, Int8Linear):
            q = _cat([_take(m.qweight, rows) for m, rows in mods])
            scales = _cat([_take(m.scales, rows) for m, rows in mods])
            return self._used(Dense.int8(q, scales, bias, self.int8))
        weight = _cat([_take(m.weight, rows) for m, rows in mods])
        return self._used(Dense(weight, bias, self.float))

    def _used(self, dense: Dense) -> Dense:
        self.used.add(dense.kind)
        return dense


def _take(t: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor | None:
    return t if t is None or rows is None else t[rows]


class LlamaRunner:
    supports_prefix_cache = True

    def __init__(self, cast: Cast, slots: int, context: int, kernel: str = "auto"):
        model = cast.model
        cfg = model.config
        inner = model.model
        self.heads = cfg.num_attention_heads
        self.kv_heads = cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.group = self.heads // self.kv_heads
        self.q_dim = self.heads * self.head_dim
        self.qk_dim = (self.heads + self.kv_heads) * self.head_dim
        self.embed = inner.embed_tokens
        self.norm = (inner.norm.weight, inner.norm.variance_epsilon)
        dtype, device = inner.norm.weight.dtype, inner.norm.weight.device
        chooser = _Kernels(dtype, device, kernel)
        self.lm_head = chooser.dense([(model.get_output_embeddings(), None)])
        q_order = _pair_order(self.heads, self.head_dim).to(device)
        k_order = _pair_order(self.kv_heads, self.head_dim).to(device)
        within = _pair_order(1, self.head_dim).to(device)  # a q/k norm's weight, reordered
        self.layers = []
        groups = [layer_groups(layer, q_order, k_order) for layer in inner.layers]
        use_rope = getattr(cfg, "no_rope_layers", None) or [1] * len(inner.layers)  # SmolLM3
        for layer, parts, rope in zip(inner.layers, groups, use_rope):
            self.layers.append(
                dict(
                    ln1=(layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon),
                    ln2=(
                        layer.post_attention_layernorm.weight,
                        layer.post_attention_layernorm.variance_epsilon,
                    ),
                    qk_norm=_qk_norms(layer.self_attn, within),
                    rope=bool(rope),
                    **{name: chooser.dense(members) for name, members in parts.items()},
                )
            )
        self.intermediate = cfg.intermediate_size  # gate's rows, then up's, in a gate_up
        self.kernel = "+".join(sorted(chooser.used))  # what serve logs
        self.lora = LoraPacks(
            groups, cast.lora.rank, torch.float32 if device.type == "cpu" else dtype
        )
        self.neeko = cast.neeko
        self.scaling = cast.lora.scaling
        rotary = inner.rotary_emb
        positions = torch.arange(context, device=device, dtype=torch.float32)
        angles = torch.outer(positions, rotary.inv_freq.to(device=device, dtype=torch.float32))
        scale = torch.full_like(angles, float(rotary.attention_scaling))
        self.freqs = torch.polar(scale, angles)  # (context, head_dim / 2), complex64
        shape = (len(self.layers), 2, slots, self.kv_heads, context, self.head_dim)
        # Allocated, not touched: memory grows with use. Batched decode attention reads
        # every slot up to the longest row under a mask, and a masked position still
        # multiplies V by weight 0, so what it reads must be finite (uninitialised memory
        # may hold NaN, and 0 * NaN = NaN): _clean[s] is how far slot s holds finite
        # values, and positions past it are zeroed before a batch reads them.
        self.kv = torch.empty(shape, dtype=dtype, device=device)
        self._clean = [0] * slots
        self._block_index: dict[str, int] = {}

    # -- routing ---------------------------------------------------------------------
    def invalidate(self) -> None:
        self.lora.clear()
        self._block_index = {b: i for i, b in enumerate(self.neeko.block_ids)}

    def _routing(self, segs: list[Segment], device) -> tuple[list[dict] | None, dict]:
        """The step's packs and, per members count, each token's scale (tokens, K*r)."""
        if not self._block_index and self.neeko.block_ids:
            self.invalidate()
        index = self._block_index
        union = tuple(sorted({index[b] for s in segs for b, _ in s.blend}))
        if not union or not self.lora.groups:
            return None, {}
        column = {b: j for j, b in enumerate(union)}
        rank = self.lora.rank
        table = torch.zeros(len(segs), len(union), dtype=torch.float32)
        for row, seg in enumerate(segs):
            for block, weight in seg.blend:
                table[row, column[index[block]]] = weight * self.scaling
        counts = torch.tensor([len(s.tokens) for s in segs])
        per_token = table.repeat_interleave(counts, dim=0).repeat_interleave(rank, dim=1)
        per_token = per_token.to(device=device, dtype=self.lora.dtype)
        scales = {
            m: per_token.repeat(1, m) for m in {self.lora.members(g) for g in self.lora.groups}
        }
        return self.lora.get(union), scales

    # -- the forward -------------------------------------------------------------------
    def forward(self, decode: list[Segment], prefill: list[Segment]) -> torch.Tensor:
        segs = decode + prefill
        device = self.norm[0].device
        tokens = [t for s in segs for t in s.tokens]
        positions = [s.start + i for s in segs for i in range(len(s.tokens))]
        slots = [s.slot for s in segs for _ in s.tokens]
        ids = torch.tensor(tokens, device=device)
        pos = torch.tensor(positions, device=device)
        slot_idx = torch.tensor(slots, device=device)
        freqs = self.freqs[pos].unsqueeze(1)
        packs, scales = self._routing(segs, device)
        n_dec = len(decode)
        dec_mask = None
        if n_dec:
            length = max(s.start for s in decode) + 1
            lens = torch.tensor([s.start + 1 for s in decode], device=device)
            dec_mask = (torch.arange(length, device=device) < lens[:, None])[:, None, None, :]
            self._make_finite(decode, length)
        spans, offset = [], n_dec
        for seg in prefill:
            n, end = len(seg.tokens), seg.start + len(seg.tokens)
            rows = torch.arange(seg.start, end, device=device).repeat_interleave(self.group)
            mask = torch.arange(end, device=device)[None, :] <= rows[:, None]
            spans.append((offset, n, seg.slot, end, mask))
            offset += n
        want = [i for i in range(n_dec)]
        for (start, n, *_), seg in zip(spans, prefill):
            if seg.logits:
                want.append(start + n - 1)

        x = self.embed(ids)
        hidden = x.shape[1]
        for li, layer in enumerate(self.layers):
            lora = packs[li] if packs is not None else {}
            h = F.rms_norm(x, (hidden,), *layer["ln1"])
            qkv = self._linear(h, layer["qkv"], lora.get("qkv"), scales)
            if layer["qk_norm"] is not None:
                self._norm_heads(qkv, *layer["qk_norm"])
            if layer["rope"]:
                self._rotate(qkv[:, : self.qk_dim], freqs)
            cache = self.kv[li]
            cache[:, slot_idx, :, pos] = qkv[:, self.q_dim :].view(
                -1, 2, self.kv_heads, self.head_dim
            )
            attn = self._attention(qkv, cache, n_dec, dec_mask, spans)
            self._linear(attn, layer["o"], lora.get("o"), scales, out=x)
            h = F.rms_norm(x, (hidden,), *layer["ln2"])
            if "gate_up" in layer:
                gate_up = self._linear(h, layer["gate_up"], lora.get("gate_up"), scales)
                gate, up = gate_up[:, : self.intermediate], gate_up[:, self.intermediate :]
            else:
                gate = self._linear(h, layer["gate"], lora.get("gate"), scales)
                up = self._linear(h, layer["up"], lora.get("up"), scales)
            act = F.silu(gate, inplace=True).mul_(up)
            self._linear(act, layer["down"], lora.get("down"), scales, out=x)
        rows = x[want] if len(want) < x.shape[0] else x
        rows = F.rms_norm(rows, (hidden,), *self.norm)
        return self.lm_head(rows).float()

    def _norm_heads(self, qkv: torch.Tensor, q_norm, k_norm) -> None:
        """Qwen3's RMSNorm of each q and k head over its head_dim, in place, before rope."""
        hd = (self.head_dim,)
        q = qkv[:, : self.q_dim].view(-1, self.heads, self.head_dim)
        k = qkv[:, self.q_dim : self.qk_dim].view(-1, self.kv_heads, self.head_dim)
        q.copy_(F.rms_norm(q, hd, *q_norm))
        k.copy_(F.rms_norm(k, hd, *k_norm))

    def _rotate(self, qk: torch.Tensor, freqs: torch.Tensor) -> None:
        """Rotary embedding of q and k in place: pairs of rows as complex numbers."""
        shape = (qk.shape[0], self.heads + self.kv_heads, self.head_dim // 2, 2)
        if qk.dtype == torch.float32:
            torch.view_as_complex(qk.view(shape)).mul_(freqs)
        else:  # no complex bfloat16: rotate in float32
            turned = torch.view_as_complex(qk.float().view(shape)) * freqs
            qk.copy_(torch.view_as_real(turned).view(qk.shape))

    @staticmethod
    def _linear(x, dense: Dense, pack, scales, out=None) -> torch.Tensor:
        """x W^T (+ bias) (+ the LoRA of the step's blocks), added into `out` if given."""
        y = dense(x)
        if pack is not None:
            xa = (x.to(pack.a.dtype) @ pack.a.t()).mul_(scales[pack.members])
            if y.dtype == xa.dtype:
                y.addmm_(xa, pack.b.t())
            else:
                y.add_(xa @ pack.b.t())
        return y if out is None else out.add_(y)

    def _attention(self, qkv, cache, n_dec, dec_mask, spans) -> torch.Tensor:
        hd, g, kvh = self.head_dim, self.group, self.kv_heads
        q = qkv[:, : self.q_dim]
        parts = []
        if n_dec:
            length = dec_mask.shape[-1]
            qd = q[:n_dec].view(n_dec, kvh, g, hd)
            k = cache[0, :n_dec, :, :length]
            v = cache[1, :n_dec, :, :length]
            out = F.scaled_dot_product_attention(qd, k, v, attn_mask=dec_mask)
            parts.append(out.reshape(n_dec, self.q_dim))
        for start, n, slot, end, mask in spans:
            qp = q[start : start + n].view(n, kvh, g, hd).transpose(0, 1).reshape(1, kvh, n * g, hd)
            k = cache[0, slot : slot + 1, :, :end]
            v = cache[1, slot : slot + 1, :, :end]
            out = F.scaled_dot_product_attention(qp, k, v, attn_mask=mask)
            parts.append(out.view(kvh, n, g, hd).transpose(0, 1).reshape(n, self.q_dim))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    # -- slots -------------------------------------------------------------------------
    def _make_finite(self, decode: list[Segment], length: int) -> None:
        """Zero what the decode batch will read beyond each row's own cache (and some
        positions ahead, so this happens once in a while, not at every step)."""
        context = self.kv.shape[4]
        for seg in decode:
            low = max(self._clean[seg.slot], seg.start + 1)
            if low < length:
                high = min(context, length + 64)
                self.kv[:, :, seg.slot, :, low:high].zero_()
                self._clean[seg.slot] = high
            else:
                self._clean[seg.slot] = low

    def move(self, src: int, dst: int, length: int) -> None:
        self.kv[:, :, dst, :, :length] = self.kv[:, :, src, :, :length]
        self._clean[dst] = max(self._clean[dst], length)

    def swap(self, a: int, b: int, length_a: int, length_b: int) -> None:
        saved = self.kv[:, :, b, :, :length_b].clone()
        self.move(a, b, length_a)
        self.kv[:, :, a, :, :length_b] = saved
        self._clean[a] = max(self._clean[a], length_b)

    def read_kv(self, slot: int, start: int, end: int) -> torch.Tensor:
        """Positions start..end-1 of a slot, tokens first: (n, layers, 2, kv_heads, d)."""
        return self.kv[:, :, slot, :, start:end].permute(3, 0, 1, 2, 4).contiguous()

    def write_kv(self, slot: int, start: int, kv: torch.Tensor) -> None:
        self.kv[:, :, slot, :, start : start + kv.shape[0]] = kv.permute(1, 2, 3, 0, 4)

    def release(self, slot: int) -> None:
        """Nothing to do: the slot's cache is overwritten by its next sequence."""
