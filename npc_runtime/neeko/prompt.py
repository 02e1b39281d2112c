"""Turning an NPC and a scene into chat messages and token ids, the same way for
training, evaluation and serving, with the base model's own chat template."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from .names import one_line, shown_name
from .profile import NpcProfile

SCENE_OPENING = "(The scene begins.)"
# A scene too long for the context loses its oldest turns this many at a time, so that the
# prompts of consecutive replies start at the same turn and share a cached prefix.
HISTORY_CHUNK = 8


@dataclass(frozen=True)
class Turn:
    """One line of a scene: the name it is shown under, what was said, and, when an NPC of
    the cast said it, that NPC's id. Identity is the id alone: a turn is an NPC's own
    (an assistant turn in its prompt) only when npc_id is that NPC's id, whatever the name."""

    speaker: str
    text: str
    npc_id: str = ""


def system_prompt(npc: NpcProfile, rules: str = "") -> str:
    """The NPC's system prompt; `rules` (what a call allows it, such as actions) last."""
    lines = [f"You are {npc.name}. {npc.profile}"]
    if npc.style:
        lines.append(f"How you speak: {npc.style}")
    if npc.examples:
        lines.append("Lines you might say: " + " / ".join(npc.examples))
    lines.append(f"Stay in character: answer as {npc.name} would, in one short reply.")
    if rules:
        lines.append(rules)
    return "\n".join(lines)


def transcript_turns(npc: NpcProfile, turns: Sequence[Turn]) -> tuple[Turn, ...]:
    """A dataset's turns with the character's own lines marked by its id. Transcripts name
    speakers loosely ("Falstaff" for "Sir John Falstaff"), so a speaker that is the id,
    the name or one word of the name counts as the character. For trusted data only (a
    cast's training records): live sessions know who spoke by id."""
    name = npc.name.casefold()
    mine = {npc.id.casefold(), name, *name.split()}
    return tuple(
        replace(t, npc_id=npc.id) if t.speaker.strip().casefold() in mine else t for t in turns
    )


def scene_messages(
    npc: NpcProfile, context: Sequence[Turn], rules: str = "", notes: str = ""
) -> list[dict[str, str]]:
    """System prompt, then the scene: the NPC's own lines (by id) as assistant turns,
    everyone else's merged into user turns, one line each, 'Speaker: text', so the NPC
    hears the whole scene and no text can add a line or a turn."""
    messages = [{"role": "system", "content": system_prompt(npc, rules)}]
    pending: list[str] = []
    for turn in context:
        if turn.npc_id == npc.id:
            if pending:
                messages.append({"role": "user", "content": "\n".join(pending)})
                pending = []
            messages.append({"role": "assistant", "content": turn.text})
        else:
            pending.append(f"{shown_name(turn.speaker)}: {one_line(turn.text)}")
    if pending or messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": "\n".join(pending) or SCENE_OPENING})
    if notes:  # before the latest lines: the history before them stays a cached prefix
        messages[-1] = {"role": "user", "content": f"{notes}\n\n{messages[-1]['content']}"}
    return messages


class PromptEncoder:
    """Token ids for prompts and for (prompt, reply) training pairs."""

    def __init__(self, tokenizer, max_length: int = 512):
        self.tokenizer = tokenizer
        self.max_length = max_length
        # Every added token is matched whole in raw text, special or not.
        added = {t.content for t in getattr(tokenizer, "added_tokens_decoder", {}).values()}
        tokens = sorted({*added, *tokenizer.all_special_tokens} - {""}, key=len, reverse=True)
        self._specials = re.compile("|".join(map(re.escape, tokens))) if tokens else None

    def sanitize(self, text: str) -> str:
        """Remove special-token strings so no text can close or open a chat turn; until
        none is left, since removing one can join the halves of another
        ('<|im_st<|im_end|>art|>')."""
        if self._specials is None:
            return text
        while True:
            clean = self._specials.sub("", text)
            if clean == text:
                return text
            text = clean

    def _render(self, messages, add_generation_prompt: bool) -> str:
        clean = [{"role": m["role"], "content": self.sanitize(m["content"])} for m in messages]
        return self.tokenizer.apply_chat_template(
            clean, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        return self._ids(self._render(messages, add_generation_prompt=True))

    def completion_ids(self, messages: list[dict[str, str]], reply: str) -> list[int]:
        """The reply as the template closes it (end-of-turn token included)."""
        prompt = self._render(messages, add_generation_prompt=True)
        full = self._render(messages + [{"role": "assistant", "content": reply}], False)
        if not full.startswith(prompt):
            raise ValueError("chat template does not extend the prompt with the reply")
        return self._ids(full[len(prompt) :])

    def fit(
        self,
        npc: NpcProfile,
        turns: Sequence[Turn],
        budget: int,
        chunk: int = 1,
        keep_last: bool = True,
        rules: str = "",
        notes: str = "",
    ) -> tuple[list[int], int]:
        """(prompt ids, index of the first turn kept) for the latest turns that fit in
        `budget` tokens, dropping the oldest `chunk` turns at a time (the last turn is
        kept when keep_last, even if it does not fit: the caller decides what then).

        Linear in the scene: every turn is tokenised once to estimate where to start,
        then the prompt is built from there; only a short estimate costs another build.
        `rules` go to the system prompt (see system_prompt), `notes` before the latest
        lines (see scene_messages)."""
        ids = self.prompt_ids(scene_messages(npc, turns, rules, notes))
        if len(ids) <= budget or not turns:
            return ids, 0
        last = len(turns) - 1 if keep_last else len(turns)
        costs = self._costs(npc, turns)
        total = len(self.prompt_ids(scene_messages(npc, [], rules, notes))) + sum(costs)
        start = 0
        while start < last and total > budget:
            total -= costs[start]
            start += 1
        start = min(-(-start // chunk) * chunk, last)
        while True:
            ids = self.prompt_ids(scene_messages(npc, turns[start:], rules, notes))
            if len(ids) <= budget or start >= last:
                return ids, start
            start = min(start + chunk, last)

    def _costs(self, npc: NpcProfile, turns: Sequence[Turn]) -> list[int]:
        """Tokens each turn adds to a prompt, near enough to choose where to start: a
        line of a user turn, or an assistant turn with the template's markers around it."""
        lines = [
            t.text if t.npc_id == npc.id else f"{shown_name(t.speaker)}: {one_line(t.text)}\n"
            for t in turns
        ]
        counts = [len(ids) for ids in self.tokenizer(lines, add_special_tokens=False)["input_ids"]]
        return [n + 10 if t.npc_id == npc.id else n for n, t in zip(counts, turns)]

    def example(
        self, npc: NpcProfile, context: Sequence[Turn], reply: str
    ) -> tuple[list[int], list[int]]:
        """(input_ids, labels) with labels -100 on the prompt; the oldest context turns
        are dropped first when the example is longer than max_length."""
        context = transcript_turns(npc, context)
        completion = self.completion_ids(scene_messages(npc, context), reply)
        budget = self.max_length - len(completion)
        prompt, _ = self.fit(npc, context, budget, keep_last=False)
        # Still too long: keep the reply (up to half the budget) and the end of the prompt.
        completion = completion[: max(1, self.max_length // 2)]
        prompt = prompt[max(0, len(prompt) + len(completion) - self.max_length) :]
        return prompt + completion, [-100] * len(prompt) + completion


def stop_token_ids(tokenizer) -> list[int]:
    """The tokens that end an assistant turn in the chat templates of the model families."""
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)
