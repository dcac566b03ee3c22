"""studies/stage_history.py: the committed history ends with the shipped surrogates' own metrics, and
the table formats what it is given."""

import re
from pathlib import Path

import pytest

from rln_design import Surrogate
from _studies import load_study

HISTORY = Path(__file__).resolve().parents[2] / "studies" / "stage_history.md"


def _last_row(name: str) -> list[str]:
    section = HISTORY.read_text().split(f"## {name}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if re.match(r"\| [0-9a-f]{7,} \|", line)]
    return [c.strip() for c in rows[-1].strip("|").split("|")]


@pytest.mark.parametrize("name", ["cr10", "cr50"])
def test_committed_history_ends_with_the_shipped_metrics(name):
    # re-run `python studies/stage_history.py` after shipping new weights and commit both together
    metrics = Surrogate.load(f"{name}-rln").metadata["metrics"]  # v1 moved there when v2 shipped
    row = _last_row(name)
    assert row[4] == f"{metrics['plain_test_mase_mean']:.2f} +- {metrics['plain_test_mase_std']:.2f}"
    assert row[5] == f"{100 * metrics['plain_test_statistics']['peak_strain']['mean']:.1f}"
    assert row[6] == str(metrics["test_ensemble"])
    assert row[7] == f"{metrics['test_mase_mean']:.2f} +- {metrics['test_mase_std']:.2f}"


def test_markdown_marks_missing_figures_and_reshipped_weights():
    study = load_study("stage_history")
    rows = [{"commit": "abc1234", "date": "2026-01-01", "stage": 2, "new_weights": True,
             "plain_mase": (7.5, 3.25), "plain_peak": 0.093, "ensemble": 1, "ensemble_mase": None,
             "ensemble_peak": None, "n_test": 400},
            {"commit": "def5678", "date": "2026-01-02", "stage": 2, "new_weights": False,
             "plain_mase": (7.5, 3.25), "plain_peak": 0.093, "ensemble": 4, "ensemble_mase": (6.0, 2.5),
             "ensemble_peak": 0.081, "n_test": 400}]
    text = study.markdown({"cr10": rows})
    assert "| abc1234 | 2026-01-01 | 2 | yes | 7.50 +- 3.25 | 9.3 | 1 | - | - | 400 |" in text
    assert "| def5678 | 2026-01-02 | 2 | no | 7.50 +- 3.25 | 9.3 | 4 | 6.00 +- 2.50 | 8.1 | 400 |" in text
