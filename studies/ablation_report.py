"""Summarize the equal-CPU-time ablation of the CPU training recipe (``ablation_cpu_recipe.sh``).

    python studies/ablation_report.py [--runs runs/ablation] [--out studies/ablation_cpu_recipe.md]

Reads each arm's ``metrics.jsonl`` (per-epoch training log: wall seconds, validation MASE) and
``best.pt`` (resolved configuration), and ``evaluation.json`` (``rln-design evaluate --json`` of all
arms on the same 31^3 test structures), and writes a markdown table. Every number is read from
those files. An arm with a fine-tuning stage (C) adds the wall time of its 16^3 stage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rln_design import __version__
from rln_design._atomic import write_text_atomic
from rln_design.training.checkpoint import load_checkpoint
from rln_design.training.loop import read_metrics
from _machine import cpu_summary

ROOT = Path(__file__).resolve().parent.parent
ARMS = {
    "A": "16^3 periodic volumes only, augmentation",
    "B": "31^3 structures only (deployment grid), augmentation",
    "C": "16^3 for half the budget, then fine-tuned at 31^3 (the shipped recipe's shape)",
    "D": "16^3 periodic volumes only, no augmentation",
}


def _stage(run: Path) -> dict:
    """Data, sample-steps, wall seconds and best validation MASE of one training run."""
    history = read_metrics(run)
    config = load_checkpoint(run / "best.pt").provenance.config
    samples = config["max_train_samples"] * len(history)
    return {
        "data": ", ".join(Path(p).name for p in config["data"]),
        "sample_steps": samples,
        "seconds": sum(h["time_s"] for h in history),
        "val_mase": min(h["val_mase"] for h in history),
        "init_from": config.get("init_from"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "ablation")
    parser.add_argument("--out", type=Path, default=ROOT / "studies" / "ablation_cpu_recipe.md")
    args = parser.parse_args()

    report = json.loads((args.runs / "evaluation.json").read_text())
    rows = []
    for row in report["rows"]:
        if row["kind"] == "baseline":
            continue
        run = Path(row["label"]).parent
        name = run.name
        stages = [_stage(run)]
        if stages[0]["init_from"]:
            stages.insert(0, _stage(Path(stages[0]["init_from"]).parent))
        rows.append({
            "arm": name,
            "what": ARMS[name[0]],
            "steps": " + ".join(f"{s['sample_steps']} ({s['data']})" for s in stages),
            "seconds": sum(s["seconds"] for s in stages),
            "val": stages[-1]["val_mase"],
            "test": row["mase"],
            "peak": row["statistics"]["peak_strain"]["mean"],
            "p99": row["statistics"]["p99_strain"]["mean"],
        })
    baselines = {row["label"]: row["mase"] for row in report["rows"] if row["kind"] == "baseline"}

    lines = [
        "# Ablation of the CPU training recipe at equal CPU time (contrast 10)",
        "",
        "Reproduce: `bash studies/ablation_cpu_recipe.sh && python studies/ablation_report.py`"
        f" (rln-design {__version__}, {cpu_summary()}; two arms side by side, one torch thread each).",
        "",
        "Every arm trains the paper's RLN (N = 5, k = 2, width 16) from random weights with batch 8,"
        " Adam, per-step cosine annealing and warmup; sample counts are chosen so that every arm costs"
        " about the same CPU time (one 31^3 sample-step costs about six 16^3 ones). Validation: best"
        " epoch on 48 31^3 validation structures. Test: `rln-design evaluate` of all arms on the same"
        f" {report['n']} structures of the {report['split']} split of `{report['data']}`"
        f" (grid {'x'.join(map(str, report['grid']))}).",
        "",
        "| arm | training | sample-steps (data) | wall s | val MASE % | test MASE % mean +- std"
        " | peak err % | p99 err % |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["arm"]):
        lines.append(
            f"| {r['arm']} | {r['what']} | {r['steps']} | {r['seconds']:.0f} | {r['val']:.2f} |"
            f" {r['test']['mean']:.2f} +- {r['test']['std']:.2f} | {100 * r['peak']:.1f} |"
            f" {100 * r['p99']:.1f} |"
        )
    for label, mase in baselines.items():
        lines.append(f"| {label} | baseline | - | - | - | {mase['mean']:.2f} +- {mase['std']:.2f} | - | - |")
    lines.append("")
    write_text_atomic(args.out, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
