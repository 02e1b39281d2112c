"""Reading dialogue data: train/dev/test JSONL plus profiles.jsonl in one folder."""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .profile import NpcProfile, ProfileError, profile_from_dict
from .prompt import Turn

log = logging.getLogger(__name__)


class DataError(ValueError):
    """A data folder or record that cannot be used; the message names file and line."""


@dataclass(frozen=True)
class Sample:
    character: str
    context: tuple[Turn, ...]
    reply: str


def sample_from_dict(record: object) -> Sample:
    if not isinstance(record, dict):
        raise DataError("a record must be an object")
    character, reply = record.get("character"), record.get("reply")
    if not isinstance(character, str) or not character:
        raise DataError("'character' must be a non-empty string")
    if not isinstance(reply, str) or not reply.strip():
        raise DataError("'reply' must be a non-empty string")
    context = record.get("context", [])
    if not isinstance(context, list):
        raise DataError("'context' must be a list of {speaker, text}")
    turns = []
    for turn in context:
        if not (
            isinstance(turn, dict)
            and isinstance(turn.get("speaker"), str)
            and isinstance(turn.get("text"), str)
        ):
            raise DataError("each context turn needs string 'speaker' and 'text'")
        turns.append(Turn(turn["speaker"], turn["text"]))
    return Sample(character, tuple(turns), reply.strip())


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid JSON: {exc.msg}") from None
    return rows


def read_samples(folder: str | Path, split: str = "train") -> dict[str, list[Sample]]:
    """Samples of one split, grouped by character (in order of first appearance)."""
    path = Path(folder) / f"{split}.jsonl"
    if not path.exists():
        raise DataError(f"{path} not found")
    grouped: dict[str, list[Sample]] = defaultdict(list)
    skipped = 0
    for number, row in enumerate(read_jsonl(path), 1):
        if isinstance(row, dict) and isinstance(row.get("reply"), str) and not row["reply"].strip():
            skipped += 1  # nothing to learn or score; real transcripts have a few
            continue
        try:
            sample = sample_from_dict(row)
        except DataError as exc:
            raise DataError(f"{path}: record {number}: {exc}") from None
        grouped[sample.character].append(sample)
    if skipped:
        log.warning("%s: skipped %d record(s) with an empty reply", path, skipped)
    return dict(grouped)


def read_profiles(folder: str | Path) -> dict[str, NpcProfile]:
    path = Path(folder) / "profiles.jsonl"
    if not path.exists():
        raise DataError(f"{path} not found: every character needs a profile")
    profiles = {}
    for number, row in enumerate(read_jsonl(path), 1):
        if isinstance(row, dict) and "character" in row:
            row = {"id": row["character"], **{k: v for k, v in row.items() if k != "character"}}
        try:
            profile = profile_from_dict(row)
        except ProfileError as exc:
            raise DataError(f"{path}: record {number}: {exc}") from None
        profiles[profile.id] = profile
    return profiles
