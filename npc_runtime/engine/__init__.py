"""Inference: continuous batching across NPCs, KV-cache reuse, sampling, streaming."""

from .api import (
    EngineConfig,
    EngineError,
    EngineStats,
    FinalResult,
    GenerationRequest,
    SamplingParams,
    TokenDelta,
    Voice,
)
from .engine import Engine

__all__ = [
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineStats",
    "FinalResult",
    "GenerationRequest",
    "SamplingParams",
    "TokenDelta",
    "Voice",
]
