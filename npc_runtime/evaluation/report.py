"""The evaluation's outputs: results.json, report.md and chart.png."""

from __future__ import annotations

import json
from pathlib import Path

ALL_SYSTEMS = {
    "icl": "ICL",
    "rag": "RAG",
    "shared": "shared LoRA",
    "neeko": "Neeko",
    "house": "Neeko + house",
}


def _systems(results: dict) -> dict[str, str]:
    """The systems this run has (the house cast is optional)."""
    return {k: v for k, v in ALL_SYSTEMS.items() if k in results["perplexity_old"]}


def _f(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _share(share: dict) -> str:
    return f"{_f(share['accuracy'])} [{_f(share['low'])}, {_f(share['high'])}]"


def markdown(results: dict) -> str:
    ppl = results["perplexity_old"]
    systems = _systems(results)
    chars = [c for c in ppl["neeko"] if c != "mean"]
    gen = results["generated_attribution"]
    inc = results["incremental"]
    attr = results["attribution_by_perplexity"]
    ceiling = gen["classifier_on_real_test_replies"]
    long_key = next(k for k in ceiling if k.startswith("at_least_"))
    lines = [
        f"Held-out character for the incremental part: **{results['holdout']}**; the "
        f"comparison below covers the other {len(chars)} characters.",
        "",
        "### Held-out perplexity (lower is better)",
        "",
        "| character | " + " | ".join(systems.values()) + " |",
        "|---|" + "---|" * len(systems),
    ]
    for c in ["mean", *chars]:
        label = "**mean**" if c == "mean" else c
        lines.append(f"| {label} | " + " | ".join(_f(ppl[s][c]) for s in systems) + " |")
    lines += [
        "",
        "### Character consistency",
        "",
        "| metric | " + " | ".join(systems.values()) + " |",
        "|---|" + "---|" * len(systems),
        "| generated replies attributed to the intended character (95% CI) | "
        + " | ".join(_share(gen[s]) for s in systems)
        + " |",
        "",
        f"- Attribution by perplexity (own block lowest among {len(chars)} blocks): "
        f"**{_f(attr['accuracy'])}** over {attr['replies']} replies (chance {_f(attr['chance'])}).",
        f"- The judge of generated replies ({gen['replies_per_system']} per system) is a style "
        "classifier (character n-grams, words and role embeddings) trained on real train and "
        f"dev replies. Its ceiling, on real held-out replies: {_share(ceiling['all'])} of all, "
        f"{_share(ceiling[long_key])} of those of {long_key.split('_')[2]} words or more "
        f"(chance {_f(ceiling['chance'])}).",
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
    if "house" in ppl:
        own, wrong = ppl["house"]["mean"], results["house_wrong_block"]["mean"]
        plain = table["wrong_block"]["mean"] / table["own_block"]["mean"]
        lines += [
            "",
            f"With a house block, a wrong character's block (and the house) gives {_f(wrong)} "
            f"against the own block's {_f(own)}: {_f(wrong / own, 3)}x (without a house: "
            f"{_f(plain, 3)}x; ratios of mean perplexities; issue 14's target: 1.3x).",
        ]
    secs = results["seconds"]
    lines += ["", "Wall time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in secs.items())]
    if secs.get("shared_train") and "neeko_train" in secs:
        ratio = secs["neeko_train"] / secs["shared_train"]
        lines.append(
            f"Pre-tuning the cast took {ratio:.2f}x the time of training the shared LoRA "
            f"on the same samples ({results['neeko_pretune_steps']} and "
            f"{results.get('shared_train_steps', '?')} steps; issue 14's target: at most 1.1x)."
        )
    if secs.get("shared_train") and "house_train" in secs:
        ratio = secs["house_train"] / secs["shared_train"]
        lines.append(f"The cast with a house block (house first, then blocks) took {ratio:.2f}x.")
    return "\n".join(lines) + "\n"


def chart(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ppl = results["perplexity_old"]
    gen = results["generated_attribution"]
    systems = _systems(results)
    names = list(systems.values())
    fig = plt.figure(figsize=(12, 8))
    axes = [fig.add_subplot(2, 2, 1), fig.add_subplot(2, 2, 2)]
    axes[0].bar(names, [ppl[s]["mean"] for s in systems], color="#4a78b5")
    axes[0].set_title("held-out perplexity (lower is better)")
    shares = [gen[s] for s in systems]
    errors = [
        [g["accuracy"] - g["low"] for g in shares],
        [g["high"] - g["accuracy"] for g in shares],
    ]
    axes[1].bar(names, [g["accuracy"] for g in shares], yerr=errors, color="#d08a2c")
    ceiling = gen["classifier_on_real_test_replies"]["all"]["accuracy"]
    axes[1].axhline(ceiling, color="grey", linestyle="--", label="judge on real replies")
    axes[1].legend(loc="upper right")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("generated replies attributed to the intended character")
    _per_character(fig.add_subplot(2, 1, 2), results)
    fig.suptitle(f"{Path(results['config']['data']).name}: {len(ppl['neeko']) - 1} characters")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _per_character(ax, results: dict) -> None:
    """Each character's held-out perplexity: own block, a wrong block, the shared LoRA
    (and the own block of the house cast)."""
    table = results["all_characters"]["perplexity"]
    shared = results["perplexity_old"]["shared"]
    chars = [c for c in table["own_block"] if c != "mean"]
    bars = {
        "Neeko, own block": table["own_block"],
        "Neeko, a wrong block": table["wrong_block"],
        "shared LoRA": shared,
    }
    if "house" in results["perplexity_old"]:
        bars["Neeko + house, own block"] = results["perplexity_old"]["house"]
    width = 0.8 / len(bars)
    for i, (label, row) in enumerate(bars.items()):
        xs = [j + (i - (len(bars) - 1) / 2) * width for j, c in enumerate(chars) if c in row]
        ax.bar(xs, [row[c] for c in chars if c in row], width, label=label)
    ax.set_xticks(range(len(chars)), chars, rotation=30, ha="right")
    ax.set_title("held-out perplexity per character (the held-out one: expansion)")
    ax.legend(ncol=len(bars), loc="lower center", fontsize="small")


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
