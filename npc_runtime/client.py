"""Python clients of the npc-runtime daemon: NpcClient (blocking) and AsyncNpcClient.

    with NpcClient("127.0.0.1:50051") as client:
        for event in client.speak("brann", "Can you mend my sword?", session_id="save1"):
            if event.HasField("token"):
                print(event.token.text, end="", flush=True)

Replies and results are the npc_runtime.v1 messages (see the .proto for every field);
profiles, dialogue records, sampling and training options may be given as plain dicts.
Every refused call raises NpcRuntimeError with the gRPC status name and the server's
message. Leaving a speak() or expand_npc() stream early cancels it on the server.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence

import grpc

from .v1 import npc_runtime_pb2 as pb
from .v1 import npc_runtime_pb2_grpc as pb_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
_ADMIN = frozenset({"RegisterNpc", "ExpandNpc", "RemoveNpc", "ResetSession"})
_OPTIONS = [("grpc.max_send_message_length", 32 * 2**20)]


class NpcRuntimeError(RuntimeError):
    """A call the server refused (or could not be reached for): `code` is the gRPC status
    name (NOT_FOUND, INVALID_ARGUMENT, ...), the message says what to fix."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _error(exc: grpc.RpcError) -> NpcRuntimeError:
    return NpcRuntimeError(exc.code().name, exc.details() or "")


def _final(events: list[pb.SpeakEvent]) -> pb.Final:
    if not events or not events[-1].HasField("final"):
        raise NpcRuntimeError("INTERNAL", "the stream ended without a final event")
    return events[-1].final


def speak_request(
    npc_id: str,
    text: str,
    session_id: str = "default",
    speaker_name: str | None = None,
    sampling: Mapping | pb.Sampling | None = None,
    request_id: str = "",
    actions: Sequence[Mapping | pb.ActionSpec] = (),
    action_choice: str = "",
    response_schema: Mapping | str = "",
) -> pb.SpeakRequest:
    """actions: ActionSpecs or dicts {"name", "description", "parameters"} (a JSON Schema
    as a dict or JSON text); response_schema likewise a dict or JSON text."""
    request = pb.SpeakRequest(
        npc_id=npc_id, session_id=session_id, text=text, request_id=request_id
    )
    if speaker_name is not None:
        request.speaker_name = speaker_name
    if sampling is not None:
        request.sampling.CopyFrom(
            sampling if isinstance(sampling, pb.Sampling) else pb.Sampling(**sampling)
        )
    request.actions.extend(_action_spec(a) for a in actions)
    request.action_choice = action_choice
    request.response_json_schema = _json(response_schema)
    return request


def _json(schema: Mapping | str) -> str:
    return schema if isinstance(schema, str) else json.dumps(schema)


def _action_spec(action: Mapping | pb.ActionSpec) -> pb.ActionSpec:
    if isinstance(action, pb.ActionSpec):
        return action
    schema = action.get("parameters", action.get("parameters_json_schema", ""))
    return pb.ActionSpec(
        name=action["name"],
        description=action.get("description", ""),
        parameters_json_schema=_json(schema),
    )


def react_request(
    npc_ids: list[str],
    text: str,
    session_id: str = "default",
    speaker_name: str | None = None,
    sampling: Mapping | pb.Sampling | None = None,
    request_id: str = "",
    hear_earlier_replies: bool = False,
    actions: Sequence[Mapping | pb.ActionSpec] = (),
    action_choice: str = "",
    response_schema: Mapping | str = "",
) -> pb.ReactRequest:
    """As speak_request; actions and response_schema apply to every NPC's reply."""
    request = _like_speak(pb.ReactRequest, text, session_id, speaker_name, sampling, request_id)
    request.npc_ids.extend(npc_ids)
    request.hear_earlier_replies = hear_earlier_replies
    one = speak_request("", "", actions=actions, response_schema=response_schema)
    request.actions.extend(one.actions)
    request.action_choice = action_choice
    request.response_json_schema = one.response_json_schema
    return request


def converse_request(
    npc_ids: list[str],
    text: str,
    turns: int = 0,
    session_id: str = "default",
    speaker_name: str | None = None,
    sampling: Mapping | pb.Sampling | None = None,
    request_id: str = "",
) -> pb.ConverseRequest:
    request = _like_speak(pb.ConverseRequest, text, session_id, speaker_name, sampling, request_id)
    request.npc_ids.extend(npc_ids)
    request.turns = turns
    return request


def _like_speak(kind, text, session_id, speaker_name, sampling, request_id):
    """A request of `kind` with the fields it shares with SpeakRequest, set as speak_request
    sets them."""
    one = speak_request("", text, session_id, speaker_name, sampling, request_id)
    request = kind(session_id=one.session_id, text=one.text, request_id=one.request_id)
    request.sampling.CopyFrom(one.sampling)
    if one.HasField("speaker_name"):
        request.speaker_name = one.speaker_name
    return request


def _replies(events: list[pb.ReactEvent]) -> dict[str, pb.Final]:
    if not events or not events[-1].HasField("done"):
        raise NpcRuntimeError("INTERNAL", "the stream ended without a done event")
    return {e.npc_id: e.reply for e in events if e.HasField("reply")}


def _profile(profile: Mapping | pb.NpcProfile) -> pb.NpcProfile:
    """A profile message from a dict (its actions as speak_request takes them)."""
    if isinstance(profile, pb.NpcProfile):
        return profile
    fields = dict(profile)
    actions = fields.pop("actions", ())
    message = pb.NpcProfile(**fields)
    message.actions.extend(_action_spec(a) for a in actions)
    return message


def expand_request(
    profile: Mapping | pb.NpcProfile,
    records: list[Mapping | pb.DialogueRecord],
    training: Mapping | pb.TrainingOptions | None = None,
) -> pb.ExpandNpcRequest:
    """records: {"context": [{"speaker": ..., "text": ...}], "reply": ...} or messages."""
    request = pb.ExpandNpcRequest(profile=_profile(profile))
    for record in records:
        if isinstance(record, pb.DialogueRecord):
            request.records.append(record)
        else:
            request.records.add(
                context=[pb.Line(**line) for line in record.get("context", [])],
                reply=record["reply"],
            )
    if training is not None:
        request.training.CopyFrom(
            training if isinstance(training, pb.TrainingOptions) else pb.TrainingOptions(**training)
        )
    return request


class _Base:
    _open_channel: Callable  # grpc.insecure_channel, or grpc.aio's for the async client

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        token: str | None = None,
        admin_token: str | None = None,
        timeout: float | None = None,
    ):
        self.address = address
        self._token = token
        self._admin_token = admin_token
        self.timeout = timeout
        self.channel = type(self)._open_channel(address, options=_OPTIONS)
        self.stub = pb_grpc.NpcRuntimeStub(self.channel)

    def _metadata(self, method: str) -> tuple[tuple[str, str], ...]:
        token = self._admin_token if method in _ADMIN and self._admin_token else self._token
        return (("authorization", f"Bearer {token}"),) if token else ()


class NpcClient(_Base):
    """Blocking client; one channel, safe to share between threads."""

    _open_channel = grpc.insecure_channel

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> NpcClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, method: str, request):
        try:
            return getattr(self.stub, method)(
                request, metadata=self._metadata(method), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    def _stream(self, method: str, request) -> Iterator:
        call = getattr(self.stub, method)(request, metadata=self._metadata(method))
        try:
            yield from call
        except grpc.RpcError as exc:
            raise _error(exc) from None
        finally:
            call.cancel()  # a no-op once the stream has ended; cancels it when left early

    def speak(self, npc_id: str, text: str, **options) -> Iterator[pb.SpeakEvent]:
        """Stream one reply: Started, Token and Sentence events, then Final. Options:
        session_id, speaker_name, sampling, request_id (see speak_request)."""
        return self._stream("Speak", speak_request(npc_id, text, **options))

    def say(self, npc_id: str, text: str, **options) -> pb.Final:
        """One whole reply (speak() without the streaming)."""
        return _final(list(self.speak(npc_id, text, **options)))

    def react(self, npc_ids: list[str], text: str, **options) -> Iterator[pb.ReactEvent]:
        """Several NPCs answer one line: a Started per NPC, their Token and Sentence
        events interleaved (event.npc_id says whose), a reply (Final) per NPC once all are
        stored, then Done. Options: those of speak, and hear_earlier_replies."""
        return self._stream("React", react_request(npc_ids, text, **options))

    def react_all(self, npc_ids: list[str], text: str, **options) -> dict[str, pb.Final]:
        """Every NPC's whole reply, by NPC id in npc_ids order (react() without streaming)."""
        return _replies(list(self.react(npc_ids, text, **options)))

    def converse(self, npc_ids: list[str], text: str, **options) -> Iterator[pb.ConverseEvent]:
        """NPCs talk among themselves after an opening line: per turn (event.turn, whose in
        event.npc_id) a Started, Token and Sentence events and the stored reply; then
        Done. Options: turns (0: one round), session_id, speaker_name, sampling,
        request_id."""
        return self._stream("Converse", converse_request(npc_ids, text, **options))

    def cancel(self, request_id: str) -> None:
        self._call("Cancel", pb.CancelRequest(request_id=request_id))

    def register_npc(self, profile: Mapping | pb.NpcProfile) -> pb.Npc:
        return self._call("RegisterNpc", pb.RegisterNpcRequest(profile=_profile(profile)))

    def expand_npc(self, profile, records, training=None) -> Iterator[pb.ExpandEvent]:
        return self._stream("ExpandNpc", expand_request(profile, records, training))

    def list_npcs(self) -> list[pb.Npc]:
        return list(self._call("ListNpcs", pb.ListNpcsRequest()).npcs)

    def get_npc(self, npc_id: str) -> pb.Npc:
        return self._call("GetNpc", pb.GetNpcRequest(npc_id=npc_id))

    def remove_npc(self, npc_id: str) -> pb.Npc:
        return self._call("RemoveNpc", pb.RemoveNpcRequest(npc_id=npc_id)).removed

    def get_session(
        self, session_id: str, max_turns: int = 0, page_size: int = 0, page_token: str = ""
    ) -> pb.Session:
        """One page of a session's turns (Session.next_page_token for the next)."""
        request = pb.GetSessionRequest(
            session_id=session_id, max_turns=max_turns, page_size=page_size, page_token=page_token
        )
        return self._call("GetSession", request)

    def session_turns(self, session_id: str, max_turns: int = 0) -> Iterator[pb.Turn]:
        """Every turn of a session (or of its latest max_turns), page after page."""
        token = ""
        while True:
            page = self.get_session(session_id, max_turns, page_token=token)
            yield from page.turns
            token = page.next_page_token
            if not token:
                return

    def list_sessions(self, page_size: int = 0, page_token: str = "") -> pb.ListSessionsResponse:
        request = pb.ListSessionsRequest(page_size=page_size, page_token=page_token)
        return self._call("ListSessions", request)

    def reset_session(self, session_id: str) -> int:
        request = pb.ResetSessionRequest(session_id=session_id)
        return self._call("ResetSession", request).turns_removed

    def status(self) -> pb.Status:
        return self._call("GetStatus", pb.GetStatusRequest())


class AsyncNpcClient(_Base):
    """The same calls for asyncio (grpc.aio); use within one event loop."""

    _open_channel = grpc.aio.insecure_channel

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncNpcClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def _call(self, method: str, request):
        try:
            return await getattr(self.stub, method)(
                request, metadata=self._metadata(method), timeout=self.timeout
            )
        except grpc.RpcError as exc:
            raise _error(exc) from None

    async def _stream(self, method: str, request) -> AsyncIterator:
        call = getattr(self.stub, method)(request, metadata=self._metadata(method))
        try:
            async for event in call:
                yield event
        except grpc.RpcError as exc:
            raise _error(exc) from None
        finally:
            call.cancel()

    def speak(self, npc_id: str, text: str, **options) -> AsyncIterator[pb.SpeakEvent]:
        return self._stream("Speak", speak_request(npc_id, text, **options))

    def react(self, npc_ids: list[str], text: str, **options) -> AsyncIterator[pb.ReactEvent]:
        return self._stream("React", react_request(npc_ids, text, **options))

    async def react_all(self, npc_ids: list[str], text: str, **options) -> dict[str, pb.Final]:
        return _replies([event async for event in self.react(npc_ids, text, **options)])

    def converse(self, npc_ids: list[str], text: str, **options) -> AsyncIterator[pb.ConverseEvent]:
        return self._stream("Converse", converse_request(npc_ids, text, **options))

    async def say(self, npc_id: str, text: str, **options) -> pb.Final:
        return _final([event async for event in self.speak(npc_id, text, **options)])

    async def cancel(self, request_id: str) -> None:
        await self._call("Cancel", pb.CancelRequest(request_id=request_id))

    async def register_npc(self, profile: Mapping | pb.NpcProfile) -> pb.Npc:
        return await self._call("RegisterNpc", pb.RegisterNpcRequest(profile=_profile(profile)))

    def expand_npc(self, profile, records, training=None) -> AsyncIterator[pb.ExpandEvent]:
        return self._stream("ExpandNpc", expand_request(profile, records, training))

    async def list_npcs(self) -> list[pb.Npc]:
        return list((await self._call("ListNpcs", pb.ListNpcsRequest())).npcs)

    async def get_npc(self, npc_id: str) -> pb.Npc:
        return await self._call("GetNpc", pb.GetNpcRequest(npc_id=npc_id))

    async def remove_npc(self, npc_id: str) -> pb.Npc:
        return (await self._call("RemoveNpc", pb.RemoveNpcRequest(npc_id=npc_id))).removed

    async def get_session(
        self, session_id: str, max_turns: int = 0, page_size: int = 0, page_token: str = ""
    ) -> pb.Session:
        """One page of a session's turns (Session.next_page_token for the next)."""
        request = pb.GetSessionRequest(
            session_id=session_id, max_turns=max_turns, page_size=page_size, page_token=page_token
        )
        return await self._call("GetSession", request)

    async def session_turns(self, session_id: str, max_turns: int = 0) -> AsyncIterator[pb.Turn]:
        """Every turn of a session (or of its latest max_turns), page after page."""
        token = ""
        while True:
            page = await self.get_session(session_id, max_turns, page_token=token)
            for turn in page.turns:
                yield turn
            token = page.next_page_token
            if not token:
                return

    async def list_sessions(
        self, page_size: int = 0, page_token: str = ""
    ) -> pb.ListSessionsResponse:
        request = pb.ListSessionsRequest(page_size=page_size, page_token=page_token)
        return await self._call("ListSessions", request)

    async def reset_session(self, session_id: str) -> int:
        request = pb.ResetSessionRequest(session_id=session_id)
        return (await self._call("ResetSession", request)).turns_removed

    async def status(self) -> pb.Status:
        return await self._call("GetStatus", pb.GetStatusRequest())
