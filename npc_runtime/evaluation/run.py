"""`npc-runtime eval`: compare ways of voicing characters on one base model and data set.

Every system is scored on the same held-out replies with the same prompt (the
character's profile as system prompt, the scene as chat turns); only the LoRA routing
(and, for RAG, the retrieved example lines) differs.

One character X is held out for the incremental part. The Neeko cast is pre-tuned on
the others, then X is added by fusion (profile only) and by expansion (its dialogue);
the shared LoRA (one adapter of the same total rank) is trained on the others and then
continued on X. Since blocks are isolated, the Neeko cast after expansion is the cast of
all characters, which is what the per-character comparison reports.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from ..base_model import load_base, resolve_dtype
from ..engine import Voice
from ..neeko.cast import HOUSE, Cast
from ..neeko.config import GateConfig, LoraConfig, TrainConfig
from ..neeko.data import Sample, read_profiles, read_samples
from ..neeko.layer import Routing
from ..neeko.profile import NpcProfile
from ..neeko.prompt import transcript_turns
from ..neeko.train import selected, train_blocks
from ..neeko.tuning import expand_from_samples, pretune
from ..speak import GREEDY, LocalEngine
from .attribution import StyleClassifier
from .perplexity import Scored, mean_perplexity, score_samples
from .retrieval import ReplyRetriever

SHARED = "shared"


@dataclass
class EvalConfig:
    data: Path
    out: Path
    base: str | None = None
    dtype: str = "float32"  # it trains: auto is float32 on CPU
    train: TrainConfig = field(default_factory=TrainConfig)
    holdout: str | None = None
    max_test_per_character: int | None = 20
    attribution_per_character: int = 8
    generate_per_character: int = 4
    generate_tokens: int = 40
    house: bool = True  # also a cast with a house block, as a system of its own
    seed: int = 0


class Evaluation:
    def __init__(
        self,
        config: EvalConfig,
        show_progress: bool = True,
        checkpoint: Callable[[dict], object] = lambda results: None,
    ):
        self.config = config
        self.checkpoint = checkpoint
        self.show = show_progress
        self.profiles = read_profiles(config.data)
        train = read_samples(config.data, "train")
        self.train = {c: rows for c, rows in train.items() if c in self.profiles}
        self.chars = list(self.train)
        self.holdout = config.holdout or self.chars[-1]
        if self.holdout not in self.train:
            raise ValueError(f"held-out character {self.holdout!r} has no training records")
        self.old = [c for c in self.chars if c != self.holdout]
        rng = random.Random(config.seed)
        test = read_samples(config.data, "test")
        self.real_test = {c: list(test.get(c, [])) for c in self.old}
        self.test: dict[str, list[Sample]] = {}
        for c in self.chars:
            rows = list(test.get(c, []))
            rng.shuffle(rows)
            self.test[c] = rows[: config.max_test_per_character or None]
        self.results: dict = {
            "config": {**asdict(config), "data": str(config.data), "out": str(config.out)},
            "holdout": self.holdout,
            "characters": self.chars,
            "test_replies": {c: len(v) for c, v in self.test.items()},
            "seconds": {},
        }

    # -- helpers ----------------------------------------------------------------
    def _score(
        self,
        cast: Cast,
        samples: Sequence[Sample],
        routing_of: Callable[[Sample], Routing | None],
        desc: str,
        profiles: Sequence[NpcProfile] | None = None,
    ) -> list[Scored]:
        by_id = {id(s): p for s, p in zip(samples, profiles)} if profiles else None
        return score_samples(
            cast,
            samples,
            (lambda s: by_id[id(s)]) if by_id else (lambda s: self.profiles[s.character]),
            routing_of,
            max_length=self.config.train.max_length,
            max_context_turns=self.config.train.max_context_turns,
            desc=desc,
            show_progress=self.show,
        )

    def _per_char(self, scores: Sequence[Scored], samples: Sequence[Sample]) -> dict[str, float]:
        grouped: dict[str, list[Scored]] = {}
        for s, sample in zip(scores, samples):
            grouped.setdefault(sample.character, []).append(s)
        table = {c: mean_perplexity(v) for c, v in grouped.items()}
        return {"mean": mean_perplexity(scores), **table}

    def _samples(self, chars: Sequence[str]) -> list[Sample]:
        return [s for c in chars for s in self.test[c]]

    def _timed(self, name: str, fn):
        started = time.perf_counter()
        value = fn()
        self.results["seconds"][name] = round(time.perf_counter() - started, 3)
        return value

    # -- the systems --------------------------------------------------------------
    def run(self) -> dict:
        cfg = self.config
        neeko, report = self._timed(
            "neeko_pretune",
            lambda: pretune(
                cfg.data,
                base=cfg.base,
                train=cfg.train,
                characters=self.old,
                show_progress=self.show,
            ),
        )
        self.results["neeko_pretune_steps"] = report.steps
        self.results["seconds"]["neeko_train"] = round(report.seconds, 3)  # loading aside
        old_samples = self._samples(self.old)
        ppl: dict[str, dict] = {}
        self._icl_old = self._score(neeko, old_samples, lambda s: None, "ICL")
        ppl["icl"] = self._per_char(self._icl_old, old_samples)
        retriever = ReplyRetriever(neeko.encoder, {c: self._capped(c) for c in self.chars})
        rag_profiles = retriever.profiles(old_samples, self.profiles)
        ppl["rag"] = self._per_char(
            self._score(neeko, old_samples, lambda s: None, "RAG", rag_profiles), old_samples
        )
        own = {c: neeko.routing([c]) for c in self.old}
        ppl["neeko"] = self._per_char(
            self._score(neeko, old_samples, lambda s: own[s.character], "Neeko"), old_samples
        )
        self.results["perplexity_old"] = ppl
        self.results["attribution_by_perplexity"] = self._attribution(neeko)
        self._incremental_neeko(neeko)
        self._issue2_table(neeko)
        self.checkpoint(self.results)  # the Neeko half is complete: keep it if the rest fails
        house = self._house(old_samples) if cfg.house else None
        shared = self._shared_cast(len(self.old))
        shared_route = shared.neeko.routing([{SHARED: 1.0}])
        shared_report = self._timed(
            "shared_train",
            lambda: train_blocks(
                shared,
                {SHARED: [s for c in self.old for s in self._capped(c)]},
                self.profiles,
                self._shared_train,
                show_progress=self.show,
            ),
        )
        self.results["shared_train_steps"] = shared_report.steps
        ppl["shared"] = self._per_char(
            self._score(shared, old_samples, lambda s: shared_route, "shared LoRA"), old_samples
        )
        self._incremental_shared(shared, shared_route)
        self.results["generated_attribution"] = self._generated(neeko, shared, house, retriever)
        return self.results

    def _house(self, old_samples: list[Sample]) -> Cast:
        """The same cast with a house block: held-out perplexity and own vs wrong block."""
        cfg = self.config
        house, report = pretune(
            cfg.data,
            base=cfg.base,
            train=cfg.train,
            characters=self.old,
            show_progress=self.show,
            house=True,
        )
        self.results["seconds"]["house_train"] = round(report.seconds, 3)
        own = {c: house.routing([c]) for c in self.old}
        wrong = {
            c: house.routing([self.old[(i + 1) % len(self.old)]]) for i, c in enumerate(self.old)
        }
        table = {
            name: self._per_char(
                self._score(
                    house, old_samples, lambda s, r=route: r[s.character], f"house: {name}"
                ),
                old_samples,
            )
            for name, route in (("own_block", own), ("wrong_block", wrong))
        }
        self.results["perplexity_old"]["house"] = table["own_block"]
        self.results["house_wrong_block"] = table["wrong_block"]
        self.checkpoint(self.results)
        return house

    @property
    def _shared_train(self) -> TrainConfig:
        """One adapter trains the way one adapter does: a whole batch per update, on all
        the samples the blocks train on (capped per character already, not once more as
        the one block's)."""
        return replace(
            self.config.train,
            block_batch_size=self.config.train.batch_size,
            max_samples_per_character=None,
        )

    def _capped(self, char: str) -> list[Sample]:
        """The samples the character's block trains on (the same draw), for the shared
        LoRA and RAG to use the same."""
        return selected(self.train[char], char, self.config.train)[0]

    def _shared_cast(self, characters: int) -> Cast:
        lora = LoraConfig(rank=LoraConfig().rank * characters)
        dtype = resolve_dtype(self.config.dtype, training=True)
        cast = Cast(load_base(self.config.base, dtype=dtype), lora, GateConfig())
        cast.neeko.add_block(SHARED)
        return cast

    def _attribution(self, neeko: Cast) -> dict:
        """Share of held-out replies whose own block gives the lowest perplexity."""
        samples = [
            s for c in self.old for s in self.test[c][: self.config.attribution_per_character]
        ]
        per_block = {}
        for block in self.old:
            route = neeko.routing([block])
            scores = self._score(neeko, samples, lambda s, r=route: r, f"attribution {block}")
            per_block[block] = [s.nll / max(1, s.tokens) for s in scores]
        hits = [
            min(self.old, key=lambda b, i=i: per_block[b][i]) == s.character
            for i, s in enumerate(samples)
        ]
        return {
            "accuracy": sum(hits) / max(1, len(hits)),
            "replies": len(hits),
            "chance": 1 / len(self.old),
        }

    def _generated(
        self, neeko: Cast, shared: Cast, house: Cast | None, retriever: ReplyRetriever
    ) -> dict:
        """Replies generated for held-out scenes, attributed by the style classifier."""
        judge = self._judge(neeko)
        real = [s for c in self.old for s in self.real_test[c]]
        out: dict = {
            "classifier_on_real_test_replies": judge.ceiling(
                [s.reply for s in real], [s.character for s in real]
            )
        }
        scenes = [s for c in self.old for s in self.test[c][: self.config.generate_per_character]]
        rag = retriever.profiles(scenes, self.profiles)
        greedy = replace(GREEDY, max_tokens=self.config.generate_tokens)
        systems = {  # the cast, and the blend each scene's reply speaks through
            "icl": (neeko, lambda s: {}, None),
            "rag": (neeko, lambda s: {}, rag),
            "shared": (shared, lambda s: {SHARED: 1.0}, None),
            "neeko": (neeko, lambda s: neeko.npc(s.character).blend, None),
        }
        if house is not None:
            systems["house"] = (house, lambda s: house.npc(s.character).blend, None)
        samples_out = {}
        for name, (cast, blend, profiles) in systems.items():
            texts = []
            with LocalEngine(cast) as local:
                for i, s in enumerate(scenes):
                    profile = profiles[i] if profiles else self.profiles[s.character]
                    recent = s.context[-self.config.train.max_context_turns :]
                    context = transcript_turns(self.profiles[s.character], recent)
                    voice = Voice(profile, blend(s))
                    result = local.generate(s.character, context, greedy, voice=voice)
                    texts.append(result.text.strip())
            out[name] = judge.score(texts, [s.character for s in scenes]).as_dict()
            samples_out[name] = texts[:: max(1, self.config.generate_per_character)][:5]
        out["examples"] = samples_out
        out["replies_per_system"] = len(scenes)
        return out

    def _judge(self, neeko: Cast) -> StyleClassifier:
        """The judge learns from every real train (and dev, if any) reply: more than any
        system saw, never a test reply."""
        has_dev = (Path(self.config.data) / "dev.jsonl").exists()
        dev = read_samples(self.config.data, "dev") if has_dev else {}
        replies = {c: [s.reply for s in [*self.train[c], *dev.get(c, [])]] for c in self.old}
        return StyleClassifier(neeko.encoder, replies, seed=self.config.seed)

    def _incremental_neeko(self, neeko: Cast) -> None:
        x = self.holdout
        x_samples, old_samples = self.test[x], self._samples(self.old)
        profile = self.profiles[x]
        res: dict = {"character": x}
        before = self.results["perplexity_old"]["neeko"]
        self._icl_x = self._score(neeko, x_samples, lambda s: None, "X: ICL")
        res["icl"] = mean_perplexity(self._icl_x)
        fused = self._timed(
            "fusion",
            lambda: neeko.fuse(
                NpcProfile(id=f"{x}-fused", name=profile.name, profile=profile.profile)
            ),
        )
        fused_route = neeko.routing([fused.id])
        res["fused_blend"] = fused.blend
        res["fusion"] = mean_perplexity(
            self._score(neeko, x_samples, lambda s: fused_route, "X: fusion")
        )
        nearest = max((b for b in fused.blend if b != HOUSE), key=fused.blend.get)
        near_route = neeko.routing([nearest])
        res["nearest_block"] = {
            "block": nearest,
            "perplexity": mean_perplexity(
                self._score(neeko, x_samples, lambda s: near_route, "X: nearest block")
            ),
        }
        neeko.remove_npc(fused.id)
        self._timed(
            "neeko_expand",
            lambda: expand_from_samples(
                neeko, profile, self._capped(x), self.config.train, show_progress=self.show
            ),
        )
        x_route = neeko.routing([x])
        res["neeko_expansion"] = mean_perplexity(
            self._score(neeko, x_samples, lambda s: x_route, "X: expansion")
        )
        own = {c: neeko.routing([c]) for c in self.old}
        after = self._per_char(
            self._score(neeko, old_samples, lambda s: own[s.character], "old after expansion"),
            old_samples,
        )
        res["forgetting"] = {
            "neeko_expansion": after["mean"] - before["mean"],
            "neeko_old_after": after,
        }
        self.results["incremental"] = res

    def _incremental_shared(self, shared: Cast, shared_route: Routing) -> None:
        x = self.holdout
        x_samples, old_samples = self.test[x], self._samples(self.old)
        res = self.results["incremental"]
        before = self.results["perplexity_old"]["shared"]
        self._timed(
            "shared_continue",
            lambda: train_blocks(
                shared,
                {SHARED: self._capped(x)},
                self.profiles,
                self._shared_train,
                show_progress=self.show,
            ),
        )
        res["shared_continued"] = mean_perplexity(
            self._score(shared, x_samples, lambda s: shared_route, "X: shared continued")
        )
        after = self._per_char(
            self._score(shared, old_samples, lambda s: shared_route, "old after shared continued"),
            old_samples,
        )
        res["forgetting"]["shared_continued"] = after["mean"] - before["mean"]
        res["forgetting"]["shared_old_after"] = after

    def _issue2_table(self, neeko: Cast) -> None:
        """All characters (after expansion): own block vs no LoRA vs a wrong block."""
        chars = self.chars
        samples = self._samples(chars)
        wrong_of = {c: chars[(i + 1) % len(chars)] for i, c in enumerate(chars)}
        own = {c: neeko.routing([c]) for c in chars}
        wrong = {c: neeko.routing([wrong_of[c]]) for c in chars}
        table = {}
        for name, route in (("own_block", own), ("wrong_block", wrong)):
            table[name] = self._per_char(
                self._score(neeko, samples, lambda s, r=route: r[s.character], name), samples
            )
        table["no_lora_profile_prompt"] = self._per_char(
            self._icl_old + self._icl_x, self._samples(self.old) + self.test[self.holdout]
        )
        self.results["all_characters"] = {"perplexity": table, "wrong_block_of": wrong_of}
