"""A smoke run of `npc-runtime eval` on the tiny model and a slice of real data."""

import json

import pytest
from conftest import SHARED

from npc_runtime.cli import main
from npc_runtime.evaluation.attribution import Share, StyleClassifier
from npc_runtime.neeko.encoder import shared_encoder

DATA = SHARED / "shakespeare"


@pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data beside the checkout")
def test_eval_smoke(tiny_base, tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        [
            "eval",
            "--data",
            str(DATA),
            "--out",
            str(out),
            "--base",
            str(tiny_base),
            "--epochs",
            "1",
            "--max-samples",
            "2",
            "--max-test",
            "2",
            "--max-length",
            "128",
            "--batch-size",
            "2",
            "--attribution",
            "1",
            "--generate",
            "1",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert {p.name for p in out.iterdir()} == {"results.json", "report.md", "chart.png"}
    old = results["perplexity_old"]
    assert set(old) == {"icl", "rag", "shared", "neeko", "house"}
    # the shared LoRA trains on every sample the blocks train on: 13 x 2, 2 a step
    assert results["shared_train_steps"] == results["neeko_pretune_steps"] == 13
    assert set(results["house_wrong_block"]) == set(old["house"])
    assert len(old["neeko"]) == 13 + 1  # every non-held-out character and the mean
    assert all(v > 1 for row in old.values() for v in row.values())
    inc = results["incremental"]
    assert inc["character"] == results["holdout"] == results["characters"][-1]
    assert len(inc["fused_blend"]) == 3
    # blocks are isolated: adding the held-out character changes no old perplexity
    assert inc["forgetting"]["neeko_expansion"] == 0
    gen = results["generated_attribution"]
    assert 0 <= gen["neeko"]["low"] <= gen["neeko"]["accuracy"] <= gen["neeko"]["high"] <= 1
    assert gen["classifier_on_real_test_replies"]["all"]["replies"] > 13 * 2  # the whole test set
    assert 0 <= gen["house"]["accuracy"] <= 1 and results["seconds"]["house_train"] > 0
    table = results["all_characters"]["perplexity"]
    assert set(table) == {"own_block", "wrong_block", "no_lora_profile_prompt"}
    assert len(table["own_block"]) == 14 + 1
    assert "| **mean** |" in capsys.readouterr().out


def test_a_share_carries_its_wilson_interval():
    none, some, every = Share.of([False] * 10), Share.of([True, False] * 50), Share.of([True] * 4)
    assert (none.accuracy, none.low) == (0.0, 0.0) and 0.27 < none.high < 0.28
    assert some.accuracy == 0.5 and 0.40 < some.low < 0.41 and 0.59 < some.high < 0.60
    assert every.high == 1.0 and 0.50 < every.low < 0.52
    assert Share.of([]).replies == 0


def test_the_judge_tells_apart_characters_who_write_apart():
    """Two voices that differ in spelling and words: the judge must tell their unseen lines
    apart, and its ceiling must count only the lines long enough to judge."""
    sailor = [f"Arr, me hearties, the {w} be rollin' on the briny deep, yo ho!" for w in WORDS]
    clerk = [f"Kindly note that the {w} was filed in triplicate per regulation 7." for w in WORDS]
    judge = StyleClassifier(shared_encoder(), {"sailor": sailor[:-2], "clerk": clerk[:-2]})
    texts = [sailor[-1], clerk[-1], sailor[-2], clerk[-2], "Aye."]
    truth = ["sailor", "clerk", "sailor", "clerk", "sailor"]
    assert judge.predict(texts[:4]) == truth[:4]
    ceiling = judge.ceiling(texts, truth)
    assert ceiling["at_least_15_words"]["replies"] == 0  # every line here is shorter
    assert ceiling["all"]["replies"] == 5 and ceiling["chance"] == 0.5
    with pytest.raises(ValueError, match="two characters"):
        StyleClassifier(shared_encoder(), {"sailor": sailor})


WORDS = ["ship", "cargo", "ledger", "anchor", "barrel", "lantern", "rope", "map", "storm", "coin"]
