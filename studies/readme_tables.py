"""Print the README's accuracy and speed tables, computed from their sources.

    python studies/readme_tables.py                  # both tables, markdown, to stdout
    python studies/readme_tables.py --write README.md  # replace the marked tables in README.md

Sources:

- accuracy (test split): the shipped surrogates' own metrics, ``Surrogate(...).metadata["metrics"]``
  of ``surrogates/cr10`` / ``cr50`` (v2, kind ``pcg``: ``test_mase_mean``, ``test_mase_std``,
  ``test_peak_err``, ``test_p99_err``, written by ``studies/ship_v2_surrogate.py``; peak / p99 in
  percent) and ``surrogates/cr10-rln`` / ``cr50-rln`` (v1 RLN: the ``rln-design evaluate`` figures
  of the plain network and of the 4-pass symmetry ensemble), and the paper's RLN-t / RLN;
- speed: ``studies/surrogate_v2_study.json`` (``python studies/surrogate_v2_study.py report``): FE,
  v2 and v1 on the same 31^3 structures, one machine, one run.

``tests/test_readme.py`` checks that README.md holds exactly what this script prints, between the
``<!-- accuracy-table -->`` and ``<!-- speed-table -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDY = ROOT / "studies" / "surrogate_v2_study.json"
SURROGATES = ROOT / "surrogates"
CONTRASTS = (10, 50)
KRYLOV_KINDS = ("pcg", "pcg-net")
# Kelly & Kalidindi, test MASE % (mean +- std), one pass
PAPER = {"paper RLN-t (one pass)": ((1.81, 0.58), (4.26, 1.65)),
         "paper RLN (V100, 8,192 x 60 epochs; one pass)": ((1.21, 0.37), (2.92, 1.17))}
HEADER = ("| surrogate | contrast 10: MASE % | peak / p99 strain error % "
          "| contrast 50: MASE % | peak / p99 strain error % |\n|---|---|---|---|---|")


class MissingSource(RuntimeError):
    """A source of a table is not there (yet): v2 not shipped, or the speed study not run."""


def _load(name: str):
    from rln_design import Surrogate

    path = SURROGATES / name
    if not (path / "model.pt").is_file():
        raise MissingSource(f"surrogates/{name} does not exist (v2 not shipped yet: "
                            "studies/ship_v2_surrogate.py moves v1 to <name>-rln)")
    return Surrogate.load(path)


def _mase(mean: float, std: float) -> str:
    return f"{mean:.2f} +- {std:.2f}"


def _v1_cells(metrics: dict, prefix: str) -> list[str]:
    stats = metrics[f"{prefix}statistics"]
    peak, p99 = (100 * stats[k]["mean"] for k in ("peak_strain", "p99_strain"))
    return [_mase(metrics[f"{prefix}mase_mean"], metrics[f"{prefix}mase_std"]), f"{peak:.1f} / {p99:.1f}"]


def accuracy_table() -> str:
    """Markdown table: v2 default, v1 plain and ensemble, paper RLN-t and RLN, both contrasts."""
    v2, v1 = {}, {}
    for c in CONTRASTS:
        v2[c], v1[c] = _load(f"cr{c}"), _load(f"cr{c}-rln")
        if v2[c].kind not in KRYLOV_KINDS:
            raise MissingSource(f"surrogates/cr{c} is kind {v2[c].kind!r}, not a v2 Krylov kind "
                                "(v2 not shipped yet)")
    steps = " / ".join(str(v2[c].model.config.n_iter) for c in CONTRASTS)
    rows = {f"v2 Krylov (default `cr10` / `cr50`; N = {steps} PCG steps, one pass)": [],
            "v1 RLN, plain network (`cr10-rln` / `cr50-rln`, one pass)": [],
            "v1 RLN, 4-pass symmetry ensemble (its default)": []}
    labels = list(rows)
    for c in CONTRASTS:
        m = v2[c].metadata["metrics"]
        rows[labels[0]] += [_mase(m["test_mase_mean"], m["test_mase_std"]),
                            f"{m['test_peak_err']:.1f} / {m['test_p99_err']:.1f}"]
        m1 = v1[c].metadata["metrics"]
        rows[labels[1]] += _v1_cells(m1, "plain_test_")
        rows[labels[2]] += _v1_cells(m1, "test_")
    for label, figures in PAPER.items():
        rows[label] = [cell for mean_std in figures for cell in (_mase(*mean_std), "-")]
    return "\n".join([HEADER] + [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows.items()])


def speed_table(record: dict | None = None) -> str:
    """Markdown table: ms per 31^3 structure of FE, v2 (batch 1) and v1 plain bf16 (batch 1), one run."""
    if record is None:
        if not STUDY.is_file():
            raise MissingSource(f"{STUDY.relative_to(ROOT)} does not exist yet "
                                "(python studies/surrogate_v2_study.py report writes it)")
        record = json.loads(STUDY.read_text())
    lines = ["| contrast | FE `solve_fe` ms | v2 Krylov ms (fp32) | v2 speed-up vs FE "
             "| v1 RLN plain ms (bf16) | v1 speed-up vs FE |", "|---|---|---|---|---|---|"]
    for c in CONTRASTS:
        rec = record[f"cr{c}"]
        n = rec["chosen_n"]
        v2 = rec["speed"][f"pcg{n}"]["fp32"]
        v1 = rec["speed"].get("v1-rln", {}).get("bf16")
        v1_cells = [f"{v1['b1']:.1f}", f"{v1['speedup_b1']:.2f}x"] if v1 else ["-", "-"]
        lines.append(f"| {c} | {rec['fe_ms']:.1f} | {v2['b1']:.1f} (N = {n}) | {v2['speedup_b1']:.2f}x | "
                     + " | ".join(v1_cells) + " |")
    machine = record["machine"]
    lines += ["", f"Batch 1, ms per 31^3 structure, FE and both surrogates on the same structures in one run "
                  f"of `python studies/surrogate_v2_study.py report` ({machine['cpu']}, "
                  f"{machine['threads']} threads, torch {machine['torch']}, {machine['date']})."]
    return "\n".join(lines)


TABLES = {"accuracy-table": accuracy_table, "speed-table": speed_table}


def replace_block(text: str, marker: str, table: str) -> str:
    """``text`` with the lines between ``<!-- marker -->`` and ``<!-- /marker -->`` set to ``table``."""
    pattern = re.compile(rf"(<!-- {marker} -->\n).*?(\n<!-- /{marker} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {marker} --> ... <!-- /{marker} --> block")
    return pattern.sub(lambda m: m.group(1) + table + m.group(2), text, count=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", type=Path, metavar="README",
                        help="replace the marked tables in this file instead of printing them")
    args = parser.parse_args(argv)
    from rln_design._atomic import write_text_atomic

    tables = {}
    for marker, make in TABLES.items():
        try:
            tables[marker] = make()
        except MissingSource as exc:
            print(f"{marker}: skipped: {exc}")
    if args.write:
        text = args.write.read_text()
        for marker, table in tables.items():
            text = replace_block(text, marker, table)
        write_text_atomic(args.write, text)
        print(f"wrote {', '.join(tables) or 'nothing'} into {args.write}")
    else:
        for marker, table in tables.items():
            print(f"<!-- {marker} -->\n{table}\n<!-- /{marker} -->\n")
    return 0 if len(tables) == len(TABLES) else 1


if __name__ == "__main__":
    raise SystemExit(main())
