"""The README and the docs it links stay true: the two commands are marked for CI, the README's
accuracy and speed tables are what ``studies/readme_tables.py`` prints from their sources, the
Python quick start runs, and the tables moved to docs/ (v1 RLN accuracy in docs/training.md; FE
speed, v1 FLOP count and design evidence in docs/benchmarks.md) match their study files."""

import json
import re
from pathlib import Path

import pytest

from _studies import load_study
from rln_design import Surrogate

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TRAINING = (ROOT / "docs" / "training.md").read_text()
BENCHMARKS = (ROOT / "docs" / "benchmarks.md").read_text()


def _v1_name(name: str) -> str:
    """The v1 RLN of ``name``: ``<name>-rln`` once v2 ships as ``name``, ``name`` itself before."""
    return f"{name}-rln" if (ROOT / "surrogates" / f"{name}-rln" / "model.pt").is_file() else name


def _marked_block(text: str, marker: str) -> str:
    block = re.search(rf"<!-- {marker} -->\n(.*?)\n<!-- /{marker} -->", text, re.S)
    assert block is not None, marker
    return block.group(1)


@pytest.mark.parametrize("marker", ["main-command", "test-command"])
def test_commands_are_marked(marker):
    block = re.search(rf"<!-- {marker} -->\s*```bash\n(.+?)\n```\s*<!-- /{marker} -->", README, re.S)
    assert block is not None, marker
    assert "pip install -c constraints.txt torch==" in block.group(1)


def test_main_command_runs_optimize_on_a_shipped_surrogate():
    block = re.search(r"<!-- main-command -->\s*```bash\n(.+?)\n```", README, re.S).group(1)
    assert "rln-design optimize --target" in block


@pytest.mark.parametrize("section", ["## The two commands", "## Quick start", "## Python API",
                                     "## Shipped surrogates", "## CLI reference", "## Documentation"])
def test_sections_present(section):
    assert f"\n{section}" in README


def test_readme_is_short_and_its_links_exist():
    # a user's page (issue 30): short; the history and benchmarks live in the docs it links
    assert len(README.splitlines()) <= 150
    links = re.findall(r"\]\(([^)#]+)\)", README)
    assert {"docs/benchmarks.md", "docs/training.md", "docs/design.md", "docs/architecture.md",
            "docs/figures/solve_example.png"} <= set(links)
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_accuracy_table_is_what_readme_tables_prints():
    tables = load_study("readme_tables")
    try:
        expected = tables.accuracy_table()
    except tables.MissingSource as exc:
        pytest.skip(f"v2 surrogates not shipped yet ({exc}); after studies/ship_v2_surrogate.py run "
                    "`python studies/readme_tables.py --write README.md`")
    assert _marked_block(README, "accuracy-table") == expected, \
        "run `python studies/readme_tables.py --write README.md`"


def test_speed_table_is_what_readme_tables_prints():
    tables = load_study("readme_tables")
    if not tables.STUDY.is_file():
        pytest.skip("studies/surrogate_v2_study.json does not exist yet: run `python "
                    "studies/surrogate_v2_study.py report`, then `python studies/readme_tables.py "
                    "--write README.md`")
    assert _marked_block(README, "speed-table") == tables.speed_table(), \
        "run `python studies/readme_tables.py --write README.md`"


def test_readme_tables_script_formats_both_tables(monkeypatch):
    # the script itself, independent of what is shipped: v1 from the shipped RLN, v2 built here
    from rln_design.models.krylov import KrylovConfig, KrylovNet

    tables = load_study("readme_tables")
    v2_metrics = {"test_mase_mean": 0.8412, "test_mase_std": 0.4471, "test_peak_err": 4.123,
                  "test_p99_err": 0.564}

    def load(name):
        if name in ("cr10", "cr50"):
            model = KrylovNet(KrylovConfig(kind="pcg", n_iter=4 if name == "cr10" else 6,
                                           contrast=float(name[2:])))
            return Surrogate(model, {"contrast": float(name[2:]), "grid": None, "metrics": v2_metrics})
        return Surrogate.load(ROOT / "surrogates" / _v1_name(name.removesuffix("-rln")))

    monkeypatch.setattr(tables, "_load", load)
    lines = tables.accuracy_table().splitlines()
    assert lines[2] == ("| v2 Krylov (default `cr10` / `cr50`; N = 4 / 6 PCG steps, one pass) "
                        "| 0.84 +- 0.45 | 4.1 / 0.6 | 0.84 +- 0.45 | 4.1 / 0.6 |")
    v1 = Surrogate.load(ROOT / "surrogates" / _v1_name("cr10")).metadata["metrics"]
    assert f"| {v1['plain_test_mase_mean']:.2f} +- {v1['plain_test_mase_std']:.2f} |" in lines[3]
    assert lines[5:] == ["| paper RLN-t (one pass) | 1.81 +- 0.58 | - | 4.26 +- 1.65 | - |",
                         "| paper RLN (V100, 8,192 x 60 epochs; one pass) | 1.21 +- 0.37 | - | 2.92 +- 1.17 | - |"]
    speed = {"fe_ms": 200.0, "chosen_n": 4,
             "speed": {"pcg4": {"fp32": {"b1": 20.0, "speedup_b1": 10.0}},
                       "v1-rln": {"bf16": {"b1": 100.0, "speedup_b1": 2.0}}}}
    record = {"cr10": speed, "cr50": {**speed, "speed": {"pcg4": speed["speed"]["pcg4"]}},
              "machine": {"cpu": "Test CPU", "threads": 2, "torch": "2.x", "date": "today"}}
    table = tables.speed_table(record).splitlines()
    assert table[2] == "| 10 | 200.0 | 20.0 (N = 4) | 10.00x | 100.0 | 2.00x |"
    assert table[3] == "| 50 | 200.0 | 20.0 (N = 4) | 10.00x | - | - |"
    assert "Test CPU, 2 threads" in table[-1]
    text = "a\n<!-- speed-table -->\nold\n<!-- /speed-table -->\nb"
    assert tables.replace_block(text, "speed-table", "new") == "a\n<!-- speed-table -->\nnew\n<!-- /speed-table -->\nb"


def test_python_quick_start_runs():
    # the README's Python block, as written, on the shipped v2 cr10
    surrogate = Surrogate.load(ROOT / "surrogates" / "cr10")
    if not surrogate.full_tensor:
        pytest.skip("surrogates/cr10 is still the v1 RLN (eps_xx only): the quick start needs the "
                    "shipped v2 (studies/ship_v2_surrogate.py)")
    code = re.search(r"## Python API\n\n```python\n(.*?)```", README, re.S).group(1)
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["predicted"].shape == (4, 31, 31, 31)
    assert namespace["tensor"].shape == (4, 6, 31, 31, 31)
    assert namespace["truth"].strain.shape == (4, 6, 31, 31, 31)


@pytest.mark.parametrize("row_start, prefix", [("| shipped RLN (CPU recipe)", "test_"),
                                               ("| shipped RLN, plain network (", "plain_test_"),
                                               ("| shipped RLN, 4-pass ensemble in bf16", "bf16_test_"),
                                               ("| shipped RLN, plain network in bf16", "bf16_plain_test_")])
def test_v1_accuracy_table_matches_the_shipped_models(row_start, prefix):
    # docs/training.md's v1 table: the ensemble and plain rows, each as recorded in the v1 model.pt
    row = next(line for line in TRAINING.splitlines() if line.startswith(row_start))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for (mase_cell, stat_cell), name in zip([(cells[1], cells[2]), (cells[3], cells[4])],
                                            ["cr10", "cr50"]):
        metrics = Surrogate.load(ROOT / "surrogates" / _v1_name(name)).metadata["metrics"]
        stats = metrics[f"{prefix}statistics"]
        assert mase_cell == f"{metrics[prefix + 'mase_mean']:.2f} +- {metrics[prefix + 'mase_std']:.2f}", name
        peak, p99 = (100 * stats[k]["mean"] for k in ("peak_strain", "p99_strain"))
        assert stat_cell == f"{peak:.1f} / {p99:.1f}", name


@pytest.mark.parametrize("row_start, card_model", [("| first-order MKS", "mks"), ("| mean field", "mean-field")])
def test_v1_baseline_rows_match_the_cards(row_start, card_model):
    # docs/training.md: the baselines of the same `rln-design evaluate` table as the v1 rows (cards)
    row = next(line for line in TRAINING.splitlines() if line.startswith(row_start))
    cells = [c.strip() for c in row.strip("|").split("|")]
    root = ROOT / "surrogates"
    for (mase_cell, stat_cell), name in zip([(cells[1], cells[2]), (cells[3], cells[4])], ["cr10", "cr50"]):
        card = (root / _v1_name(name) / "card.md").read_text()
        line = next(ln for ln in card.splitlines() if ln.startswith(card_model + " "))
        numbers = re.findall(r"\d+\.\d+", line)
        mean, std, peak, p99 = float(numbers[0]), float(numbers[1]), float(numbers[2]), float(numbers[4])
        readme = [float(x) for x in re.findall(r"\d+\.\d+", mase_cell + " " + stat_cell)]
        # the card prints 2-3 decimals, the README 2 / 1: equal up to one rounding step of each
        for readme_value, card_value, step in zip(readme, [mean, std, peak, p99], [0.01, 0.01, 0.1, 0.1]):
            assert abs(readme_value - card_value) <= step / 2 + 0.006, (name, readme_value, card_value)
        assert len(readme) == 4, name


def test_v1_forward_flop_count_quoted_in_the_benchmarks():
    # docs/benchmarks.md "one RLN forward pass (~34 GFLOP ...)": torch's count of the v1 network at 31^3
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    quoted = float(re.search(r"one RLN forward pass \(~(\d+) GFLOP", BENCHMARKS).group(1))
    model = Surrogate.load(ROOT / "surrogates" / _v1_name("cr10")).model
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 31, 31, 31))
    assert counter.get_total_flops() / 1e9 == pytest.approx(quoted, abs=0.5)


@pytest.mark.parametrize("case, study_row", [("31^3, contrast 10", "solve_fe 31^3 contrast 10:"),
                                             ("31^3, contrast 50", "solve_fe 31^3 contrast 50:"),
                                             ("63^3, contrast 50", "solve_fe 63^3 contrast 50:")])
def test_fe_speed_table_matches_the_study_file(case, study_row):
    # docs/benchmarks.md "FE solver" table: wall seconds of both runs as studies/fe_benchmark.md has them
    study = (ROOT / "studies" / "fe_benchmark.md").read_text()
    row = next(line for line in study.splitlines() if line.startswith(f"| {study_row}"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    runs = [float(cells[1].split()[0]), float(cells[2].split()[0])]
    readme_row = next(line for line in BENCHMARKS.splitlines() if line.startswith(f"| {case} |"))
    readme_runs = [float(x) for x in readme_row.split("|")[3].split("/")]
    assert readme_runs == pytest.approx(runs, abs=0.0051), case


def test_design_evidence_table_matches_the_benchmark_jsons():
    # docs/benchmarks.md "Design evidence" rows: runs, designs, FE solves, surrogate evals, wall s
    # (CPU s) as the studies/design_benchmark_*.json summaries record them
    studies = ROOT / "studies"
    sources = {"surrogate BO, fp32": ("design_benchmark_bayes.json", "surrogate-bayes"),
               "surrogate BO, bf16": ("design_benchmark_bayes_bf16.json", "surrogate-bayes"),
               "surrogate gradient, bf16": ("design_benchmark_gradient_bf16.json", "surrogate-gradient"),
               "BO on FE": ("design_benchmark_bayes.json", "fe-bayes")}
    targets = {"`peak_strain<1.5`": "peak", "`p99_strain<2.0`": "p99", "`peak_strain<2.5` and": "peak_vf"}
    table = BENCHMARKS.split("| target | strategy | runs | designs |", 1)[1].split("\n\n", 1)[0]
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
