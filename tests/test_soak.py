"""benchmarks/soak.py keeps working: a short soak on the tiny model must run clean, with
every kind of ending (completed, cancelled, dropped) actually exercised."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT


def test_short_soak_is_clean(tmp_path, trained_cast_dir, tiny_base):
    report = tmp_path / "report.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "soak.py"), "--clients", "8"]
    command += ["--minutes", "0.33", "--cast", str(trained_cast_dir), "--base", str(tiny_base)]
    command += ["--seed", "1", "--max-tokens", "4", "24", "--threads", "1", "--json", str(report)]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(report.read_text())
    outcomes = result["outcomes"]
    assert outcomes["completed"] > 0 and outcomes["cancelled"] > 0, result
    assert outcomes["disconnected"] > 0, result
    assert result["verify"]["turns"] > 0 and result["active_streams"] == 0
    assert "verify" in done.stdout and "result OK" in done.stdout


def test_the_soak_check_finds_lost_duplicated_and_unexpected_turns(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from soak_clients import CANCELLED, COMPLETED, UNKNOWN, Exchange, verify

    def turns(*rows):  # (request_id, npc_id or "" for the player, text)
        kinds = {"": "SPEAKER_KIND_PLAYER"}
        return [
            {"seq": n, "request_id": r, "npc_id": npc, "text": text,
             "speaker_kind": kinds.get(npc, "SPEAKER_KIND_NPC")}
            for n, (r, npc, text) in enumerate(rows, 1)
        ]  # fmt: skip

    ledger = {
        "a": Exchange("a", "s", 0, 1, "brann", "hi", COMPLETED, "Aye."),
        "b": Exchange("b", "s", 0, 2, "marla", "tea?", UNKNOWN),
        "c": Exchange("c", "s", 0, 3, "pip", "run!", CANCELLED),
        "d": Exchange("d", "s", 0, 4, "pip", "well?", COMPLETED, ""),
    }
    good = turns(("a", "", "hi"), ("a", "brann", "Aye."), ("d", "", "well?"))
    assert verify({"s": good}, ledger).problems == []
    also_b = turns(("a", "", "hi"), ("a", "brann", "Aye."), ("b", "", "tea?"), ("d", "", "well?"))
    assert verify({"s": also_b}, ledger).problems == []

    verdict = verify({"s": turns(("a", "", "hi"), ("a", "brann", "Aye."))}, ledger)
    assert (verdict.lost, verdict.duplicated, verdict.unexpected) == (1, 0, 0)
    twice = good + turns(("a", "", "hi"))[:1]
    twice[-1]["seq"] = 4
    assert verify({"s": twice}, ledger).duplicated == 1
    for bad in (
        good + [dict(good[0], seq=4, request_id="c", text="run!")],  # cancelled, stored
        turns(("a", "", "hi"), ("a", "brann", "Nay."), ("d", "", "well?")),  # other text
        turns(("d", "", "well?"), ("a", "", "hi"), ("a", "brann", "Aye.")),  # out of order
        [dict(t, seq=t["seq"] + 1) for t in good],  # seqs not 1..n
    ):
        assert verify({"s": bad}, ledger).unexpected == 1, bad
