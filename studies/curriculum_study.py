"""Does a small-cell curriculum pay for the pcg-net corrector? Two arms at equal CPU time.

Issue 31 asks whether curricula (small periodic cells first) pay now that the model has no seam.
The shipped v2 surrogates (kind ``pcg``) have nothing to train, so the question is asked of the
trained v2 candidate, ``pcg-net`` (2 PCG steps + a learned periodic correction), with the trainer of
``studies/surrogate_v2_study.py`` (one torch thread, bf16 corrector, cosine over the CPU budget).

Arms (contrast 10, seed 0, side by side, one core each):

* ``flat``: the 31^3 training split of ``data/cr10_31.h5`` for 1200 CPU s.
* ``small16``: the first half of its budget on 16^3 periodic cells (``data/cr10_16.h5``: the same
  material and parameter box, FE-labelled, batches of 29 cells = the voxels of 4 full cells), then
  the same 31^3 cells. Its budget is 1200 s less the CPU time the whole 16^3 file cost to generate
  (71 CPU s, every split), so the curriculum pays for its own data.

Both keep the weights with the best validation MASE (48 validation structures at 31^3, checked every
120 CPU s); the test figures use 400 structures of the 31^3 test split (the same seeded subset as the
v2 study). Reproduce::

    rln-design generate --contrast 10 --count 2560 --grid 16 --realizations 5 --seed 131 --workers 1 \\
        --out data/cr10_16.h5                                     # 71 CPU s (/usr/bin/time)
    export OMP_NUM_THREADS=1
    python studies/surrogate_v2_study.py train-pcgnet --budget 1200 --check-every 120 \\
        --out runs/curriculum/flat &
    python studies/surrogate_v2_study.py train-pcgnet --budget 1129 --check-every 120 \\
        --curriculum data/cr10_16.h5 --curriculum-fraction 0.5 --out runs/curriculum/small16
    python studies/curriculum_study.py report    # -> studies/curriculum_study.{md,json,png}
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from surrogate_v2_study import accuracy  # the sibling study (scripts run with studies/ on sys.path)

from rln_design._atomic import atomic_path, save_figure_atomic
from rln_design.provenance import Provenance
from rln_design.training.checkpoint import load_checkpoint
from rln_design.training.loop import load_split

ARMS = ("flat", "small16")


def arm_record(run: Path, structures, strain) -> dict:
    """One arm: its validation history (CPU s, val MASE %, cells), budget and test figures."""
    from rln_design.surrogate.strain import Surrogate

    last = load_checkpoint(run / "last.pt")
    state, config = last.training["state"], last.provenance.config
    best = load_checkpoint(run / "best.pt")
    switch = config["curriculum_fraction"] * config["budget"] if config.get("curriculum") else None
    return {"history": state["history"], "cpu_s": state["cpu_s"], "steps": state["step"], "switch_cpu_s": switch,
            "best_val_mase": state["best"], "best_at_cpu_s": best.metrics["cpu_s"],
            "test": accuracy(Surrogate.load(run / "best.pt"), structures, strain)}


def convergence_figure(record: dict):
    """Validation MASE against training CPU seconds, one line per arm, the curriculum's switch marked."""
    from rln_design.plots import _figure

    fig = _figure((6.0, 3.6))
    ax = fig.add_subplot()
    for name in ARMS:
        history = record["arms"][name]["history"]
        ax.plot([h["cpu_s"] for h in history], [h["val_mase"] for h in history], "o-", ms=3, label=name)
        switch = record["arms"][name]["switch_cpu_s"]
        if switch is not None:
            ax.axvline(switch, color="0.6", ls=":", lw=1)
            ax.annotate(f"{name}: small cells -> 31^3 ", (switch, 0.98), xycoords=("data", "axes fraction"),
                        fontsize=8, va="top", ha="right")
    ax.set_xlabel("training CPU s (one core)")
    ax.set_ylabel("validation MASE % (48 structures, 31^3)")
    ax.set_title("pcg-net: small-cell curriculum vs 31^3 only, equal CPU time")
    ax.legend()
    return fig


def markdown(record: dict, figure: str) -> str:
    prov = record["provenance"]
    lines = ["# Curriculum study: small periodic cells first, for the pcg-net corrector\n",
             f"Reproduce: see the docstring of `studies/curriculum_study.py` ({prov['created'][:16]} UTC, "
             f"{prov['hardware']}, rln-design {prov['version']} ({prov['revision']})).\n",
             "| arm | training CPU s | optimizer steps | best val MASE % (at CPU s) | test MASE % mean +- std "
             "| peak err % | p99 err % |", "|---|---:|---:|---|---|---:|---:|"]
    for name in ARMS:
        a = record["arms"][name]
        t = a["test"]
        lines.append(f"| {name} | {a['cpu_s']:.0f} | {a['steps']:,} | {a['best_val_mase']:.2f} "
                     f"({a['best_at_cpu_s']:.0f}) | {t['mase']:.2f} +- {t['mase_std']:.2f} | "
                     f"{t['peak_err']:.2f} | {t['p99_err']:.2f} |")
    diff = record["paired_difference"]
    lines += ["", f"Paired test difference small16 - flat (same {diff['n']} structures): "
              f"{diff['mean']:+.3f} MASE points, standard error {diff['sem']:.3f}.", "",
              f"![validation MASE against CPU time]({figure})", ""]
    return "\n".join(lines)


def run_report(args) -> None:
    runs = Path(args.runs)
    structures, strain, _ = load_split(args.data, "test", max_samples=args.max_test, seed=0)
    record = {"provenance": Provenance.capture(config=vars(args)).to_dict(),
              "arms": {name: arm_record(runs / name, structures, strain) for name in ARMS}}
    d = np.subtract(*(record["arms"][name]["test"].pop("per_structure") for name in ("small16", "flat")))
    record["paired_difference"] = {"mean": float(d.mean()), "sem": float(d.std(ddof=1) / np.sqrt(len(d))),
                                   "n": len(d)}
    out = Path(args.out)
    save_figure_atomic(convergence_figure(record), out.with_suffix(".png"), dpi=120)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    with atomic_path(out) as tmp:
        tmp.write_text(markdown(record, out.with_suffix(".png").name))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report")
    r.add_argument("--data", default="data/cr10_31.h5")
    r.add_argument("--runs", default="runs/curriculum")
    r.add_argument("--max-test", type=int, default=400)
    r.add_argument("--out", default="studies/curriculum_study.md")
    run_report(parser.parse_args(argv))


if __name__ == "__main__":
    main()
