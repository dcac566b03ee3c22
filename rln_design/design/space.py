"""The stochastic design space: bounds on ``(gx, gy, gz, vf)`` and the realizations of a point.

A design point ``(gx, gy, gz, vf)`` defines a *distribution* of structures (one per noise seed).
Every evaluation uses ``K`` realizations. With common random numbers (the default) every design
point is evaluated on the *same* K seeds, so differences between design points are not swamped by
the realization scatter of statistics such as the peak strain (paired comparison); verification
then adds *fresh* seeds that no loop has seen, to check that a design is not tuned to its noise.

The loops work in the unit cube ``u in [0, 1]^4``: widths are mapped logarithmically
(``log g = log lo + u (log hi - log lo)``, grains of 1 and 2 voxels differ as much as 8 and 16),
the volume fraction linearly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rln_design.structure.generator import DEFAULT_SHAPE, PARAM_NAMES, ParameterBox

__all__ = ["DesignSpace", "parse_bounds", "bounds_from_targets", "bounds_reached", "training_box",
           "FRESH_SEED_OFFSET"]

# fresh verification seeds start here; loop seeds are small integers from the run seed
FRESH_SEED_OFFSET = 1_000_003


def parse_bounds(texts, box: ParameterBox | None = None) -> ParameterBox:
    """Apply ``NAME=LO:HI`` bounds (``gx=1:10``, ``vf=0.3:0.6``) to ``box``.

    Args:
        texts: iterable of strings ``NAME=LO:HI`` with NAME in ``gx, gy, gz, vf``.
        box: the box to modify (default ``ParameterBox()``).

    Returns:
        A new :class:`~rln_design.structure.generator.ParameterBox`.

    Raises:
        ValueError: malformed text, unknown name (with a suggestion), or bounds that are
            empty or outside the physical limits (message from ``ParameterBox``).
    """
    import difflib

    box = box or ParameterBox()
    updates = {}
    for text in texts:
        m = re.match(r"^\s*(\w+)\s*=\s*([-+0-9.eE]+)\s*:\s*([-+0-9.eE]+)\s*$", str(text))
        if m is None:
            raise ValueError(f"malformed bound {text!r}: expected NAME=LO:HI, e.g. 'gx=1:10' "
                             f"(NAME one of {', '.join(PARAM_NAMES)})")
        name = m.group(1)
        if name not in PARAM_NAMES:
            close = difflib.get_close_matches(name, PARAM_NAMES, n=1, cutoff=0.3)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown design variable {name!r}.{hint} Valid: {', '.join(PARAM_NAMES)}")
        try:
            lo, hi = float(m.group(2)), float(m.group(3))
        except ValueError:
            raise ValueError(f"malformed bound {text!r}: LO and HI must be numbers") from None
        updates[name] = (lo, hi)
    return box.with_bounds(**updates) if updates else box


def bounds_from_targets(box: ParameterBox, targets, shape) -> tuple[ParameterBox, tuple]:
    """Turn targets on the stiff volume fraction into bounds on the design variable ``vf``.

    The generator makes exactly ``n(vf) = round(vf * N)`` of the ``N`` voxels stiff, so the
    ``volume_fraction`` statistic of every realization is ``n(vf) / N``: not a noisy outcome but
    a step function of ``vf``. A target on it is met exactly on an interval of ``vf``, and the
    loops should search only there rather than learn it as a soft constraint. A lower target
    (``>=``/``>``) needs ``n >= n_min`` stiff voxels, the smallest count whose fraction meets it;
    ``vf >= (n_min - 1/4) / N`` gives ``round(vf N) >= n_min`` with room for round-off (upper
    targets alike with ``n_max`` and ``+ 1/4``).

    Args:
        box: the design box.
        targets: :class:`~rln_design.design.targets.Target` iterable; the ones on
            ``volume_fraction`` are used.
        shape: grid ``(x, y, z)`` of the structures (``N`` voxels).

    Returns:
        ``(box, enforced)``: the box with ``vf`` narrowed to where every volume-fraction target
        holds, and those targets (a tuple, empty if there are none).

    Raises:
        ValueError: the targets leave no ``vf`` inside the box (the message names them and the
            box's ``vf`` bounds).
    """
    enforced = tuple(t for t in targets if t.statistic == "volume_fraction")
    if not enforced:
        return box, enforced
    n_vox = int(np.prod(shape))
    lo, hi = box.vf
    for t in enforced:
        # stiff-voxel count just past the threshold, corrected by the float test itself
        n = int(np.floor(t.value * n_vox))
        if t.upper:
            n = min(max(n + 1, 0), n_vox)
            while n >= 0 and not t.met(n / n_vox):
                n -= 1
            hi = min(hi, (n + 0.25) / n_vox)
        else:
            n = min(max(n - 1, 0), n_vox)
            while n <= n_vox and not t.met(n / n_vox):
                n += 1
            lo = max(lo, (n - 0.25) / n_vox)
    if not (lo < hi and 0.0 < lo and hi < 1.0):
        texts = " and ".join(f"'{t}'" for t in enforced)
        raise ValueError(f"target {texts} leaves no stiff volume fraction inside the design bounds "
                         f"vf={box.vf[0]:g}:{box.vf[1]:g} (round(vf N) of the N = {n_vox} voxels are "
                         f"stiff); widen the bounds (--box vf=LO:HI with 0 < LO < HI < 1) or relax "
                         f"the target")
    return box.with_bounds(vf=(lo, hi)), enforced


def bounds_reached(box: ParameterBox, params: dict, tol: float = 1e-3) -> dict:
    """The design variables of ``params`` that lie on a bound of ``box``.

    A design on a bound may be held there by the box: a wider box may hold better designs.

    Args:
        box: the search box.
        params: ``{"gx": ..., "gy": ..., "gz": ..., "vf": ...}``.
        tol: distance from the bound, as a fraction of the box's width in the loops' unit-cube
            coordinates (log widths, linear vf).

    Returns:
        ``{name: "lower" | "upper"}`` for each variable on a bound, in ``gx, gy, gz, vf`` order.
    """
    u = DesignSpace(box=box).to_unit(np.array([[params[n] for n in PARAM_NAMES]]))[0]
    return {n: "lower" if x <= tol else "upper" for n, x in zip(PARAM_NAMES, u) if x <= tol or x >= 1 - tol}


def training_box(metadata) -> ParameterBox | None:
    """The parameter box a surrogate was trained on, if its metadata records one.

    Looks for a mapping ``bounds: {"gx": [lo, hi], ...}`` anywhere in the metadata (the dataset
    config travels with the surrogate); returns None if there is none.
    """
    def find(obj):
        if isinstance(obj, dict):
            b = obj.get("bounds")
            if isinstance(b, dict) and set(PARAM_NAMES) <= set(b):
                return b
            for v in obj.values():
                r = find(v)
                if r is not None:
                    return r
        return None

    bounds = find(metadata or {})
    if bounds is None:
        return None
    try:
        return ParameterBox(**{n: tuple(float(x) for x in bounds[n]) for n in PARAM_NAMES})
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class DesignSpace:
    """Bounds, grid and realizations of the stochastic design problem.

    Attributes:
        box: bounds of ``(gx, gy, gz, vf)``.
        shape: grid of every structure, ``(x, y, z)``.
        n_realizations: ``K``, structures per design point and evaluation.
        seed: run seed; the loop seeds and the fresh verification seeds derive from it.
        common_random_numbers: same K seeds at every design point (paired comparisons);
            otherwise every evaluation draws new seeds.
    """

    box: ParameterBox = field(default_factory=ParameterBox)
    shape: tuple = DEFAULT_SHAPE
    n_realizations: int = 4
    seed: int = 0
    common_random_numbers: bool = True

    def __post_init__(self):
        if int(self.n_realizations) < 1:
            raise ValueError(f"n_realizations={self.n_realizations} must be >= 1")
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))

    @property
    def names(self) -> tuple[str, ...]:
        return PARAM_NAMES

    @property
    def lower(self) -> np.ndarray:
        return self.box.lower

    @property
    def upper(self) -> np.ndarray:
        return self.box.upper

    @property
    def log_mask(self) -> np.ndarray:
        """Which parameters are mapped logarithmically: ``(4,)`` bool (the widths)."""
        return np.array([self.box.log_widths] * 3 + [False])

    # ---- unit cube <-> parameters (numpy and torch)
    def from_unit(self, u):
        """Map `(n, 4)` points of the unit cube to parameters (torch keeps the graph)."""
        lo, hi = self._transformed_bounds()
        if type(u).__module__.startswith("torch"):
            import torch

            lo_t, hi_t = (torch.as_tensor(a, dtype=u.dtype, device=u.device) for a in (lo, hi))
            mask = torch.as_tensor(self.log_mask, device=u.device)
            t = lo_t + u * (hi_t - lo_t)
            return torch.where(mask, torch.exp(t), t)
        u = np.asarray(u, dtype=np.float64)
        t = lo + u * (hi - lo)
        return np.where(self.log_mask, np.exp(t), t)

    def to_unit(self, params) -> np.ndarray:
        """Inverse of :meth:`from_unit` (numpy `(n, 4)`)."""
        p = np.asarray(params, dtype=np.float64)
        lo, hi = self._transformed_bounds()
        t = np.where(self.log_mask, np.log(np.maximum(p, 1e-300)), p)
        return (t - lo) / (hi - lo)

    def _transformed_bounds(self):
        lo, hi = self.lower.copy(), self.upper.copy()
        m = self.log_mask
        lo[m], hi[m] = np.log(lo[m]), np.log(hi[m])
        return lo, hi

    def clip(self, params) -> np.ndarray:
        """Clip `(n, 4)` parameters into the box (guards round-off of the unit-cube maps)."""
        return np.clip(np.asarray(params, dtype=np.float64), self.lower, self.upper)

    # ---- realizations
    def seeds(self, n_points: int, *, evaluation: int = 0, fresh: bool = False) -> np.ndarray:
        """Seeds `(n_points, K)` for one evaluation of ``n_points`` design points.

        Args:
            n_points: number of design points evaluated together.
            evaluation: running index of the evaluation (used only without common random
                numbers, so that every evaluation draws new structures).
            fresh: verification seeds disjoint from every loop seed.
        """
        k = int(self.n_realizations)
        if self.common_random_numbers:
            # loop seeds 0..K-1 of this run; fresh ones from a disjoint range
            row = self.seed * 10_000 + (FRESH_SEED_OFFSET if fresh else 0) + np.arange(k, dtype=np.int64)
            return np.tile(row, (n_points, 1))
        rng = np.random.default_rng([self.seed, int(fresh), evaluation])
        return rng.integers(0, 2**31 - 1, size=(n_points, k), dtype=np.int64)

    def to_dict(self) -> dict:
        return {
            "bounds": {n: [float(a), float(b)] for n, a, b in zip(PARAM_NAMES, self.lower, self.upper)},
            "log_widths": bool(self.box.log_widths),
            "shape": list(self.shape),
            "n_realizations": int(self.n_realizations),
            "seed": int(self.seed),
            "common_random_numbers": bool(self.common_random_numbers),
        }
