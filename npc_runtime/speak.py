"""One reply, offline and unbatched: for `npc-runtime say`, the demo and quick checks.

The daemon uses the batching engine instead; this path stays small on purpose.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from transformers.generation.streamers import TextStreamer

from .neeko.cast import Cast
from .neeko.layer import Routing
from .neeko.profile import NpcProfile
from .neeko.prompt import Turn, scene_messages


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 96
    greedy: bool = False
    temperature: float = 0.8
    top_p: float = 0.9
    repetition_penalty: float = 1.1
    seed: int | None = None


class _Callback(TextStreamer):
    def __init__(self, tokenizer, on_text: Callable[[str], None]):
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._on_text = on_text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._on_text(text)


def stop_token_ids(tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    for token in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


def generate(
    cast: Cast,
    profile: NpcProfile,
    context: Sequence[Turn],
    routing: Routing | None,
    sampling: Sampling = Sampling(),
    on_text: Callable[[str], None] | None = None,
) -> str:
    """A reply in the voice of `profile` with the given LoRA routing (None: base model)."""
    prompt = cast.prompts.prompt_ids(scene_messages(profile, context))
    device = next(cast.model.parameters()).device
    ids = torch.tensor([prompt], device=device)
    if sampling.seed is not None:
        torch.manual_seed(sampling.seed)
    options = dict(
        max_new_tokens=sampling.max_tokens,
        eos_token_id=stop_token_ids(cast.tokenizer),
        pad_token_id=cast.tokenizer.pad_token_id,
        repetition_penalty=sampling.repetition_penalty,
    )
    if sampling.greedy:
        options.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    else:
        options.update(do_sample=True, temperature=sampling.temperature, top_p=sampling.top_p)
    streamer = _Callback(cast.tokenizer, on_text) if on_text else None
    with torch.no_grad(), cast.neeko.routed(routing):
        out = cast.model.generate(
            ids, attention_mask=torch.ones_like(ids), streamer=streamer, **options
        )
    return cast.tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True).strip()


def reply(
    cast: Cast,
    npc_id: str,
    context: Sequence[Turn],
    sampling: Sampling = Sampling(),
    on_text: Callable[[str], None] | None = None,
) -> str:
    npc = cast.npc(npc_id)
    return generate(cast, npc.profile, context, cast.routing([npc_id]), sampling, on_text)
