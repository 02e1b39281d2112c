"""Actions and structured replies: what a reply may carry besides free speech.

A game declares actions (a name, a description, a JSON Schema of the arguments); the NPC
first speaks freely, then, where its speech would end, writes `ACTIONS_MARKER` and a JSON
list of calls. That tail is decoded under a grammar (llguidance), one matcher per row, so
every call is valid against its schema by construction, whatever shares the batch. A
`response_schema` constrains the whole reply to one JSON value instead.

llguidance was chosen by measurement on a 2-core AVX2 CPU with the embedded tokenizer
(a list of two action schemas, 37 tokens): compiling a grammar takes 2-5 ms (xgrammar
4 ms), a token mask 0.03 ms at the median (xgrammar 0.003 ms; either is well under 1% of
a 7 ms decode step); xgrammar requires torch, triton and pydantic at install, and
outlines-core needs the vocabulary rebuilt by hand from byte-level tokens. llguidance
compiles per request fast enough for per-call action sets, composes a forced marker and
JSON in one Lark grammar, and says what is wrong with a schema.
"""

from __future__ import annotations

import json
import re
import threading
from collections import OrderedDict

import llguidance
import llguidance.hf
import llguidance.torch as lt
import torch

from .api import Action, ActionCall, EngineError

ACTIONS_MARKER = "\nActions: "
MAX_ACTIONS = 16  # declared per request
MAX_CALLS = 4  # actions one reply may carry
ACTION_TOKENS = 256  # tokens the action list may take beyond the speech's max_tokens
MAX_SCHEMA_BYTES = 16 * 1024
MAX_DESCRIPTION = 1024
CHOICES = ("auto", "none", "required")
CACHED_GRAMMARS = 256  # compiled grammars kept, the most recently used
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SHIFTS = torch.arange(32, dtype=torch.int32)
_EXECUTOR = llguidance.LLExecutor()  # computes the rows' masks in parallel
_NO_ARGUMENTS = {"type": "object", "properties": {}, "additionalProperties": False}
# One way to write each value: no run of spaces for a small model to wander into.
_COMPACT = {"whitespace_flexible": False}


def _invalid(message: str) -> EngineError:
    return EngineError("INVALID_ARGUMENT", message)


def _schema(text: str, what: str) -> dict:
    if len(text.encode()) > MAX_SCHEMA_BYTES:
        raise _invalid(f"{what} is over {MAX_SCHEMA_BYTES} bytes")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise _invalid(f"{what} is not JSON: {str(exc)[:200]}") from None
    if not isinstance(value, dict):
        raise _invalid(f"{what} must be a JSON Schema object, not {type(value).__name__}")
    return value


def _parameters(action: Action) -> dict:
    if not action.parameters:
        return _NO_ARGUMENTS
    schema = _schema(action.parameters, f"the parameters of action {action.name!r}")
    if schema.get("type") != "object":
        raise _invalid(
            f'the parameters of action {action.name!r} must be a schema of "type": "object"'
        )
    return schema


def with_npc_actions(npc_actions: list[dict], call: tuple[Action, ...]) -> tuple[Action, ...]:
    """An NPC's own actions (its profile's) and a call's, the call's replacing the NPC's
    of the same name."""
    named = {a.name for a in call}
    own = tuple(
        Action(
            a["name"],
            a.get("description", ""),
            json.dumps(a["parameters"]) if a.get("parameters") else "",
        )
        for a in npc_actions
        if a["name"] not in named
    )
    return own + call


def check_actions(actions: tuple[Action, ...], choice: str) -> None:
    """INVALID_ARGUMENT for a bad declaration (the grammars are checked when compiled)."""
    if len(actions) > MAX_ACTIONS:
        raise _invalid(f"at most {MAX_ACTIONS} actions per request ({len(actions)} given)")
    names = set()
    for action in actions:
        if not NAME.fullmatch(action.name):
            raise _invalid(
                f"invalid action name {action.name[:80]!r}: 1-64 ASCII letters, digits or "
                "'_', not starting with a digit"
            )
        if action.name in names:
            raise _invalid(f"action {action.name!r} is declared twice")
        names.add(action.name)
        if len(action.description) > MAX_DESCRIPTION:
            raise _invalid(
                f"the description of action {action.name!r} is over {MAX_DESCRIPTION} characters"
            )
        _parameters(action)
    if choice and choice not in CHOICES and choice not in names:
        raise _invalid(
            f"action_choice {choice[:80]!r} is neither auto, none, required nor the name "
            "of a declared action"
        )
    if choice and choice not in ("auto", "none") and not actions:
        raise _invalid(f"action_choice {choice[:80]!r} needs declared actions")


def instructions(actions: tuple[Action, ...], choice: str) -> str:
    """The system prompt's part that tells the NPC what it may do."""
    if not actions or choice == "none":
        return ""
    lines = [
        "You can act as well as speak. After your words, write a line starting with "
        '"Actions:" and a JSON list of what you do, such as '
        '[{"name": "' + actions[0].name + '", "arguments": {...}}], or [] to do nothing. '
        "Actions:"
    ]
    for action in actions:
        arguments = json.dumps(_parameters(action))
        lines.append(f"- {action.name}: {action.description} arguments: {arguments}")
    return "\n".join(lines)


def actions_grammar(actions: tuple[Action, ...], choice: str) -> str | None:
    """The Lark grammar of the tail after the speech: the marker and the list of calls
    (None when the reply carries no actions)."""
    if not actions or choice == "none":
        return None
    chosen = [a for a in actions if a.name == choice] or list(actions)
    calls = [
        {
            "type": "object",
            "properties": {"name": {"const": a.name}, "arguments": _parameters(a)},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for a in chosen
    ]
    schema = {
        "x-guidance": _COMPACT,
        "type": "array",
        "items": {"anyOf": calls},
        "minItems": 0 if choice in ("", "auto") else 1,
        "maxItems": MAX_CALLS,
    }
    return f"start: {json.dumps(ACTIONS_MARKER)} calls\ncalls: %json {json.dumps(schema)}"


def structured_grammar(response_schema: str) -> str:
    """The Lark grammar of a reply that is one JSON value of the given schema."""
    schema = dict(_schema(response_schema, "response_schema"))
    schema.setdefault("x-guidance", _COMPACT)
    return f"start: reply\nreply: %json {json.dumps(schema)}"


def parse_calls(text: str) -> tuple[ActionCall, ...]:
    """The calls of a complete action tail (marker and JSON list)."""
    calls = json.loads(text[len(ACTIONS_MARKER) :] if text.startswith(ACTIONS_MARKER) else text)
    return tuple(
        ActionCall(c["name"], json.dumps(c["arguments"], ensure_ascii=False)) for c in calls
    )


class Grammars:
    """The model's tokenizer as llguidance sees it (built on first use: half a second),
    and matchers for grammars.

    Each grammar is compiled once: checking it compiles a matcher that is kept (the most
    recent `CACHED_GRAMMARS` of them), and every row that decodes under it starts from a
    copy of that matcher. An NPC's declared actions give the same grammar on every
    request, and a crowd's rows often share one, so most requests compile nothing.
    Checked on a request's thread, copied on the engine's: the cache takes a lock."""

    def __init__(self, tokenizer):
        self._hf = tokenizer
        self._tokenizer = None
        self._compiled: OrderedDict[str, llguidance.LLMatcher] = OrderedDict()
        self._lock = threading.Lock()
        self.compiles = 0  # how many grammars were compiled (tests read it)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            try:
                self._tokenizer = llguidance.hf.from_tokenizer(self._hf)
            except Exception as exc:  # a tokenizer llguidance cannot read
                raise EngineError(
                    "FAILED_PRECONDITION",
                    f"this model's tokenizer cannot constrain decoding: {exc}",
                ) from None
        return self._tokenizer

    def check(self, grammar: str) -> None:
        """INVALID_ARGUMENT for a grammar llguidance cannot compile (kept if it can)."""
        self._prototype(grammar)

    def matcher(self, grammar: str) -> RowGrammar:
        return RowGrammar(self._prototype(grammar).deep_copy(), self.tokenizer.vocab_size)

    def _prototype(self, grammar: str) -> llguidance.LLMatcher:
        with self._lock:
            found = self._compiled.get(grammar)
            if found is not None:
                self._compiled.move_to_end(grammar)
                return found
        compiled = llguidance.LLMatcher(self.tokenizer, grammar)
        if compiled.is_error():
            raise _invalid(f"the schema cannot be used: {compiled.get_error()[:500]}")
        with self._lock:
            self.compiles += 1
            self._compiled[grammar] = compiled
            while len(self._compiled) > CACHED_GRAMMARS:
                self._compiled.popitem(last=False)
        return compiled


class RowGrammar:
    """One row's grammar state: the tokens it allows next, and the tokens it has taken."""

    def __init__(self, matcher, vocab: int):
        self.matcher = matcher
        self.vocab = vocab
        self.tokens: list[int] = []

    @property
    def done(self) -> bool:
        """Complete: nothing may follow (the reply ends here)."""
        return self.matcher.is_stopped()

    @property
    def accepting(self) -> bool:
        return self.matcher.is_accepting()

    def consume(self, token: int) -> None:
        if not self.matcher.consume_token(token):  # the mask allowed it: a bug if not
            raise RuntimeError(f"grammar rejected token {token}: {self.matcher.get_error()}")
        self.tokens.append(token)


def mask_rows(logits: torch.Tensor, rows: list[tuple[int, RowGrammar]], stop_ids) -> torch.Tensor:
    """A copy of `logits` whose rows `rows` allow only their grammar's next tokens (and
    the stop tokens once the grammar may end there).

    The masks are computed by llguidance in its own threads, all rows at once; they are
    applied here with plain tensor ops: llguidance's own apply function is a
    torch.compile kernel, which needs a C++ compiler at run time (a player's PC, a frozen
    bundle has none)."""
    vocab = rows[0][1].vocab
    words = (vocab + 31) // 32
    bits = torch.full((len(rows), words), -1, dtype=torch.int32)
    lt.fill_next_token_bitmask_par(
        _EXECUTOR, [(g.matcher, n) for n, (_, g) in enumerate(rows)], bits
    )
    allowed = ((bits.unsqueeze(-1) >> _SHIFTS) & 1).view(len(rows), -1)[:, :vocab].bool()
    for n, (_, grammar) in enumerate(rows):
        if grammar.accepting:
            allowed[n, [t for t in stop_ids if t < vocab]] = True
    out = logits.clone()
    index = torch.tensor([i for i, _ in rows])
    part = out[index]
    part[:, :vocab].masked_fill_(~allowed, float("-inf"))
    part[:, vocab:] = float("-inf")
    out[index] = part
    return out
