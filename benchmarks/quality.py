"""Does a compact precision keep the model's quality? Held-out perplexity per dtype.

Scores the village dev lines (examples/village/dev.jsonl: every NPC's replies, each
through its own block of the bundled cast) with the base model loaded in each precision,
and prints each one's perplexity and its ratio to float32. Targets: int8 within 1% of
float32.

    python benchmarks/quality.py [--dtypes float32,int8,bfloat16] [--cast DIR] [--base PATH]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from npc_runtime.demo import ASSETS  # noqa: E402
from npc_runtime.evaluation.perplexity import mean_perplexity, score_samples  # noqa: E402
from npc_runtime.neeko.data import read_samples  # noqa: E402
from npc_runtime.neeko.store import load_cast  # noqa: E402


def perplexity(cast_dir: Path, base: str | None, dtype: str, data: Path) -> float:
    cast = load_cast(cast_dir, base=base, dtype=dtype)
    samples = [s for rows in read_samples(data, "dev").values() for s in rows]
    samples = [s for s in samples if s.character in cast.npcs]
    routes = {c: cast.routing([c]) for c in {s.character for s in samples}}
    scores = score_samples(
        cast,
        samples,
        lambda s: cast.npc(s.character).profile,
        lambda s: routes[s.character],
        show_progress=False,
    )
    return mean_perplexity(scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtypes", default="float32,int8,bfloat16")
    parser.add_argument("--cast", default=str(ASSETS / "cast"))
    parser.add_argument("--base")
    parser.add_argument("--data", default=str(ROOT / "examples" / "village"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {}
    for dtype in args.dtypes.split(","):
        started = time.perf_counter()
        results[dtype] = perplexity(Path(args.cast), args.base, dtype, Path(args.data))
        took = time.perf_counter() - started
        ratio = results[dtype] / results.get("float32", results[dtype])
        print(f"{dtype:>9}: perplexity {results[dtype]:.3f} x{ratio:.4f} of float32 ({took:.0f} s)")


if __name__ == "__main__":
    main()
