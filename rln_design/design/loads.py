"""Load cases of a design run: the macroscopic strains a design is judged under.

A :class:`LoadCase` is a name and an imposed macroscopic strain ``eps_bar`` (6 tensor components,
Voigt order xx, yy, zz, yz, xz, xy). The three *normal* cases ``x``, ``y`` and ``z`` impose
``eps_bar = 1e-3 e_a (x) e_a`` (all other components 0); any other strain is a *custom* case with a
name of its own (``--load "shear=0,0,0,0,0,1e-3"``).

Normalisation. Every case has a *reference component* ``c``: its largest imposed component in
magnitude (the first of equal ones; ``xx`` for ``x``, ``yy`` for ``y`` ...) and ``eps_ref =
eps_bar_c``. The strain statistics of a case are of ``eps_c / eps_ref`` (mean 1: ``eps_xx /
eps_bar_xx`` under ``x`` as before load cases existed, ``eps_yy / eps_bar_yy`` under ``y``), the
full-tensor strain statistics of ``eps / |eps_ref|`` and the stress statistics of ``sigma / (E_soft
|eps_ref|)`` (:mod:`rln_design.design.stats`).

Axis permutation. Both phases are isotropic, so the problem commutes with relabelling the axes:
with ``P`` the swap of axes 0 and ``a``, the strain field of structure ``m`` under the ``a`` load is

    eps^(a)[m](r) = P eps^(x)[m o P](P r) P^T,

the x-load field of the axis-swapped structure, swapped back (the cubic hex8 voxel mesh has the same
symmetry, so this holds for the FE solution to solver tolerance: tests/design/test_loads.py). An
eps_xx surrogate therefore predicts the ``y`` and ``z`` loads exactly as well as ``x``
(:func:`swap_axes`, :func:`swap_tensor`); it has nothing to offer for a shear or custom load.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

__all__ = ["LoadCase", "NORMAL_LOADS", "DEFAULT_LOADS", "LoadError", "parse_load", "parse_loads",
           "swap_axes", "swap_tensor", "statistic_key", "split_key", "VOIGT_PAIRS", "VOIGT_NAMES"]

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))  # tensor components, Voigt order
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")
AXES = "xyz"
NORMAL_STRAIN = 1e-3  # imposed normal strain of the x, y and z cases (linear problem: any scale)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXAMPLE = "e.g. --load x, --load y, --load z or --load 'shear=0,0,0,0,0,1e-3' (xx,yy,zz,yz,xz,xy)"


class LoadError(ValueError):
    """A load case that cannot be used (the message says why and what is allowed)."""


@dataclass(frozen=True)
class LoadCase:
    """One imposed macroscopic strain.

    Attributes:
        name: how targets name the case (``peak_strain@y<1.5``): ``x``, ``y``, ``z`` or an
            identifier of a custom case.
        strain: ``eps_bar``, 6 tensor components (xx, yy, zz, yz, xz, xy), finite, not all 0.
    """

    name: str
    strain: tuple

    def __post_init__(self):
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise LoadError(f"load case name {self.name!r} must be an identifier (letters, digits, _)")
        try:
            strain = tuple(float(v) for v in np.ravel(self.strain))
        except (TypeError, ValueError):
            raise LoadError(f"load case {self.name!r}: strain {self.strain!r} is not 6 numbers") from None
        if len(strain) != 6 or not all(math.isfinite(v) for v in strain) or not any(strain):
            raise LoadError(f"load case {self.name!r}: strain must be 6 finite tensor components "
                            f"(xx, yy, zz, yz, xz, xy), not all 0, got {list(strain)}")
        object.__setattr__(self, "strain", strain)
        if self.name in AXES and strain != _normal_strain(AXES.index(self.name)):
            raise LoadError(f"load case name {self.name!r} is reserved for the normal load along "
                            f"{self.name}; name a custom strain otherwise")

    @property
    def axis(self) -> int | None:
        """0, 1 or 2 for the normal loads ``x``, ``y``, ``z`` and for a custom case that is one of
        them up to a positive factor (uniaxial tensile strain along one axis: the problem is linear
        and statistics are normalised, so an eps_xx surrogate serves it by permuting axes); None for
        any other custom case."""
        nonzero = [i for i, v in enumerate(self.strain) if v != 0.0]  # x, y, z: their own axis
        return nonzero[0] if len(nonzero) == 1 and nonzero[0] < 3 and self.strain[nonzero[0]] > 0 else None

    @property
    def component(self) -> int:
        """Reference component ``c`` (Voigt index): the largest imposed component in magnitude."""
        return int(np.argmax(np.abs(self.strain)))

    @property
    def reference(self) -> float:
        """``eps_ref = eps_bar_c``: the strain that normalises this case's statistics."""
        return self.strain[self.component]

    @property
    def field_label(self) -> str:
        """What this case's strain field is, for axis labels: ``"eps_yy / imposed eps_yy"`` (``y``)."""
        c = VOIGT_NAMES[self.component]
        return f"eps_{c} / imposed eps_{c}"

    def __str__(self) -> str:
        if self.name in AXES:
            return self.name
        return f"{self.name}={','.join(f'{v:g}' for v in self.strain)}"

    def to_dict(self) -> dict:
        return {"name": self.name, "strain": list(self.strain), "component": self.component,
                "reference": self.reference}


def _normal_strain(axis: int) -> tuple:
    strain = [0.0] * 6
    strain[axis] = NORMAL_STRAIN
    return tuple(strain)


NORMAL_LOADS = {a: LoadCase(a, _normal_strain(i)) for i, a in enumerate(AXES)}
DEFAULT_LOADS = (NORMAL_LOADS["x"],)


def parse_load(text: str) -> LoadCase:
    """``x``, ``y``, ``z`` (normal loads) or ``NAME=exx,eyy,ezz,eyz,exz,exy`` (custom strain).

    Raises:
        LoadError: one line naming the bad text and the allowed forms.
    """
    if isinstance(text, LoadCase):
        return text
    if not isinstance(text, str) or not text.strip():
        raise LoadError(f"empty load case; {_EXAMPLE}")
    text = text.strip()
    if text in NORMAL_LOADS:
        return NORMAL_LOADS[text]
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep:
        raise LoadError(f"unknown load case {text!r}: use x, y, z or NAME=6 strain components; {_EXAMPLE}")
    try:
        strain = [float(v) for v in values.split(",")]
    except ValueError:
        raise LoadError(f"malformed load case {text!r}: the strain must be 6 comma-separated numbers; "
                        f"{_EXAMPLE}") from None
    if len(strain) != 6:
        raise LoadError(f"malformed load case {text!r}: {len(strain)} strain components, need 6 "
                        f"(xx, yy, zz, yz, xz, xy); {_EXAMPLE}")
    return LoadCase(name, tuple(strain))


def parse_loads(texts) -> tuple[LoadCase, ...]:
    """Several load cases (default: ``x`` alone); a name given twice is refused."""
    cases = tuple(parse_load(t) for t in texts) or DEFAULT_LOADS
    names = [c.name for c in cases]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LoadError(f"load case(s) {', '.join(twice)} given more than once")
    return cases


def check_surrogate_loads(cases) -> None:
    """ValueError naming the first case an eps_xx surrogate cannot serve (``axis`` None: shear or
    mixed strains) and the evaluator that can (FE)."""
    for case in cases:
        if case.axis is None:
            raise ValueError(f"no surrogate exists for load case {str(case)!r} (a strain other than a "
                             "tensile normal strain along x, y or z alone): use --evaluator fe")


def swap_axes(fields, axis: int, first: int = 1):
    """Swap spatial axis 0 (x) and ``axis`` of `(..., x, y, z)` fields; ``first`` is the index of
    the x axis (1 for `(batch, x, y, z)`, 2 for `(batch, 6, x, y, z)`). An involution; numpy or torch."""
    if axis == 0:
        return fields
    if type(fields).__module__.startswith("torch"):
        return fields.transpose(first, first + axis)
    return np.swapaxes(fields, first, first + axis)


def _swapped_components(axis: int) -> list[int]:
    """Voigt index of component ``(p(i), p(j))`` for each component ``(i, j)``, ``p`` = swap 0 <-> axis."""
    perm = list(range(3))
    perm[0], perm[axis] = perm[axis], perm[0]
    index = {pair: k for k, pair in enumerate(VOIGT_PAIRS)}
    index.update({(j, i): k for (i, j), k in index.items()})
    return [index[(perm[i], perm[j])] for i, j in VOIGT_PAIRS]


def swap_tensor(tensor, axis: int):
    """Relabel axes 0 and ``axis`` of a strain-tensor field `(batch, 6, x, y, z)` (tensor comps.).

    ``out[:, (i, j)](r) = tensor[:, (p(i), p(j))](P r)``: maps the x-load field of the swapped
    structure to the ``axis``-load field of the structure (and back: an involution).
    """
    if axis == 0:
        return tensor
    return swap_axes(tensor[:, _swapped_components(axis)], axis, first=2)


def statistic_key(name: str, case: str, loads) -> str:
    """Key of statistic ``name`` under load case ``case`` in a run with ``loads``: ``name@case``,
    or the plain ``name`` when the run has a single load case (as before load cases existed)."""
    return name if len(loads) == 1 else f"{name}@{case}"


def split_key(key: str) -> tuple[str, str | None]:
    """``"peak_strain@y"`` -> ``("peak_strain", "y")``; ``"peak_strain"`` -> ``("peak_strain", None)``."""
    name, at, case = key.partition("@")
    return name, (case if at else None)
