"""Design problem: robust margins, scores and the enforced (box-guaranteed) targets."""

import numpy as np
import pytest
import torch

from rln_design.design.objective import DesignProblem
from rln_design.design.targets import parse_objective, parse_target

PEAK, VF = parse_target("peak_strain<2"), parse_target("volume_fraction>=0.5")
# two designs, K = 2 realizations: design 0 has the larger peak margin, design 1 the larger vf
STATS = {"peak_strain": np.array([[1.5, 1.5], [1.8, 1.8]]), "volume_fraction": np.array([[0.5, 0.5], [0.7, 0.7]])}


def test_robust_margin_is_kappa_std_on_the_unfavourable_side():
    p = DesignProblem((PEAK,), kappa=1.0)
    m = p.robust_margins({"peak_strain": np.array([[1.0, 1.4]])})
    std = np.std([1.0, 1.4], ddof=1)
    assert m[0, 0] == pytest.approx((2 - (1.2 + std)) / 2)


def test_enforced_targets_are_reported_but_not_scored():
    soft = DesignProblem((PEAK, VF))
    hard = DesignProblem((PEAK, VF), enforced=(VF,))
    assert hard.scored_targets == (PEAK,) and hard.n_outcomes == 1 and soft.n_outcomes == 2
    # as a margin the vf target (0 at the bound) would rank design 1 first; enforced, the peak decides
    assert np.argmax(soft.score(STATS)) == 1 and np.argmax(hard.score(STATS)) == 0
    np.testing.assert_allclose(hard.score(STATS), [0.25, 0.1])
    rows = hard.summarize(STATS)
    assert [t["target"] for t in rows[0]["targets"]] == ["peak_strain<2", "volume_fraction>=0.5"]
    assert hard.to_dict()["enforced"] == ["volume_fraction>=0.5"]
    loss = hard.loss_torch({k: torch.as_tensor(v) for k, v in STATS.items()})
    loss_peak = DesignProblem((PEAK,)).loss_torch({"peak_strain": torch.as_tensor(STATS["peak_strain"])})
    torch.testing.assert_close(loss, loss_peak)


def test_enforced_validation():
    with pytest.raises(ValueError, match=r"enforced target\(s\) volume_fraction>=0.5 are not among the targets"):
        DesignProblem((PEAK,), enforced=(VF,))
    with pytest.raises(ValueError, match="nothing is left to optimize"):
        DesignProblem((VF,), enforced=(VF,))
    with_objective = DesignProblem((VF,), parse_objective("p99_strain"), enforced=(VF,))
    assert with_objective.n_outcomes == 1 and with_objective.scored_targets == ()


def test_gradient_loss_uses_the_same_robust_margin_as_the_ranking():
    # constraints only: loss = tau logsumexp(-m / tau) -> -m for one target; m = robust margin (ddof 1)
    p = DesignProblem((PEAK,), kappa=1.0)
    peaks = np.array([[1.0, 1.4], [1.7, 1.9]])
    loss = p.loss_torch({"peak_strain": torch.as_tensor(peaks)})
    np.testing.assert_allclose(loss.numpy(), -p.robust_margins({"peak_strain": peaks})[:, 0], rtol=1e-12)
