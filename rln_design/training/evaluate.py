"""Test-split accuracy of strain surrogates: MASE and the errors of every design statistic.

Metrics, per test instance ``s`` with FE field ``y_s`` and prediction ``p_s`` (both eps_xx / imposed
eps_xx, so the reference strain is ``y^R = 1``):

* MASE (Kelly & Kalidindi, the paper's metric): ``MASE_s = 100 * mean_voxels |p_s - y_s| / y^R``
  in percent, reported as mean and standard deviation over the instances;
* relative error of a design statistic ``S`` (peak strain, p99, p99.9, per-phase mean strain,
  strain standard deviation): ``e_s = |S(m_s, p_s) - S(m_s, y_s)| / |S(m_s, y_s)|``, reported as
  mean and 95th percentile over the instances (instances where ``S`` is undefined, e.g. the stiff
  mean of an all-soft structure, are skipped).

Predictors are anything with ``predict(structures (batch, x, y, z)) -> (batch, x, y, z)``: a
:class:`~rln_design.surrogate.strain.Surrogate` or a baseline of :mod:`rln_design.training.baselines`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from rln_design.design.stats import STATISTICS

__all__ = [
    "DESIGN_STATISTICS",
    "mase",
    "relative_errors",
    "summarize",
    "evaluate_model",
    "evaluate_dataset",
    "format_table",
    "plot_error_slices",
]

DESIGN_STATISTICS = (
    "peak_strain", "p99_strain", "p999_strain", "soft_mean_strain", "stiff_mean_strain", "std_strain",
)
SHORT_NAMES = {"peak_strain": "peak", "p99_strain": "p99", "p999_strain": "p99.9",
               "soft_mean_strain": "soft mean", "stiff_mean_strain": "stiff mean",
               "std_strain": "std"}


def _numpy(a) -> np.ndarray:
    if type(a).__module__.startswith("torch"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def mase(pred, true) -> np.ndarray:
    """Per-instance MASE in percent: ``100 * mean_voxels |pred - true| / 1``.

    Args:
        pred: `(n, x, y, z)` predicted eps_xx / imposed eps_xx.
        true: `(n, x, y, z)` FE eps_xx / imposed eps_xx.

    Returns:
        `(n,)` float64.
    """
    pred, true = _numpy(pred).astype(np.float64), _numpy(true).astype(np.float64)
    if pred.shape != true.shape or pred.ndim != 4:
        raise ValueError(f"pred {pred.shape} and true {true.shape} must both be (n, x, y, z)")
    return 100.0 * np.abs(pred - true).reshape(len(pred), -1).mean(axis=1)


def relative_errors(structures, pred, true, names=DESIGN_STATISTICS) -> dict[str, np.ndarray]:
    """Per-instance relative error ``|S(m, pred) - S(m, true)| / |S(m, true)|`` of each statistic.

    Args:
        structures: `(n, x, y, z)` phases.
        pred: `(n, x, y, z)` predicted field.
        true: `(n, x, y, z)` FE field.
        names: keys of :data:`rln_design.design.stats.STATISTICS`.

    Returns:
        ``{name: (n,) float64}``; NaN where the statistic is undefined or its FE value is 0.
    """
    m = _numpy(structures)
    pred, true = _numpy(pred).astype(np.float64), _numpy(true).astype(np.float64)
    out = {}
    for name in names:
        stat = STATISTICS[name]
        s_pred = np.asarray(stat(m, pred), dtype=np.float64)
        s_true = np.asarray(stat(m, true), dtype=np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            err = np.abs(s_pred - s_true) / np.abs(s_true)
        out[name] = np.where(np.isfinite(err), err, np.nan)
    return out


def summarize(values) -> dict:
    """``{"mean", "std", "p95", "max", "n"}`` of the finite entries of `(n,)` values (NaN if none)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return {"mean": float("nan"), "std": float("nan"), "p95": float("nan"),
                "max": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std()), "p95": float(np.percentile(v, 95)),
            "max": float(v.max()), "n": int(v.size)}


def evaluate_model(model, structures, strain, *, names=DESIGN_STATISTICS, batch_size: int = 32,
                   progress: bool = False, desc: str = "") -> dict:
    """Evaluate one predictor on `(n, x, y, z)` structures with FE fields, batch by batch.

    Args:
        model: object with ``predict(structures) -> field`` (Surrogate, baseline), or a surrogate
            name/path (loaded with :meth:`Surrogate.load`).
        structures: `(n, x, y, z)` uint8.
        strain: `(n, x, y, z)` FE eps_xx / imposed eps_xx.
        names: statistics whose relative errors are computed.
        batch_size: structures per prediction call.
        progress: show a tqdm bar (on stderr).
        desc: label of the bar.

    Returns:
        ``{"mase": (n,), "errors": {name: (n,)}, "summary": {...}, "worst": {"index", "mase",
        "prediction" (x, y, z)}, "seconds", "ms_per_structure"}``; ``summary`` holds
        ``mase`` (:func:`summarize`) and ``statistics`` ``{name: summarize(errors)}`` (relative
        errors as fractions).
    """
    if isinstance(model, (str, Path)):
        from rln_design.surrogate.strain import Surrogate

        model = Surrogate.load(model)
    from rln_design._progress import progress_bar

    n = len(structures)
    if n == 0:
        raise ValueError("no structures to evaluate")
    mases, errors = [], {name: [] for name in names}
    worst = {"index": -1, "mase": -np.inf, "prediction": None}
    seconds = 0.0
    for start in progress_bar(range(0, n, batch_size), desc=desc or "evaluate", enabled=progress,
                              leave=False, unit="batch", dynamic_ncols=True):
        m = _numpy(structures[start : start + batch_size])
        y = _numpy(strain[start : start + batch_size])
        t0 = time.perf_counter()
        p = _numpy(model.predict(m)).astype(np.float32, copy=False)
        seconds += time.perf_counter() - t0
        batch_mase = mase(p, y)
        mases.append(batch_mase)
        for name, e in relative_errors(m, p, y, names).items():
            errors[name].append(e)
        i = int(np.argmax(batch_mase))
        if batch_mase[i] > worst["mase"]:
            worst = {"index": start + i, "mase": float(batch_mase[i]), "prediction": p[i].copy()}
    mases = np.concatenate(mases)
    errors = {name: np.concatenate(v) for name, v in errors.items()}
    return {
        "mase": mases,
        "errors": errors,
        "summary": {"mase": summarize(mases),
                    "statistics": {name: summarize(e) for name, e in errors.items()}},
        "worst": worst,
        "seconds": seconds,
        "ms_per_structure": 1000.0 * seconds / n,
    }


def _select(n: int, max_samples: int | None, seed: int) -> np.ndarray:
    index = np.arange(n)
    if max_samples is not None and max_samples < n:
        index = np.sort(np.random.default_rng(seed).choice(n, size=max_samples, replace=False))
    return index


@dataclasses.dataclass(frozen=True)
class _Split:
    """The evaluated instances of one split: phases, FE fields and where they sit in the file.

    Attributes:
        structures: `(n, x, y, z)` phases.
        strain: `(n, x, y, z)` FE eps_xx / imposed eps_xx, every value finite.
        index: `(n,)` row of each instance within the split.
        excluded: rows left out because their FE field is not finite.
        contrast: the file's phase contrast (None if it records none).
    """

    structures: np.ndarray
    strain: np.ndarray
    index: np.ndarray
    excluded: list[int]
    contrast: float | None

    @property
    def grid(self) -> tuple[int, ...]:
        return tuple(self.structures.shape[1:])


@dataclasses.dataclass(frozen=True)
class _Predictor:
    """One row of the report: its label, its kind (surrogate kind or ``"baseline"``) and the model."""

    label: str
    kind: str
    model: object


def _read_split(data, split: str, max_samples: int | None, seed: int, notes: list[str]) -> _Split:
    """The (subset of the) split with finite FE fields; the left-out instances are noted."""
    from rln_design.data import load_dataset, read_attrs

    structures, strain = load_dataset(data, split)
    if len(structures) == 0:
        raise ValueError(f"{data} has no finished sample in split {split!r}")
    index = _select(len(structures), max_samples, seed)
    structures, strain = structures[index], strain[index]
    contrast = read_attrs(data).get("contrast")
    contrast = float(contrast) if contrast is not None else None
    finite = np.isfinite(strain.reshape(len(strain), -1)).all(axis=1)
    excluded = index[~finite].tolist()  # no NaN is a result: said, not silently averaged away
    if excluded:
        notes.append(f"{len(excluded)} instance(s) of the {split} split have a non-finite FE field (NaN or "
                     f"inf) and are not evaluated: #{', #'.join(map(str, excluded[:10]))}"
                     + (" ..." if len(excluded) > 10 else ""))
        structures, strain, index = structures[finite], strain[finite], index[finite]
        if not len(index):
            raise ValueError(f"{data}: every FE field of the {split} split is non-finite; nothing to evaluate")
    return _Split(structures, strain, index, excluded, contrast)


def _surrogate_predictors(models, device, evaluated: _Split, sizes, precs, notes: list[str]) -> list[_Predictor]:
    """Each surrogate once per ensemble size and precision; a contrast or grid other than the
    data's is noted."""
    from rln_design.surrogate.strain import Surrogate

    predictors = []
    for model in models:
        s = model if isinstance(model, Surrogate) else Surrogate.load(model, device=device)
        label = str(model) if not isinstance(model, Surrogate) else (s.source or "surrogate")
        contrast = evaluated.contrast
        if s.contrast is not None and contrast is not None and abs(s.contrast - contrast) > 1e-9:
            notes.append(f"{label}: trained on contrast {s.contrast:g}, data has contrast {contrast:g}")
        if s.grid is not None and tuple(s.grid) != evaluated.grid:
            notes.append(f"{label}: trained on grid {tuple(s.grid)}, data grid is {evaluated.grid}")
        predictors += _variants(s, label, sizes, precs)
    return predictors


def _variants(surrogate, label: str, sizes, precs) -> list[_Predictor]:
    """``surrogate`` with each ensemble size and precision, labelled ``"<label> [ensemble K, p]"``."""
    variants = []
    for k in sizes or [None]:
        for p in precs or [None]:
            tags = ([f"ensemble {k}"] if k is not None else []) + ([p] if p is not None else [])
            variant = surrogate if k is None else surrogate.with_ensemble(k)
            variant = variant if p is None else variant.with_precision(p)
            variants.append(_Predictor(f"{label} [{', '.join(tags)}]" if tags else label, surrogate.kind,
                                       variant))
    return variants


def _baseline_predictors(data, mks_ridge: float, notes: list[str]) -> list[_Predictor]:
    """The mean field, and MKS fit on the file's finite training samples (noted if there are none)."""
    from rln_design.data import load_dataset
    from rln_design.training.baselines import MeanFieldBaseline, MKSLocalization

    predictors = [_Predictor("mean-field", "baseline", MeanFieldBaseline())]
    try:
        train_m, train_y = load_dataset(data, "train")
        keep = np.isfinite(train_y.reshape(len(train_y), -1)).all(axis=1)  # a NaN field fits NaN
        train_m, train_y = train_m[keep], train_y[keep]
    except (KeyError, ValueError):
        train_m = np.zeros((0,))
    if len(train_m) == 0:
        notes.append("MKS baseline skipped: the file has no finished training sample")
        return predictors
    t0 = time.perf_counter()
    mks = MKSLocalization(ridge=mks_ridge).fit(train_m, train_y)
    notes.append(f"MKS fit on {len(train_m)} training samples, ridge {mks_ridge:g}, "
                 f"{time.perf_counter() - t0:.1f} s")
    return predictors + [_Predictor("mks", "baseline", mks)]


def _row(predictor: _Predictor, result: dict, evaluated: _Split, notes: list[str]) -> dict:
    """The report row of one :func:`evaluate_model` result; left-out predictions are noted."""
    bad = len(evaluated.structures) - result["summary"]["mase"]["n"]
    if bad:
        notes.append(f"{predictor.label}: {bad} prediction(s) are not finite (NaN or inf) and are left out "
                     "of its MASE and statistics")
    row = {"label": predictor.label, "kind": predictor.kind, **result["summary"],
           "worst": {"index": int(evaluated.index[result["worst"]["index"]]),
                     "mase": result["worst"]["mase"]},
           "ms_per_structure": result["ms_per_structure"]}
    model = predictor.model
    if predictor.kind != "baseline":  # a surrogate
        row["ensemble"] = model.ensemble
        row["precision"] = model.precision_used()  # what ran
        row["contrast"] = model.contrast
        row["recorded_metrics"] = model.accuracy
    return row


def _evaluate_each(predictors: list[_Predictor], evaluated: _Split, batch_size: int, progress: bool,
                   notes: list[str]) -> tuple[list[dict], dict]:
    """Report rows and :func:`evaluate_model` results (by label, plus ``"_data"``) of the predictors."""
    rows, details = [], {}
    for predictor in predictors:
        details[predictor.label] = evaluate_model(predictor.model, evaluated.structures, evaluated.strain,
                                                  batch_size=batch_size, progress=progress,
                                                  desc=predictor.label)
        rows.append(_row(predictor, details[predictor.label], evaluated, notes))
    details["_data"] = (evaluated.structures, evaluated.strain, evaluated.index)
    return rows, details


def evaluate_dataset(models, data, *, split: str = "test", baselines: bool = True,
                     mks_ridge: float = 1e-6, batch_size: int = 32, max_samples: int | None = None,
                     seed: int = 0, device: str = "cpu", progress: bool = False,
                     ensembles=None, precisions=None):
    """Evaluate surrogates and baselines on one split of an HDF5 dataset.

    The MKS baseline is fit on the ``train`` split of the same file (skipped, with a note, if the
    file has none); the mean-field baseline needs no fit.

    Args:
        models: surrogate names or paths (``cr10``, ``runs/x/best.pt`` ...), or loaded surrogates.
        data: HDF5 dataset (layout of :mod:`rln_design.data`).
        split: split to evaluate on.
        baselines: include the mean-field and MKS baselines.
        mks_ridge: relative ridge of :class:`~rln_design.training.baselines.MKSLocalization`.
        batch_size: structures per prediction call.
        max_samples: evaluate a seeded random subset of this many instances.
        seed: seed of the subset.
        device: device of the surrogates.
        progress: progress bars on stderr.
        ensembles: symmetry-ensemble sizes ``K`` (:mod:`rln_design.models.symmetry`); each surrogate is
            evaluated once per ``K``, labelled ``"<model> [ensemble K]"``. ``None``: once, with the
            surrogate's own default (:attr:`Surrogate.ensemble`).
        precisions: network precisions (``"fp32"``, ``"bf16"``, ``"auto"``; see
            :mod:`rln_design.models.precision`); each surrogate is evaluated once per precision (and per
            ``K``), labelled ``"<model> [ensemble K, bf16]"`` (``"<model> [bf16]"`` without
            ``ensembles``). ``None``: the surrogate's own (:attr:`Surrogate.precision`).

    Returns:
        ``(report, details)``: ``report`` is JSON-able (``data``, ``split``, ``n``, ``grid``,
        ``contrast``, ``rows`` with one entry per predictor, ``excluded`` (``non_finite_fe``:
        instances whose FE field holds NaN or inf, not evaluated; also in ``notes``), ``notes``, ``config`` (the arguments
        above), ``seed``, ``version``); ``details`` maps each row
        label to the full :func:`evaluate_model` result, plus ``"_data"``: the evaluated
        ``(structures, strain, file indices within the split)``.
    """
    from rln_design.models.precision import check_precision
    from rln_design.models.symmetry import check_ensemble_size
    from rln_design.provenance import Provenance

    notes = []
    evaluated = _read_split(data, split, max_samples, seed, notes)
    sizes = list(dict.fromkeys(map(check_ensemble_size, ensembles))) if ensembles else None  # once each
    precs = list(dict.fromkeys(map(check_precision, precisions))) if precisions else None
    predictors = _surrogate_predictors(models, device, evaluated, sizes, precs, notes)
    if baselines:
        predictors += _baseline_predictors(data, mks_ridge, notes)
    rows, details = _evaluate_each(predictors, evaluated, batch_size, progress, notes)
    config = {"split": split, "baselines": baselines, "mks_ridge": mks_ridge, "batch_size": batch_size,
              "max_samples": max_samples, "seed": seed, "device": str(device),
              "ensembles": sizes, "precisions": precs}
    report = {"data": str(data), "split": split, "n": int(len(evaluated.structures)),
              "grid": list(evaluated.grid), "contrast": evaluated.contrast,
              "statistics": list(DESIGN_STATISTICS), "rows": rows,
              "excluded": {"non_finite_fe": evaluated.excluded}, "notes": notes, "config": config,
              "seed": seed, "provenance": Provenance.capture(config, seed=seed, device=device).to_dict()}
    return report, details


def format_table(report: dict) -> str:
    """A readable table of a :func:`evaluate_dataset` report (relative errors in percent).

    Labels longer than the model column (22 to 40 characters, as the labels need) keep their end,
    where the file name and the ``[ensemble K]`` tag are.
    """
    names = report["statistics"]
    width = min(40, max([22] + [len(row["label"]) for row in report["rows"]]))
    head = (f"{'model':<{width}} {'MASE % mean +- std':>19}  "
            + "  ".join(f"{SHORT_NAMES.get(n, n):>12}" for n in names) + f"  {'ms/struct':>9}")
    lines = [
        f"{report['data']}  split {report['split']}  n = {report['n']}  grid {tuple(report['grid'])}"
        f"  contrast {report['contrast']}",
        "relative error of each statistic vs FE, % (mean / 95th percentile over instances)",
        head,
        "-" * len(head),
    ]
    for row in report["rows"]:
        m = row["mase"]
        cells = []
        for n in names:
            s = row["statistics"][n]
            cells.append(f"{100 * s['mean']:5.2f}/{100 * s['p95']:6.2f}")
        label = row["label"] if len(row["label"]) <= width else "..." + row["label"][-(width - 3):]
        lines.append(f"{label:<{width}} {m['mean']:8.3f} +- {m['std']:6.3f}  "
                     + "  ".join(f"{c:>12}" for c in cells) + f"  {row['ms_per_structure']:9.2f}")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)


def plot_error_slices(structure, true, pred, path, *, title: str = "") -> Path:
    """Structure, FE strain, predicted strain and |error| in the planes through the FE peak voxel.

    See :func:`rln_design.plots.error_figure` (FE and prediction share one colour scale).

    Args:
        structure: `(x, y, z)` phases.
        true: `(x, y, z)` FE eps_xx / imposed.
        pred: `(x, y, z)` predicted eps_xx / imposed.
        path: image file.
        title: figure title.
    """
    from rln_design import plots

    return plots.plot_error_slices(structure, true, pred, path, title=title)
