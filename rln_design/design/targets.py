"""Design targets (``peak_strain<1.5``) and objectives (``--minimize p99_strain``).

A target is an inequality on the *expected value* of a registered statistic
(:data:`rln_design.stats.STATISTICS`) over the realizations of a design point. Its *margin* is
positive when met, in the units of the statistic; the *relative margin* divides by
``max(|value|, 1e-3)`` so targets on different statistics compare.
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass

import numpy as np

from rln_design.stats import STATISTICS

__all__ = ["Target", "Objective", "TargetError", "parse_target", "parse_targets", "parse_objective",
           "check_targets"]

_OPS = {"<": "<", "<=": "<=", "=<": "<=", ">": ">", ">=": ">=", "=>": ">="}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_PATTERN = re.compile(rf"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|=<|=>|<|>)\s*({_NUMBER})\s*$")
_EXAMPLE = "e.g. 'peak_strain<1.5' or 'volume_fraction>=0.4'"


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
        statistic: a key of :data:`~rln_design.stats.STATISTICS`.
        op: one of ``<``, ``<=``, ``>``, ``>=``.
        value: threshold, in the units of the statistic.
    """

    statistic: str
    op: str
    value: float

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise _unknown(self.statistic)
        if self.op not in ("<", "<=", ">", ">="):
            raise TargetError(f"unknown comparison {self.op!r}; use <, <=, > or >=")

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

    def __str__(self) -> str:
        return f"{self.statistic}{self.op}{self.value:g}"

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "op": self.op, "value": self.value, "text": str(self)}


@dataclass(frozen=True)
class Objective:
    """Optional objective: minimize or maximize the expected value of a statistic."""

    statistic: str
    sense: str = "minimize"

    def __post_init__(self):
        if self.statistic not in STATISTICS:
            raise _unknown(self.statistic)
        if self.sense not in ("minimize", "maximize"):
            raise TargetError(f"objective sense must be 'minimize' or 'maximize', got {self.sense!r}")

    @property
    def sign(self) -> float:
        """+1 to maximize, -1 to minimize: ``sign * value`` is always maximized."""
        return 1.0 if self.sense == "maximize" else -1.0

    def __str__(self) -> str:
        return f"{self.sense} {self.statistic}"

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "sense": self.sense}


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
        Target(statistic='peak_strain', op='<', value=1.5)
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
        m2 = re.match(rf"^\s*({_NUMBER})\s*(<=|>=|<|>)\s*([A-Za-z_]\w*)\s*$", stripped)
        if m2:
            raise TargetError(f"malformed target {text!r}: write the statistic first, {_EXAMPLE}")
        name = re.match(r"^\s*([A-Za-z_]\w*)", stripped)
        if name and name.group(1) not in STATISTICS and re.search(r"[<>]", stripped):
            raise _unknown(name.group(1))
        raise TargetError(
            f"malformed target {text!r}: expected STATISTIC OP VALUE with OP one of <, <=, >, >=, "
            f"{_EXAMPLE}"
        )
    name, op, value = m.group(1), _OPS[m.group(2)], float(m.group(3))
    if name not in STATISTICS:
        raise _unknown(name)
    if not np.isfinite(value):
        raise TargetError(f"target {text!r}: the value must be a finite number")
    if name == "volume_fraction" and not 0.0 <= value <= 1.0:
        raise TargetError(f"target {text!r}: a volume fraction lies in [0, 1]")
    return Target(name, op, value)


def parse_targets(texts) -> tuple[Target, ...]:
    """Parse several target expressions (see :func:`parse_target`)."""
    return tuple(parse_target(t) for t in texts)


def parse_objective(name: str, sense: str = "minimize") -> Objective:
    """Objective from a statistic name and ``"minimize"``/``"maximize"``.

    Raises:
        TargetError: unknown statistic (with the valid names and a suggestion) or sense.
    """
    return Objective(name.strip(), sense)


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
                why = f"no value of {a.statistic} is {a.op} {a.value:g} and {b.op} {b.value:g}"
            else:
                why = f"{a.statistic} <= {b.statistic} in every structure"
            raise TargetError(f"targets '{a}' and '{b}' contradict each other: {why}")
