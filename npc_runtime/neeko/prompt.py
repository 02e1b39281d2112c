"""Turning an NPC and a scene into chat messages and token ids, the same way for
training, evaluation and serving, with the base model's own chat template."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .profile import NpcProfile

SCENE_OPENING = "(The scene begins.)"


@dataclass(frozen=True)
class Turn:
    """One line of a scene: who said it (a display name or an NPC id) and what."""

    speaker: str
    text: str


def system_prompt(npc: NpcProfile) -> str:
    lines = [f"You are {npc.name}. {npc.profile}"]
    if npc.style:
        lines.append(f"How you speak: {npc.style}")
    if npc.examples:
        lines.append("Lines you might say: " + " / ".join(npc.examples))
    lines.append(f"Stay in character: answer as {npc.name} would, in one short reply.")
    return "\n".join(lines)


def is_own_turn(npc: NpcProfile, speaker: str) -> bool:
    s = speaker.strip().lower()
    return s in (npc.id.lower(), npc.name.lower()) or s in npc.name.lower().split()


def scene_messages(npc: NpcProfile, context: Sequence[Turn]) -> list[dict[str, str]]:
    """System prompt, then the scene: the NPC's own lines as assistant turns, everyone
    else's merged into user turns as 'Speaker: text' so the NPC hears the whole scene."""
    messages = [{"role": "system", "content": system_prompt(npc)}]
    pending: list[str] = []
    for turn in context:
        if is_own_turn(npc, turn.speaker):
            if pending:
                messages.append({"role": "user", "content": "\n".join(pending)})
                pending = []
            messages.append({"role": "assistant", "content": turn.text})
        else:
            pending.append(f"{turn.speaker}: {turn.text}")
    if pending or messages[-1]["role"] != "user":
        messages.append({"role": "user", "content": "\n".join(pending) or SCENE_OPENING})
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

    def example(
        self, npc: NpcProfile, context: Sequence[Turn], reply: str
    ) -> tuple[list[int], list[int]]:
        """(input_ids, labels) with labels -100 on the prompt; the oldest context turns
        are dropped first when the example is longer than max_length."""
        context = list(context)
        while True:
            messages = scene_messages(npc, context)
            prompt = self.prompt_ids(messages)
            completion = self.completion_ids(messages, reply)
            if len(prompt) + len(completion) <= self.max_length or not context:
                break
            context = context[1:]
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
