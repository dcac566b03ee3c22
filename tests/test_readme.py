"""The README stays true: its two commands are marked for CI, and its accuracy table of the shipped
surrogates carries the numbers each shipped model records from `rln-design evaluate`."""

import json
import re
from pathlib import Path

import pytest

from rln_design import Surrogate

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


@pytest.mark.parametrize("marker", ["main-command", "test-command"])
def test_commands_are_marked(marker):
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```\s*<!-- /{marker} -->", README, re.S)
    assert block is not None, marker
    assert "pip install -c constraints.txt torch==" in block.group(1)


def test_main_command_runs_optimize_on_a_shipped_surrogate():
    block = re.search(r"<!-- main-command -->\s*```bash\n(.+?)\n```", README, re.S).group(1)
    assert "rln-design optimize --target" in block


@pytest.mark.parametrize("section", ["## Shipped surrogates", "## Quick start", "## Example design run",
                                     "## Benchmarks", "## CLI reference", "## Python API"])
def test_sections_present(section):
    assert f"\n{section}" in README


@pytest.mark.parametrize("row_start, prefix", [("| shipped RLN (CPU recipe)", "test_"),
                                               ("| shipped RLN, plain network (", "plain_test_"),
                                               ("| shipped RLN, 4-pass ensemble in bf16", "bf16_test_"),
                                               ("| shipped RLN, plain network in bf16", "bf16_plain_test_")])
def test_accuracy_table_matches_the_shipped_models(row_start, prefix):
    # the default (symmetry-ensemble) row and the plain-network row, each as recorded in model.pt
    row = next(line for line in README.splitlines() if line.startswith(row_start))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for (mase_cell, stat_cell), name in zip([(cells[1], cells[2]), (cells[3], cells[4])],
                                            ["cr10", "cr50"]):
        metrics = Surrogate.load(name).metadata["metrics"]
        stats = metrics[f"{prefix}statistics"]
        assert mase_cell == f"{metrics[prefix + 'mase_mean']:.2f} +- {metrics[prefix + 'mase_std']:.2f}", name
        peak, p99 = (100 * stats[k]["mean"] for k in ("peak_strain", "p99_strain"))
        assert stat_cell == f"{peak:.1f} / {p99:.1f}", name


@pytest.mark.parametrize("row_start, card_model", [("| first-order MKS", "mks"), ("| mean field", "mean-field")])
def test_baseline_rows_match_the_cards(row_start, card_model):
    # the baselines come from the same `rln-design evaluate` table as the shipped rows (in the cards)
    row = next(line for line in README.splitlines() if line.startswith(row_start))
    cells = [c.strip() for c in row.strip("|").split("|")]
    root = Path(__file__).resolve().parent.parent / "surrogates"
    for (mase_cell, stat_cell), name in zip([(cells[1], cells[2]), (cells[3], cells[4])], ["cr10", "cr50"]):
        card = (root / name / "card.md").read_text()
        line = next(ln for ln in card.splitlines() if ln.startswith(card_model + " "))
        numbers = re.findall(r"\d+\.\d+", line)
        mean, std, peak, p99 = float(numbers[0]), float(numbers[1]), float(numbers[2]), float(numbers[4])
        readme = [float(x) for x in re.findall(r"\d+\.\d+", mase_cell + " " + stat_cell)]
        # the card prints 2-3 decimals, the README 2 / 1: equal up to one rounding step of each
        for readme_value, card_value, step in zip(readme, [mean, std, peak, p99], [0.01, 0.01, 0.1, 0.1]):
            assert abs(readme_value - card_value) <= step / 2 + 0.006, (name, readme_value, card_value)
        assert len(readme) == 4, name


def test_forward_flop_count_quoted_in_the_readme():
    # "one RLN forward pass (~34 GFLOP ...)": torch's own count of the shipped network at 31^3
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    quoted = float(re.search(r"one RLN forward pass \(~(\d+) GFLOP", README).group(1))
    model = Surrogate.load("cr10").model
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 31, 31, 31))
    assert counter.get_total_flops() / 1e9 == pytest.approx(quoted, abs=0.5)


@pytest.mark.parametrize("case, study_row", [("31^3, contrast 10", "solve_fe 31^3 contrast 10:"),
                                             ("31^3, contrast 50", "solve_fe 31^3 contrast 50:"),
                                             ("63^3, contrast 50", "solve_fe 63^3 contrast 50:")])
def test_fe_speed_table_matches_the_study_file(case, study_row):
    # README "FE solver" table: wall seconds of both runs as studies/fe_benchmark.md records them
    study = (Path(__file__).resolve().parent.parent / "studies" / "fe_benchmark.md").read_text()
    row = next(line for line in study.splitlines() if line.startswith(f"| {study_row}"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    runs = [float(cells[1].split()[0]), float(cells[2].split()[0])]
    readme_row = next(line for line in README.splitlines() if line.startswith(f"| {case} |"))
    readme_runs = [float(x) for x in readme_row.split("|")[3].split("/")]
    assert readme_runs == pytest.approx(runs, abs=0.0051), case


def test_design_evidence_table_matches_the_benchmark_jsons():
    # README "Design evidence" rows: runs, designs, FE solves, surrogate evals, wall s (CPU s) as the
    # studies/design_benchmark_*.json summaries record them
    studies = Path(__file__).resolve().parent.parent / "studies"
    sources = {"surrogate BO, fp32": ("design_benchmark_bayes.json", "surrogate-bayes"),
               "surrogate BO, bf16": ("design_benchmark_bayes_bf16.json", "surrogate-bayes"),
               "surrogate gradient, bf16": ("design_benchmark_gradient_bf16.json", "surrogate-gradient"),
               "BO on FE": ("design_benchmark_bayes.json", "fe-bayes")}
    targets = {"`peak_strain<1.5`": "peak", "`p99_strain<2.0`": "p99", "`peak_strain<2.5` and": "peak_vf"}
    table = README.split("| target | strategy | runs | designs |", 1)[1].split("\n\n", 1)[0]
    target, checked = None, 0
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0]:
            target = next(v for k, v in targets.items() if cells[0].startswith(k))
        name, strategy = sources[cells[1]]
        summary = json.loads((studies / name).read_text())["summary"]
        row = next(r for r in summary if r["target"] == target and r["strategy"] == strategy)
        assert cells[2] == f"{row['successes']}/{row['runs']}", line
        assert cells[3] == f"{row['confirmed_designs']}/{row['verified_designs']}", line
        assert cells[4] == f"{row['mean_fe_solves']:g}" and cells[5] == f"{row['mean_surrogate_evals']:g}", line
        assert cells[6] == f"{row['mean_wall_s']:.1f} ({row['mean_cpu_s']:.1f})", line
        checked += 1
    assert checked == 12


def _cli_commands(text):
    """``(subcommand, options)`` of every ``rln-design SUBCOMMAND ...`` in code spans and blocks of ``text``."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    snippets = [line for b in blocks for line in b.replace("\\\n", " ").splitlines()]
    snippets += re.findall(r"`([^`]+)`", prose)
    for snippet in snippets:
        for part in re.split(r"&&|;|\s\|\s|\s#|\s>", snippet.replace("\n", " ")):  # not "peak<1.5"
            for match in re.finditer(r"rln-design (\w+)(.*)", part):
                yield match.group(1), re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", match.group(2))


def test_readme_and_docs_use_the_cli_vocabulary():
    """Every option the README and docs/ give an ``rln-design`` command is one its --help shows
    (not a hidden deprecated spelling such as --size, --bounds or evaluate --model)."""
    from rln_design.cli import COMMANDS, main

    root = Path(__file__).resolve().parent.parent
    files = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    checked, bad = 0, []
    for path in files:
        for name, options in _cli_commands(path.read_text()):
            if name not in COMMANDS:
                continue
            command = main.get_command(None, name)
            shown = {"--help"} | {o for p in command.params if not getattr(p, "hidden", False)
                                  for o in (*p.opts, *p.secondary_opts)}
            bad += [f"{path.name}: rln-design {name} {o}" for o in options if o not in shown]
            checked += len(options)
    assert checked > 50 and not bad, bad
