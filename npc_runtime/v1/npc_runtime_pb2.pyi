import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FinishReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FINISH_REASON_UNSPECIFIED: _ClassVar[FinishReason]
    FINISH_REASON_STOP: _ClassVar[FinishReason]
    FINISH_REASON_LENGTH: _ClassVar[FinishReason]
    FINISH_REASON_CANCELLED: _ClassVar[FinishReason]

class NpcKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NPC_KIND_UNSPECIFIED: _ClassVar[NpcKind]
    NPC_KIND_BLOCK: _ClassVar[NpcKind]
    NPC_KIND_FUSED: _ClassVar[NpcKind]

class SpeakerKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_KIND_UNSPECIFIED: _ClassVar[SpeakerKind]
    SPEAKER_KIND_PLAYER: _ClassVar[SpeakerKind]
    SPEAKER_KIND_NPC: _ClassVar[SpeakerKind]
FINISH_REASON_UNSPECIFIED: FinishReason
FINISH_REASON_STOP: FinishReason
FINISH_REASON_LENGTH: FinishReason
FINISH_REASON_CANCELLED: FinishReason
NPC_KIND_UNSPECIFIED: NpcKind
NPC_KIND_BLOCK: NpcKind
NPC_KIND_FUSED: NpcKind
SPEAKER_KIND_UNSPECIFIED: SpeakerKind
SPEAKER_KIND_PLAYER: SpeakerKind
SPEAKER_KIND_NPC: SpeakerKind

class Sampling(_message.Message):
    __slots__ = ("max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "stop", "seed")
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    TOP_P_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    REPETITION_PENALTY_FIELD_NUMBER: _ClassVar[int]
    STOP_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    stop: _containers.RepeatedScalarFieldContainer[str]
    seed: int
    def __init__(self, max_tokens: _Optional[int] = ..., temperature: _Optional[float] = ..., top_p: _Optional[float] = ..., top_k: _Optional[int] = ..., repetition_penalty: _Optional[float] = ..., stop: _Optional[_Iterable[str]] = ..., seed: _Optional[int] = ...) -> None: ...

class SpeakRequest(_message.Message):
    __slots__ = ("npc_id", "session_id", "text", "speaker_name", "sampling", "request_id", "actions", "action_choice", "response_json_schema")
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_CHOICE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    session_id: str
    text: str
    speaker_name: str
    sampling: Sampling
    request_id: str
    actions: _containers.RepeatedCompositeFieldContainer[ActionSpec]
    action_choice: str
    response_json_schema: str
    def __init__(self, npc_id: _Optional[str] = ..., session_id: _Optional[str] = ..., text: _Optional[str] = ..., speaker_name: _Optional[str] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., request_id: _Optional[str] = ..., actions: _Optional[_Iterable[_Union[ActionSpec, _Mapping]]] = ..., action_choice: _Optional[str] = ..., response_json_schema: _Optional[str] = ...) -> None: ...

class ActionSpec(_message.Message):
    __slots__ = ("name", "description", "parameters_json_schema")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    parameters_json_schema: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., parameters_json_schema: _Optional[str] = ...) -> None: ...

class NpcAction(_message.Message):
    __slots__ = ("index", "name", "arguments_json")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_JSON_FIELD_NUMBER: _ClassVar[int]
    index: int
    name: str
    arguments_json: str
    def __init__(self, index: _Optional[int] = ..., name: _Optional[str] = ..., arguments_json: _Optional[str] = ...) -> None: ...

class SpeakEvent(_message.Message):
    __slots__ = ("elapsed_seconds", "started", "token", "sentence", "final", "action")
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    elapsed_seconds: float
    started: Started
    token: TokenDelta
    sentence: Sentence
    final: Final
    action: NpcAction
    def __init__(self, elapsed_seconds: _Optional[float] = ..., started: _Optional[_Union[Started, _Mapping]] = ..., token: _Optional[_Union[TokenDelta, _Mapping]] = ..., sentence: _Optional[_Union[Sentence, _Mapping]] = ..., final: _Optional[_Union[Final, _Mapping]] = ..., action: _Optional[_Union[NpcAction, _Mapping]] = ...) -> None: ...

class Started(_message.Message):
    __slots__ = ("request_id", "session_id", "npc_id", "npc_name")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_NAME_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    npc_id: str
    npc_name: str
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., npc_id: _Optional[str] = ..., npc_name: _Optional[str] = ...) -> None: ...

class TokenDelta(_message.Message):
    __slots__ = ("text", "token_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    token_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, text: _Optional[str] = ..., token_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class Sentence(_message.Message):
    __slots__ = ("index", "text")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class Final(_message.Message):
    __slots__ = ("text", "finish_reason", "prompt_tokens", "completion_tokens", "cached_prompt_tokens", "time_to_first_token_seconds", "total_seconds", "stored", "actions")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int
    time_to_first_token_seconds: float
    total_seconds: float
    stored: bool
    actions: _containers.RepeatedCompositeFieldContainer[NpcAction]
    def __init__(self, text: _Optional[str] = ..., finish_reason: _Optional[_Union[FinishReason, str]] = ..., prompt_tokens: _Optional[int] = ..., completion_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., time_to_first_token_seconds: _Optional[float] = ..., total_seconds: _Optional[float] = ..., stored: _Optional[bool] = ..., actions: _Optional[_Iterable[_Union[NpcAction, _Mapping]]] = ...) -> None: ...

class ReactRequest(_message.Message):
    __slots__ = ("session_id", "text", "speaker_name", "npc_ids", "sampling", "request_id", "hear_earlier_replies", "actions", "action_choice", "response_json_schema")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_NAME_FIELD_NUMBER: _ClassVar[int]
    NPC_IDS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HEAR_EARLIER_REPLIES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_CHOICE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_JSON_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    text: str
    speaker_name: str
    npc_ids: _containers.RepeatedScalarFieldContainer[str]
    sampling: Sampling
    request_id: str
    hear_earlier_replies: bool
    actions: _containers.RepeatedCompositeFieldContainer[ActionSpec]
    action_choice: str
    response_json_schema: str
    def __init__(self, session_id: _Optional[str] = ..., text: _Optional[str] = ..., speaker_name: _Optional[str] = ..., npc_ids: _Optional[_Iterable[str]] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., request_id: _Optional[str] = ..., hear_earlier_replies: _Optional[bool] = ..., actions: _Optional[_Iterable[_Union[ActionSpec, _Mapping]]] = ..., action_choice: _Optional[str] = ..., response_json_schema: _Optional[str] = ...) -> None: ...

class ReactEvent(_message.Message):
    __slots__ = ("elapsed_seconds", "npc_id", "started", "token", "sentence", "reply", "done", "action")
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    elapsed_seconds: float
    npc_id: str
    started: Started
    token: TokenDelta
    sentence: Sentence
    reply: Final
    done: ReactDone
    action: NpcAction
    def __init__(self, elapsed_seconds: _Optional[float] = ..., npc_id: _Optional[str] = ..., started: _Optional[_Union[Started, _Mapping]] = ..., token: _Optional[_Union[TokenDelta, _Mapping]] = ..., sentence: _Optional[_Union[Sentence, _Mapping]] = ..., reply: _Optional[_Union[Final, _Mapping]] = ..., done: _Optional[_Union[ReactDone, _Mapping]] = ..., action: _Optional[_Union[NpcAction, _Mapping]] = ...) -> None: ...

class ReactDone(_message.Message):
    __slots__ = ("stored", "turns_stored", "total_seconds")
    STORED_FIELD_NUMBER: _ClassVar[int]
    TURNS_STORED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    turns_stored: int
    total_seconds: float
    def __init__(self, stored: _Optional[bool] = ..., turns_stored: _Optional[int] = ..., total_seconds: _Optional[float] = ...) -> None: ...

class ConverseRequest(_message.Message):
    __slots__ = ("session_id", "npc_ids", "turns", "text", "speaker_name", "sampling", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_IDS_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_NAME_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    npc_ids: _containers.RepeatedScalarFieldContainer[str]
    turns: int
    text: str
    speaker_name: str
    sampling: Sampling
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., npc_ids: _Optional[_Iterable[str]] = ..., turns: _Optional[int] = ..., text: _Optional[str] = ..., speaker_name: _Optional[str] = ..., sampling: _Optional[_Union[Sampling, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ConverseEvent(_message.Message):
    __slots__ = ("elapsed_seconds", "npc_id", "turn", "started", "token", "sentence", "reply", "done")
    ELAPSED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    elapsed_seconds: float
    npc_id: str
    turn: int
    started: Started
    token: TokenDelta
    sentence: Sentence
    reply: Final
    done: ConverseDone
    def __init__(self, elapsed_seconds: _Optional[float] = ..., npc_id: _Optional[str] = ..., turn: _Optional[int] = ..., started: _Optional[_Union[Started, _Mapping]] = ..., token: _Optional[_Union[TokenDelta, _Mapping]] = ..., sentence: _Optional[_Union[Sentence, _Mapping]] = ..., reply: _Optional[_Union[Final, _Mapping]] = ..., done: _Optional[_Union[ConverseDone, _Mapping]] = ...) -> None: ...

class ConverseDone(_message.Message):
    __slots__ = ("turns_stored", "cancelled", "total_seconds")
    TURNS_STORED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    turns_stored: int
    cancelled: bool
    total_seconds: float
    def __init__(self, turns_stored: _Optional[int] = ..., cancelled: _Optional[bool] = ..., total_seconds: _Optional[float] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NpcProfile(_message.Message):
    __slots__ = ("id", "name", "profile", "style", "greeting", "examples", "actions")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    STYLE_FIELD_NUMBER: _ClassVar[int]
    GREETING_FIELD_NUMBER: _ClassVar[int]
    EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    profile: str
    style: str
    greeting: str
    examples: _containers.RepeatedScalarFieldContainer[str]
    actions: _containers.RepeatedCompositeFieldContainer[ActionSpec]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., profile: _Optional[str] = ..., style: _Optional[str] = ..., greeting: _Optional[str] = ..., examples: _Optional[_Iterable[str]] = ..., actions: _Optional[_Iterable[_Union[ActionSpec, _Mapping]]] = ...) -> None: ...

class BlendEntry(_message.Message):
    __slots__ = ("block_id", "weight")
    BLOCK_ID_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    block_id: str
    weight: float
    def __init__(self, block_id: _Optional[str] = ..., weight: _Optional[float] = ...) -> None: ...

class Npc(_message.Message):
    __slots__ = ("profile", "kind", "blend", "lore")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    LORE_FIELD_NUMBER: _ClassVar[int]
    profile: NpcProfile
    kind: NpcKind
    blend: _containers.RepeatedCompositeFieldContainer[BlendEntry]
    lore: _containers.RepeatedCompositeFieldContainer[LoreSource]
    def __init__(self, profile: _Optional[_Union[NpcProfile, _Mapping]] = ..., kind: _Optional[_Union[NpcKind, str]] = ..., blend: _Optional[_Iterable[_Union[BlendEntry, _Mapping]]] = ..., lore: _Optional[_Iterable[_Union[LoreSource, _Mapping]]] = ...) -> None: ...

class LoreSource(_message.Message):
    __slots__ = ("path", "passages")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    path: str
    passages: int
    def __init__(self, path: _Optional[str] = ..., passages: _Optional[int] = ...) -> None: ...

class RegisterNpcRequest(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: NpcProfile
    def __init__(self, profile: _Optional[_Union[NpcProfile, _Mapping]] = ...) -> None: ...

class Line(_message.Message):
    __slots__ = ("speaker", "text")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    speaker: str
    text: str
    def __init__(self, speaker: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class DialogueRecord(_message.Message):
    __slots__ = ("context", "reply")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    context: _containers.RepeatedCompositeFieldContainer[Line]
    reply: str
    def __init__(self, context: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., reply: _Optional[str] = ...) -> None: ...

class TrainingOptions(_message.Message):
    __slots__ = ("epochs", "learning_rate", "batch_size", "max_length", "max_context_turns", "seed", "block_batch_size")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_CONTEXT_TURNS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    BLOCK_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    epochs: float
    learning_rate: float
    batch_size: int
    max_length: int
    max_context_turns: int
    seed: int
    block_batch_size: int
    def __init__(self, epochs: _Optional[float] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., max_length: _Optional[int] = ..., max_context_turns: _Optional[int] = ..., seed: _Optional[int] = ..., block_batch_size: _Optional[int] = ...) -> None: ...

class ExpandNpcRequest(_message.Message):
    __slots__ = ("profile", "records", "training")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    TRAINING_FIELD_NUMBER: _ClassVar[int]
    profile: NpcProfile
    records: _containers.RepeatedCompositeFieldContainer[DialogueRecord]
    training: TrainingOptions
    def __init__(self, profile: _Optional[_Union[NpcProfile, _Mapping]] = ..., records: _Optional[_Iterable[_Union[DialogueRecord, _Mapping]]] = ..., training: _Optional[_Union[TrainingOptions, _Mapping]] = ...) -> None: ...

class ExpandProgress(_message.Message):
    __slots__ = ("step", "total_steps", "loss", "eta_seconds")
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    step: int
    total_steps: int
    loss: float
    eta_seconds: float
    def __init__(self, step: _Optional[int] = ..., total_steps: _Optional[int] = ..., loss: _Optional[float] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class ExpandDone(_message.Message):
    __slots__ = ("npc", "steps", "seconds", "final_loss")
    NPC_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    FINAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    npc: Npc
    steps: int
    seconds: float
    final_loss: float
    def __init__(self, npc: _Optional[_Union[Npc, _Mapping]] = ..., steps: _Optional[int] = ..., seconds: _Optional[float] = ..., final_loss: _Optional[float] = ...) -> None: ...

class ExpandEvent(_message.Message):
    __slots__ = ("progress", "done")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    progress: ExpandProgress
    done: ExpandDone
    def __init__(self, progress: _Optional[_Union[ExpandProgress, _Mapping]] = ..., done: _Optional[_Union[ExpandDone, _Mapping]] = ...) -> None: ...

class ListNpcsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNpcsResponse(_message.Message):
    __slots__ = ("npcs",)
    NPCS_FIELD_NUMBER: _ClassVar[int]
    npcs: _containers.RepeatedCompositeFieldContainer[Npc]
    def __init__(self, npcs: _Optional[_Iterable[_Union[Npc, _Mapping]]] = ...) -> None: ...

class GetNpcRequest(_message.Message):
    __slots__ = ("npc_id",)
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    def __init__(self, npc_id: _Optional[str] = ...) -> None: ...

class RemoveNpcRequest(_message.Message):
    __slots__ = ("npc_id",)
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    npc_id: str
    def __init__(self, npc_id: _Optional[str] = ...) -> None: ...

class RemoveNpcResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: Npc
    def __init__(self, removed: _Optional[_Union[Npc, _Mapping]] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("seq", "speaker_kind", "npc_id", "speaker_name", "text", "created_at", "request_id", "actions")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_KIND_FIELD_NUMBER: _ClassVar[int]
    NPC_ID_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    seq: int
    speaker_kind: SpeakerKind
    npc_id: str
    speaker_name: str
    text: str
    created_at: _timestamp_pb2.Timestamp
    request_id: str
    actions: _containers.RepeatedCompositeFieldContainer[NpcAction]
    def __init__(self, seq: _Optional[int] = ..., speaker_kind: _Optional[_Union[SpeakerKind, str]] = ..., npc_id: _Optional[str] = ..., speaker_name: _Optional[str] = ..., text: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_id: _Optional[str] = ..., actions: _Optional[_Iterable[_Union[NpcAction, _Mapping]]] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "turns", "created_at", "updated_at", "next_page_token", "turn_count", "summary", "summary_through_seq")
    ID_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_THROUGH_SEQ_FIELD_NUMBER: _ClassVar[int]
    id: str
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    next_page_token: str
    turn_count: int
    summary: str
    summary_through_seq: int
    def __init__(self, id: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_page_token: _Optional[str] = ..., turn_count: _Optional[int] = ..., summary: _Optional[str] = ..., summary_through_seq: _Optional[int] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id", "max_turns", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    max_turns: int
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., max_turns: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SessionSummary(_message.Message):
    __slots__ = ("id", "turn_count", "npc_ids", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    NPC_IDS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    turn_count: int
    npc_ids: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., turn_count: _Optional[int] = ..., npc_ids: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionSummary]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ResetSessionResponse(_message.Message):
    __slots__ = ("turns_removed",)
    TURNS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    turns_removed: int
    def __init__(self, turns_removed: _Optional[int] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Status(_message.Message):
    __slots__ = ("version", "base_model", "base_model_path", "device", "cast_path", "npc_count", "block_count", "active_streams", "max_streams", "queued", "cache_bytes", "cache_budget_bytes", "cache_hits", "cache_misses", "training_npc_id", "uptime_seconds")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CAST_PATH_FIELD_NUMBER: _ClassVar[int]
    NPC_COUNT_FIELD_NUMBER: _ClassVar[int]
    BLOCK_COUNT_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_STREAMS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMS_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    CACHE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_BUDGET_BYTES_FIELD_NUMBER: _ClassVar[int]
    CACHE_HITS_FIELD_NUMBER: _ClassVar[int]
    CACHE_MISSES_FIELD_NUMBER: _ClassVar[int]
    TRAINING_NPC_ID_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    version: str
    base_model: str
    base_model_path: str
    device: str
    cast_path: str
    npc_count: int
    block_count: int
    active_streams: int
    max_streams: int
    queued: int
    cache_bytes: int
    cache_budget_bytes: int
    cache_hits: int
    cache_misses: int
    training_npc_id: str
    uptime_seconds: float
    def __init__(self, version: _Optional[str] = ..., base_model: _Optional[str] = ..., base_model_path: _Optional[str] = ..., device: _Optional[str] = ..., cast_path: _Optional[str] = ..., npc_count: _Optional[int] = ..., block_count: _Optional[int] = ..., active_streams: _Optional[int] = ..., max_streams: _Optional[int] = ..., queued: _Optional[int] = ..., cache_bytes: _Optional[int] = ..., cache_budget_bytes: _Optional[int] = ..., cache_hits: _Optional[int] = ..., cache_misses: _Optional[int] = ..., training_npc_id: _Optional[str] = ..., uptime_seconds: _Optional[float] = ...) -> None: ...
