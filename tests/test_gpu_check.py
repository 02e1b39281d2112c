"""benchmarks/gpu_check.sh is ready for a borrowed GPU: its benchmark runs the same steps
on a tiny model on the CPU (--device cpu --dry-run) and prints every row of its table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_benchmark_dry_run_prints_its_table():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--device", "cpu", "--dry-run"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("tiny (float32 on cpu")
    assert "single stream: ours" in lines[1]
    rows = [line.split() for line in lines[3:5]]
    assert [row[0] for row in rows] == ["1", "2"] and all(len(row) == 7 for row in rows)
    assert all(float(v) > 0 for row in rows for v in row[1:])
    assert "time to first token" in lines[5]


def test_the_check_script_parses_and_refuses_unknown_options():
    script = ROOT / "benchmarks" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    refused = subprocess.run(["bash", str(script), "--fast"], capture_output=True, text=True)
    assert refused.returncode == 2 and "usage" in refused.stderr
