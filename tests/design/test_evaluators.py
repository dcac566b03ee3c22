"""Tests of rln_design/design/evaluators.py: the FE evaluator's recent strain fields.

(The evaluators' statistics under load cases are tested in tests/design/test_loads.py, their use in
verification in tests/design/test_verify.py.)
"""

import numpy as np

from rln_design.design.evaluators import FEEvaluator
from rln_design.physics import Physics

SHAPE = (5, 5, 5)
PARAMS = np.array([[1.5, 1.5, 1.5, 0.4]])  # small grains: seeds 11..14 give four different structures


class CountingFE(FEEvaluator):
    """An FE evaluator that counts the structures it solves."""

    def __init__(self, **kwargs):
        super().__init__(physics=Physics(10.0), shape=SHAPE, loads=["x", "y"], **kwargs)
        self.solved = 0

    def _solve(self, structures, case):
        self.solved += len(structures)
        return super()._solve(structures, case)


def test_the_seeds_give_different_structures():
    structures, _ = CountingFE().fields(PARAMS, np.array([[11, 12, 13, 14]]))
    flat = structures.reshape(4, -1)
    assert len({row.tobytes() for row in flat}) == 4


def test_fields_after_evaluate_reuse_its_solves_and_equal_a_fresh_solve():
    fe = CountingFE(batch_size=3)
    seeds = np.array([[11, 12, 13]])
    fe.evaluate(PARAMS, seeds, ["peak_strain@x", "stiffness_y"])  # y: only its stiffness asked for
    solved = fe.solved
    assert solved == 6  # 3 structures x 2 load cases
    for case in ("x", "y"):
        structures, strain = fe.fields(PARAMS, seeds[:, 1:2], case=case)
        assert fe.solved == solved, f"case {case}: fields solved again"
        want_structures, want_strain = CountingFE(recent=0).fields(PARAMS, seeds[:, 1:2], case=case)
        np.testing.assert_array_equal(structures, want_structures)
        np.testing.assert_array_equal(strain, want_strain)  # the numpy solver: batch-independent
        assert strain.shape == (1, 1, *SHAPE) and strain.dtype == np.float32
    # another seed is solved; evaluate always solves (its cost accounting counts solves)
    fe.fields(PARAMS, np.array([[14]]), case="x")
    assert fe.solved == solved + 1
    fe.evaluate(PARAMS, seeds[:, :1], ["peak_strain@x"])
    assert fe.solved == solved + 2


def test_recent_fields_are_bounded_and_can_be_switched_off():
    seeds = np.array([[11, 12, 13]])
    for recent, resolved in ((2, 1), (0, 1), (6, 0)):
        fe = CountingFE(recent=recent)
        fe.evaluate(PARAMS, seeds, ["peak_strain@x", "peak_strain@y"])  # 6 fields, seed 11's first
        assert len(fe._recent) == min(recent, 6)
        before = fe.solved
        fe.fields(PARAMS, seeds[:, :1], case="x")
        assert fe.solved - before == resolved, recent
