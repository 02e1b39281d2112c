"""The shape of a cast's LoRA (shared by every block, fixed when the cast is created), its
gate, and how blocks train: plain settings, no torch, so the command line reads its
defaults from here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

# The attention projections: q, k and v apart (Llama and most families) or fused (Phi-3).
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "qkv_proj", "o_proj")


@dataclass(frozen=True)
class LoraConfig:
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank must be at least 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ValueError("target_modules must name at least one module")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def to_json(self) -> dict:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        return data

    @classmethod
    def from_json(cls, data: dict) -> LoraConfig:
        return cls(
            rank=int(data["rank"]),
            alpha=float(data["alpha"]),
            dropout=float(data.get("dropout", 0.0)),
            target_modules=tuple(data["target_modules"]),
        )


@dataclass(frozen=True)
class GateConfig:
    """How a query embedding becomes a blend of blocks.

    temperature 0.05 on cosine similarities: MiniLM profile embeddings of different
    characters sit 0.05-0.3 apart, so a 0.1 gap gives the nearer block e^2 ~ 7x the
    weight: a blend led by the closest characters, not a flat average. top_k 3 keeps the
    blend small (decode cost grows with the number of active blocks) while still mixing.
    """

    temperature: float = 0.05
    top_k: int = 3

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"gate temperature must be positive, got {self.temperature}")
        if self.top_k < 1:
            raise ValueError(f"gate top_k must be at least 1, got {self.top_k}")


@dataclass(frozen=True)
class TrainConfig:
    """How `train_blocks` trains: the defaults of `npc-runtime train`, `expand` and the
    daemon's training requests alike."""

    epochs: float = 2.0
    learning_rate: float = 1e-3  # village, house cast: dev ppl 27.02 vs 27.85 at 5e-4
    batch_size: int = 8  # rows per forward pass, of any characters
    block_batch_size: int = 1  # rows of one character per update of its block (<= batch_size)
    weight_decay: float = 0.01
    max_length: int = 384
    max_context_turns: int = 4
    max_samples_per_character: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError("epochs, batch size and learning rate must be positive")
        if self.block_batch_size < 1:
            raise ValueError("block batch size must be positive")

    @property
    def rows_per_update(self) -> int:
        return min(self.block_batch_size, self.batch_size)
