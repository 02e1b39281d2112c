"""llama.cpp (through llama-cpp-python) as the CPU peer of the engine benchmark, part (f).

Several sequences go into one llama_batch, so the batched rate is llama.cpp's own
continuous batching. LoRA adapters are per context, not per sequence: requests of NPCs
with different adapters are served one after another, each with its adapter set, which is
how llama.cpp serves per-request LoRA. Adapters are the peft exports written as GGUF LoRA
files (the layout of llama.cpp's convert_lora_to_gguf.py, q and k rows permuted the way
its model conversion permutes them).
"""

from __future__ import annotations

import ctypes
import json
import time
from pathlib import Path

import numpy as np

_NAMES = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


def _pairs(w: np.ndarray, heads: int) -> np.ndarray:
    return (
        w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    )


def peft_to_gguf(adapter: Path, out: Path, heads: int, kv_heads: int) -> Path:
    import gguf
    from safetensors.numpy import load_file

    config = json.loads((adapter / "adapter_config.json").read_text())
    tensors = load_file(adapter / "adapter_model.safetensors")
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(config["lora_alpha"]))
    for name in sorted(tensors):
        layer = int(name.split(".layers.")[1].split(".")[0])
        module = name.split(f".layers.{layer}.")[1].rsplit(".lora_", 1)[0]
        ab = "a" if ".lora_A." in name else "b"
        t = tensors[name]
        if ab == "b" and module in ("self_attn.q_proj", "self_attn.k_proj"):
            t = _pairs(t, heads if module == "self_attn.q_proj" else kv_heads)
        writer.add_tensor(f"blk.{layer}.{_NAMES[module]}.weight.lora_{ab}", np.ascontiguousarray(t))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def requantize(gguf_file: Path, out: Path, ftype: str = "Q8_0") -> Path:
    """The same weights in another GGUF quantisation (llama.cpp's own quantiser)."""
    import llama_cpp as lc

    if out.exists():
        return out
    quiet = lc.llama_log_callback(lambda level, text, data: None)
    lc.llama_log_set(quiet, ctypes.c_void_p(0))
    params = lc.llama_model_quantize_default_params()
    params.ftype = getattr(lc, f"LLAMA_FTYPE_MOSTLY_{ftype}")
    params.allow_requantize = True
    if lc.llama_model_quantize(str(gguf_file).encode(), str(out).encode(), ctypes.byref(params)):
        raise RuntimeError(f"llama.cpp could not quantise {gguf_file} to {ftype}")
    return out


class LlamaCpp:
    def __init__(self, gguf_file: Path, threads: int, sequences: int = 16, context: int = 8192):
        import llama_cpp as lc

        self.lc = lc
        self._quiet = lc.llama_log_callback(lambda level, text, data: None)
        lc.llama_log_set(self._quiet, ctypes.c_void_p(0))
        lc.llama_backend_init()
        model_params = lc.llama_model_default_params()
        # The AMX repacking of Q4_1 weights crashes in llama_decode with this build
        # (llama-cpp-python 0.3.36) on this CPU: use the plain AVX-512 kernels.
        model_params.use_extra_bufts = False
        self.model = lc.llama_model_load_from_file(str(gguf_file).encode(), model_params)
        params = lc.llama_context_default_params()
        params.n_ctx, params.n_batch, params.n_ubatch = context, 512, 512
        params.n_seq_max, params.kv_unified = sequences, True
        params.n_threads = params.n_threads_batch = threads
        self.ctx = lc.llama_init_from_model(self.model, params)
        self.vocab = lc.llama_vocab_n_tokens(lc.llama_model_get_vocab(self.model))
        self.batch = lc.llama_batch_init(512, 0, 1)
        self.adapters: dict[str, object] = {}

    def load_adapter(self, name: str, path: Path) -> None:
        self.adapters[name] = self.lc.llama_adapter_lora_init(self.model, str(path).encode())

    def use(self, name: str | None) -> None:
        """Set the context's adapter (None: the base model alone)."""
        if name is None:
            self.lc.llama_set_adapters_lora(self.ctx, None, 0, None)
            return
        adapters = (ctypes.POINTER(ctypes.c_void_p) * 1)(self.adapters[name])
        scales = (ctypes.c_float * 1)(1.0)
        self.lc.llama_set_adapters_lora(self.ctx, adapters, 1, scales)

    def _decode(self, items: list[tuple[int, int, int, bool]]) -> list[int]:
        """items: (token, position, sequence, wants logits); returns the batch rows of
        the tokens that want logits, decoding in chunks of the batch size."""
        rows = []
        for start in range(0, len(items), 512):
            chunk = items[start : start + 512]
            b = self.batch
            b.n_tokens = len(chunk)
            for i, (tok, pos, seq, logits) in enumerate(chunk):
                b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, logits
                b.seq_id[i][0] = seq
            if self.lc.llama_decode(self.ctx, b) != 0:
                raise RuntimeError("llama_decode failed")
            last = [i for i, item in enumerate(chunk) if item[3]]
            rows += [self._argmax(i) for i in last]
        return rows

    def _argmax(self, row: int) -> int:
        ptr = self.lc.llama_get_logits_ith(self.ctx, row)
        return int(np.ctypeslib.as_array(ptr, shape=(self.vocab,)).argmax())

    def generate(self, prompts: list[list[int]], tokens: int) -> float:
        """Greedy, `tokens` per prompt, all prompts as one batch; returns seconds."""
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.ctx), True)
        start = time.perf_counter()
        items = [
            (t, pos, seq, pos == len(p) - 1)
            for seq, p in enumerate(prompts)
            for pos, t in enumerate(p)
        ]
        nxt = self._decode(items)
        for step in range(tokens - 1):
            items = [(t, len(p) + step, seq, True) for seq, (t, p) in enumerate(zip(nxt, prompts))]
            nxt = self._decode(items)
        return time.perf_counter() - start
