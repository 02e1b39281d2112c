"""A Hugging Face checkpoint read one tensor at a time, for loading a model straight into
int8/int4.

transformers loads every float weight before anything can be quantised, so a 1.5B model
in bfloat16 peaked near 6 GB while loading (the file mapped into memory, plus the weights'
copies) to end at 1.5 GB of int8. Here the model is built with its parameters on the meta
device (no memory), and each weight is read from the safetensors file with ordinary file
reads (the page cache is not the process's memory), quantised and dropped before the next.
"""

from __future__ import annotations

import contextlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

DTYPES = {
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F32": torch.float32,
    "F64": torch.float64,
}
INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class Checkpoint:
    """The float tensors of a folder's safetensors files (one file, or shards and their
    index), by name, read on demand."""

    def __init__(self, folder: Path):
        folder = Path(folder)
        if (folder / INDEX).is_file():
            weight_map = json.loads((folder / INDEX).read_text())["weight_map"]
            files = sorted({folder / f for f in weight_map.values()})
        elif (folder / SINGLE).is_file():
            files = [folder / SINGLE]
        else:
            raise FileNotFoundError(f"no safetensors checkpoint in {folder}")
        self._entries: dict[str, tuple[Path, int, torch.dtype, list[int]]] = {}
        for file in files:
            with file.open("rb") as f:
                (size,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(size))
            for name, entry in header.items():
                if name == "__metadata__" or entry["dtype"] not in DTYPES:
                    continue
                start, _ = entry["data_offsets"]
                self._entries[name] = (
                    file,
                    8 + size + start,
                    DTYPES[entry["dtype"]],
                    entry["shape"],
                )

    def names(self) -> set[str]:
        return set(self._entries)

    def __getitem__(self, name: str) -> torch.Tensor:
        file, offset, dtype, shape = self._entries[name]
        count = 1
        for n in shape:
            count *= n
        tensor = torch.empty(count, dtype=dtype)
        with file.open("rb") as f:
            f.seek(offset)
            view = memoryview(tensor.view(torch.uint8).numpy())
            if f.readinto(view) != len(view):
                raise OSError(f"{file} is truncated: {name} does not fit")
        return tensor.reshape(shape)


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Modules built inside hold their parameters on the meta device (no memory, nothing
    initialised) and their buffers (rotary frequencies, made from the config) for real."""
    register = nn.Module.register_parameter

    def on_meta(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        if param is not None and param.device.type != "meta":
            param = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        register(module, name, param)

    nn.Module.register_parameter = on_meta
    try:
        yield
    finally:
        nn.Module.register_parameter = register


def skeleton(folder: Path) -> nn.Module:
    """The folder's model with every parameter on the meta device, to be filled in."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    with parameters_on_meta():
        return AutoModelForCausalLM.from_config(config)
