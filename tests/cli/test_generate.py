"""Tests of ``rln-design generate``: a tiny run, resume through the CLI, and bad input messages."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from rln_design.cli import main
from rln_design.data import DatasetConfig, generate_dataset, partial_path
from rln_design.fe.solver import solve_fe

TINY = ["--contrast", "10", "--count", "4", "--realizations", "2", "--grid", "5", "--workers", "1", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, ["generate", *args])


def interrupt_after(solves: int):
    """A ``solve`` stand-in for ``generate_dataset``: the FE solver for ``solves`` calls, then Ctrl-C."""
    calls = 0

    def solve(structure, **kwargs):
        nonlocal calls
        calls += 1
        if calls > solves:
            raise KeyboardInterrupt
        return solve_fe(structure, **kwargs)

    return solve


def test_generate_writes_the_requested_dataset(tmp_path):
    out = tmp_path / "d.h5"
    result = run(*TINY, "--out", str(out), "--seed", "3", "--box", "gx=2:4,gy=2:4", "--bounds", "vf=0.3:0.6",
                 "--split", "0.5,0,0.5", "--rtol", "1e-7", "--e-soft", "100", "--nu", "0.25")
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "4 samples, 2 design points" in result.output
    with h5py.File(out, "r") as f:
        config = json.loads(f.attrs["config"])
        params, split = f["params"][()], f["split"][()]
        assert f["done"][()].all() and f["structures"].shape == (4, 5, 5, 5)
        structure, strain, stress_mean = f["structures"][0], f["strain"][0], f["stress_mean"][0]
    assert config["seed"] == 3 and config["rtol"] == 1e-7 and config["e_soft"] == 100 and config["nu"] == 0.25
    assert config["bounds"] == {"gx": [2, 4], "gy": [2, 4], "gz": [1, 16], "vf": [0.3, 0.6]}
    assert config["split"] == [0.5, 0.0, 0.5] and set(split) == {0, 2}
    assert (params[:, 0] >= 2).all() and (params[:, 0] <= 4).all() and (params[:, 3] >= 0.3).all()
    # --e-soft and --nu reach the solver, not only the config
    solved = solve_fe(structure, contrast=10.0, e_soft=100.0, nu=0.25, rtol=1e-7)
    np.testing.assert_allclose(strain, solved.eps_xx_normalized(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(stress_mean, solved.stress_mean, rtol=1e-5)
    default = solve_fe(structure, contrast=10.0, rtol=1e-7).stress_mean  # e_soft 120, nu 0.3
    assert not np.allclose(stress_mean, default, rtol=1e-3)
    # the same command again: refused, the file is complete
    again = run(*TINY, "--out", str(out), "--seed", "3", "--box", "gx=2:4,gy=2:4", "--bounds", "vf=0.3:0.6",
                "--split", "0.5,0,0.5", "--rtol", "1e-7", "--e-soft", "100", "--nu", "0.25")
    assert again.exit_code == 2 and "already exists and is complete; pass --overwrite" in again.output
    assert run(*TINY, "--out", str(out), "--overwrite").exit_code == 0


def test_rerun_resumes_a_partial_and_refuses_another_config(tmp_path):
    out = tmp_path / "d.h5"
    config = DatasetConfig(contrast=10.0, count=4, realizations=2, size=5)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, out, workers=1, chunk_size=1, progress=False, solve=interrupt_after(2))
    mismatch = run(*TINY, "--out", str(out), "--seed", "1")
    assert mismatch.exit_code == 2
    assert "was written with a different config (seed: file 0 vs asked 1)" in mismatch.output
    resumed = run(*TINY, "--out", str(out))
    assert resumed.exit_code == 0, resumed.output
    assert out.exists() and not partial_path(out).exists()


@pytest.fixture
def keep_signal_handlers():
    """The interrupted command leaves SIGINT / SIGTERM ignored (it is exiting): restore them."""
    import signal

    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)



def test_store_displacement_option_writes_the_full_tensor_data(tmp_path):
    from rln_design.cli.inspect import inspect
    from rln_design.data import has_displacement, read_sample, read_strain_tensor

    out = tmp_path / "d.h5"
    assert run(*TINY, "--out", str(out)).exit_code == 0
    assert not has_displacement(out)  # off by default: eps_xx-only files stay as small as before
    full = tmp_path / "full.h5"
    result = run(*TINY, "--out", str(full), "--store-displacement")
    assert result.exit_code == 0, result.output
    sample = read_sample(full, 1)
    np.testing.assert_allclose(read_strain_tensor(full, 1), solve_fe(sample["structure"], contrast=10.0).strain,
                               rtol=0, atol=1e-9)
    shown = CliRunner().invoke(inspect, [str(full)])
    assert "fields      strain (eps_xx / imposed), displacement (full strain tensor)" in shown.output


def test_ctrl_c_message(tmp_path, monkeypatch, keep_signal_handlers):
    out = tmp_path / "d.h5"
    import rln_design.data as data

    real = data.generate_dataset

    def interrupted(config, out, **kwargs):
        return real(config, out, **{**kwargs, "chunk_size": 1, "solve": interrupt_after(1)})

    monkeypatch.setattr(data, "generate_dataset", interrupted)
    result = run(*TINY, "--out", str(out))
    assert result.exit_code == 130
    assert f"Interrupted: 1/4 samples saved in {partial_path(out)}; re-run the same command to resume" in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--count", "7"], "--count 7 is not divisible by --realizations 2 (count / realizations is the number "
                           "of design points); use --count 6 or --count 8"),
        (["--count", "1"], "--count 1 is not divisible by --realizations 2 (count / realizations is the number "
                           "of design points); use --count 2"),
        (["--count", "0"], "Invalid value for '--count': must be > 0, got 0"),
        (["--count", "-4"], "Invalid value for '--count': must be > 0, got -4"),
        (["--size", "1"], "Invalid value for '--size': must be >= 2 voxels, got 1"),  # the old name
        (["--grid", "1"], "Invalid value for '--grid': must be >= 2 voxels, got 1"),
        (["--contrast", "0"], "Invalid value for '--contrast': the contrast E_stiff / E_soft must be a finite "
                              "number from 1e-06 to 1e+06, got 0.0"),
        (["--contrast", "-3"], "from 1e-06 to 1e+06, got -3.0"),
        (["--contrast", "nan"], "from 1e-06 to 1e+06, got nan"),
        (["--contrast", "inf"], "from 1e-06 to 1e+06, got inf"),
        (["--contrast", "1e-20"], "from 1e-06 to 1e+06, got 1e-20"),
        (["--contrast", "1e300"], "from 1e-06 to 1e+06, got 1e+300"),
        (["--rtol", "1e-30"], "Invalid value for '--rtol': the relative residual rtol must be a number from "
                              "1e-13 (float64 round-off) to below 1, got 1e-30"),
        (["--e-soft", "nan"], "Invalid value for '--e-soft': must be a finite number > 0, got nan"),
        (["--split", "0.5,0.2,0.2"], "fractions TRAIN,VALIDATION,TEST summing to 1 (got 3 values summing to 0.9)"),
        (["--split", "0.5,0.5"], "(got 2 values summing to 1)"),
        (["--split", "a,b,c"], "expected three numbers TRAIN,VALIDATION,TEST"),
        (["--box", "gq=1:3"], "expected NAME=LOW:HIGH with NAME in gx, gy, gz, vf"),
        (["--box", "gx=5:2"], "LOW must be smaller than HIGH"),
        (["--box", "vf=0.5:1.5"], "bounds for vf must lie inside (0, 1) (exclusive), got 0.5:1.5"),
        (["--box", "vf=0:1"], "bounds for vf must lie inside (0, 1) (exclusive), got 0:1"),
        (["--box", "gx=1:inf"], "bounds for gx must be finite and > 0 voxels, got 1:inf"),
        (["--box", "gx=1:nan"], "'gx=1:nan': LOW and HIGH must be numbers, not nan"),
        (["--box", "gx=nan:3"], "'gx=nan:3': LOW and HIGH must be numbers, not nan"),
        (["--nu", "0.5"], "nu must be in (-1, 0.5), got 0.5"),
        (["--device", "tpu"], "Invalid value for '--device': 'tpu' is not a device; use cpu, cuda or cuda:N"),
        (["--device", "cpu", "--scheduler", "tcp://127.0.0.1:9"], "--device and --scheduler exclude each other"),
    ],
)
def test_bad_input_is_a_usage_error_with_a_clear_message(tmp_path, args, message):
    # later options override TINY's
    result = run(*TINY, "--out", str(tmp_path / "x.h5"), *args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "x.h5").exists() and not partial_path(tmp_path / "x.h5").exists()


def test_a_solve_that_does_not_converge_is_one_line_naming_rtol(tmp_path, monkeypatch):
    import rln_design.fe.limits as limits

    monkeypatch.setattr(limits, "RTOL_MIN", 1e-30)  # let an unreachable tolerance through
    out = tmp_path / "d.h5"
    result = run(*TINY, "--out", str(out), "--rtol", "1e-25")
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: FE solve failed: sample 0 (params [")
    assert "PCG did not converge: relative residual" in result.output
    assert result.output.rstrip().endswith("; use a larger --rtol (now 1e-25)")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    assert not out.exists()


def test_out_below_a_file_is_a_usage_error(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "sub" / "d.h5"
    result = run(*TINY, "--out", str(out))
    assert result.exit_code == 2, result.output
    assert f"{str(tmp_path / 'notes.txt')!r} is a file, not a folder" in " ".join(result.output.split())
    assert "Errno" not in result.output


def test_help_lists_every_option():
    result = CliRunner().invoke(main, ["generate", "--help"])
    for option in ("--contrast", "--count", "--grid", "--out", "--realizations", "--seed", "--box", "--rtol",
                   "--workers", "--e-soft", "--nu", "--split", "--scheduler", "--device", "--overwrite"):
        assert option in result.output


def test_help_shows_one_name_per_concept():
    """--grid (as optimize and solve) and --box (as optimize); the old names are hidden."""
    result = CliRunner().invoke(main, ["generate", "--help"])
    assert "--grid" in result.output and "--box" in result.output
    assert "--size" not in result.output and "--bounds" not in result.output


def test_old_option_names_still_work_with_a_note(tmp_path):
    old = [a.replace("--grid", "--size") for a in TINY]
    result = run(*old, "--out", str(tmp_path / "d.h5"), "--bounds", "vf=0.3:0.6", "--box", "gx=2:4")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == ["note: --size is deprecated, use --grid (same meaning)",
                                          "note: --bounds is deprecated, use --box (same meaning)"]
    with h5py.File(tmp_path / "d.h5", "r") as f:
        config = json.loads(f.attrs["config"])
    assert config["size"] == 5 and config["bounds"]["vf"] == [0.3, 0.6] and config["bounds"]["gx"] == [2, 4]
    new = run(*TINY, "--out", str(tmp_path / "e.h5"), "--box", "vf=0.3:0.6", "--box", "gx=2:4")
    assert new.exit_code == 0 and new.stderr == "", new.output


def test_strain_is_normalized(tmp_path):
    out = tmp_path / "d.h5"
    assert run(*TINY, "--out", str(out)).exit_code == 0
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["strain"][()].mean(axis=(1, 2, 3)), 1.0, atol=1e-5)


def test_device_writes_the_same_structures(tmp_path):
    # the batched torch solver on the CPU stands in for CUDA here (same code path, another device)
    cpu, dev = tmp_path / "cpu.h5", tmp_path / "dev.h5"
    assert run(*TINY, "--out", str(cpu), "--workers", "1").exit_code == 0
    result = run(*TINY, "--out", str(dev), "--device", "cpu", "--chunk-size", "3")
    assert result.exit_code == 0, result.output
    with h5py.File(cpu, "r") as a, h5py.File(dev, "r") as b:
        assert a["structures"][()].tobytes() == b["structures"][()].tobytes()
        np.testing.assert_allclose(b["strain"][()], a["strain"][()], atol=1e-5)
        assert json.loads(b.attrs["fe_devices"]) == ["torch:cpu"]


def test_unreachable_scheduler(tmp_path, monkeypatch):
    import rln_design.data.generate as generation

    monkeypatch.setattr(generation, "DASK_CONNECT_TIMEOUT", "1s")
    result = run(*TINY, "--out", str(tmp_path / "d.h5"), "--scheduler", "tcp://127.0.0.1:9")
    assert result.exit_code == 2, result.output
    assert "cannot connect to the Dask scheduler at 'tcp://127.0.0.1:9'" in " ".join(result.output.split())
