"""Tests of rln_design.data generation: seeds, split, HDF5 layout, resume, reading API, Dask
(the schema's readers of old and new files: tests/data/test_schema.py)."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from rln_design import data
from rln_design.data import (
    ConfigMismatchError,
    DatasetConfig,
    dataset_info,
    generate_dataset,
    load_dataset,
    partial_path,
    sample_seeds,
    split_design_points,
)
from rln_design.fe.solver import solve_fe
from rln_design.structure.generator import generate

SMALL = dict(contrast=10.0, count=12, size=5, realizations=3, seed=7)


class InterruptAfter:
    """A solve callable that behaves like ``solve_fe`` and raises KeyboardInterrupt on call n + 1."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, structure, **kwargs):
        self.calls += 1
        if self.calls > self.n:
            raise KeyboardInterrupt
        return solve_fe(structure, **kwargs)


class NaNAfter(InterruptAfter):
    """A solve that returns a NaN field from call n + 1 on (as a solver without a finite check)."""

    def __call__(self, structure, **kwargs):
        self.calls += 1
        result = solve_fe(structure, **kwargs)
        if self.calls > self.n:
            result.strain[...] = np.nan
        return result


def read_all(path) -> dict:
    with h5py.File(path, "r") as f:
        arrays = {name: f[name][()] for name in f}
        # when and where a run started differs between runs (its config and seed do not)
        attrs = {k: v for k, v in f.attrs.items() if k not in ("created", "provenance")}
        provenance = json.loads(f.attrs["provenance"])
        attrs["provenance config and seed"] = (provenance["config"], provenance["seed"])
    return {"arrays": arrays, "attrs": attrs}


def assert_identical(a: dict, b: dict):
    assert a["attrs"] == b["attrs"]
    assert set(a["arrays"]) == set(b["arrays"])
    for name in a["arrays"]:
        x, y = a["arrays"][name], b["arrays"][name]
        assert x.dtype == y.dtype and x.shape == y.shape, name
        assert x.tobytes() == y.tobytes(), f"{name} differs"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted serial run of the SMALL config."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    generate_dataset(DatasetConfig(**SMALL), out, workers=1, progress=False)
    return out


# ------------------------------------------------------------------ config, seeds, split


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(count=10, realizations=3), "count (10) must be divisible by realizations (3)"),
        (dict(count=0), "count must be a positive integer, got 0"),
        (dict(size=1), "size must be an integer >= 2 voxels, got 1"),
        (dict(contrast=0.0), "the contrast E_stiff / E_soft must be a finite number from 1e-06 to 1e+06, got 0.0"),
        (dict(contrast=math.nan), "from 1e-06 to 1e+06, got nan"),
        (dict(contrast=math.inf), "from 1e-06 to 1e+06, got inf"),
        (dict(contrast=1e-20), "from 1e-06 to 1e+06, got 1e-20"),
        (dict(rtol=1e-30), "rtol must be a number from 1e-13 (float64 round-off) to below 1, got 1e-30"),
        (dict(e_soft=math.inf), "e_soft must be a finite number > 0, got inf"),
        (dict(split=(0.5, 0.2, 0.2)), "summing to 1, got 0.5,0.2,0.2"),
        (dict(bounds={"gq": (1, 2)}), "unknown parameter(s) ['gq']"),
        (dict(bounds={"vf": (0.2, 1.5)}), "bounds for vf must lie inside (0, 1)"),
        (dict(bounds={"vf": (0.0, 0.5)}), "bounds for vf must lie inside (0, 1)"),
        (dict(bounds={"gz": (1.0, math.inf)}), "bounds for gz must be finite and > 0 voxels"),
        (dict(bounds={"gx": (5.0, 2.0)}), "bounds for gx must have lower < upper, got 5:2"),
    ],
)
def test_config_rejects_bad_values(kwargs, message):
    with pytest.raises(ValueError) as info:
        DatasetConfig(**{**SMALL, **kwargs})
    assert message in str(info.value)


def test_config_json_round_trip():
    config = DatasetConfig(**SMALL, bounds={"gx": (2, 8)})
    assert DatasetConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["bounds"]["gx"] == [2.0, 8.0]
    assert json.loads(config.to_json())["bounds"]["vf"] == [0.1, 0.9]  # defaults filled in


def test_sample_seeds_depend_only_on_root_seed_and_index():
    all_seeds = sample_seeds(7, range(20))
    assert all_seeds.dtype == np.int64 and (all_seeds >= 0).all()
    assert len(np.unique(all_seeds)) == 20
    np.testing.assert_array_equal(sample_seeds(7, [13, 4]), all_seeds[[13, 4]])
    assert not np.array_equal(sample_seeds(8, range(20)), all_seeds)
    # the documented derivation
    expected = np.random.SeedSequence(7, spawn_key=(1, 13)).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)
    assert all_seeds[13] == int(expected)


def test_split_design_points_fractions_and_seed():
    codes = split_design_points(100, (0.4, 0.2, 0.4), seed=3)
    assert np.bincount(codes, minlength=3).tolist() == [40, 20, 40]
    np.testing.assert_array_equal(codes, split_design_points(100, (0.4, 0.2, 0.4), seed=3))
    assert not np.array_equal(codes, split_design_points(100, (0.4, 0.2, 0.4), seed=4))
    assert np.bincount(split_design_points(10, (1.0, 0.0, 0.0), seed=0), minlength=3).tolist() == [10, 0, 0]


# ------------------------------------------------------------------ layout


def test_layout_as_in_contract(reference):
    n, s = SMALL["count"], SMALL["size"]
    with h5py.File(reference, "r") as f:
        expected = {
            "structures": (np.uint8, (n, s, s, s)),
            "strain": (np.float32, (n, s, s, s)),
            "params": (np.float64, (n, 4)),
            "seeds": (np.int64, (n,)),
            "design_point": (np.int64, (n,)),
            "split": (np.uint8, (n,)),
            "done": (np.bool_, (n,)),
            "iterations": (np.int32, (n,)),
            "residual": (np.float64, (n,)),
            "stress_mean": (np.float64, (n, 6)),
        }
        for name, (dtype, shape) in expected.items():
            assert f[name].dtype == dtype and f[name].shape == shape, name
        assert f["done"][()].all()
        config = json.loads(f.attrs["config"])
        assert config["contrast"] == 10.0 and config["count"] == n and config["seed"] == 7
        assert f.attrs["contrast"] == 10.0 and f.attrs["e_soft"] == 120.0 and f.attrs["nu"] == 0.3
        assert json.loads(f.attrs["imposed_strain"]) == [1e-3, 0, 0, 0, 0, 0]
        assert f.attrs["rtol"] == 1e-6 and f.attrs["seed"] == 7
        assert f.attrs["version"] == data.__version__ and f.attrs["created"]
        point = f["design_point"][()]
        np.testing.assert_array_equal(point, np.repeat(np.arange(4), 3))
        params, split, seeds = f["params"][()], f["split"][()], f["seeds"][()]
        structures, strain = f["structures"][()], f["strain"][()]
        residual = f["residual"][()]
    for p in range(4):  # realizations share parameters and split, differ in seed
        rows = point == p
        assert (params[rows] == params[rows][0]).all() and len(set(split[rows])) == 1
        assert len(set(seeds[rows])) == 3
    np.testing.assert_array_equal(seeds, sample_seeds(7, range(n)))
    # each stored structure is generate(params, seed); each strain field is its FE solution / eps_bar
    for i in (0, 5, 11):
        np.testing.assert_array_equal(structures[i], generate(*params[i], shape=(s, s, s), seed=int(seeds[i])))
        assert abs(strain[i].mean() - 1.0) < 1e-5
    fe = solve_fe(structures[5], contrast=10.0)
    np.testing.assert_allclose(strain[5], fe.eps_xx_normalized(), atol=1e-6)
    assert (residual < 1e-6).all()
    assert not (partial_path(reference)).exists()


def test_a_non_finite_field_is_an_error_and_never_saved_as_done(tmp_path):
    """``generate`` wrote NaN samples marked done: a solve that returns NaN stops the run, and the
    samples finished before it stay saved (the rerun resumes from them)."""
    from rln_design.fe.solver import ConvergenceError

    out = tmp_path / "nan.h5"
    with pytest.raises(ConvergenceError, match="sample 2: the FE strain field is not finite"):
        generate_dataset(DatasetConfig(**SMALL), out, workers=1, chunk_size=1, progress=False,
                         solve=NaNAfter(2))
    with h5py.File(partial_path(out), "r") as f:
        assert f["done"][()].tolist() == [True, True] + [False] * 10
        assert np.isfinite(f["strain"][:2]).all()


# ------------------------------------------------------------------ resume


def test_interrupt_then_resume_equals_uninterrupted(tmp_path, reference):
    out = tmp_path / "run.h5"
    config = DatasetConfig(**SMALL)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, out, workers=1, chunk_size=2, progress=False, solve=InterruptAfter(5))
    assert not out.exists()
    with h5py.File(partial_path(out), "r") as f:
        done = f["done"][()]
    assert done.sum() == 4 and done[:4].all()  # two full chunks of 2 flushed, the third lost
    # resume with a different worker count and chunking: same samples, bit for bit
    generate_dataset(config, out, workers=2, chunk_size=3, progress=False)
    assert out.exists() and not partial_path(out).exists()
    assert_identical(read_all(out), read_all(reference))


def test_device_batches_match_the_numpy_solver(tmp_path, reference):
    """The batched torch path (on the CPU here; CUDA on a GPU machine) writes the same samples."""
    out = generate_dataset(DatasetConfig(**SMALL), tmp_path / "dev.h5", chunk_size=5, progress=False,
                           device="cpu")
    ref, dev = read_all(reference), read_all(out)
    for name in ("structures", "params", "seeds", "design_point", "split", "done"):
        assert dev["arrays"][name].tobytes() == ref["arrays"][name].tobytes(), name
    # both solvers stop at the relative residual rtol = 1e-6: fields agree to that order, not bitwise
    assert (dev["arrays"]["residual"] <= SMALL.get("rtol", 1e-6)).all()
    np.testing.assert_allclose(dev["arrays"]["strain"], ref["arrays"]["strain"], atol=1e-5)
    np.testing.assert_allclose(dev["arrays"]["stress_mean"], ref["arrays"]["stress_mean"], rtol=1e-5, atol=1e-9)
    assert json.loads(dev["attrs"]["fe_devices"]) == ["torch:cpu"]
    assert json.loads(ref["attrs"]["fe_devices"]) == ["numpy"]


def test_device_and_numpy_paths_write_the_same_layout_with_displacement(tmp_path):
    """Both solve paths go through one result builder: same datasets, dtypes and shapes, and the
    displacement agrees to the solver tolerance."""
    config = DatasetConfig(**{**SMALL, "count": 6, "store_displacement": True})
    ref = read_all(generate_dataset(config, tmp_path / "ref.h5", chunk_size=4, progress=False))["arrays"]
    dev = read_all(generate_dataset(config, tmp_path / "dev.h5", chunk_size=4, progress=False,
                                    device="cpu"))["arrays"]
    assert {k: (v.dtype, v.shape) for k, v in dev.items()} == {k: (v.dtype, v.shape) for k, v in ref.items()}
    assert ref["displacement"].shape == (6, 3, 5, 5, 5) and np.abs(ref["displacement"]).max() > 0
    np.testing.assert_allclose(dev["displacement"], ref["displacement"], atol=1e-5 * np.abs(ref["displacement"]).max())
    assert dev["structures"].tobytes() == ref["structures"].tobytes()


def test_resume_on_a_device_lists_both_writers(tmp_path, reference):
    out = tmp_path / "run.h5"
    config = DatasetConfig(**SMALL)
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(config, out, workers=1, chunk_size=2, progress=False, solve=InterruptAfter(5))
    generate_dataset(config, out, chunk_size=4, progress=False, device="cpu")
    got = read_all(out)
    assert json.loads(got["attrs"]["fe_devices"]) == ["numpy", "torch:cpu"]
    np.testing.assert_allclose(got["arrays"]["strain"], read_all(reference)["arrays"]["strain"], atol=1e-5)
    # the four samples the numpy run finished before the interruption are kept bit for bit
    assert got["arrays"]["strain"][:4].tobytes() == read_all(reference)["arrays"]["strain"][:4].tobytes()


def test_device_and_scheduler_exclude_each_other(tmp_path):
    with pytest.raises(ValueError, match="either a device or a Dask scheduler"):
        generate_dataset(DatasetConfig(**SMALL), tmp_path / "x.h5", progress=False, device="cpu",
                         scheduler="tcp://127.0.0.1:9")
    assert not (tmp_path / "x.h5").exists() and not partial_path(tmp_path / "x.h5").exists()


def test_resume_refuses_a_different_config(tmp_path):
    out = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(DatasetConfig(**SMALL), out, workers=1, chunk_size=2, progress=False,
                         solve=InterruptAfter(2))
    other = DatasetConfig(**{**SMALL, "contrast": 50.0})
    with pytest.raises(ConfigMismatchError) as info:
        generate_dataset(other, out, workers=1, progress=False)
    message = str(info.value)
    assert "different config" in message and "contrast: file 10.0 vs asked 50.0" in message
    assert "2 samples done" in message and "--overwrite" in message
    generate_dataset(other, out, workers=1, progress=False, overwrite=True)
    assert dataset_info(out)["material"]["contrast"] == 50.0


def test_complete_output_is_not_overwritten(tmp_path):
    config = DatasetConfig(**{**SMALL, "count": 3})
    out = generate_dataset(config, tmp_path / "a.h5", workers=1, progress=False)
    with pytest.raises(FileExistsError, match="already exists and is complete; pass --overwrite"):
        generate_dataset(config, out, workers=1, progress=False)
    generate_dataset(config, out, workers=1, progress=False, overwrite=True)


# ------------------------------------------------------------------ reading


def test_load_dataset_splits_partition_the_done_samples(reference):
    with h5py.File(reference, "r") as f:
        split = f["split"][()]
        all_structures = f["structures"][()]
    parts = {name: load_dataset(reference, name) for name in ("train", "validation", "test")}
    structures, strain = load_dataset(reference, "all")
    assert structures.dtype == np.uint8 and strain.dtype == np.float32
    assert sum(len(p[0]) for p in parts.values()) == len(structures) == SMALL["count"]
    for code, name in enumerate(("train", "validation", "test")):
        np.testing.assert_array_equal(parts[name][0], all_structures[split == code])
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset(reference, "training")


def test_load_dataset_of_partial_returns_done_samples_only(tmp_path):
    out = tmp_path / "run.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(DatasetConfig(**SMALL), out, workers=1, chunk_size=1, progress=False,
                         solve=InterruptAfter(3))
    structures, strain = load_dataset(partial_path(out), "all")
    assert len(structures) == 3 and np.isfinite(strain).all()
    info = dataset_info(partial_path(out))
    assert info["done"] == 3 and not info["complete"]


def test_strain_dataset(reference, monkeypatch):
    import torch

    from rln_design.data import StrainDataset, schema

    dataset = StrainDataset(reference, "all")
    assert isinstance(dataset, torch.utils.data.Dataset) and len(dataset) == SMALL["count"]
    structure, strain = dataset[3]
    assert structure.dtype == torch.float32 and structure.shape == (5, 5, 5)
    expected_s, expected_e = load_dataset(reference, "all")
    np.testing.assert_array_equal(structure.numpy(), expected_s[3])
    np.testing.assert_array_equal(strain.numpy(), expected_e[3])
    batch = next(iter(torch.utils.data.DataLoader(StrainDataset(reference, "train", in_memory=True),
                                                  batch_size=2)))
    assert batch[0].shape == (2, 5, 5, 5)
    # in memory: the rows and the arrays come from one opening of the file
    opened = []
    real_open = schema.open_for_reading
    monkeypatch.setattr(schema, "open_for_reading", lambda path: opened.append(path) or real_open(path))
    in_memory = StrainDataset(reference, "all", in_memory=True)
    assert len(opened) == 1
    np.testing.assert_array_equal(in_memory.indices, dataset.indices)
    np.testing.assert_array_equal(in_memory[3][1].numpy(), expected_e[3])


def test_dataset_info(reference):
    info = dataset_info(reference)
    _, strain = load_dataset(reference, "all")
    assert info["n"] == info["done"] == SMALL["count"] and info["complete"]
    assert sum(v["total"] for v in info["splits"].values()) == SMALL["count"]
    assert info["design_points"] == 4 and info["shape"] == (5, 5, 5)
    assert info["strain"]["mean"] == pytest.approx(float(strain.astype(np.float64).mean()), rel=1e-9)
    assert info["strain"]["std"] == pytest.approx(float(strain.astype(np.float64).std()), rel=1e-6)
    assert info["strain"]["max"] == pytest.approx(float(strain.max()))
    assert info["strain"]["p99"] == pytest.approx(float(np.percentile(strain, 99)))
    lo, hi = info["params"]["vf"]
    assert 0.1 <= lo <= hi <= 0.9
    assert info["material"]["contrast"] == 10.0 and info["config"]["realizations"] == 3


# ------------------------------------------------------------------ dask


def test_dask_local_cluster_matches_serial(tmp_path, reference):
    import dask.distributed as distributed  # install_requires dask[distributed]: must not skip
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        out = generate_dataset(DatasetConfig(**SMALL), tmp_path / "dask.h5", scheduler=cluster.scheduler_address,
                               chunk_size=4, progress=False)
    assert_identical(read_all(out), read_all(reference))
