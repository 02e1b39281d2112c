"""npc-runtime: every NPC its own voice, from one small local language model."""

from .neeko import Cast, load_cast

__all__ = ["Cast", "load_cast"]
__version__ = "0.1.0"
