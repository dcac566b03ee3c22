"""Turn a training checkpoint and its measured evaluation into a shipped surrogate with a model card.

    python studies/ship_surrogate.py --name cr10 --run runs/cr10-31z --stage runs/cr10 \
        --stage runs/cr10-31 --stage runs/cr10-31x --stage runs/cr10-31y \
        --test-data data/cr10_31.h5 --selection runs/cr10-select.json --ensemble 4

Reads ``RUN/best.pt`` (a :class:`rln_design.training.checkpoint.Checkpoint`: weights, physics, the resolved
config in its provenance, training data attributes), ``RUN/metrics.jsonl``
(the per-epoch log written by ``rln-design train``) and ``RUN/evaluation.json`` (the JSON report of
``rln-design evaluate`` on the test split; with ``--ensemble K`` it needs a row of that
symmetry-ensemble size, and a plain-network row if there is one is recorded beside it), and writes
``surrogates/NAME/model.pt`` (the same checkpoint schema without the training state; loads with
``torch.load(weights_only=True)``) and ``surrogates/NAME/card.md``. ``--selection`` (repeatable)
adds the validation comparisons that chose between candidate weights (``rln-design evaluate
--out`` or ``--json`` reports). Every number in the card is read from those files; nothing is
typed in by hand.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from rln_design import __version__
from rln_design._atomic import atomic_path
from rln_design.training.checkpoint import Checkpoint, load_checkpoint
from rln_design.data import SPLIT_CODES, done_count, physics, provenance, split_design_points, split_rows
from rln_design.training.evaluate import format_table
from rln_design.surrogate.strain import Surrogate
from rln_design.models.symmetry import check_ensemble_size, symmetry_transforms
from rln_design.training.loop import read_metrics
from _machine import cpu_summary

ROOT = Path(__file__).resolve().parent.parent
PAPER = {10.0: {"RLN": "1.21 +- 0.37", "RLN-t": "1.81 +- 0.58", "FLN": "4.98 +- 1.49"},
         50.0: {"RLN": "2.92 +- 1.17", "RLN-t": "4.26 +- 1.65", "FLN": "9.23 +- 3.29"}}


def _dataset_line(path: str, attrs: dict | None = None) -> str:
    """One card line for a dataset: read from the file, or, when the file is not on this machine
    (a GPU stage generates its data there), from the attributes the checkpoint recorded of it
    (its ``data`` summary): the split counts follow from the config (``split_design_points``)."""
    if Path(path).is_file() or attrs is None:
        config, (_, n), grid = provenance(path).config, done_count(path), physics(path).grid
        splits = {name: len(split_rows(path, name)) for name in SPLIT_CODES}  # done samples of each
        where = ""
    else:
        config = attrs["config"]
        config = json.loads(config) if isinstance(config, str) else config
        n, grid = config["count"], (config["size"],) * 3
        of_point = split_design_points(config["count"] // config["realizations"], config["split"], config["seed"])
        splits = {name: int((of_point == code).sum()) * config["realizations"] for name, code in SPLIT_CODES.items()}
        where = " (file not on this machine: described from the attributes recorded in the checkpoint)"
    bounds = ", ".join(f"{k} {lo:g}-{hi:g}" for k, (lo, hi) in config["bounds"].items())
    return (f"`{path}`: {n} structures at {'x'.join(map(str, grid))} ({config['count'] // config['realizations']} "
            f"Latin-hypercube design points x {config['realizations']} realizations, seed {config['seed']}; "
            f"{bounds}{', log-uniform widths' if config.get('log_widths') else ''}); split by design point "
            f"train/validation/test = {splits['train']}/{splits['validation']}/{splits['test']}{where}")


def _file_attrs(ckpt: Checkpoint, path: str) -> dict | None:
    """The attributes the checkpoint recorded of the training/validation file ``path``."""
    return ckpt.data.get("files", {}).get(path)


def _history_table(history: list[dict]) -> list[str]:
    return [
        "| epoch | train loss | validation MASE % | lr | seconds |",
        "|---|---|---|---|---|",
        *[f"| {r['epoch']} | {r['train_loss']:.4g} | {r['val_mase']:.3f} | {r['lr']:.3g} | "
          f"{r.get('time_s', float('nan')):.0f} |" for r in history],
    ]


def transfer_check(stages: list[tuple[str, dict]], n: int = 48, seed: int = 0) -> list[tuple]:
    """MASE of each stage's weights on the validation splits of every grid's data.

    Args:
        stages: ``(label, checkpoint)`` per training stage, in order (the last is shipped).

    Returns rows ``(weights, data file, grid, MASE mean, MASE std)``; the same seeded subset of
    ``n`` validation structures per file for every stage's weights. Files without a validation
    split (extra training data) are skipped.
    """
    import numpy as np

    from rln_design.data import load_dataset
    from rln_design.training.evaluate import evaluate_model

    files = list(dict.fromkeys(
        p for _, c in stages for p in (*c.provenance.config["data"], *c.provenance.config.get("val_data", ()))
    ))
    rows = []
    for path in files:
        structures, strain = load_dataset(path, "validation")
        if len(structures) == 0:
            continue
        index = np.sort(np.random.default_rng(seed).choice(len(structures), min(n, len(structures)), replace=False))
        for label, ckpt in stages:
            result = evaluate_model(Surrogate.from_checkpoint(ckpt), structures[index], strain[index])
            m = result["summary"]["mase"]
            rows.append((label, path, "x".join(map(str, structures.shape[1:])), m["mean"], m["std"]))
    return rows


def _model_rows(report: dict) -> list[dict]:
    """The rows of an ``rln-design evaluate --json`` report that score a model (not a baseline)."""
    return [row for row in report["rows"] if row["kind"] != "baseline"]


def surrogate_rows(report: dict, ensemble: int, precision: str = "fp32") -> tuple[dict, dict | None]:
    """The report's row of the shipped ensemble size, and its plain-network (ensemble 1) row.

    Only rows evaluated in ``precision`` count (reports made before the precision option are
    fp32). Reports without ensemble labels (one surrogate row) give ``(that row, None)``.
    """
    rows = [row for row in _model_rows(report) if row.get("precision", "fp32") == precision]
    if not rows:
        raise SystemExit(f"the evaluation report has no {precision} row: run rln-design evaluate "
                         f"with --precision {precision}")
    if not any("ensemble" in row for row in rows):  # a report made before ensembles existed
        if ensemble != 1:
            raise SystemExit(f"the evaluation report has no ensemble sizes (a plain-network report); "
                             f"--ensemble {ensemble} needs rln-design evaluate --ensemble {ensemble}")
        return rows[0], None
    by_size = {row.get("ensemble"): row for row in rows}
    if ensemble not in by_size:
        raise SystemExit(f"the evaluation report has no row with ensemble {ensemble} "
                         f"(has {sorted(k for k in by_size if k)}): run rln-design evaluate with "
                         f"--ensemble {ensemble}")
    return by_size[ensemble], (by_size.get(1) if ensemble != 1 else None)


def bf16_rows(report: dict, ensemble: int) -> tuple[dict | None, dict | None]:
    """:func:`surrogate_rows` in bf16, or ``(None, None)`` when the report has no bf16 row."""
    if any(row.get("precision") == "bf16" for row in _model_rows(report)):
        return surrogate_rows(report, ensemble, "bf16")
    return None, None


SELECTION_HEADING = "### Choice of the shipped weights"
SELECTION_COLUMNS = "| weights | MASE % mean +- std | peak-strain error % (mean) | lowest MASE | shipped |"


def previous_card_sections(text: str) -> tuple[int, float, list[str], list[str]]:
    """What a shipped card says of the stages before the run that started from its weights.

    Returns ``(stages, hours, data lines, training lines)``: the stage count and training hours
    of its "wall time" line, its per-stage training/validation data bullets, and its "## Training"
    section from the first "### Stage" heading to "## Accuracy" (stage tables, the validation
    comparisons that chose its weights, the ablation), verbatim except that its weight choices are
    relabelled: the weights it shipped are not the ones the new card ships, so its "Choice of the
    shipped weights" headings and "shipped" columns become "kept then".

    Raises:
        SystemExit: the text is not a card written by this script.
    """
    import re

    found = re.search(r"wall time: ([\d.]+) h of training in (\d+) stage", text)
    lines = text.splitlines()
    if not found or "## Training" not in lines or "## Accuracy on the test split (measured by `rln-design evaluate`)" not in lines:
        raise SystemExit("--previous-card: not a model card written by studies/ship_surrogate.py")
    data = [line for line in lines if line.startswith(("- training, stage", "- validation, stage"))]
    start = next(k for k, line in enumerate(lines) if line.startswith("### Stage 1"))
    end = lines.index("## Accuracy on the test split (measured by `rln-design evaluate`)")
    relabel = {SELECTION_HEADING: "### Choice of the weights kept then (shipped by the earlier card)",
               SELECTION_COLUMNS: SELECTION_COLUMNS.replace("| shipped |", "| kept then |")}
    return (int(found.group(2)), float(found.group(1)), data,
            [relabel.get(line, line) for line in lines[start:end]])


def _is_weights(label: str, weights: Path) -> bool:
    """Whether an evaluate row label (``<path as typed> [ensemble K]``) names the file ``weights``."""
    return Path(label.split(" [")[0]).resolve() == weights.resolve()


def check_selection(selection: dict, shipped: Path) -> None:
    """Raise SystemExit unless the selection report has a row of the shipped weights."""
    rows = _model_rows(selection)
    if not any(_is_weights(row["label"], shipped) for row in rows):
        raise SystemExit(f"the selection report has no row for the shipped weights {str(shipped)!r} "
                         f"(rows: {[row['label'] for row in rows]})")


def _selection_section(selections: list[dict], shipped: Path) -> list[str]:
    """Card lines for the choices between candidate weights on validation structures.

    Args:
        selections: ``rln-design evaluate --json`` reports of the candidates (one row each), in the
            order the choices were made; the last one contains the shipped weights (``main`` checks
            it with :func:`check_selection` before the slow steps).
        shipped: the shipped weights file (``RUN/best.pt``).
    """
    lines = [
        SELECTION_HEADING,
        "",
        "The stages compared below were kept only because they beat the weights before them on "
        "more validation structures than the in-training validation (which could not tell the last"
        " stages apart); `rln-design evaluate --split validation`, plain network. Not the test "
        "split: the test figures below were measured after the choice.",
        "",
    ]
    for selection in selections:
        rows = _model_rows(selection)
        lowest = min(row["mase"]["mean"] for row in rows)
        lines += [
            f"{selection['n']} structures of the {selection['split']} split of `{selection['data']}`:",
            "",
            SELECTION_COLUMNS,
            "|---|---|---|---|---|",
            *[f"| `{row['label']}` | {row['mase']['mean']:.2f} +- {row['mase']['std']:.2f} | "
              f"{100 * row['statistics']['peak_strain']['mean']:.1f} | "
              f"{'yes' if row['mase']['mean'] == lowest else ''} | "
              f"{'yes' if _is_weights(row['label'], shipped) else ''} |" for row in rows],
            "",
        ]
    return lines


def make_card(name: str, ckpt: Checkpoint, history: list[dict], report: dict, test_data: str,
              earlier: list[tuple[Checkpoint, list[dict]]] = (), transfer: list[tuple] | None = None,
              ablation: Path | None = None, ensemble: int = 1, selections: list[dict] = (),
              shipped: Path | None = None, previous: str | None = None) -> str:
    config = ckpt.provenance.config
    model = ckpt.model_config
    contrast = float(ckpt.physics.contrast if ckpt.physics else report.get("contrast"))
    stages = [*earlier, (ckpt, history)]
    hours = sum(row.get("time_s", 0.0) for _, h in stages for row in h) / 3600.0
    offset, previous_data, previous_training = 0, [], []
    if previous is not None:
        offset, previous_hours, previous_data, previous_training = previous_card_sections(previous)
        hours += previous_hours
    ours, plain = surrogate_rows(report, ensemble)
    ours16, plain16 = bf16_rows(report, ensemble)
    grid = tuple(report["grid"])
    paper = PAPER.get(contrast, {})
    on_gpu = str(config.get("device")).startswith("cuda")
    threads = f", torch threads {config.get('threads')}"
    if ckpt.provenance.hardware:  # recorded by rln-design train (the last stage's machine)
        hardware = ckpt.provenance.hardware + ("" if on_gpu else threads)
    else:  # checkpoints from before it was recorded: the machine writing the card
        hardware = f"{cpu_summary()}, CPU only{threads}"
    lines = [
        f"# Surrogate `{name}`: RLN for contrast {contrast:g}",
        "",
        f"Recurrent Localization Network (Kelly & Kalidindi): kind `{model['kind']}`, N = {model['n_iter']} "
        f"iterations, history k = {model['history']}, width {model['width']} "
        f"(132,801 parameters per proximal net at width 16). Predicts eps_xx / imposed eps_xx for "
        f"two-phase structures (1 = stiff, E_stiff = {contrast:g} E_soft, nu = {ckpt.physics.nu:g}) under eps_xx "
        f"along x (array axis 0 of a structure). Package version {ckpt.provenance.version}"
        f"{', code revision ' + ckpt.provenance.revision if ckpt.provenance.revision else ''}.",
        "",
        "## Data",
        "",
        *previous_data,
        *[f"- training, stage {k} ({c.provenance.config.get('max_train_samples') or 'all'} of its "
          f"training split): {_dataset_line(p, _file_attrs(c, p))}"
          for k, (c, _) in enumerate(stages, offset + 1) for p in c.provenance.config["data"]],
        *[f"- validation, stage {k} (best-epoch selection, {c.provenance.config.get('max_val_samples') or 'all'} "
          f"structures of its validation split): {_dataset_line(p, _file_attrs(c, p))}"
          for k, (c, _) in enumerate(stages, offset + 1)
          for p in (c.provenance.config.get("val_data") or c.provenance.config["data"])],
        f"- test: {_dataset_line(test_data)}",
        "",
        "## Training",
        "",
        "Made with the project's own commands, `bash studies/train_shipped_surrogates.sh "
        f"{name}` (it runs `rln-design generate`, `rln-design train`, `rln-design evaluate`)"
        + ("; the last stage on a GPU, `bash studies/gpu_stage.sh`." if on_gpu else "."),
        f"- hardware: {hardware}"
        + (f", {'bf16 mixed precision' if config.get('amp') else 'fp32'}"
           f"{', channels_last_3d' if config.get('channels_last') else ''}"
           + (f" (stages 1-{offset}: see their sections below)" if offset else "")),
        f"- wall time: {hours:.2f} h of training in {offset + len(stages)} stage(s); selected weights: "
        f"epoch {ckpt.training['best_epoch']} of the last stage (validation MASE "
        f"{ckpt.training['best_val_mase']:.2f} %)",
        "",
    ]
    if previous_training:
        lines += [
            f"Stages 1-{offset} ran in an earlier session on the machine their card names; their "
            f"sections below are copied from that card (`--previous-card`), stage {offset + 1} "
            "started from the weights it shipped.",
            "",
            *previous_training,
        ]
    for k, (stage_ckpt, stage_history) in enumerate(stages, start=offset + 1):
        stage_config = stage_ckpt.provenance.config
        planned = stage_config["epochs"]
        lines += [
            f"### Stage {k}: {', '.join(stage_config['data'])}"
            + (f" (initialized from `{stage_config['init_from']}`)" if stage_config.get("init_from") else ""),
            "",
            f"{len(stage_history)} of {planned} planned epochs ran"
            + ("" if len(stage_history) >= planned else " (stopped early for the time budget; the "
               "best completed epoch was kept)")
            + f"; best validation epoch {stage_ckpt.training['best_epoch']}. Resolved configuration:",
            "",
            "```json",
            json.dumps(stage_config),
            "```",
            "",
            *_history_table(stage_history),
            "",
        ]
    if transfer:
        lines += [
            "### What each stage buys (validation splits, same 48 structures per file)",
            "",
            "The weights after each stage (stage 1 trained on the small periodic volumes), each on the"
            " validation structures of every grid (plain network, ensemble 1):",
            "",
            "| weights | data | grid | MASE % mean +- std |",
            "|---|---|---|---|",
            *[f"| {w} | `{p}` | {g} | {m:.2f} +- {sd:.2f} |" for w, p, g, m, sd in transfer],
            "",
        ]
    if selections:
        lines += _selection_section(selections, shipped)
    if ablation is not None:
        table = [line for line in ablation.read_text().splitlines() if line.startswith("|")]
        lines += [
            "### What each recipe choice buys (equal-CPU-time ablation from random weights)",
            "",
            f"From `{ablation.relative_to(ROOT) if ablation.is_absolute() else ablation}` (`bash "
            "studies/ablation_cpu_recipe.sh`, contrast 10"
            + ("" if contrast == 10.0 else "; not repeated at this contrast")
            + "): each arm trains the same RLN for about the same CPU time and is scored on the same"
            " 31^3 test structures.",
            "",
            *table,
            "",
        ]
    lines += [
        "## Accuracy on the test split (measured by `rln-design evaluate`)",
        "",
        "MASE = 100 mean |pred - FE| per instance (mean +- std over instances); statistic errors are "
        "|S_pred - S_FE| / |S_FE| (mean and 95th percentile over instances). Baselines in the same "
        "table: mean field (1 everywhere) and first-order MKS localization fitted on the test "
        "file's training split.",
        "",
        "```",
        format_table(report),
        "```",
        "",
        f"This surrogate: test MASE {ours['mase']['mean']:.2f} +- "
        f"{ours['mase']['std']:.2f} %"
        + (f" with its default symmetry ensemble of {ensemble} passes" if ensemble > 1 else "")
        + (f"; the plain network (ensemble 1): {plain['mase']['mean']:.2f} +- "
           f"{plain['mase']['std']:.2f} %" if plain else "")
        + ". The paper (31^3, 8,192 training structures, 60 epochs on a V100) reports at this "
        "contrast: " + (", ".join(f"{k} {v} %" for k, v in paper.items()) or "no figure") + ".",
        "",
        *([
            f"In bf16 (`precision=\"bf16\"` / `--precision bf16`; fast on CPUs with AMX / "
            f"AVX512-BF16): test MASE {ours16['mase']['mean']:.2f} +- {ours16['mase']['std']:.2f} %"
            + (f" with the {ensemble}-pass ensemble" if ensemble > 1 else "")
            + (f", plain network {plain16['mase']['mean']:.2f} +- {plain16['mase']['std']:.2f} %"
               if plain16 else "")
            + " (same structures; the default stays fp32).",
            "",
        ] if ours16 else []),
        *([
            f"Symmetry ensemble: `Surrogate.predict`, `rln-design predict` and `rln-design evaluate`"
            f" average the network over {ensemble} exact symmetries of the eps_xx problem"
            f" (`rln_design.models.symmetry`; at {'x'.join(map(str, grid))}: "
            + "; ".join(f"({t.describe()})" for t in symmetry_transforms(ensemble, grid))
            + f"), which costs {ensemble} forward passes per structure. The design loops of"
            " `rln-design optimize` use the plain network by default (`--ensemble 1`; FE verifies"
            " every design). Choose with `Surrogate.load(name, ensemble=K)`, `predict(...,"
            " ensemble=K)` or `--ensemble K`.",
            "",
        ] if ensemble > 1 else []),
        "## Known limits",
        "",
        f"- Trained on a CPU budget ({hours:.1f} h of training on 1-2 CPU cores): far fewer samples and "
        "epochs than the paper"
        + (f"; test MASE {ours['mase']['mean']:.2f} %"
           + (f" (plain network {plain['mase']['mean']:.2f} %)" if plain else "")
           + f" against the paper's single-pass RLN {paper['RLN']} %" if paper else "")
        + ". Retraining at paper scale needs a GPU (issues \"Paper-scale training of the shipped"
        " surrogates\" and \"Surrogates\", blocked until one is lent; `studies/gpu_stage.sh` is the"
        " prepared one-call stage).",
        "- Trained on periodic volumes of the grid in the training data above and selected/tested at"
        " the grid of the test data; the network is fully convolutional, other grids run but are"
        " untested.",
        "- Valid for the parameter box and contrast above; outside the box predictions are"
        " extrapolation. For grains longer than the box along x (gx 16-31, where"
        " `rln-design optimize --box gx=1:31` finds the low-peak designs) `bash studies/extrapolation.sh`"
        " measures it: peak and percentile strains stay close to FE, but the nearly uniform bulk"
        " field gets noise of the network's own (MASE above the mean-field guess, strain standard"
        " deviation off by tens of %; figures in docs/training.md). Relaxed (non-binary) inputs are"
        " extrapolation.",
        "- Errors concentrate at strain peaks next to thin features (`worst.png` beside this card:"
        " structure, FE strain, prediction and error of the worst test instance, from `rln-design"
        " evaluate --png`), so peak-strain predictions carry a large relative error; every design"
        " is verified by the FE solver.",
        "- The paper's V-Net is only approximately equivariant under periodic shifts (the circular pad"
        " from 31 to 36 voxels puts a seam at a fixed place; stride-2 layers commute only with even"
        " shifts): shifting a structure changes the plain network's prediction by up to about its own"
        " error, but the shifted prediction is as accurate against FE"
        " (`tests/surrogate/test_shipped_surrogates.py`)"
        + ("; the symmetry ensemble averages over reflections and origin shifts, which is why it is"
           " more accurate, but it is not exactly shift-equivariant either." if ensemble > 1 else "."),
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--run", required=True, help="training output directory")
    parser.add_argument("--test-data", required=True, help="HDF5 file of the evaluated test split")
    parser.add_argument("--out", default=str(ROOT / "surrogates"), help="folder of shipped surrogates")
    parser.add_argument("--stage", action="append", default=[],
                        help="training directory of an earlier stage, in order (repeatable; each "
                             "next stage started from its best.pt with --init-from)")
    parser.add_argument("--ablation", type=Path,
                        help="markdown of studies/ablation_report.py; its table goes into the card")
    parser.add_argument("--selection", type=Path, action="append", default=[],
                        help="rln-design evaluate --out (or --json) report comparing candidate "
                             "weights on validation structures, shown in the card (repeatable, in "
                             "the order the choices were made; the last one must score RUN/best.pt)")
    parser.add_argument("--previous-card", type=Path,
                        help="card of the shipped weights RUN started from (--init-from), when the "
                             "earlier stages' runs are not on this machine: its stage sections and "
                             "data lines are copied into the new card and stages are numbered on")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="default symmetry-ensemble size of the shipped surrogate; the evaluation "
                             "report needs a row with it (rln-design evaluate --ensemble K)")
    args = parser.parse_args(argv)
    try:
        check_ensemble_size(args.ensemble)
    except ValueError as err:
        parser.error(f"--ensemble: {err}")
    run = Path(args.run)
    previous = args.previous_card.read_text() if args.previous_card else None  # before it is replaced
    if previous is not None:
        previous_card_sections(previous)  # a clear error before the slow steps
    selections = [json.loads(path.read_text()) for path in args.selection]
    if selections:  # before the slow steps below
        check_selection(selections[-1], run / "best.pt")
    ckpt = load_checkpoint(run / "best.pt")
    history = read_metrics(run)
    earlier = [(load_checkpoint(Path(d) / "best.pt"), read_metrics(d)) for d in args.stage]
    report = json.loads((run / "evaluation.json").read_text())
    test_grid = list(physics(args.test_data).grid)
    surrogate = Surrogate.from_checkpoint(ckpt, source=f"surrogates/{args.name}")
    ours, plain = surrogate_rows(report, args.ensemble)
    surrogate.ensemble = args.ensemble
    metrics = {"test_mase_mean": ours["mase"]["mean"],
               "test_mase_std": ours["mase"]["std"],
               "test_statistics": ours["statistics"],
               "test_ensemble": args.ensemble,
               "best_val_mase": ckpt.training["best_val_mase"], "best_epoch": ckpt.training["best_epoch"],
               "training_grid": list(ckpt.physics.grid), "test_data": args.test_data}
    if plain:
        metrics.update(plain_test_mase_mean=plain["mase"]["mean"], plain_test_mase_std=plain["mase"]["std"],
                       plain_test_statistics=plain["statistics"])
    for prefix, row in zip(("bf16_test_", "bf16_plain_test_"), bf16_rows(report, args.ensemble)):
        if row is not None:  # beside the fp32 figures, not instead
            metrics.update({f"{prefix}mase_mean": row["mase"]["mean"],
                            f"{prefix}mase_std": row["mase"]["std"],
                            f"{prefix}statistics": row["statistics"]})
    surrogate.metrics = metrics
    surrogate.physics = surrogate.physics.replace(grid=tuple(test_grid))  # where it was measured
    labels = [f"stage {k}" for k in range(1, len(earlier) + 2)]
    transfer = (transfer_check(list(zip(labels, [c for c, _ in earlier] + [ckpt])))
                if earlier else None)
    card = make_card(args.name, ckpt, history, report, args.test_data, earlier, transfer,
                     args.ablation, args.ensemble, selections, run / "best.pt", previous)
    out = surrogate.save(Path(args.out) / args.name, card=card)
    # rln-design evaluate --png numbers the pictures of several surrogate rows: worst-<n>.png
    models = _model_rows(report)
    worst = run / (f"worst-{models.index(ours) + 1}.png" if len(models) > 1 else "worst.png")
    if worst.is_file():
        with atomic_path(out.parent / "worst.png") as tmp:
            shutil.copyfile(worst, tmp)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) and {out.parent / 'card.md'} "
          f"(rln-design {__version__})")


if __name__ == "__main__":
    main()
