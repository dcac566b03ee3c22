"""Design targets (``peak_strain<1.5``) and objectives (``--minimize p99_strain``).

A target is an inequality on the *expected value* of a registered statistic
(:data:`rln_design.design.stats.STATISTICS`) over the realizations of a design point. Its *margin* is
positive when met, in the units of the statistic; the *relative margin* divides by
``max(|value|, 1e-3)`` so targets on different statistics compare.

Load cases (:mod:`rln_design.design.loads`). A statistic of a load case's field (strain, full
tensor) applies to *every* load case of the run, in the worst case: per realization the maximum over
the cases for ``<`` targets and for a minimized objective, the minimum for ``>`` targets and for a
maximized one. ``STATISTIC@CASE`` names one case instead: ``peak_strain@y<1.5``,
``--minimize p99_strain@z``. Statistics of the structure alone and the stiffnesses (``stiffness_x``
belongs to the x load) take no case.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass

import numpy as np

from rln_design.design.stats import STATISTICS

__all__ = ["Target", "Objective", "TargetError", "parse_target", "parse_targets", "parse_objective",
           "check_targets", "check_load_cases"]

_OPS = {"<": "<", "<=": "<=", "=<": "<=", ">": ">", ">=": ">=", "=>": ">="}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_CASE = r"(?:\s*@\s*([^<>=\s]*))?"
_PATTERN = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_]*){_CASE}\s*(<=|>=|=<|=>|<|>)\s*({_NUMBER})\s*$")
_EXAMPLE = "e.g. 'peak_strain<1.5', 'peak_strain@y<1.5' or 'volume_fraction>=0.4'"
_CASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TargetError(ValueError):
    """A target or objective expression that cannot be used (the message says why)."""


def _unknown(name: str) -> TargetError:
    close = difflib.get_close_matches(name, list(STATISTICS), n=1, cutoff=0.5)
    if not close:  # "p99" -> "p99_strain": a prefix is a good hint too
        close = [n for n in STATISTICS if n.startswith(name)][:1]
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return TargetError(f"unknown statistic {name!r}.{hint} Valid statistics: {', '.join(STATISTICS)}")


@dataclass(frozen=True)
class Target:
    """``statistic op value``, met when the expected statistic satisfies the inequality.

    Attributes:
        statistic: a key of :data:`~rln_design.design.stats.STATISTICS`.
        op: one of ``<``, ``<=``, ``>``, ``>=``.
        value: threshold, in the units of the statistic.
    """

    statistic: str
    op: str
    value: float
    case: str | None = None

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise _unknown(self.statistic)
        if self.op not in ("<", "<=", ">", ">="):
            raise TargetError(f"unknown comparison {self.op!r}; use <, <=, > or >=")
        _check_case(self.statistic, self.case, str(self))

    @property
    def worst(self) -> str:
        """How the load cases combine per realization: ``"max"`` for ``<``, ``"min"`` for ``>``."""
        return "max" if self.upper else "min"

    @property
    def upper(self) -> bool:
        """True for an upper bound (``<``, ``<=``)."""
        return self.op in ("<", "<=")

    @property
    def scale(self) -> float:
        """Scale of relative margins: ``max(|value|, 1e-3)``."""
        return max(abs(self.value), 1e-3)

    def margin(self, values):
        """Signed distance to the threshold, positive when met: ``value - x`` or ``x - value``."""
        return self.value - values if self.upper else values - self.value

    def relative_margin(self, values):
        """:meth:`margin` divided by :attr:`scale` (dimensionless)."""
        return self.margin(values) / self.scale

    def met(self, values):
        """Element-wise: does ``values`` satisfy the inequality?"""
        v = np.asarray(values, dtype=float)
        return {"<": v < self.value, "<=": v <= self.value, ">": v > self.value,
                ">=": v >= self.value}[self.op]

    @property
    def label(self) -> str:
        """``statistic`` or ``statistic@case``."""
        return self.statistic if self.case is None else f"{self.statistic}@{self.case}"

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value:g}"

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "case": self.case, "op": self.op, "value": self.value,
                "text": str(self)}


@dataclass(frozen=True)
class Objective:
    """Optional objective: minimize or maximize the expected value of a statistic."""

    statistic: str
    sense: str = "minimize"
    case: str | None = None

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise _unknown(self.statistic)
        if self.sense not in ("minimize", "maximize"):
            raise TargetError(f"objective sense must be 'minimize' or 'maximize', got {self.sense!r}")
        _check_case(self.statistic, self.case, self.label)

    @property
    def label(self) -> str:
        """``statistic`` or ``statistic@case``."""
        return self.statistic if self.case is None else f"{self.statistic}@{self.case}"

    @property
    def worst(self) -> str:
        """The worst load case per realization: ``"max"`` when minimizing, ``"min"`` when maximizing."""
        return "max" if self.sense == "minimize" else "min"

    @property
    def sign(self) -> float:
        """+1 to maximize, -1 to minimize: ``sign * value`` is always maximized."""
        return 1.0 if self.sense == "maximize" else -1.0

    def __str__(self) -> str:
        return f"{self.sense} {self.label}"

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "case": self.case, "sense": self.sense}


def _check_case(statistic: str, case, text: str) -> None:
    """A case name is an identifier, and only statistics of a load case's field take one."""
    if case is None:
        return
    if not isinstance(case, str) or not _CASE_NAME.match(case):
        raise TargetError(f"malformed load case {case!r} in {text!r}: after @ comes the name of one of "
                          f"the run's load cases (x, y, z or a --load NAME=...), {_EXAMPLE}")
    if not STATISTICS[statistic].per_case:
        what = ("belongs to its own normal load" if STATISTICS[statistic].needs == "stiffness"
                else "is a statistic of the structure alone")
        raise TargetError(f"{text!r}: {statistic} {what} and takes no @{case}")


def parse_target(text: str) -> Target:
    """Parse ``"STATISTIC OP VALUE"`` (``peak_strain<1.5``, ``volume_fraction >= 0.4``).

    Args:
        text: the expression; OP is one of ``<``, ``<=``, ``>``, ``>=``.

    Returns:
        :class:`Target`.

    Raises:
        TargetError: malformed expression (the message shows the expected form) or unknown
            statistic (the message lists valid names and the closest match).

    Example:
        >>> parse_target("peak_strain<1.5")
        Target(statistic='peak_strain', op='<', value=1.5, case=None)
    """
    if not isinstance(text, str) or not text.strip():
        raise TargetError(f"empty target; expected STATISTIC OP VALUE, {_EXAMPLE}")
    m = _PATTERN.match(text)
    if m is None:
        stripped = text.strip()
        if "==" in stripped or re.search(r"(?<![<>=])=(?![<>=])", stripped):
            raise TargetError(
                f"malformed target {text!r}: equality targets are not supported (a continuous "
                f"statistic never equals a number); use a range as two targets, {_EXAMPLE}"
            )
        m2 = re.match(rf"^\s*({_NUMBER})\s*(<=|>=|<|>)\s*([A-Za-z_]\w*(@\w*)?)\s*$", stripped)
        if m2:
            raise TargetError(f"malformed target {text!r}: write the statistic first, {_EXAMPLE}")
        name = re.match(r"^\s*([A-Za-z_]\w*)", stripped)
        if name and name.group(1) not in STATISTICS and re.search(r"[<>]", stripped):
            raise _unknown(name.group(1))
        raise TargetError(
            f"malformed target {text!r}: expected STATISTIC OP VALUE with OP one of <, <=, >, >=, "
            f"{_EXAMPLE}"
        )
    name, case, op, value = m.group(1), m.group(2), _OPS[m.group(3)], float(m.group(4))
    if name not in STATISTICS:
        raise _unknown(name)
    if case is not None and not _CASE_NAME.match(case):
        raise TargetError(f"malformed target {text!r}: after @ comes a load case name (x, y, z or a "
                          f"--load NAME=...), {_EXAMPLE}")
    if not np.isfinite(value):
        raise TargetError(f"target {text!r}: the value must be a finite number")
    if name == "volume_fraction" and not 0.0 <= value <= 1.0:
        raise TargetError(f"target {text!r}: a volume fraction lies in [0, 1]")
    return Target(name, op, value, case)


def parse_targets(texts) -> tuple[Target, ...]:
    """Parse several target expressions (see :func:`parse_target`)."""
    return tuple(parse_target(t) for t in texts)


def parse_objective(name: str, sense: str = "minimize") -> Objective:
    """Objective from ``STATISTIC`` or ``STATISTIC@CASE`` and ``"minimize"``/``"maximize"``.

    Raises:
        TargetError: unknown statistic (with the valid names and a suggestion), malformed case or
            sense.
    """
    statistic, at, case = name.strip().partition("@")
    return Objective(statistic.strip(), sense, case.strip() if at else None)


def check_load_cases(targets, objective, loads) -> None:
    """Refuse targets and an objective that name a load case the run does not have.

    Args:
        targets: :class:`Target` iterable.
        objective: :class:`Objective` or None.
        loads: the run's :class:`~rln_design.design.loads.LoadCase` tuple.

    Raises:
        TargetError: a named case not among ``loads``, or a stiffness statistic whose normal load
            case(s) are not among them (the message names the ``--load`` to add).
    """
    names = [c.name for c in loads]
    for item in [*targets, *([objective] if objective is not None else [])]:
        text = str(item)
        if item.case is not None and item.case not in names:
            raise TargetError(f"{text!r} names load case {item.case!r}, which is not among the run's "
                              f"load cases ({', '.join(names)}); add --load {item.case} or use one of them")
        missing = [a for a in STATISTICS[item.statistic].axes if a not in names]
        if missing:
            raise TargetError(f"{text!r} needs the normal load case(s) {', '.join(missing)}: add "
                              + " ".join(f"--load {a}" for a in missing))


# (value every structure reaches or passes, why): eps_xx / imposed has mean 1 by construction
_FLOORS = {
    "mean_strain": (1.0, "the mean of eps_xx / imposed eps_xx is 1 for every structure (the imposed "
                         "strain is the average strain)"),
    "peak_strain": (1.0, "the peak of eps_xx / imposed eps_xx is at least its mean, which is 1 for "
                         "every structure"),
    "std_strain": (0.0, "a standard deviation is at least 0"),
}
# statistics ordered in every structure: p99 <= p99.9 <= peak
_ORDER = ("p99_strain", "p999_strain", "peak_strain")


def _below(low: str, high: str) -> bool:
    """Is statistic ``low`` <= statistic ``high`` in every structure?"""
    if low == high:
        return True
    return low in _ORDER and high in _ORDER and _ORDER.index(low) < _ORDER.index(high)


def _impossible(target: Target) -> str | None:
    """Why no structure meets ``target`` on its own, or None."""
    if target.statistic not in _FLOORS:
        return None
    floor, why = _FLOORS[target.statistic]
    if target.statistic == "mean_strain" and not target.met(floor):
        return why
    if target.upper and not target.met(floor):
        return why
    return None


def _contradict(lower: Target, upper: Target) -> bool:
    """Do a lower bound on one statistic and an upper bound on one at least as large exclude each other?"""
    if not (not lower.upper and upper.upper and _below(lower.statistic, upper.statistic)):
        return False
    if lower.case is not None and upper.case is not None and lower.case != upper.case:
        return False  # two different load cases: no order between them
    strict = lower.op == ">" or upper.op == "<"
    return lower.value > upper.value or (strict and lower.value == upper.value)


def check_targets(targets) -> None:
    """Refuse targets that no structure can meet, alone or together, before any evaluation.

    Alone: the normalized mean strain is 1 by construction, the peak strain is at least 1 and the
    strain standard deviation at least 0. Together: a lower and an upper bound on one statistic
    that leave no value between them, or on two ordered ones (p99 <= p99.9 <= peak).

    Args:
        targets: :class:`Target` iterable.

    Raises:
        TargetError: the message names the target(s) and the reason.
    """
    targets = list(targets)
    for t in targets:
        why = _impossible(t)
        if why:
            raise TargetError(f"target '{t}' cannot be met by any structure: {why}")
    for a, b in itertools.permutations(targets, 2):
        if _contradict(a, b):
            if a.statistic == b.statistic:
                why = f"no value of {a.label if a.case else b.label} is {a.op} {a.value:g} and {b.op} {b.value:g}"
            else:
                why = f"{a.statistic} <= {b.statistic} in every structure"
            raise TargetError(f"targets '{a}' and '{b}' contradict each other: {why}")
