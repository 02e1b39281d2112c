"""What the engine takes and gives: the contract between the engine and the daemon.

The daemon (gRPC service, engine bridge) only ever sees these types; batching, caching
and sampling stay behind them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..neeko.profile import NpcProfile
from ..neeko.prompt import Turn

FinishReason = Literal["stop", "length", "cancelled", "error"]


class EngineError(RuntimeError):
    """A request the engine cannot serve; `code` is a gRPC status name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 128
    temperature: float = 0.8  # 0 means greedy
    top_p: float = 0.95
    top_k: int = 0  # 0 means no top-k cut
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    min_tokens: int = 0  # no end-of-turn token before this many (stop strings still stop)

    def validate(self, max_tokens_limit: int = 4096) -> None:
        """Raise EngineError('INVALID_ARGUMENT', what to fix) for out-of-range values."""
        problems = []
        if not 1 <= self.max_tokens <= max_tokens_limit:
            problems.append(f"max_tokens must be in 1..{max_tokens_limit}")
        if not (math.isfinite(self.temperature) and 0.0 <= self.temperature <= 5.0):
            problems.append("temperature must be a finite number in [0, 5]")
        if not (math.isfinite(self.top_p) and 0.0 < self.top_p <= 1.0):
            problems.append("top_p must be in (0, 1]")
        if not 0 <= self.top_k <= 100_000:
            problems.append("top_k must be in 0..100000")
        if not (math.isfinite(self.repetition_penalty) and 0.5 <= self.repetition_penalty <= 2):
            problems.append("repetition_penalty must be in [0.5, 2]")
        if len(self.stop) > 8 or any(not s or len(s) > 64 for s in self.stop):
            problems.append("stop allows at most 8 non-empty strings of at most 64 characters")
        if not 0 <= self.min_tokens <= self.max_tokens:
            problems.append("min_tokens must be in 0..max_tokens")
        if self.seed is not None and not 0 <= self.seed < 2**63:
            problems.append("seed must be in 0..2^63-1")
        if problems:
            raise EngineError("INVALID_ARGUMENT", "; ".join(problems))


@dataclass(frozen=True)
class Action:
    """Something an NPC may do: `parameters` is a JSON Schema (text) of its arguments,
    an object; empty for an action without arguments."""

    name: str
    description: str = ""
    parameters: str = ""


@dataclass(frozen=True)
class ActionCall:
    """An action a reply carries: its name and its arguments (JSON text, valid against
    the action's schema)."""

    name: str
    arguments: str


@dataclass(frozen=True)
class Voice:
    """Who speaks: a profile (the system prompt) and a blend of the cast's blocks (block id
    -> gate weight; empty: the base model alone)."""

    profile: NpcProfile
    blend: Mapping[str, float]


@dataclass(frozen=True)
class GenerationRequest:
    """One reply of one NPC to a scene.

    `turns` is the conversation so far (the player's line last); the engine builds the
    prompt with the NPC's profile as system prompt, dropping the oldest turns first,
    HISTORY_CHUNK at a time, when the prompt would not fit the model's context (the profile
    and the last turn never leave). `voice`, when
    given, speaks instead of the cast's NPC `npc_id` (evaluation: a profile without LoRA, a
    block of another character); npc_id is then only a name.

    `actions` the reply may carry after its speech (see engine/actions.py), as
    `action_choice` says: 'auto' (or ''), 'none', 'required' (at least one) or an action's
    name (that one). `response_schema` (JSON Schema text) makes the whole reply one JSON
    value instead of speech; it takes no actions and no stop strings. `notes` (what the
    NPC remembers and knows beyond the turns: see server/memory.py) go before the latest
    lines.
    """

    request_id: str
    npc_id: str
    turns: tuple[Turn, ...]
    sampling: SamplingParams = field(default_factory=SamplingParams)
    voice: Voice | None = None
    actions: tuple[Action, ...] = ()
    action_choice: str = "auto"
    response_schema: str = ""
    notes: str = ""


@dataclass(frozen=True)
class TokenDelta:
    """New text of a reply (may be empty when a token completes no printable character)."""

    request_id: str
    text: str
    token_ids: tuple[int, ...]


@dataclass(frozen=True)
class FinalResult:
    request_id: str
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    time_to_first_token_s: float | None
    total_time_s: float
    actions: tuple[ActionCall, ...] = ()  # complete and valid calls only


@dataclass(frozen=True)
class EngineStats:
    active: int
    queued: int
    cache_bytes: int
    cache_budget_bytes: int
    cache_hits: int
    cache_misses: int
    steps: int
    slots_free: int = 0  # key/value cache slots no request holds (max_active when idle)
    in_flight: int = 0  # submitted requests whose stream has not ended


@dataclass(frozen=True)
class EngineConfig:
    """How much the engine takes on at once and how it spends a decode step.

    step_tokens bounds the tokens of one forward while replies are streaming (each
    stream's next token plus a chunk of new prompts), so a long new prompt delays running
    streams by one such step at a time; with nothing streaming, prompts go in chunks of
    prefill_chunk. cache_budget_bytes is the prefix cache's share of memory (0 turns it
    off). Steps whose matmul work is under light_step_flops compute on one thread, the
    rest on all of torch's threads (see engine/threads.py; 0, the default: always all). A
    reply's tokens reach its stream at most every stream_interval_s seconds, as one delta
    (its first token and its end at once): far below what a player can see, it spares a
    stream the per-event work of every token (0: every step; engine/tickets.py). backend
    'auto' picks the engine's own forward for Llama-family models and plain transformers
    for any other architecture. kernel names the CPU matmul kernel; one that cannot run
    here is replaced by one that can (logged), never a crash.
    """

    max_active: int = 16
    max_queued: int = 64
    max_context: int = 2048
    max_tokens_limit: int = 1024
    step_tokens: int = 128
    prefill_chunk: int = 512
    cache_budget_bytes: int = 512 * 2**20
    light_step_flops: float = 0
    stream_interval_s: float = 0.02
    backend: Literal["auto", "llama", "transformers"] = "auto"
    # The projections' matmul kernel on CPU (see engine/kernels.py): 'auto' takes the
    # fastest that runs on this CPU for the weights' dtype; 'plain' keeps no packed copy.
    kernel: Literal["auto", "onednn", "mkl", "int8", "plain"] = "auto"

    def __post_init__(self) -> None:
        if self.max_active < 1 or self.max_queued < 0:
            raise ValueError("max_active must be at least 1 and max_queued at least 0")
        if self.step_tokens <= self.max_active:
            raise ValueError("step_tokens must exceed max_active (room for prompt chunks)")
        if self.light_step_flops < 0:
            raise ValueError("light_step_flops must be at least 0")
        if not 0 <= self.stream_interval_s <= 1:
            raise ValueError(
                f"the stream interval must be 0 to 1 seconds, not {self.stream_interval_s:g}"
            )
        if self.prefill_chunk < 1 or self.max_context < 16 or self.cache_budget_bytes < 0:
            raise ValueError("prefill_chunk, max_context and cache_budget_bytes out of range")
