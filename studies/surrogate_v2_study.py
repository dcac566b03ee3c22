"""Surrogate v2 gate: the paper RLN recipe against Krylov localization candidates at equal CPU time.

Arms (contrast 10, the training split of ``data/cr10_31.h5``, one torch thread each):

* ``rln``: the paper's RLN (N = 5, k = 2, width 16) from random weights with the project's CPU
  recipe (batch 8, Adam 2e-3, warmup, per-step cosine, augmentation, bf16 + channels_last), stopped
  by ``studies/cpu_budget.py`` at the CPU budget (``rln-design train``, command in ``run_rln``).
* ``pcg``: N exact PCG steps of the FE solver's own iteration (``rln_design.models.krylov``, kind
  ``"pcg"``): no training at all; N is chosen on the validation split.
* ``pcg-net``: 2 PCG steps + a learned periodic correction (kind ``"pcg-net"``), trained here
  (``train-pcgnet``) for the same CPU budget as ``rln``.

Reproduce (data: ``rln-design generate --contrast 10 --count 2560 --grid 31 --realizations 5 --seed
31 --out data/cr10_31.h5``)::

    export OMP_NUM_THREADS=1   # arm runs and the result cache: $RLN_V2_RUNS (runs/v2gate)
    python studies/surrogate_v2_study.py train-pcgnet --budget 5400 --seed 0   # CPU seconds
    # beside it, on the other core: the rln arm, RLN_COMMAND below
    python studies/surrogate_v2_study.py report --budget 5400    # -> studies/surrogate_v2_study.md

Both training arms run side by side, one core and one torch thread each, from random weights, for
5400 CPU s (90 core-minutes) each: ``studies/cpu_budget.py`` sends the RLN trainer SIGINT at the
budget (its per-step cosine is planned over 8 epochs, which the budget does not reach, so the arm
uses all of it); the pcg-net trainer stops itself and anneals its cosine over the CPU budget. The
report tests each trained arm with ``best.pt`` or ``last.pt``, whichever scores better on 48
validation structures (``selected_weights``: the RLN's ``last.pt`` holds the steps after its last
completed epoch). Everything either arm does counts: data
loading, the pcg-net's PCG features, validation. One seed (0): a second seed of both arms is
another 180 core-minutes, the whole of a 3-hour session on 2 cores. The pcg-net arm's selected
weights (54 kB) are kept as ``studies/surrogate_v2_pcgnet_best.pt`` (``Surrogate.load`` reads
it); copy it to ``$RLN_V2_RUNS/pcg-net/best.pt`` to re-run the report without retraining.
(An earlier run of this gate gave each arm 4500 CPU s; its figures are in the git history.)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from rln_design._atomic import atomic_path
from rln_design.data import physics as read_physics
from rln_design.data import read_attrs
from rln_design.models.krylov import KrylovConfig, KrylovNet
from rln_design.physics import Physics
from rln_design.provenance import Provenance
from rln_design.training.checkpoint import (Checkpoint, CheckpointError, decode_attrs, load_checkpoint,
                                            material_mismatch, save_checkpoint)
from rln_design.training.loop import load_split

DATA = "data/cr10_31.h5"
RUNS = Path(os.environ.get("RLN_V2_RUNS", "runs/v2gate"))  # arm runs and the result cache
RLN_COMMAND = (
    "rln-design train --data data/cr10_31.h5 --model rln --batch-size 8 --lr 2e-3 "
    "--warmup-steps 20 --augment --schedule step --amp --channels-last --threads 1 "
    "--device cpu --val-data data/cr10_31.h5 --max-val-samples 48 --seed 0 --no-progress "
    "--epochs 8 --out runs/v2gate/rln  &  python studies/cpu_budget.py $! 5400"
)


# ----------------------------------------------------------------------------- pcg-net training


def lr_at(fraction: float, lr: float, warmup: float = 0.02) -> float:
    """Learning rate after ``fraction`` of the CPU budget: linear warmup, then cosine to 0."""
    if fraction < warmup:
        return lr * fraction / warmup
    return 0.5 * lr * (1.0 + math.cos(math.pi * min(1.0, (fraction - warmup) / (1.0 - warmup))))


@torch.no_grad()
def pcg_features(model: KrylovNet, structures: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Corrector inputs of the exact PCG part `(n, 10, x, y, z)` (no trainable weights there)."""
    return torch.cat([model.features(model.pcg(structures[i : i + batch]))
                      for i in range(0, len(structures), batch)])


def corrected_xx(model: KrylovNet, features: torch.Tensor) -> torch.Tensor:
    """eps_xx `(batch, x, y, z)` after the learned correction of cached PCG features."""
    from rln_design.fe.torch_backend import TorchProblem

    with torch.autocast("cpu", dtype=torch.bfloat16):
        du = model.corrector(features).float()
    problem = TorchProblem(features[:, 0], model.config.contrast, 1.0, model.config.nu, torch.float32)
    return features[:, 1] + problem.strain(du, torch.zeros(6))[:, 0]


def validation_mase(model: KrylovNet, features: torch.Tensor, target: torch.Tensor) -> float:
    with torch.no_grad():
        pred = torch.cat([corrected_xx(model, features[i : i + 8]) for i in range(0, len(features), 8)])
    return float(100 * (pred - target).abs().mean())


def train_pcgnet(args) -> None:
    """Train the corrector of a ``pcg-net`` for ``args.budget`` CPU seconds (resumable).

    ``OUT/last.pt`` and ``OUT/best.pt`` are :class:`~rln_design.training.checkpoint.Checkpoint`
    files (kind ``pcg-net``, the dataset's physics, this run's provenance); ``last.pt`` carries the
    resume state in ``training`` = ``{"optimizer", "state" (cpu_s, step, best, history), "rng"}``.
    """
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)
    physics = read_physics(args.data)
    config = KrylovConfig(kind="pcg-net", n_iter=args.n_iter, contrast=physics.contrast, nu=physics.nu,
                          width=args.width, depth=args.depth)
    model = KrylovNet(config)
    optimizer = torch.optim.Adam(model.corrector.parameters(), lr=args.lr)
    state = {"cpu_s": 0.0, "step": 0, "best": float("inf"), "history": []}
    if (out / "last.pt").is_file():
        saved = load_checkpoint(out / "last.pt")
        if saved.kind != "pcg-net" or not saved.training:
            raise ValueError(f"{out / 'last.pt'} is not a pcg-net training checkpoint (kind {saved.kind!r}, "
                             f"resume state {'present' if saved.training else 'missing'})")
        model.load_state_dict(saved.state_dict)
        optimizer.load_state_dict(saved.training["optimizer"])
        state = saved.training["state"]
        torch.set_rng_state(saved.training["rng"])
    run = _Run(out, model, optimizer, state, config, physics,
               Provenance.capture(config=dict(vars(args)), seed=args.seed),
               {"files": {str(f): decode_attrs(read_attrs(f)) for f in (args.data, args.curriculum) if f}})
    start = time.process_time() - state["cpu_s"]
    s_train, y_train, _ = load_split(args.data, "train")
    s_val, y_val, _ = load_split(args.data, "validation", max_samples=48, seed=0)
    f_train, f_val = pcg_features(model, s_train), pcg_features(model, s_val)
    stages = [(args.budget, f_train, y_train, args.batch)]  # (until CPU s, features, target, batch)
    if args.curriculum:  # small periodic cells first, as many voxels per batch as the full cells
        small = read_physics(args.curriculum)
        if material_mismatch(vars(config), small):  # the material check every Krylov checkpoint gets
            raise ValueError(f"--curriculum {args.curriculum}: contrast {small.contrast:g}, nu {small.nu:g}; "
                             f"the training data has {physics.contrast:g}, {physics.nu:g}")
        s_small, y_small, _ = load_split(args.curriculum, "train")
        batch = max(1, round(args.batch * y_train[0].numel() / y_small[0].numel()))
        stages.insert(0, (args.curriculum_fraction * args.budget, pcg_features(model, s_small), y_small, batch))
    print(f"features ready at {time.process_time() - start:.0f} CPU s", flush=True)
    generator = torch.Generator().manual_seed(args.seed + state["step"])
    last_check, loss = state["cpu_s"], None
    try:
        while (used := time.process_time() - start) < args.budget:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(used / args.budget, args.lr)
            _, f, y, batch = next(stage for stage in stages if used < stage[0] or stage is stages[-1])
            state["grid"] = f.shape[-1]  # the cells being trained on, logged with each check
            index = torch.randint(len(f), (batch,), generator=generator)
            loss = (corrected_xx(model, f[index]) - y[index]).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.corrector.parameters(), 1.0)
            optimizer.step()
            state["step"] += 1
            if used - last_check > args.check_every:
                last_check = used
                _checkpoint(run, used, loss.item(), f_val, y_val)
    except KeyboardInterrupt:
        print("interrupted: saving last.pt (resume with the same command)", flush=True)
    _checkpoint(run, time.process_time() - start, None if loss is None else loss.item(), f_val, y_val)


class _Run(NamedTuple):
    """What a pcg-net checkpoint records: the model, its optimizer and trainer state, the problem."""

    out: Path
    model: KrylovNet
    optimizer: torch.optim.Optimizer
    state: dict  # cpu_s, step, best (validation MASE %), history
    config: KrylovConfig
    physics: Physics  # of the training data
    provenance: Provenance
    data: dict  # {"files": {path: attrs}}

    def checkpoint(self, metrics: dict, training: dict | None) -> Checkpoint:
        return Checkpoint(model_config=vars(self.config) | {"load": list(self.config.load)},
                          state_dict=self.model.state_dict(), physics=self.physics,
                          provenance=self.provenance, metrics=metrics, data=self.data, training=training)


def _checkpoint(run: _Run, used, loss, f_val, y_val) -> None:
    state = run.state
    val = validation_mase(run.model, f_val, y_val)
    state["cpu_s"] = used
    state["history"].append({"cpu_s": round(used, 1), "step": state["step"], "loss": loss,
                             "val_mase": val, "grid": state.get("grid")})
    print(json.dumps(state["history"][-1]), flush=True)
    if val < state["best"]:
        state["best"] = val
        save_checkpoint(run.checkpoint({"val_mase": val, "step": state["step"], "cpu_s": used}, None),
                        run.out / "best.pt")
    save_checkpoint(run.checkpoint({"val_mase": val, "best_val_mase": state["best"], "step": state["step"],
                                    "cpu_s": used},
                                   {"optimizer": run.optimizer.state_dict(), "state": state,
                                    "rng": torch.get_rng_state()}),
                    run.out / "last.pt")


# ----------------------------------------------------------------------------- report

PAPER = {10: (1.81, 1.21), 50: (4.26, 2.92)}  # test MASE % of the paper's RLN-t, RLN


def fe_full_strain(structures: np.ndarray, contrast: float) -> np.ndarray:
    """FE strain, all six tensor components / imposed eps_xx, `(n, 6, x, y, z)` (numpy solver)."""
    from rln_design.fe.solver import solve_fe

    return np.stack([solve_fe(m, contrast=contrast).strain / 1e-3 for m in structures])


def accuracy(surrogate, structures, strain, full=None) -> dict:
    """Test figures of one surrogate: MASE (eps_xx; mean, std, per structure), full-tensor error,
    peak and p99 errors.

    Full-tensor error: ``100 mean_{voxels, 6 components} |eps_pred - eps_FE| / eps_bar_xx`` on the
    structures of ``full`` = ``(structures, FE strain (n, 6, x, y, z))``.
    """
    from rln_design.training.evaluate import mase, relative_errors

    pred = surrogate.predict(structures.numpy(), batch_size=4, precision="fp32")
    per = mase(pred, strain.numpy())
    rel = relative_errors(structures.numpy(), pred, strain.numpy(), ("peak_strain", "p99_strain"))
    out = {"mase": float(per.mean()), "mase_std": float(per.std()), "per_structure": per.tolist(),
           "peak_err": 100 * float(np.nanmean(rel["peak_strain"])),
           "p99_err": 100 * float(np.nanmean(rel["p99_strain"])), "n": len(per)}
    if full is not None and surrogate.full_tensor:
        pred6 = surrogate.strain(full[0], batch_size=4, precision="fp32")
        out["full_err"] = float(100 * np.abs(pred6 - full[1]).mean())
        out["full_err_per_component"] = (100 * np.abs(pred6 - full[1]).mean(axis=(0, 2, 3, 4))).tolist()
    return out


def ms_per_structure(fn, structures, batch: int, repeats: int = 3) -> float:
    """Median wall ms per structure of ``fn(batch of structures)`` over ``repeats`` passes."""
    chunks = [structures[i : i + batch] for i in range(0, len(structures) - batch + 1, batch)]
    fn(chunks[0])  # warm-up (oneDNN primitives, FFT plans)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for chunk in chunks:
            fn(chunk)
        times.append((time.perf_counter() - start) / (len(chunks) * batch))
    return 1000 * float(np.median(times))


def speed(surrogate, structures: np.ndarray, fe_ms: float, batches=(1, 2, 4, 8)) -> dict:
    """ms per structure at batch 1 and at the best batch, fp32 and bf16, and FE ms / surrogate ms."""
    out, batches = {}, [b for b in batches if b <= len(structures)]
    for precision in ("fp32", "bf16"):
        if surrogate.precision_used(precision) != precision:
            continue
        times = {b: ms_per_structure(lambda c: surrogate.predict(c, batch_size=b, precision=precision),
                                     structures, b) for b in batches}
        best = min(times, key=times.get)
        out[precision] = {"b1": times[1], "best": times[best], "best_batch": best,
                          "speedup_b1": fe_ms / times[1], "speedup_best": fe_ms / times[best]}
    return out


def gflop(surrogate, grid=(31, 31, 31)) -> float:
    """Forward GFLOP per structure: torch's FLOP counter (convolutions, matmuls) plus real FFTs
    at ``2.5 n log2 n`` each (the counter does not see FFTs)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros((1, *grid))
    x[0, ::3] = 1
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        surrogate.model(x)
    n = int(np.prod(grid))
    steps = getattr(surrogate.model.config, "n_iter", 0) if surrogate.full_tensor else 0
    fft = 2 * 3 * 2.5 * n * math.log2(n) * steps  # per PCG step: rfftn + irfftn of 3 components
    return (counter.get_total_flops() + fft) / 1e9


def n_params(surrogate) -> int:
    return sum(p.numel() for p in surrogate.model.parameters())


def pcg_surrogate(n: int, contrast: float):
    from rln_design.surrogate.strain import Surrogate

    return Surrogate(KrylovNet(KrylovConfig(n_iter=n, contrast=contrast)), {"contrast": contrast})


def cached(key: str, compute) -> dict:
    """``compute()`` once per key: results live in $RLN_V2_RUNS/cache/<key>.json."""
    path = RUNS / "cache" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value))
    return value


def choose_steps(contrast: float, data: str, max_n: int = 10) -> tuple[int, list]:
    """Smallest N whose validation MASE (128 structures) beats the paper's RLN; the whole dial."""
    s_val, y_val, _ = load_split(data, "validation", max_samples=128, seed=0)
    dial = []
    for n in range(1, max_n + 1):
        dial.append({**cached(f"val_pcg{n}_cr{contrast:g}",
                              lambda: accuracy(pcg_surrogate(n, contrast), s_val, y_val)), "steps": n})
        if dial[-1]["mase"] < PAPER[int(contrast)][1]:
            return n, dial
    return max_n, dial


def test_figures(contrast: float, data: str, arms: dict, n_full: int, max_test=None) -> dict:
    """Test accuracy of every arm (cached), full-tensor error on the first ``n_full`` structures."""
    s_test, y_test, _ = load_split(data, "test", max_samples=max_test, seed=0)
    full = None
    if any(s.full_tensor for s in arms.values()):
        full_fe = cached(f"fe_full_cr{contrast:g}_{n_full}_{len(s_test)}",
                         lambda: fe_full_strain(s_test[:n_full].numpy(), contrast).tolist())
        full = (s_test[:n_full].numpy(), np.asarray(full_fe, dtype=np.float32))
    return {name: cached(f"test_{name}_cr{contrast:g}_{len(s_test)}",
                         lambda: accuracy(s, s_test, y_test, full))
            for name, s in arms.items()}


def selected_weights(run: Path, data: str) -> dict:
    """The trained arm's weights to test: ``best.pt`` or ``last.pt``, whichever has the lower MASE on
    48 validation structures (an arm stopped by the CPU budget mid-epoch saved its last step in
    ``last.pt`` without validating it; choosing on validation gives it that step's chance)."""
    from rln_design.surrogate.strain import Surrogate
    from rln_design.training.evaluate import mase

    def compute():
        s_val, y_val, _ = load_split(data, "validation", max_samples=48, seed=0)
        val = {f.name: float(mase(Surrogate.load(f).predict(s_val.numpy(), batch_size=4, precision="fp32"),
                                  y_val.numpy()).mean())
               for f in (run / "best.pt", run / "last.pt") if f.is_file()}
        return {"file": min(val, key=val.get), "val_mase": val}

    return cached(f"selected_{run.name}", compute)


def load_arms(contrast: float, n: int, data: str) -> dict:
    """Surrogates of the study that exist on this machine, by arm name."""
    from rln_design.surrogate.strain import Surrogate

    arms = {}
    v1 = next((p for p in (Path(f"surrogates/cr{contrast:g}-rln"), Path(f"surrogates/cr{contrast:g}"))
               if (p / "model.pt").is_file()), None)
    if v1 is not None and Surrogate.load(v1).kind == "rln":
        arms["v1-rln"] = Surrogate.load(v1, ensemble=1)
    for name in ("rln", "pcg-net"):
        if contrast == 10 and (RUNS / name / "best.pt").is_file():
            arms[name] = Surrogate.load(RUNS / name / selected_weights(RUNS / name, data)["file"])
    for k in (n - 1, n):
        arms[f"pcg{k}"] = pcg_surrogate(k, contrast)
    return arms


def grid_transfer(surrogates: dict, contrast: float, grids=(16, 31, 63), count: int = 8) -> dict:
    """MASE against FE on ``count`` fresh structures per grid (same parameter box, seeds 0..)."""
    from rln_design.training.evaluate import mase
    from rln_design.fe.solver import solve_fe
    from rln_design.structure.generator import generate_batch, latin_hypercube

    out = {}
    for grid in grids:
        m = generate_batch(latin_hypercube(count, seed=7), np.arange(count), shape=(grid,) * 3)
        fe = np.stack([solve_fe(x, contrast=contrast).eps_xx_normalized() for x in m])
        out[grid] = {name: float(mase(s.predict(m, batch_size=2, precision="fp32"), fe).mean())
                     for name, s in surrogates.items()}
    return out


def fe_ms(structures: np.ndarray, contrast: float) -> tuple[float, float]:
    """FE ``solve_fe`` (numpy backend, one BLAS thread, rtol 1e-6) ms per structure and mean PCG
    iterations, on the structures the surrogates are timed on."""
    from rln_design.fe.solver import solve_fe

    iterations = [solve_fe(m, contrast=contrast).iterations for m in structures]
    return ms_per_structure(lambda c: [solve_fe(m, contrast=contrast) for m in c], structures, 1), \
        float(np.mean(iterations))


def warm_start(contrast: float, n: int, structures: np.ndarray) -> dict:
    """Mean FE PCG iterations from 0 and from the ``pcg<n>`` displacement (``solve_fe(initial=)``)."""
    from rln_design.fe.solver import solve_fe

    u = 1e-3 * pcg_surrogate(n, contrast).displacement(structures)
    cold = [solve_fe(m, contrast=contrast).iterations for m in structures]
    warm = [solve_fe(m, contrast=contrast, initial=x).iterations for m, x in zip(structures, u)]
    return {"cold": float(np.mean(cold)), "warm": float(np.mean(warm)), "n": len(structures)}


def run_report(args) -> None:
    """Evaluate every arm, time it against FE in the same run, write the markdown report."""
    torch.set_num_threads(args.threads)
    sections, record = [], {"machine": _machine(args.threads, vars(args))}
    for contrast, data in ((10.0, args.data), (50.0, args.data50)):
        if not Path(data).is_file():
            continue
        n, dial = choose_steps(contrast, data)
        arms = load_arms(contrast, n, data)
        tests = test_figures(contrast, data, arms, args.n_full, args.max_test)
        timing = load_split(data, "test", max_samples=args.n_speed, seed=1)[0].numpy()
        fe, fe_iterations = fe_ms(timing, contrast)
        speeds = {name: speed(s, timing, fe) for name, s in arms.items()}
        record[f"cr{contrast:g}"] = {"chosen_n": n, "dial": dial, "test": tests, "speed": speeds,
                                     "n_full": args.n_full,
                                     "fe_ms": fe, "fe_iterations": fe_iterations,
                                     "gflop": {k: gflop(s) for k, s in arms.items()},
                                     "warm_start": cached(f"warm_pcg{n}_cr{contrast:g}_{len(timing)}",
                                                          lambda: warm_start(contrast, n, timing)),
                                     "params": {k: n_params(s) for k, s in arms.items()},
                                     "selected": {k: selected_weights(RUNS / k, data) for k in ("rln", "pcg-net")
                                                  if k in arms}}
        sections.append(_section(contrast, data, record[f"cr{contrast:g}"], args))
    transfer = {f"pcg{record['cr10']['chosen_n']}": pcg_surrogate(record["cr10"]["chosen_n"], 10.0)}
    if (RUNS / "pcg-net" / "best.pt").is_file():
        transfer["pcg-net"] = load_arms(10.0, 2, args.data)["pcg-net"]
    record["grid_transfer"] = grid_transfer(transfer, 10.0, tuple(args.grids))
    sections.append(_transfer_section(record["grid_transfer"]))
    out = Path(args.out)
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    with atomic_path(out) as tmp:
        tmp.write_text(_header(record, args) + "\n".join(sections) + DECISION)


def _machine(threads: int, config: dict | None = None) -> dict:
    """The report's machine record: the run's :class:`Provenance` (``provenance``) and the keys the
    report, ``readme_tables.py`` and ``ship_v2_surrogate.py`` quote, read from it (``cpu``, ``torch``,
    ``rln_design``, ``revision``, ``date``), plus what it does not hold (threads, CPU capability,
    python, load average)."""
    import platform

    prov = Provenance.capture(config={"threads": threads, **(config or {})})
    return {"cpu": prov.hardware, "torch": prov.packages.get("torch", torch.__version__), "threads": threads,
            "capability": torch.backends.cpu.get_cpu_capability(), "python": platform.python_version(),
            "rln_design": prov.version, "revision": prov.revision, "load": os.getloadavg(),
            "date": datetime.datetime.fromisoformat(prov.created).strftime("%Y-%m-%d %H:%M UTC"),
            "provenance": prov.to_dict()}


def _header(record: dict, args) -> str:
    m = record["machine"]
    return (f"# Surrogate v2 study: paper RLN recipe vs Krylov localization at equal CPU time\n\n"
            f"Reproduce: see the docstring of `studies/surrogate_v2_study.py` (this file: "
            f"`python studies/surrogate_v2_study.py report`, {m['date']}).\n\n"
            f"- machine: {m['cpu']}, torch {m['torch']} (CPU capability {m['capability']}), "
            f"{m['threads']} intra-op threads for the timings; rln-design {m['rln_design']} "
            f"({m['revision']}); load average before the report {tuple(round(x, 2) for x in m['load'])}\n"
            f"- training arms (contrast 10): the training split of `{args.data}` (1025 structures), one "
            f"torch thread each, side by side, stopped at {args.budget:.0f} CPU s each "
            f"(`studies/cpu_budget.py`); `v1-rln` is the shipped RLN (~20 core-hours, 13 stages, "
            f"reference only)\n"
            f"- accuracy: {args.max_test or 'all'} structures of the test split (a seeded random "
            f"subset, the same for every arm; split by design point, never seen in training or "
            f"selection); the number of PCG steps N is chosen on 128 validation structures as the "
            f"smallest N that beats the paper's RLN there\n"
            f"- speed: ms per 31^3 structure, median of 3 passes over {args.n_speed} test structures, "
            f"`Surrogate.predict` (numpy in and out) against `solve_fe` (numpy backend, rtol 1e-6, one "
            f"BLAS thread: its fastest for one structure) on the same structures in the same run\n\n")
DECISION = "\nThe decision and its reasons: `studies/surrogate_v2_decision.md`.\n"
TRAINING = {"v1-rln": "~20 core-h (13 stages)", "rln": "arm budget", "pcg-net": "arm budget"}


def _training_cpu(name: str) -> str:
    if name.startswith("pcg") and name != "pcg-net":
        return "0 (no weights)"
    if name == "pcg-net" and (RUNS / "pcg-net" / "last.pt").is_file():
        try:
            training = load_checkpoint(RUNS / "pcg-net" / "last.pt").training or {}
        except CheckpointError:  # a last.pt of the layout before the checkpoint schema: no CPU record read
            training = {}
        if "state" in training:
            return f"{training['state']['cpu_s']:.0f} s"
    if name == "rln" and (RUNS / "rln" / "metrics.jsonl").is_file():
        epochs = [json.loads(line) for line in (RUNS / "rln" / "metrics.jsonl").read_text().splitlines()]
        planned = json.loads((RUNS / "rln" / "config.json").read_text()).get("epochs", "?")
        return f"{len(epochs)} of {planned} planned epochs in the budget"
    return TRAINING.get(name, "?")


def _weights(rec: dict, name: str) -> str:
    """Which saved weights of a trained arm were tested (chosen on validation), for the table."""
    chosen = rec.get("selected", {}).get(name)
    return f" ({chosen['file']})" if chosen else ""


def _fmt(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _section(contrast: float, data: str, rec: dict, args) -> str:
    paper = PAPER[int(contrast)]
    warm = rec["warm_start"]
    lines = [f"## Contrast {contrast:g} (`{data}`; paper test MASE: RLN-t {paper[0]} %, RLN {paper[1]} %)\n",
             f"FE `solve_fe`: {rec['fe_ms']:.1f} ms per structure, {rec['fe_iterations']:.1f} PCG "
             f"iterations on average (rtol 1e-6). Chosen N = {rec['chosen_n']}. FE warm-started from "
             f"the pcg{rec['chosen_n']} displacement (`solve_fe(initial=...)`, same {warm['n']} "
             f"structures): {warm['cold']:.1f} -> {warm['warm']:.1f} PCG iterations.\n",
             "| arm | training CPU | parameters | GFLOP / structure | test MASE % mean +- std | "
             "full-tensor error % | peak err % | p99 err % | ms batch 1 fp32 | ms batch 1 bf16 | "
             "ms best batch (batch, precision) | FE ms / surrogate ms (batch 1, best) |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---|---|"]
    for name, t in rec["test"].items():
        sp = rec["speed"][name]
        best = min(sp.values(), key=lambda v: v["best"])
        best_p = next(p for p, v in sp.items() if v is best)
        b1 = max(v["speedup_b1"] for v in sp.values())
        lines.append(
            f"| {name} | {_training_cpu(name)}{_weights(rec, name)} | {rec['params'][name]:,} | {rec['gflop'][name]:.2f} | "
            f"{t['mase']:.2f} +- {t['mase_std']:.2f} | {_fmt(t.get('full_err'))} | {t['peak_err']:.2f} | "
            f"{t['p99_err']:.2f} | {sp['fp32']['b1']:.1f} | {_fmt(sp.get('bf16', {}).get('b1'), 1)} | "
            f"{best['best']:.1f} ({best['best_batch']}, {best_p}) | {b1:.2f}x, {best['speedup_best']:.2f}x |")
    lines += ["", "The PCG step dial (validation MASE, 128 structures):", "",
              "| N | " + " | ".join(str(d["steps"]) for d in rec["dial"]) + " |",
              "|---|" + "---:|" * len(rec["dial"]),
              "| val MASE % | " + " | ".join(f"{d['mase']:.2f}" for d in rec["dial"]) + " |",
              "| val peak err % | " + " | ".join(f"{d['peak_err']:.2f}" for d in rec["dial"]) + " |", ""]
    full = {k: v["full_err_per_component"] for k, v in rec["test"].items() if "full_err_per_component" in v}
    if full:
        lines += [f"Full-tensor error per component (first {args.n_full} test structures, % of eps_bar_xx):",
                  "", "| arm | xx | yy | zz | yz | xz | xy |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {k} | " + " | ".join(f"{c:.2f}" for c in v) + " |" for k, v in full.items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def _transfer_section(transfer: dict) -> str:
    names = list(next(iter(transfer.values())))
    lines = ["## One model, any grid (contrast 10, 8 fresh structures per grid, MASE % against FE)\n",
             "| model | " + " | ".join(f"{g}^3" for g in transfer) + " |",
             "|---|" + "---:|" * len(transfer)]
    lines += [f"| {n} | " + " | ".join(f"{transfer[g][n]:.2f}" for g in transfer) + " |" for n in names]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-pcgnet")
    t.add_argument("--data", default=DATA)
    t.add_argument("--out", default=str(RUNS / "pcg-net"))
    t.add_argument("--budget", type=float, default=5400.0, help="CPU seconds")
    t.add_argument("--n-iter", type=int, default=2)
    t.add_argument("--width", type=int, default=16)
    t.add_argument("--depth", type=int, default=2)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--batch", type=int, default=4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--check-every", type=float, default=240.0, help="CPU seconds")
    t.add_argument("--curriculum", default=None,
                   help="dataset of small periodic cells (same material) trained on first")
    t.add_argument("--curriculum-fraction", type=float, default=0.5,
                   help="fraction of the CPU budget spent on the --curriculum cells")
    r = sub.add_parser("report")
    r.add_argument("--data", default=DATA)
    r.add_argument("--data50", default="data/cr50_31.h5")
    r.add_argument("--budget", type=float, default=5400.0, help="CPU seconds each arm had")
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--n-full", type=int, default=64, help="test structures with FE full tensors")
    r.add_argument("--n-speed", type=int, default=8, help="test structures timed")
    r.add_argument("--max-test", type=int, default=400,
                   help="test structures, a seeded random subset of the split (as the v1 cards)")
    r.add_argument("--grids", type=int, nargs="+", default=[16, 31, 63], help="grid transfer sizes")
    r.add_argument("--out", default="studies/surrogate_v2_study.md")
    args = parser.parse_args(argv)
    if args.command == "train-pcgnet":
        train_pcgnet(args)
    else:
        run_report(args)


if __name__ == "__main__":
    main()
