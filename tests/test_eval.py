"""A smoke run of `npc-runtime eval` on the tiny model and a slice of real data."""

import json

import pytest
from conftest import SHARED

from npc_runtime.cli import main

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
    assert set(old) == {"icl", "rag", "shared", "neeko"}
    assert len(old["neeko"]) == 13 + 1  # every non-held-out character and the mean
    assert all(v > 1 for row in old.values() for v in row.values())
    inc = results["incremental"]
    assert inc["character"] == results["holdout"] == results["characters"][-1]
    assert len(inc["fused_blend"]) == 3
    # blocks are isolated: adding the held-out character changes no old perplexity
    assert inc["forgetting"]["neeko_expansion"] == 0
    assert 0 <= results["generated_attribution"]["neeko"] <= 1
    table = results["all_characters"]["perplexity"]
    assert set(table) == {"own_block", "wrong_block", "no_lora_profile_prompt"}
    assert len(table["own_block"]) == 14 + 1
    assert "| **mean** |" in capsys.readouterr().out
