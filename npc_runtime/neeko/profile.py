"""NPC profiles: what a designer writes, validated before it reaches the model or the disk."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .names import name_problem

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
MAX_PROFILE_CHARS = 8192
_TEXT_FIELDS = {"name": 128, "profile": MAX_PROFILE_CHARS, "style": 1024, "greeting": 1024}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class ProfileError(ValueError):
    """A profile or id that cannot be accepted; the message says what to fix."""


def _shown(value: object, limit: int = 80) -> str:
    """A value for an error message: its repr, cut short (an id may be megabytes long, and
    the repr of an int of thousands of digits raises ValueError)."""
    if isinstance(value, str):
        text = repr(value[: limit + 1])
    elif (
        value is None
        or isinstance(value, bool | float)
        or (isinstance(value, int) and abs(value) < 10**limit)
    ):
        text = repr(value)
    else:
        return f"(a {type(value).__name__})"
    return text if len(text) <= limit else text[:limit] + "..."


def validate_id(value: object, what: str = "id") -> str:
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise ProfileError(
            f"invalid {what} {_shown(value)}: use 1-64 letters, digits, '_' or '-', "
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
    # What the NPC may do in any reply, beside what a call declares: [{"name",
    # "description", "parameters" (a JSON Schema object)}]; checked in full by the engine.
    actions: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        if not self.actions:
            del out["actions"]  # casts without actions keep the manifest they had
        return out

    def role_text(self) -> str:
        """The text the role encoder embeds to place this NPC among the blocks."""
        parts = [f"{self.name}. {self.profile}"]
        if self.style:
            parts.append(self.style)
        return " ".join(parts)


def is_unicode(text: str) -> bool:
    """Whether `text` encodes as UTF-8: a Python str can hold a lone surrogate (from a JSON
    escape such as "\\ud800"), which no frame, prompt or database can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_chars(key: str, value: str) -> None:
    if _CONTROL.search(value):
        raise ProfileError(f"'{key}' contains control characters")
    if not is_unicode(value):
        raise ProfileError(f"'{key}' is not valid Unicode (an unpaired surrogate)")


def _clean_text(data: dict, key: str, limit: int, required: bool) -> str:
    value = data.get(key, "")
    if not isinstance(value, str):
        raise ProfileError(f"'{key}' must be a string, got {type(value).__name__}")
    value = value.strip()
    if required and not value:
        raise ProfileError(f"'{key}' is required and must not be empty")
    if len(value) > limit:
        raise ProfileError(f"'{key}' is {len(value)} characters long; the limit is {limit}")
    _check_chars(key, value)
    return value


def profile_from_dict(data: object) -> NpcProfile:
    """A validated profile: every text stripped, within its limit, free of control
    characters; raises ProfileError (and nothing else) for anything else."""
    if not isinstance(data, dict):
        raise ProfileError("a profile must be a table/object with id, name and profile")
    unknown = set(data) - {"id", "examples", "actions", *_TEXT_FIELDS}
    if unknown:
        names = sorted(k if isinstance(k, str) and len(k) <= 64 else _shown(k) for k in unknown)
        raise ProfileError(f"unknown profile fields: {', '.join(names)}")
    npc_id = validate_id(data.get("id"), "NPC id")
    texts = {k: _clean_text(data, k, n, k in ("name", "profile")) for k, n in _TEXT_FIELDS.items()}
    problem = name_problem(texts["name"])
    if problem:
        raise ProfileError(f"'name' {problem}")
    examples = data.get("examples", [])
    if not isinstance(examples, list) or not all(isinstance(e, str) for e in examples):
        raise ProfileError("'examples' must be a list of strings")
    if len(examples) > 16 or any(len(e) > 1024 for e in examples):
        raise ProfileError("'examples' allows at most 16 lines of at most 1024 characters")
    examples = [e.strip() for e in examples if e.strip()]
    for line in examples:  # they go into the system prompt like the other texts
        _check_chars("examples", line)
    return NpcProfile(id=npc_id, examples=examples, actions=_actions(data), **texts)


MAX_PROFILE_ACTIONS = 16


def _actions(data: dict) -> list[dict]:
    """The profile's actions, in shape; names and schemas are the engine's to judge."""
    actions = data.get("actions", [])
    if not isinstance(actions, list) or len(actions) > MAX_PROFILE_ACTIONS:
        raise ProfileError(f"'actions' must be a list of at most {MAX_PROFILE_ACTIONS} actions")
    out = []
    for action in actions:
        if not isinstance(action, dict) or set(action) - {"name", "description", "parameters"}:
            raise ProfileError("each action is a table of name, description and parameters")
        name, description = action.get("name"), action.get("description", "")
        parameters = action.get("parameters", {})
        if not isinstance(name, str) or not isinstance(description, str):
            raise ProfileError("an action's name and description must be strings")
        if not isinstance(parameters, dict):
            raise ProfileError(f"the parameters of action {name[:64]!r} must be a schema object")
        _check_chars("actions", description)
        entry = {"name": name, "description": description.strip()}
        out.append(entry | ({"parameters": parameters} if parameters else {}))
    return out


def load_profile(path: str | Path) -> NpcProfile:
    """Read a profile from a .toml or .json file."""
    path = Path(path)
    if path.suffix not in (".toml", ".json"):
        raise ProfileError(f"{path}: profile files must end in .toml or .json")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read profile {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError, TOMLDecodeError and JSONDecodeError are ValueErrors, and so
        # is an integer of more than 4300 digits; nesting thousands deep is a RecursionError.
        raise ProfileError(f"{path}: not valid {path.suffix[1:].upper()}: {exc}") from None
    try:
        return profile_from_dict(data)
    except ProfileError as exc:
        raise ProfileError(f"{path}: {exc}") from None
