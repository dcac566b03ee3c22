"""Design targets (``peak_strain<1.5``) and objectives (``--minimize p99_strain``).

A target is an inequality on the *expected value* of a registered statistic
(:data:`rln_design.stats.STATISTICS`) over the realizations of a design point. Its *margin* is
positive when met, in the units of the statistic; the *relative margin* divides by
``max(|value|, 1e-3)`` so targets on different statistics compare.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

import numpy as np

from rln_design.stats import STATISTICS

__all__ = ["Target", "Objective", "TargetError", "parse_target", "parse_targets", "parse_objective"]

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
