"""The decode loop's state: which sequence sits in which slot, and what each step computes.

Everything here runs in the engine's decode thread. A step is one forward: the next token
of every decoding sequence plus chunks of waiting prompts (oldest first) up to the step's
token budget. Decoding sequences occupy slots 0..B-1 in order, so the runner reads their
caches as one batch; a sequence whose prompt is read joins at slot B, and a finished one
leaves its slot to the last decoding sequence.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

import torch

from .actions import ACTION_TOKENS, Grammars, RowGrammar, mask_rows, parse_calls
from .api import EngineConfig, FinalResult, FinishReason, GenerationRequest, TokenDelta
from .prefix_cache import PrefixCache
from .runner import Blend, Runner, Segment
from .sampling import RowSampler, sample
from .text import TextStream
from .threads import StepThreads


@dataclass(eq=False)
class Sequence:
    request: GenerationRequest
    prompt: list[int]
    system_len: int  # prompt tokens shared by every conversation of this NPC
    blend: Blend
    sink: object  # where the engine delivers this request's stream items
    submitted: float
    sampler: RowSampler | None = None
    text: TextStream | None = None
    slot: int = -1
    pos: int = 0  # positions held in the slot's cache
    todo: list[int] = field(default_factory=list)  # prompt tokens not yet in the cache
    generated: list[int] = field(default_factory=list)
    cached: int = 0
    first_token_at: float | None = None
    grammar_text: str | None = None  # the actions' tail or the structured reply's grammar
    grammar: RowGrammar | None = None
    constrained: bool = False  # the grammar picks the tokens now (else: free speech)

    @property
    def id(self) -> str:
        return self.request.request_id


class Scheduler:
    def __init__(
        self,
        runner: Runner,
        tokenizer,
        config: EngineConfig,
        stop_ids: list[int],
        vocab: int,
        device: torch.device,
        threads: StepThreads | None = None,
    ):
        self.runner = runner
        self.tokenizer = tokenizer
        self.config = config
        self.stop_ids = frozenset(stop_ids)
        self.vocab = vocab
        self.device = device
        self.decoding: list[Sequence] = []  # decoding[i].slot == i
        self.prefilling: list[Sequence] = []  # oldest first
        self.waiting: deque[Sequence] = deque()
        self.free = set(range(config.max_active))
        use_cache = runner.supports_prefix_cache and config.cache_budget_bytes > 0
        self.cache = PrefixCache(config.cache_budget_bytes) if use_cache else None
        self.versions: dict[str, int] = {}  # block id -> identity of its tensors
        self.outbox: list[tuple[object, TokenDelta | FinalResult]] = []
        self.steps = 0
        self.grammars = Grammars(tokenizer)
        self.threads = threads or StepThreads(torch.get_num_threads(), 0, 0)  # all, always

    @property
    def busy(self) -> bool:
        return bool(self.decoding or self.prefilling or self.waiting)

    def sequences(self) -> list[Sequence]:
        return self.decoding + self.prefilling + list(self.waiting)

    # -- cache keys ----------------------------------------------------------------
    def _key(self, seq: Sequence) -> Hashable:
        return (seq.blend, tuple(self.versions.get(b, 0) for b, _ in seq.blend))

    def set_versions(self, versions: dict[str, int]) -> None:
        """New block identities (after the cast changed): drop what they invalidate."""
        self.versions = versions
        if self.cache is not None:
            self.cache.drop(
                lambda key: any(
                    versions.get(b) != v for (b, _), v in zip(key[0], key[1], strict=True)
                )
            )

    # -- requests --------------------------------------------------------------------
    def add(self, seq: Sequence) -> None:
        self.waiting.append(seq)

    def cancel(self, request_id: str) -> None:
        for seq in self.sequences():
            if seq.id == request_id:
                self.finish(seq, "cancelled")
                return

    def _admit(self) -> None:
        while self.waiting and self.free:
            seq = self.waiting.popleft()
            seq.slot = max(self.free)
            self.free.remove(seq.slot)
            params = seq.request.sampling
            seq.sampler = RowSampler(
                params, seq.prompt, self.vocab, self.device, tuple(self.stop_ids)
            )
            seq.text = TextStream(self.tokenizer, params.stop)
            if seq.grammar_text is not None:
                seq.grammar = self.grammars.matcher(seq.grammar_text)
                seq.constrained = bool(seq.request.response_schema)
            if self.cache is not None:
                for start, kv in self.cache.lookup(self._key(seq), seq.prompt, len(seq.prompt) - 1):
                    self.runner.write_kv(seq.slot, start, kv)
                    seq.pos = start + kv.shape[0]
            seq.cached = seq.pos
            seq.todo = seq.prompt[seq.pos :]
            self.prefilling.append(seq)

    # -- one step ----------------------------------------------------------------------
    def step(self) -> None:
        self._admit()
        if not (self.decoding or self.prefilling):
            return
        decode = [Segment(s.slot, s.pos, (s.generated[-1],), s.blend, True) for s in self.decoding]
        budget = self.config.step_tokens - len(decode) if decode else self.config.prefill_chunk
        prefill: list[Segment] = []
        for seq in self.prefilling:
            if budget <= 0:
                break
            n = min(len(seq.todo), budget)
            chunk = tuple(seq.todo[:n])
            prefill.append(Segment(seq.slot, seq.pos, chunk, seq.blend, n == len(seq.todo)))
            budget -= n
        self.threads.fit(sum(len(s.tokens) for s in decode + prefill))
        logits = self.runner.forward(decode, prefill)
        self.steps += 1
        for seq in self.decoding:
            seq.pos += 1
        completing = []
        for seg, seq in zip(prefill, self.prefilling):
            before = seq.pos
            seq.pos += len(seg.tokens)
            del seq.todo[: len(seg.tokens)]
            if self.cache is not None and before < seq.system_len <= seq.pos:
                self._remember(seq, seq.prompt[: seq.system_len])
            if seg.logits:
                completing.append(seq)
        del self.prefilling[: len(completing)]
        rows = self.decoding + completing
        tokens = self._sample(logits, rows)
        now = time.perf_counter()
        for seq, token in zip(rows, tokens):
            self._accept(seq, token, now)
        for i, seq in enumerate(completing):
            if seq.slot >= 0:
                self._seat(seq, completing[i + 1 :] + self.prefilling)

    def _sample(self, logits: torch.Tensor, rows: list[Sequence]) -> list[int]:
        """The next token of every row; rows under a grammar choose among the tokens it
        allows. A row whose free speech ends (a stop token) while its actions are still to
        come starts them on the same logits: the stop token is never fed to the model."""
        ruled = [(i, s.grammar) for i, s in enumerate(rows) if s.constrained]
        if ruled:
            logits = mask_rows(logits, ruled, self.stop_ids)
        tokens = sample(logits, [s.sampler for s in rows])
        ending = [
            i
            for i, (s, t) in enumerate(zip(rows, tokens))
            if t in self.stop_ids and s.grammar is not None and not s.constrained
        ]
        if ending:
            for i in ending:
                rows[i].constrained = True
            masked = mask_rows(logits, [(i, rows[i].grammar) for i in ending], self.stop_ids)
            again = sample(masked[ending], [rows[i].sampler for i in ending])
            for i, t in zip(ending, again):
                tokens[i] = t
        return tokens

    def _accept(self, seq: Sequence, token: int, now: float) -> None:
        if seq.first_token_at is None:
            seq.first_token_at = now
        seq.generated.append(token)
        seq.sampler.observe(token)
        if token in self.stop_ids:
            self.finish(seq, "stop")
            return
        full = seq.pos + 1 >= self.config.max_context
        if seq.constrained:
            self._accept_ruled(seq, token, full)
            return
        piece = seq.text.push(token)
        self.outbox.append((seq.sink, TokenDelta(seq.id, piece, (token,))))
        if seq.text.stopped or len(seq.generated) >= seq.request.sampling.max_tokens or full:
            if seq.grammar is not None and not full:
                seq.constrained = True  # the speech is over: its actions follow
            else:
                self.finish(seq, "stop" if seq.text.stopped else "length")

    def _accept_ruled(self, seq: Sequence, token: int, full: bool) -> None:
        """A token the grammar chose: part of the structured reply's text, or of the
        actions' tail (not shown as text)."""
        seq.grammar.consume(token)
        structured = bool(seq.request.response_schema)
        if structured:
            piece = seq.text.push(token)
            self.outbox.append((seq.sink, TokenDelta(seq.id, piece, (token,))))
        limit = seq.request.sampling.max_tokens if structured else ACTION_TOKENS
        if seq.grammar.done:
            self.finish(seq, "stop")
        elif len(seq.grammar.tokens) >= limit or full:
            self.finish(seq, "length")

    # -- slots ------------------------------------------------------------------------
    def _seat(self, seq: Sequence, others: list[Sequence]) -> None:
        """A sequence whose prompt is read joins the decoding batch at slot B (taking it
        from whichever of `others`, sequences not decoding yet, holds it)."""
        b = len(self.decoding)
        if seq.slot != b:
            other = next((s for s in others if s.slot == b), None)
            if other is not None:
                self.runner.swap(seq.slot, b, seq.pos, other.pos)
                other.slot = seq.slot
            else:
                self.runner.move(seq.slot, b, seq.pos)
                self.free.add(seq.slot)
                self.free.discard(b)
            seq.slot = b
        self.decoding.append(seq)

    def _release(self, seq: Sequence) -> None:
        slot, seq.slot = seq.slot, -1
        if seq in self.decoding:
            last = self.decoding.pop()
            if last is not seq:
                self.runner.move(last.slot, slot, last.pos)
                self.decoding[slot] = last
                slot, last.slot = last.slot, slot
        elif seq in self.prefilling:
            self.prefilling.remove(seq)
        self.runner.release(slot)
        self.free.add(slot)

    def _remember(self, seq: Sequence, tokens: list[int]) -> None:
        slot = seq.slot
        self.cache.insert(self._key(seq), tokens, lambda a, b: self.runner.read_kv(slot, a, b))

    def finish(self, seq: Sequence, reason: FinishReason) -> None:
        if seq.slot >= 0:
            if self.cache is not None and reason != "error" and seq.pos > seq.system_len:
                self._remember(seq, (seq.prompt + seq.generated)[: seq.pos])
            self._release(seq)
        elif seq in self.waiting:
            self.waiting.remove(seq)
        text = seq.text
        if text is not None:
            tail = text.flush()
            if tail:
                self.outbox.append((seq.sink, TokenDelta(seq.id, tail, ())))
        now = time.perf_counter()
        first = seq.first_token_at
        actions = ()
        grammar = seq.grammar
        if grammar is not None and not seq.request.response_schema and grammar.accepting:
            actions = parse_calls(self.tokenizer.decode(grammar.tokens))
        result = FinalResult(
            request_id=seq.id,
            text=text.text if text is not None else "",
            finish_reason=reason,
            prompt_tokens=len(seq.prompt),
            completion_tokens=len(seq.generated),
            cached_prompt_tokens=seq.cached,
            time_to_first_token_s=None if first is None else first - seq.submitted,
            total_time_s=now - seq.submitted,
            actions=actions,
        )
        self.outbox.append((seq.sink, result))
