"""Test accuracy of every shipped version of the surrogates, read back from git history.

    python studies/stage_history.py            # -> studies/stage_history.md

The shipped ``surrogates/NAME/model.pt`` records the test metrics that ``rln-design evaluate``
measured when it was shipped (``studies/ship_surrogate.py`` copies them from the evaluation JSON).
Each stage of the CPU recipe replaced the weights, so the git history of that file is the history of
the recipe. This script loads ``model.pt`` (``load_checkpoint``: weights-only) and ``card.md`` from
every commit that changed ``model.pt`` and tabulates, per commit: the training stage (the highest
``training, stage N`` line of the card), whether the weights changed (a SHA-256 of the state dict),
the test MASE of the plain network and of the shipped symmetry ensemble, and the relative error of
the predicted peak strain. Nothing is re-measured and nothing is typed in: every number comes from
the checkpoints. Needs a clone with history (``git log``).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from rln_design.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
_STAGE = re.compile(r"^- training, stage (\d+)", re.MULTILINE)


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def _weights_hash(state: dict) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:12]


def _checkpoint_at(commit: str, path: str):
    """The :class:`~rln_design.training.checkpoint.Checkpoint` of ``path`` at ``commit``, read by
    the schema's one reader (``load_checkpoint``, weights-only) from a temporary copy."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "model.pt"
        copy.write_bytes(_git("show", f"{commit}:{path}"))
        return load_checkpoint(copy)


def history(name: str) -> list[dict]:
    """Rows, oldest first, one per commit that changed ``surrogates/NAME/model.pt`` while it held a
    v1 RLN (the v2 Krylov surrogates that took the names over have no training stages; the v1
    files live on as ``surrogates/NAME-rln``)."""
    log = _git("log", "--reverse", "--format=%h %cs", "--", f"surrogates/{name}/model.pt").decode().split("\n")
    rows, previous = [], None
    for line in filter(None, log):
        commit, date = line.split()
        checkpoint = _checkpoint_at(commit, f"surrogates/{name}/model.pt")
        if checkpoint.kind not in ("rln", "rln-t", "fln"):
            continue
        try:
            card = _git("show", f"{commit}:surrogates/{name}/card.md").decode()
        except subprocess.CalledProcessError:  # not found at that commit
            card = ""
        stages = [int(s) for s in _STAGE.findall(card)]
        metrics = checkpoint.metrics
        ensemble = int(metrics.get("test_ensemble", 1))
        plain = "plain_test_mase_mean" in metrics or ensemble == 1
        prefix = "plain_" if "plain_test_mase_mean" in metrics else ""
        weights = _weights_hash(checkpoint.state_dict)
        rows.append({
            "commit": commit, "date": date, "stage": max(stages) if stages else None,
            "new_weights": weights != previous,
            "plain_mase": (metrics[f"{prefix}test_mase_mean"], metrics[f"{prefix}test_mase_std"]) if plain else None,
            "plain_peak": metrics[f"{prefix}test_statistics"]["peak_strain"]["mean"] if plain else None,
            "ensemble": ensemble,
            "ensemble_mase": (metrics["test_mase_mean"], metrics["test_mase_std"]) if ensemble > 1 else None,
            "ensemble_peak": metrics["test_statistics"]["peak_strain"]["mean"] if ensemble > 1 else None,
            "n_test": metrics["test_statistics"]["peak_strain"].get("n"),
        })
        previous = weights
    return rows


def _pm(pair) -> str:
    return "-" if pair is None else f"{pair[0]:.2f} +- {pair[1]:.2f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(tables: dict[str, list[dict]]) -> str:
    lines = [
        "# Test accuracy of every shipped version of the surrogates",
        "",
        "- command: `python studies/stage_history.py` (reads `surrogates/NAME/model.pt` and `card.md` "
        "of every commit that changed `model.pt`; nothing re-measured)",
        "- figures: the test metrics recorded in each checkpoint by `studies/ship_surrogate.py` from "
        "`rln-design evaluate` (test split of `data/NAME_31.h5`, 400 31^3 structures); MASE % mean "
        "+- std over instances; peak err = mean relative error of the predicted peak strain, %",
        "- stage: the highest training stage listed in the card; `new weights` = the state dict "
        "differs from the previous row (re-ships of the same weights, e.g. adding the ensemble, say no)",
        "",
    ]
    for name, rows in tables.items():
        lines += [f"## {name}", "",
                  "| commit | date | stage | new weights | plain MASE % | plain peak err % "
                  "| ensemble | ensemble MASE % | ensemble peak err % | n test |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['commit']} | {r['date']} | {r['stage'] if r['stage'] is not None else '-'} "
                  f"| {'yes' if r['new_weights'] else 'no'} | {_pm(r['plain_mase'])} | {_pct(r['plain_peak'])} "
                  f"| {r['ensemble']} | {_pm(r['ensemble_mase'])} | {_pct(r['ensemble_peak'])} "
                  f"| {r['n_test'] if r['n_test'] is not None else '-'} |" for r in rows]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", action="append", help="surrogate name (repeatable; default cr10 and cr50)")
    parser.add_argument("--out", type=Path, default=ROOT / "studies" / "stage_history.md")
    args = parser.parse_args(argv)
    try:
        tables = {name: history(name) for name in (args.name or ["cr10", "cr50"])}
    except subprocess.CalledProcessError as exc:
        print(f"stage_history: git failed ({exc.stderr.decode().strip()}); run it in a clone with history",
              file=sys.stderr)
        return 2
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(markdown(tables))
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
