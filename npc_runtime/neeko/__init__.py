"""The Neeko method: dynamic LoRA blocks per character, a gate, fusion and expansion."""

from .cast import Cast, CastError, Npc
from .config import GateConfig, LoraConfig
from .profile import NpcProfile, ProfileError, load_profile
from .store import load_cast

__all__ = [
    "Cast",
    "CastError",
    "GateConfig",
    "LoraConfig",
    "Npc",
    "NpcProfile",
    "ProfileError",
    "load_cast",
    "load_profile",
]
