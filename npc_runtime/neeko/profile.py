"""NPC profiles: what a designer writes, validated before it reaches the model or the disk."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_PROFILE_CHARS = 8192
_TEXT_FIELDS = {"name": 128, "profile": MAX_PROFILE_CHARS, "style": 1024, "greeting": 1024}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ProfileError(ValueError):
    """A profile or id that cannot be accepted; the message says what to fix."""


def validate_id(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ProfileError(
            f"invalid {what} {value!r}: use 1-64 letters, digits, '_' or '-', "
            "starting with a letter or digit"
        )
    return value


@dataclass
class NpcProfile:
    id: str
    name: str
    profile: str
    style: str = ""
    greeting: str = ""
    examples: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)

    def role_text(self) -> str:
        """The text the role encoder embeds to place this NPC among the blocks."""
        parts = [f"{self.name}. {self.profile}"]
        if self.style:
            parts.append(self.style)
        return " ".join(parts)


def _clean_text(data: dict, key: str, limit: int, required: bool) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ProfileError(f"'{key}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise ProfileError(f"'{key}' is required and must not be empty")
    if len(value) > limit:
        raise ProfileError(f"'{key}' is {len(value)} characters long; the limit is {limit}")
    if _CONTROL.search(value):
        raise ProfileError(f"'{key}' contains control characters")
    return value


def profile_from_dict(data: object) -> NpcProfile:
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a table/object with id, name and profile")
    unknown = set(data) - {"id", "examples", *_TEXT_FIELDS}
    if unknown:
        raise ProfileError(f"unknown profile fields: {', '.join(sorted(unknown))}")
    npc_id = validate_id(data.get("id"), "NPC id")
    texts = {k: _clean_text(data, k, n, k in ("name", "profile")) for k, n in _TEXT_FIELDS.items()}
    examples = data.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise ProfileError("'examples' must be a list of strings")
    if len(examples) > 16 or any(len(e) > 1024 for e in examples):
        raise ProfileError("'examples' allows at most 16 lines of at most 1024 characters")
    return NpcProfile(id=npc_id, examples=[e.strip() for e in examples if e.strip()], **texts)


def load_profile(path: str | Path) -> NpcProfile:
    """Read a profile from a .toml or .json file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif path.suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            raise ProfileError(f"{path}: profile files must end in .toml or .json")
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ProfileError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    try:
        return profile_from_dict(data)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
