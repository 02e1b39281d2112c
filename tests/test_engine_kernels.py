"""CPU kernels: each one that runs here gives transformers' logits, and a kernel that
cannot run (an instruction set the CPU lacks, a torch build without it) is replaced by
one that can, never a crash."""

from __future__ import annotations

import pytest
import torch

from npc_runtime import load_cast
from npc_runtime.engine import kernels
from npc_runtime.engine.llama import LlamaRunner
from npc_runtime.engine.runner import Segment
from npc_runtime.quant import Int4Linear, Int8Linear

FLOAT_KERNELS = ["onednn", "mkl", "plain"]


@pytest.fixture(autouse=True)
def fresh_probes():
    kernels._probe.cache_clear()
    yield
    kernels._probe.cache_clear()


@pytest.fixture(scope="module")
def cast(trained_cast_dir):
    return load_cast(trained_cast_dir)


@pytest.fixture(scope="module")
def int8_cast(trained_cast_dir):
    return load_cast(trained_cast_dir, dtype="int8")


@pytest.fixture(scope="module")
def int4_cast(trained_cast_dir):
    return load_cast(trained_cast_dir, dtype="int4")


@pytest.fixture(params=["int8", "int4"])
def quantized(request):
    """(dtype, cast) for each weight-only precision."""
    return request.param, request.getfixturevalue(f"{request.param}_cast")


def _ids(cast):
    return cast.tokenizer.encode("Well met, traveller. The road from the north is long.")


def _reference(cast, npc, ids):
    with torch.no_grad(), cast.speaking(npc):
        return cast.model(torch.tensor([ids])).logits[0].float()


def _run(runner, cast, npc, ids):
    """Prompt then one decode step; the logits of both."""
    blend = tuple(sorted(cast.npc(npc).blend.items()))
    runner.invalidate()
    with torch.no_grad():
        head = runner.forward([], [Segment(0, 0, tuple(ids[:-1]), blend, True)])
        tail = runner.forward([Segment(0, len(ids) - 1, (ids[-1],), blend, True)], [])
    return head[0], tail[0]


@pytest.mark.parametrize("kernel", FLOAT_KERNELS)
def test_every_float32_kernel_that_runs_here_gives_transformers_logits(cast, kernel):
    if not kernels.usable(kernel, torch.float32):
        pytest.skip(f"{kernel} does not run on this CPU ({kernels.cpu_capability()})")
    runner = LlamaRunner(cast, slots=1, context=64, kernel=kernel)
    assert runner.kernel == kernel
    ids = _ids(cast)
    ref = _reference(cast, "marla", ids)
    head, tail = _run(runner, cast, "marla", ids)
    torch.testing.assert_close(head, ref[-2], atol=1e-4, rtol=0)
    torch.testing.assert_close(tail, ref[-1], atol=1e-4, rtol=0)


def _fail(*args, **kwargs):
    raise RuntimeError("this CPU lacks the instructions (simulated)")


def test_kernels_that_fail_fall_back_in_order(cast, monkeypatch):
    """oneDNN refusing to pack (as it does for bfloat16 on AVX2) leaves MKL, then plain."""
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", _fail)
    expected = "mkl" if torch._C.has_mkl else "plain"
    assert kernels.choose(torch.float32, torch.device("cpu")) == expected
    # asked for by name, a kernel that cannot run is replaced, not fatal
    runner = LlamaRunner(cast, slots=1, context=64, kernel="onednn")
    assert runner.kernel == expected
    monkeypatch.setattr(torch.ops.mkl, "_mkl_reorder_linear_weight", _fail)
    kernels._probe.cache_clear()
    runner = LlamaRunner(cast, slots=1, context=64)
    assert runner.kernel == "plain"
    ids = _ids(cast)
    torch.testing.assert_close(
        _run(runner, cast, "pip", ids)[1], _reference(cast, "pip", ids)[-1], atol=1e-4, rtol=0
    )


def test_bfloat16_without_a_bfloat16_kernel_runs_plain(trained_cast_dir, monkeypatch):
    """A CPU that claims bfloat16 packing but cannot do it (the AVX2 crash) gets plain."""
    monkeypatch.setattr(kernels, "_has_bf16_packing", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", _fail)
    cast = load_cast(trained_cast_dir, dtype="bfloat16")
    runner = LlamaRunner(cast, slots=1, context=64)
    assert runner.kernel == "plain"
    ids = _ids(cast)
    ref = _reference(cast, "marla", ids)
    _, tail = _run(runner, cast, "marla", ids)
    assert (tail - ref[-1]).abs().max() < 0.05 * ref.abs().max()


def test_a_fault_the_probe_cannot_see_coming_is_caught_there(monkeypatch):
    """What torch reports is not trusted alone: a kernel that raises is never chosen."""
    monkeypatch.setattr(kernels, "_has_bf16_packing", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", _fail)
    assert not kernels.usable("onednn", torch.bfloat16)
    assert kernels.choose(torch.bfloat16, torch.device("cpu")) == "plain"


def test_int8_weights_replace_the_float_ones(int8_cast):
    model = int8_cast.model
    linears = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert linears and not any(type(m) is torch.nn.Linear for m in model.modules())
    floats = sum(p.numel() for p in model.parameters() if p.dtype == torch.float32)
    int8 = sum(b.numel() for b in model.buffers() if b.dtype == torch.int8)
    assert int8 > 2 * floats  # what stays float: norms, LoRA blocks


def _follows(runner, quantized_cast, cast, near_float32: float) -> None:
    """The engine's forward against the transformers forward of the same quantised model
    (2% of the logits' scale), and that near the float32 model's."""
    ids = _ids(quantized_cast)
    ref = _reference(quantized_cast, "brann", ids)
    head, tail = _run(runner, quantized_cast, "brann", ids)
    scale = ref.abs().max()
    assert (tail - ref[-1]).abs().max() < 0.02 * scale
    assert (head - ref[-2]).abs().max() < 0.02 * scale
    full = _reference(cast, "brann", ids)
    assert (tail - full[-1]).abs().max() < near_float32 * full.abs().max()


@pytest.mark.parametrize("kernel", ["int8", "plain"])
def test_int8_engine_forward_follows_the_int8_model(int8_cast, cast, kernel, monkeypatch):
    """The engine's int8 forward, and its dequantising fallback."""
    if kernel == "plain":
        monkeypatch.setattr(torch.ops.aten, "_weight_int8pack_mm", _fail)
    runner = LlamaRunner(int8_cast, slots=1, context=64)
    assert runner.kernel == kernel
    monkeypatch.undo()
    _follows(runner, int8_cast, cast, near_float32=0.05)


def test_int4_weights_replace_the_float_ones_where_they_fit(int4_cast):
    model = int4_cast.model
    int4 = [m for m in model.modules() if isinstance(m, Int4Linear)]
    assert len(int4) == 7 * model.config.num_hidden_layers  # every projection fits here
    assert not any(type(m) is torch.nn.Linear for m in model.modules())
    assert isinstance(model.get_output_embeddings(), Int8Linear)  # the head stays int8


def test_int4_engine_forward_follows_the_int4_model(int4_cast, cast):
    runner = LlamaRunner(int4_cast, slots=1, context=64)
    assert runner.kernel == "int4+int8"
    _follows(runner, int4_cast, cast, near_float32=0.1)


def test_blocks_train_over_quantized_weights(quantized):
    """Gradients reach the LoRA blocks through int8 and int4 layers (expansion on a live
    daemon)."""
    _, int8_cast = quantized
    neeko = int8_cast.neeko
    block = neeko.block_ids[0]
    neeko.set_trainable([block])
    params = neeko.block_parameters(block)
    assert all(p.dtype == torch.float32 for p in params)
    ids = torch.tensor([_ids(int8_cast)])
    with int8_cast.speaking(int8_cast.npc_ids()[0]):
        loss = int8_cast.model(ids, labels=ids).loss
    loss.backward()
    grads = [p.grad for p in params]
    neeko.set_trainable([])
    for p in params:
        p.grad = None
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads[::2])  # A gets gradient through int8 layers


def test_quantized_rows_batched_equal_the_rows_alone(quantized):
    """What holds for int8 and int4 (bfloat16 activations): a decode row's logits are the
    same whether it shares its step with other NPCs' rows or not, to one bfloat16 rounding
    step at their scale (the spacing of bfloat16 numbers at the largest logit, 2^-8 of a
    power of two): a batched matmul may round its bfloat16 activations differently from a
    one-row one, and the kernel's bfloat16 output then differs by one step. (A bound of
    2^-8 times the largest logit, below one step when that logit is not a power of two,
    failed on a Zen 4 CPU: 0.0039, one step, at a largest logit of 0.75.)"""
    _, int8_cast = quantized
    npcs = ["brann", "marla", "pip"]
    ids = _ids(int8_cast)
    prompts = [ids[: len(ids) - 2 * i] for i in range(len(npcs))]

    def blend(npc):
        return tuple(sorted(int8_cast.npc(npc).blend.items()))

    def decode(rows):
        runner = LlamaRunner(int8_cast, slots=len(rows), context=64)
        runner.invalidate()
        with torch.no_grad():
            for slot, (npc, p) in enumerate(rows):
                runner.forward([], [Segment(slot, 0, tuple(p[:-1]), blend(npc), False)])
            segs = [
                Segment(slot, len(p) - 1, (p[-1],), blend(npc), True)
                for slot, (npc, p) in enumerate(rows)
            ]
            return runner.forward(segs, [])

    together = decode(list(zip(npcs, prompts)))
    for i, row in enumerate(zip(npcs, prompts)):
        alone = decode([row])[0]
        step = 2.0 ** (torch.floor(torch.log2(alone.abs().max())) - 7)
        assert (together[i] - alone).abs().max() <= step


@pytest.mark.parametrize("rows", [(64, 64), (32, 32), (96, 32), (16, 48, 64)])
def test_fused_int4_parts_of_any_height_compute_as_apart(rows):
    """Packed int4 rows come in CPU-dependent blocks (64 with AVX-512): a fused projection
    whose parts do not fill whole blocks must not be concatenated as packed bytes."""
    from npc_runtime.quant import int4_matmul, int4_values

    torch.manual_seed(0)
    parts = []
    for n in rows:
        q, scales_zeros = int4_values(torch.randn(n, 128))
        parts.append((torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1), scales_zeros))
    x = torch.randn(3, 128)
    apart = torch.cat([int4_matmul(x, p, s) for p, s in parts], 1)
    assert torch.equal(kernels.Dense.int4(parts, None, None)(x), apart)
