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
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    table = results["perplexity"]
    assert set(table) == {"own_block", "no_lora_profile_prompt", "wrong_block"}
    assert len(table["own_block"]) == 14 + 1  # every character and the mean
    assert all(v > 1 for row in table.values() for v in row.values())
    assert results["test_replies"] == 28
    assert "| **mean** |" in capsys.readouterr().out
