"""Ship a v2 (Krylov localization) surrogate from the committed surrogate v2 study.

Reads ``studies/surrogate_v2_study.json`` (written by ``python studies/surrogate_v2_study.py
report``), takes the chosen number of PCG steps N and the measured test figures of ``pcg<N>`` for a
contrast, and writes ``surrogates/<name>/model.pt`` (a :class:`rln_design.training.checkpoint.Checkpoint`:
the model's constructor arguments, its one buffer, physics, provenance, the metrics) and ``card.md``. Every number in the card comes from the
study record; nothing is typed in by hand.

Usage::

    python studies/ship_v2_surrogate.py --contrast 10 --name cr10
    python studies/ship_v2_surrogate.py --contrast 50 --name cr50
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from rln_design.training.checkpoint import Checkpoint
from rln_design.models.krylov import KrylovConfig, KrylovNet
from rln_design.physics import DEFAULT_GRID, Physics
from rln_design.provenance import Provenance
from rln_design.surrogate.strain import Surrogate

STUDY = Path("studies/surrogate_v2_study.json")
DATA = {10: ("data/cr10_31.h5", "2560 structures at 31^3 (512 Latin-hypercube design points x 5 "
             "realizations, seed 31), split by design point train/validation/test = 1025/510/1025"),
        50: ("data/cr50_31.h5", "1280 structures at 31^3 (256 Latin-hypercube design points x 5 "
             "realizations, seed 1031), split by design point train/validation/test = 510/255/515")}


def metrics_of(record: dict, contrast: int) -> tuple[int, dict]:
    """Chosen N and the metrics dict stored in model.pt (test figures of arm ``pcg<N>``)."""
    rec = record[f"cr{contrast}"]
    n = rec["chosen_n"]
    test, speed = rec["test"][f"pcg{n}"], rec["speed"][f"pcg{n}"]["fp32"]
    val = next(d for d in rec["dial"] if d["steps"] == n)
    return n, {
        "test_mase_mean": test["mase"], "test_mase_std": test["mase_std"], "test_ensemble": 1,
        "plain_test_mase_mean": test["mase"], "plain_test_mase_std": test["mase_std"],
        "test_peak_err": test["peak_err"], "test_p99_err": test["p99_err"], "test_n": test["n"],
        "test_full_tensor_err": test.get("full_err"), "test_full_tensor_n": rec.get("n_full"),
        "test_full_tensor_err_per_component": test.get("full_err_per_component"),
        "val_mase": val["mase"], "ms_batch1": speed["b1"], "fe_ms": rec["fe_ms"],
        "speedup_batch1": speed["speedup_b1"], "speedup_best": speed["speedup_best"],
        "best_batch": speed["best_batch"],
    }


def card_text(name: str, contrast: int, n: int, m: dict, record: dict) -> str:
    comps = ", ".join(f"{c} {v:.2f}" for c, v in zip(("xx", "yy", "zz", "yz", "xz", "xy"),
                                                        m["test_full_tensor_err_per_component"] or []))
    machine = record["machine"]
    path, data = DATA[contrast]
    return f"""# Surrogate `{name}`: Krylov localization, N = {n} PCG steps (kind `pcg`, v2)

N steps of the FE solver's own preconditioned conjugate gradient iteration on the hex8 system,
unrolled as a recurrent localization model (`rln_design.models.krylov`). It has no learned weights:
all six strain components, exact periodicity and shift/reflection equivariance on any grid, exact
mean strain, differentiable in relaxed structures. The number of steps is the accuracy/speed dial.

## Physics
- contrast {contrast} (E_stiff / E_soft; E_soft drops out of the normalized field), nu 0.3,
  imposed eps_xx (fields are divided by it), periodic hex8 voxels, any grid size.

## Data
- no training data. N was chosen on 128 validation structures of `{path}` as the smallest N whose
  validation MASE beats the paper's RLN (validation MASE at N = {n}: {m['val_mase']:.2f} %).
- test: the test split of `{path}`: {data}.

## Recipe and compute
- training: none (0 CPU s). Selection: the rule above, `python studies/surrogate_v2_study.py report`.

## Accuracy on the test split
- test MASE {m['test_mase_mean']:.2f} +- {m['test_mase_std']:.2f} % over {m['test_n']} structures
  (ensemble 1): {m['plain_test_mase_mean']:.2f} +- {m['plain_test_mase_std']:.2f} % (the model is
  exactly equivariant: a symmetry ensemble cannot change it)
- peak-strain error {m['test_peak_err']:.2f} %, p99-strain error {m['test_p99_err']:.2f} % (mean
  relative error per structure)
- full strain tensor (first {m['test_full_tensor_n']} test structures, mean |error| in % of the imposed eps_xx): all six
  components {m['test_full_tensor_err']:.2f}; per component {comps}

## Speed (same run, same structures; {machine['cpu']}, {machine['threads']} threads)
- {m['ms_batch1']:.1f} ms per 31^3 structure at batch 1 against {m['fe_ms']:.1f} ms for one FE solve
  (`solve_fe`, rtol 1e-6): {m['speedup_batch1']:.2f}x faster at batch 1, {m['speedup_best']:.2f}x at
  batch {m['best_batch']}.

## Provenance
- rln-design {machine['rln_design']} ({machine['revision']}), torch {machine['torch']},
  {machine['date']}; `studies/surrogate_v2_study.md` has the comparison with the RLN arms; the v1 RLN
  of this contrast ships as `{name}-rln`.
"""


def _dataset_config(path: str) -> dict | None:
    """The validation/test dataset's recorded config (its parameter ``bounds`` are the box in which
    the accuracy was measured; ``rln-design optimize`` defaults to that box), or None without it."""
    from rln_design.data import provenance

    if not Path(path).is_file():
        return None
    return provenance(path).config


def _physics(contrast: float, dataset: dict | None) -> Physics:
    """The problem of the selection/test data (its recorded config; the defaults without it)."""
    known = {k: dataset[k] for k in ("e_soft", "nu", "imposed_strain") if dataset and k in dataset}
    grid = (dataset["size"],) * 3 if dataset and "size" in dataset else DEFAULT_GRID
    return Physics(contrast, grid=grid, **known)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contrast", type=int, choices=(10, 50), required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--study", default=str(STUDY))
    parser.add_argument("--out", default="surrogates", help="folder of surrogate directories")
    args = parser.parse_args(argv)
    record = json.loads(Path(args.study).read_text())
    n, metrics = metrics_of(record, args.contrast)
    config = KrylovConfig(kind="pcg", n_iter=n, contrast=float(args.contrast))
    dataset = _dataset_config(DATA[args.contrast][0])
    ckpt = Checkpoint(
        model_config=dataclasses.asdict(config), state_dict=KrylovNet(config).state_dict(),
        physics=_physics(float(args.contrast), dataset), metrics=metrics,
        provenance=Provenance.capture({"training": "none", "selection": "smallest N beating the "
                                       "paper's RLN on 128 validation structures", "study": args.study}),
        data={"selection_and_test": DATA[args.contrast][0], "config": dataset})
    path = Surrogate.from_checkpoint(ckpt).save(Path(args.out) / args.name,
                          card=card_text(args.name, args.contrast, n, metrics, record))
    print(f"wrote {path} (pcg, N = {n}, test MASE {metrics['test_mase_mean']:.2f} %)")


if __name__ == "__main__":
    main()
