"""Between the wire (npc_runtime.v1 messages) and the runtime's own types, validating on
the way in: every problem becomes INVALID_ARGUMENT with a message that says what to fix."""

from __future__ import annotations

import json
import math
import re

from google.protobuf.timestamp_pb2 import Timestamp

from ..engine.api import Action, EngineError, SamplingParams
from ..neeko.cast import KIND_BLOCK, Npc
from ..neeko.config import TrainConfig
from ..neeko.data import DataError, Sample, sample_from_dict
from ..neeko.lore import LoreBook
from ..neeko.names import name_problem
from ..neeko.profile import NpcProfile, ProfileError, profile_from_dict, validate_id
from ..sessions import PLAYER, SessionSummary, StoredTurn
from ..v1 import npc_runtime_pb2 as pb
from .errors import invalid

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
DEFAULT_SPEAKER = "Player"
MAX_RECORD_TURNS = 64  # context turns per training record


def checked_id(value: str, what: str) -> str:
    try:
        return validate_id(value, what)
    except ProfileError as exc:
        raise invalid(str(exc)) from None


def player_text(text: str, limit_bytes: int) -> str:
    size = len(text.encode("utf-8"))
    if size > limit_bytes:
        raise invalid(f"text is {size} bytes of UTF-8; the limit is {limit_bytes}")
    if _CONTROL.search(text):
        raise invalid("text contains control characters (only tab and line breaks are allowed)")
    text = text.strip()
    if not text:
        raise invalid("text is empty: send the player's line")
    return text


def speaker_name(request: pb.SpeakRequest) -> str:
    if not request.HasField("speaker_name"):
        return DEFAULT_SPEAKER
    name = request.speaker_name.strip()
    if not 1 <= len(name) <= 64:
        raise invalid(f"speaker_name must be 1-64 characters, got {len(name)}")
    problem = name_problem(name)
    if problem:
        raise invalid(f"speaker_name {problem}")
    return name


def sampling(options: pb.Sampling, max_tokens_limit: int) -> SamplingParams:
    defaults = SamplingParams()
    params = SamplingParams(
        max_tokens=options.max_tokens if options.HasField("max_tokens") else defaults.max_tokens,
        temperature=(
            options.temperature if options.HasField("temperature") else defaults.temperature
        ),
        top_p=options.top_p if options.HasField("top_p") else defaults.top_p,
        top_k=options.top_k if options.HasField("top_k") else defaults.top_k,
        repetition_penalty=(
            options.repetition_penalty
            if options.HasField("repetition_penalty")
            else defaults.repetition_penalty
        ),
        stop=tuple(options.stop),
        seed=options.seed if options.HasField("seed") else None,
    )
    try:
        params.validate(max_tokens_limit)
    except EngineError as exc:
        raise invalid(f"sampling: {exc}") from None
    return params


def reply_shape(request: pb.SpeakRequest | pb.ReactRequest) -> dict:
    """The request's actions, action choice and response schema, as GenerationRequest's
    fields (checked by the engine, which knows the grammar compiler)."""
    actions = tuple(
        Action(a.name, a.description, a.parameters_json_schema) for a in request.actions
    )
    return {
        "actions": actions,
        "action_choice": request.action_choice or "auto",
        "response_schema": request.response_json_schema,
    }


def profile(message: pb.NpcProfile) -> NpcProfile:
    data = {
        "id": message.id,
        "name": message.name,
        "profile": message.profile,
        "style": message.style,
        "greeting": message.greeting,
        "examples": list(message.examples),
    }
    if message.actions:
        data["actions"] = [_profile_action(a) for a in message.actions]
    try:
        return profile_from_dict(data)
    except ProfileError as exc:
        raise invalid(f"profile: {exc}") from None


def _profile_action(spec: pb.ActionSpec) -> dict:
    action = {"name": spec.name, "description": spec.description}
    if spec.parameters_json_schema:
        try:
            action["parameters"] = json.loads(spec.parameters_json_schema)
        except (ValueError, RecursionError):
            raise invalid(
                f"profile: the parameters of action {spec.name[:64]!r} are not JSON"
            ) from None
    return action


def samples(npc_id: str, records, limit: int, max_line_bytes: int) -> list[Sample]:
    """Training records, each line (context and reply) within max_line_bytes, like a
    player's line: training prepares every record, so their size is the work."""
    if not records:
        raise invalid("records is empty: expansion needs at least one dialogue record")
    if len(records) > limit:
        raise invalid(f"{len(records)} records; the limit is {limit}")
    out = []
    for number, record in enumerate(records, 1):
        if len(record.context) > MAX_RECORD_TURNS:
            raise invalid(
                f"records[{number - 1}] has {len(record.context)} context turns; the limit "
                f"is {MAX_RECORD_TURNS}"
            )
        lines = [
            record.reply,
            *(t.text for t in record.context),
            *(t.speaker for t in record.context),
        ]
        size = max(len(line.encode("utf-8")) for line in lines)
        if size > max_line_bytes:
            raise invalid(
                f"records[{number - 1}] has a line of {size} bytes of UTF-8; the limit is "
                f"{max_line_bytes} (--max-text-bytes)"
            )
        data = {
            "character": npc_id,
            "context": [{"speaker": line.speaker, "text": line.text} for line in record.context],
            "reply": record.reply,
        }
        try:
            out.append(sample_from_dict(data))
        except DataError as exc:
            raise invalid(f"records[{number - 1}]: {exc}") from None
    return out


_TRAIN_RANGES = {
    "epochs": (1e-3, 100.0),
    "learning_rate": (1e-7, 0.1),
    "batch_size": (1, 64),
    "block_batch_size": (1, 64),
    "max_length": (32, 4096),
    "max_context_turns": (0, 64),
}


def train_config(options: pb.TrainingOptions) -> TrainConfig:
    values: dict = {}
    for name, (low, high) in _TRAIN_RANGES.items():
        if options.HasField(name):
            value = getattr(options, name)
            if not (math.isfinite(value) and low <= value <= high):
                raise invalid(f"training.{name} must be in [{low:g}, {high:g}], got {value}")
            values[name] = value
    if options.HasField("seed"):
        values["seed"] = options.seed
    return TrainConfig(**values)


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def npc_message(npc: Npc, lore: LoreBook | None = None) -> pb.Npc:
    p = npc.profile
    known = lore.sources(p.id) if lore is not None else {}
    return pb.Npc(
        profile=pb.NpcProfile(
            id=p.id,
            name=p.name,
            profile=p.profile,
            style=p.style,
            greeting=p.greeting,
            examples=p.examples,
            actions=[
                pb.ActionSpec(
                    name=a["name"],
                    description=a.get("description", ""),
                    parameters_json_schema=json.dumps(a["parameters"]) if "parameters" in a else "",
                )
                for a in p.actions
            ],
        ),
        kind=pb.NPC_KIND_BLOCK if npc.kind == KIND_BLOCK else pb.NPC_KIND_FUSED,
        blend=[
            pb.BlendEntry(block_id=b, weight=w)
            for b, w in sorted(npc.blend.items(), key=lambda item: -item[1])
        ],
        lore=[pb.LoreSource(path=path, passages=n) for path, n in known.items()],
    )


def turn_message(turn: StoredTurn) -> pb.Turn:
    return pb.Turn(
        seq=turn.seq,
        speaker_kind=pb.SPEAKER_KIND_PLAYER if turn.speaker_kind == PLAYER else pb.SPEAKER_KIND_NPC,
        npc_id=turn.npc_id,
        speaker_name=turn.speaker_name,
        text=turn.text,
        created_at=timestamp(turn.created_at),
        request_id=turn.request_id,
        actions=[
            pb.NpcAction(index=i, name=a["name"], arguments_json=json.dumps(a["arguments"]))
            for i, a in enumerate(json.loads(turn.actions) if turn.actions else ())
        ],
    )


def summary_message(summary: SessionSummary) -> pb.SessionSummary:
    return pb.SessionSummary(
        id=summary.id,
        turn_count=summary.turn_count,
        npc_ids=summary.npc_ids,
        created_at=timestamp(summary.created_at),
        updated_at=timestamp(summary.updated_at),
    )
