"""The evaluation's outputs: results.json, report.md and chart.png."""

from __future__ import annotations

import json
from pathlib import Path

SYSTEMS = {"icl": "ICL", "rag": "RAG", "shared": "shared LoRA", "neeko": "Neeko"}


def _f(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def markdown(results: dict) -> str:
    ppl = results["perplexity_old"]
    chars = [c for c in ppl["neeko"] if c != "mean"]
    gen = results["generated_attribution"]
    inc = results["incremental"]
    attr = results["attribution_by_perplexity"]
    lines = [
        f"Held-out character for the incremental part: **{results['holdout']}**; the "
        f"comparison below covers the other {len(chars)} characters.",
        "",
        "### Held-out perplexity (lower is better)",
        "",
        "| character | " + " | ".join(SYSTEMS.values()) + " |",
        "|---|" + "---|" * len(SYSTEMS),
    ]
    for c in ["mean", *chars]:
        label = "**mean**" if c == "mean" else c
        lines.append(f"| {label} | " + " | ".join(_f(ppl[s][c]) for s in SYSTEMS) + " |")
    lines += [
        "",
        "### Character consistency",
        "",
        "| metric | " + " | ".join(SYSTEMS.values()) + " |",
        "|---|" + "---|" * len(SYSTEMS),
        "| generated replies classified as the intended character | "
        + " | ".join(_f(gen[s]) for s in SYSTEMS)
        + " |",
        "",
        f"- Attribution by perplexity (own block lowest among {len(chars)} blocks): "
        f"**{_f(attr['accuracy'])}** over {attr['replies']} replies (chance {_f(attr['chance'])}).",
        f"- The style classifier itself on real held-out replies: "
        f"{_f(gen['classifier_on_real_test_replies'])} ({gen['replies_per_system']} generated "
        "replies per system).",
        "",
        f"### Adding {inc['character']} (incremental)",
        "",
        "| system | perplexity of the new character | change in the old characters' mean |",
        "|---|---|---|",
        f"| ICL (profile only) | {_f(inc['icl'])} | - |",
        f"| Neeko fusion (profile only, no training) | {_f(inc['fusion'])} | 0 |",
        f"| nearest single block ({inc['nearest_block']['block']}) | "
        f"{_f(inc['nearest_block']['perplexity'])} | 0 |",
        f"| Neeko expansion | {_f(inc['neeko_expansion'])} | "
        f"{_f(inc['forgetting']['neeko_expansion'], 4)} |",
        f"| shared LoRA continued | {_f(inc['shared_continued'])} | "
        f"{_f(inc['forgetting']['shared_continued'], 4)} |",
        "",
        "Fused blend: " + ", ".join(f"{b} {w:.2f}" for b, w in inc["fused_blend"].items()),
    ]
    table = results["all_characters"]["perplexity"]
    lines += [
        "",
        "### All characters after expansion: own block vs no LoRA vs a wrong block",
        "",
        "| character | own block | no LoRA, profile prompt | wrong block |",
        "|---|---|---|---|",
    ]
    for c in ["mean", *[c for c in table["own_block"] if c != "mean"]]:
        label = "**mean**" if c == "mean" else c
        row = [table[s][c] for s in ("own_block", "no_lora_profile_prompt", "wrong_block")]
        lines.append(f"| {label} | " + " | ".join(_f(v) for v in row) + " |")
    secs = results["seconds"]
    lines += ["", "Wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items())]
    if secs.get("shared_train") and "neeko_train" in secs:
        ratio = secs["neeko_train"] / secs["shared_train"]
        lines.append(
            f"Pre-tuning the cast took {ratio:.2f}x the time of training the shared LoRA "
            "on the same samples (issue 14's target: at most 1.1x)."
        )
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ppl = results["perplexity_old"]
    gen = results["generated_attribution"]
    names = list(SYSTEMS.values())
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    axes[0].bar(names, [ppl[s]["mean"] for s in SYSTEMS], color="#4a78b5")
    axes[0].set_title("held-out perplexity (lower is better)")
    axes[1].bar(names, [gen[s] for s in SYSTEMS], color="#d08a2c")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("generated replies attributed to the intended character")
    fig.suptitle(f"{Path(results['config']['data']).name}: {len(ppl['neeko']) - 1} characters")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_json(results: dict, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    path.write_text(json.dumps(results, indent=1, default=str))
    return path


def write(results: dict, out: Path) -> Path:
    write_json(results, out)
    report = out / "report.md"
    report.write_text(markdown(results))
    chart(results, out / "chart.png")
    return report
