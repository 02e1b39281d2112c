"""A cast: one base model, its blocks, and the NPCs that speak through them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base_model import BaseModel
from .config import GateConfig, LoraConfig
from .encoder import RoleEncoder, shared_encoder
from .gate import gate_blend
from .layer import Routing
from .model import NeekoModel
from .names import same_name
from .profile import NpcProfile, ProfileError
from .prompt import PromptEncoder

KIND_BLOCK = "block"
KIND_FUSED = "fused"
# The house block's id: not a valid NPC id (those start with a letter or digit), so no
# NPC or character block can ever take it.
HOUSE = "_house"


class CastError(RuntimeError):
    """A cast that cannot be loaded, saved or changed; the message says which file and why."""


@dataclass
class Npc:
    profile: NpcProfile
    kind: str
    blend: dict[str, float]
    role_embedding: np.ndarray

    @property
    def id(self) -> str:
        return self.profile.id

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass
class Block:
    id: str
    role_embedding: np.ndarray
    file: str | None = None  # relative path of the saved tensors, once saved
    sha256: str | None = None


class Cast:
    def __init__(
        self,
        base: BaseModel,
        lora: LoraConfig,
        gate: GateConfig,
        encoder_path: str | None = None,
        storage_dtype: str = "float32",
        path: Path | None = None,
    ):
        self.base = base
        self.neeko = NeekoModel(base.model, lora)
        self.gate = gate
        self.encoder_path = encoder_path
        self.storage_dtype = storage_dtype
        self.path = path
        self.fingerprint = base.fingerprint
        self.blocks: dict[str, Block] = {}  # the characters' blocks, which the gate blends
        self.house: Block | None = None  # the block every NPC speaks through, if any
        self.npcs: dict[str, Npc] = {}
        self.prompts = PromptEncoder(base.tokenizer)

    # -- the contract API -----------------------------------------------------
    @property
    def model(self):
        return self.neeko.model

    @property
    def tokenizer(self):
        return self.base.tokenizer

    @property
    def lora(self) -> LoraConfig:
        return self.neeko.config

    def npc_ids(self) -> list[str]:
        return list(self.npcs)

    def npc(self, npc_id: str) -> Npc:
        try:
            return self.npcs[npc_id]
        except KeyError:
            raise KeyError(f"no NPC {npc_id!r} in this cast") from None

    def routing(self, npc_ids: Sequence[str]) -> Routing:
        """Per-row routing: row i speaks as npc_ids[i] (one id applies to every row)."""
        return self.neeko.routing([self.npc(i).blend for i in npc_ids])

    @contextmanager
    def speaking(self, npc_id: str | Sequence[str]) -> Iterator[None]:
        ids = [npc_id] if isinstance(npc_id, str) else list(npc_id)
        with self.neeko.routed(self.routing(ids)):
            yield

    # -- role space -------------------------------------------------------------
    @property
    def encoder(self) -> RoleEncoder:
        return shared_encoder(self.encoder_path)

    def embed_profile(self, profile: NpcProfile) -> np.ndarray:
        return self.encoder.encode([profile.role_text()])[0]

    def blend_for(self, query: np.ndarray) -> dict[str, float]:
        """A fused NPC's blend: the gate's blend of character blocks, and the house."""
        roles = {b.id: b.role_embedding for b in self.blocks.values()}
        return self._with_house(gate_blend(query, roles, self.gate))

    def block_blend(self, block_id: str) -> dict[str, float]:
        """A block NPC's blend: its own block, and the house."""
        return self._with_house({block_id: 1.0})

    def _with_house(self, blend: dict[str, float]) -> dict[str, float]:
        return {**blend, HOUSE: 1.0} if self.house is not None else blend

    def add_house(self) -> Block:
        """Give a new cast its house block: a shared block that every NPC activates at
        weight 1 beside its own blend, trained on every character before their blocks
        (the domain: the world's idiom, the chat format), then frozen, so that character
        blocks learn only what sets each character apart. Only before the first NPC: an
        NPC's voice never changes under it."""
        if self.house is not None:
            raise CastError("this cast has a house block already")
        if self.npcs or self.blocks:
            raise CastError("a house block is added to a new cast, before any NPC")
        self.neeko.add_block(HOUSE)
        self.house = Block(HOUSE, np.zeros(0, dtype=np.float32))
        return self.house

    # -- changing the cast ------------------------------------------------------
    def _check_new_id(self, profile: NpcProfile) -> None:
        if profile.id in self.npcs or profile.id in self.blocks:
            raise ProfileError(f"an NPC or block with id {profile.id!r} exists already")
        twin = self.namesake(profile)
        if twin is not None:
            raise ProfileError(
                f"NPC {twin.id!r} is named {twin.name!r} already: names must differ, or one "
                "NPC's lines read as the other's in every prompt"
            )

    def namesake(self, profile: NpcProfile) -> Npc | None:
        """An NPC of the cast whose name (or id) reads the same as the profile's name."""
        for npc in self.npcs.values():
            if same_name(profile.name, npc.name) or same_name(profile.name, npc.id):
                return npc
        return None

    def add_block_npc(self, profile: NpcProfile, role_embedding: np.ndarray | None = None) -> Npc:
        """A new block (fresh, untrained) and the NPC that speaks through it alone."""
        self._check_new_id(profile)
        emb = self.embed_profile(profile) if role_embedding is None else role_embedding
        self.neeko.add_block(profile.id)
        self.blocks[profile.id] = Block(profile.id, np.asarray(emb, dtype=np.float32))
        role = self.blocks[profile.id].role_embedding
        npc = Npc(profile, KIND_BLOCK, self.block_blend(profile.id), role)
        self.npcs[profile.id] = npc
        return npc

    def fuse(self, profile: NpcProfile) -> Npc:
        """Register an NPC from its profile alone, as the gate's blend of existing blocks."""
        self._check_new_id(profile)
        if not self.blocks:
            raise CastError("fusion needs at least one trained block in the cast")
        emb = self.embed_profile(profile)
        npc = Npc(profile, KIND_FUSED, self.blend_for(emb), emb)
        self.npcs[profile.id] = npc
        return npc

    def check_removable(self, npc_id: str) -> Npc:
        """The NPC, if removing it leaves no fused NPC blending a block that is gone."""
        npc = self.npc(npc_id)
        if npc.kind == KIND_BLOCK:
            users = [n.id for n in self.npcs.values() if n.id != npc_id and npc_id in n.blend]
            if users:
                raise CastError(
                    f"block {npc_id!r} is part of the blend of {', '.join(users)}: "
                    "remove those NPCs first"
                )
        return npc

    def remove_npc(self, npc_id: str) -> Npc:
        """Remove an NPC; a block NPC takes its block along unless fused NPCs use it."""
        npc = self.check_removable(npc_id)
        if npc.kind == KIND_BLOCK:
            self.neeko.remove_block(npc_id)
            del self.blocks[npc_id]
        del self.npcs[npc_id]
        return npc

    def save(self, path: str | Path | None = None) -> Path:
        from .store import save_cast

        target = Path(path) if path is not None else self.path
        if target is None:
            raise CastError("this cast has no folder yet: give a path to save it to")
        save_cast(self, target)
        self.path = target
        return target
