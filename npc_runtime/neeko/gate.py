"""The gate: a query embedding -> a blend of blocks, softmax(E.e / tau) cut to top-k."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .config import GateConfig


def gate_blend(
    query: np.ndarray, roles: Mapping[str, np.ndarray], config: GateConfig
) -> dict[str, float]:
    """Blend weights over the top-k blocks, renormalised to sum to 1 (descending)."""
    if not roles:
        raise ValueError("the cast has no blocks to blend")
    ids = list(roles)
    matrix = np.stack([np.asarray(roles[i], dtype=np.float64) for i in ids])
    q = np.asarray(query, dtype=np.float64)
    logits = matrix @ q / config.temperature
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    top = np.argsort(-probs, kind="stable")[: config.top_k]
    kept = probs[top] / probs[top].sum()
    return {ids[i]: float(w) for i, w in zip(top, kept)}
