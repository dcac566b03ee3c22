"""Tests of rln_design.data.schema: physics and provenance of new and old files, split reading,
the displacement (full strain tensor) and the errors of every reader."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from rln_design import __version__
from rln_design.data import (DatasetConfig, generate_dataset, load_dataset, physics, provenance,
                             read_attrs, read_sample, read_split, read_splits, read_strain_tensor,
                             read_stress_mean, read_structure, read_structures, split_rows)
from rln_design.fe.solver import solve_fe
from rln_design.physics import Physics

# a general load (shear and normal components), so every tensor component is exercised
STRAIN = (1e-3, 2e-4, -1e-4, 1e-4, 0.0, -3e-4)
TENSOR = dict(contrast=10.0, count=4, size=6, realizations=2, seed=5, e_soft=100.0, nu=0.25,
              imposed_strain=STRAIN, store_displacement=True)


@pytest.fixture(scope="module")
def tensor_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("tensor") / "t.h5"
    return generate_dataset(DatasetConfig(**TENSOR), out, workers=1, progress=False)


@pytest.fixture(scope="module")
def plain_file(tmp_path_factory):
    """A default (eps_xx-only) dataset."""
    out = tmp_path_factory.mktemp("plain") / "p.h5"
    config = DatasetConfig(contrast=50.0, count=6, size=5, realizations=2, seed=1)
    return generate_dataset(config, out, workers=1, progress=False)


def _old_layout(path, source):
    """``source`` as a file written before the physics / provenance attributes existed."""
    with h5py.File(source, "r") as f, h5py.File(path, "w") as g:
        for name in f:
            if name != "displacement":
                f.copy(name, g)
        for key, value in f.attrs.items():
            if key not in ("physics", "provenance"):
                g.attrs[key] = value
    return path


# ------------------------------------------------------------------ physics, provenance


def test_new_files_record_physics_and_provenance(tensor_file):
    config = DatasetConfig(**TENSOR)
    got = physics(tensor_file)
    assert got == config.physics == Physics(10.0, e_soft=100.0, nu=0.25, imposed_strain=STRAIN, grid=(6, 6, 6))
    attrs = read_attrs(tensor_file)
    assert Physics.from_dict(json.loads(attrs["physics"])) == got
    assert attrs["contrast"] == 10.0 and attrs["nu"] == 0.25  # the flat attributes stay
    made = provenance(tensor_file)
    assert made.version == __version__ and made.seed == 5 and made.hardware and made.created
    assert DatasetConfig(**made.config) == config and made.packages["h5py"] == h5py.__version__


def test_old_layout_without_physics_attrs_reads_through_the_same_functions(tmp_path, tensor_file):
    old = _old_layout(tmp_path / "old.h5", tensor_file)
    assert "physics" not in read_attrs(old)
    assert physics(old) == physics(tensor_file)  # from contrast, e_soft, nu, imposed_strain + grid
    before, now = provenance(old), provenance(tensor_file)
    assert (before.version, before.revision, before.seed, before.config, before.created) == \
        (now.version, now.revision, now.seed, now.config, now.created)
    assert before.hardware == "" and before.packages == {}  # not recorded then
    np.testing.assert_array_equal(load_dataset(old, "all")[1], load_dataset(tensor_file, "all")[1])


def test_the_shipped_data_layout_reads(tmp_path):
    """A file in the layout of data/cr10_31.h5 (made by version 0.1.0): flat attributes only."""
    path = tmp_path / "v010.h5"
    with h5py.File(path, "w") as f:
        f["structures"] = np.zeros((2, 4, 5, 6), np.uint8)
        f["strain"] = np.ones((2, 4, 5, 6), np.float32)
        f["split"], f["done"] = np.array([0, 2], np.uint8), np.ones(2, bool)
        f.attrs.update({"contrast": 50.0, "e_soft": 120.0, "nu": 0.3, "imposed_strain": "[0.001, 0, 0, 0, 0, 0]",
                        "config": json.dumps({"seed": 31, "count": 2}), "version": "0.1.0",
                        "revision": "44c38c8d551f+dirty", "seed": 31, "created": "2026-12-05T12:09:10+00:00"})
    assert physics(path) == Physics(50.0, 120.0, 0.3, (1e-3, 0, 0, 0, 0, 0), grid=(4, 5, 6))
    made = provenance(path)
    assert (made.version, made.revision, made.seed, made.config) == ("0.1.0", "44c38c8d551f+dirty", 31,
                                                                     {"seed": 31, "count": 2})


def test_a_file_with_only_a_contrast_has_the_default_material_and_load(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f["structures"] = np.zeros((1, 3, 4, 5), np.uint8)
        f.attrs["contrast"] = 10.0
    assert physics(path) == Physics(10.0, grid=(3, 4, 5))


def test_a_file_without_physics_is_one_clear_error(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f["structures"] = np.zeros((1, 3, 3, 3), np.uint8)
    with pytest.raises(ValueError, match=r"records no physics: it has neither a 'physics' nor a 'contrast' attribute"):
        physics(path)
    assert provenance(path).version == "unknown"


# ------------------------------------------------------------------ splits and samples


def test_read_split_returns_the_done_samples_of_the_split(plain_file):
    with h5py.File(plain_file, "r") as f:
        split, structures, strain = f["split"][()], f["structures"][()], f["strain"][()]
    for code, name in enumerate(("train", "validation", "test")):
        if not (split == code).any():
            continue
        m, y, attrs = read_split(plain_file, name)
        np.testing.assert_array_equal(m, structures[split == code])
        np.testing.assert_array_equal(y, strain[split == code])
        assert m.dtype == np.uint8 and y.dtype == np.float32 and attrs["contrast"] == 50.0
    rows = np.flatnonzero(split == 0)
    m, _, _ = read_split(plain_file, "train", max_samples=1, seed=3)
    assert len(m) == 1 and any(np.array_equal(m[0], structures[r]) for r in rows)


def test_read_splits_concatenates_and_refuses_mixed_physics(plain_file, tensor_file):
    m, y, attrs = read_splits([plain_file, plain_file], "train")
    single = read_split(plain_file, "train")[0]
    assert len(m) == 2 * len(single) and list(attrs) == [str(plain_file)]
    with pytest.raises(ValueError, match=r"data files have different contrasts \['10.0', '50.0'\]"):
        read_splits([plain_file, tensor_file], "train")


@pytest.mark.parametrize("bad, message", [
    ("split", "split must be one of ('train', 'validation', 'test'), got 'all'"),
    ("missing", "does not exist"),
    ("nostrain", "has no 'strain' dataset; expected the layout written by `rln-design generate`"),
    ("nan", "the strain of 1 sample(s) is not finite (NaN or inf), the first in row 1"),
    ("phase", "structures must hold 0 (soft) and 1 (stiff) only; found [3]"),
    ("empty", "has no finished sample in split 'validation'"),
])
def test_read_split_errors_name_the_file_and_the_problem(tmp_path, bad, message):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["structures"] = np.zeros((3, 3, 3, 3), np.uint8)
        if bad != "nostrain":
            f["strain"] = np.ones((3, 3, 3, 3), np.float32)
        f["split"] = np.zeros(3, np.uint8)
        if bad == "nan":
            f["strain"][1, 0, 0, 0] = np.nan
        if bad == "phase":
            f["structures"][2, 1, 1, 1] = 3
    kwargs = {"split": "all"} if bad == "split" else {"split": "validation"} if bad == "empty" else {}
    error = FileNotFoundError if bad == "missing" else ValueError
    with pytest.raises(error) as info:
        read_split(tmp_path / "nope.h5" if bad == "missing" else path, **kwargs)
    assert message in str(info.value)


def test_read_sample_and_read_structure(plain_file, tmp_path):
    sample = read_sample(plain_file, 3)
    full = load_dataset(plain_file, "all")
    np.testing.assert_array_equal(sample["structure"], full[0][3])
    assert sample["done"] and sample["split"] in ("train", "validation", "test")
    with pytest.raises(IndexError, match="index 6 out of range: the file has 6 samples"):
        read_sample(plain_file, 6)
    got = read_structure(plain_file, 3)
    np.testing.assert_array_equal(got["strain"], sample["strain"])
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f["structures"] = np.ones((1, 3, 3, 3), np.uint8)  # no strain, no done: a plain batch of structures
    assert read_structure(bare, 0)["strain"] is None and read_structure(bare, 0)["done"]
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(2)
    with pytest.raises(ValueError, match="has no 'structures' dataset"):
        read_structure(tmp_path / "other.h5", 0)


def test_read_stress_mean_and_structures_by_split_or_rows(plain_file):
    with h5py.File(plain_file, "r") as f:
        split, structures, stress = f["split"][()], f["structures"][()], f["stress_mean"][()]
    for code, name in enumerate(("train", "validation", "test")):
        got = read_stress_mean(plain_file, name)
        assert got.dtype == np.float64 and got.shape == ((split == code).sum(), 6)
        np.testing.assert_array_equal(got, stress[split == code])
        np.testing.assert_array_equal(read_structures(plain_file, name), structures[split == code])
        np.testing.assert_array_equal(split_rows(plain_file, name), np.flatnonzero(split == code))
    np.testing.assert_array_equal(read_stress_mean(plain_file), stress)  # default: every done sample
    rows = [4, 1, 4]  # the order given, repeats kept
    np.testing.assert_array_equal(read_stress_mean(plain_file, rows), stress[rows])
    np.testing.assert_array_equal(read_structures(plain_file, np.array(rows)), structures[rows])
    assert read_stress_mean(plain_file, []).shape == (0, 6)
    # the stored stress is the FE solver's volume average for the file's physics
    p = physics(plain_file)
    fresh = solve_fe(structures[[1]], contrast=p.contrast, e_soft=p.e_soft, nu=p.nu, strain=p.imposed_strain,
                     rtol=1e-8).stress_mean
    np.testing.assert_allclose(read_stress_mean(plain_file, [1]), fresh, rtol=1e-4,
                               atol=1e-5 * np.abs(fresh).max())  # the file's solves stop at rtol 1e-6


@pytest.mark.parametrize("rows, error, message", [
    ("everything", ValueError, "split must be one of ['train', 'validation', 'test', 'all'], got 'everything'"),
    ([0, 6], IndexError, "row 6 out of range"),
    ([-1], IndexError, "row -1 out of range"),
    ([[0, 1]], ValueError, "rows must be a split name or a 1-D array of integer rows"),
    ([0.5], ValueError, "rows must be a split name or a 1-D array of integer rows"),
])
def test_read_stress_mean_refuses_bad_rows(plain_file, rows, error, message):
    with pytest.raises(error) as info:
        read_stress_mean(plain_file, rows)
    assert message in str(info.value)


def test_read_stress_mean_of_unsolved_rows_and_old_files_is_one_clear_error(tmp_path, plain_file):
    path = tmp_path / "d.h5"
    with h5py.File(plain_file, "r") as f, h5py.File(path, "w") as g:
        for name in f:
            f.copy(name, g)
        g["done"][2] = False
    assert len(read_stress_mean(path, "all")) == 5  # only the done samples of a split
    with pytest.raises(ValueError, match="row 2 of .* is not solved yet"):
        read_stress_mean(path, [0, 2])
    with h5py.File(path, "r+") as g:
        del g["stress_mean"]
    with pytest.raises(ValueError, match="has no 'stress_mean' dataset"):
        read_stress_mean(path)


# ------------------------------------------------------------------ full strain tensor


def test_strain_tensor_from_the_stored_displacement_equals_the_fe_strain(tensor_file):
    config = DatasetConfig(**TENSOR)
    with h5py.File(tensor_file, "r") as f:
        assert f["displacement"].dtype == np.float32 and f["displacement"].shape == (4, 3, 6, 6, 6)
    for index in range(config.count):
        sample = read_sample(tensor_file, index)
        tensor = read_strain_tensor(tensor_file, index)
        fe = solve_fe(sample["structure"], physics=config.physics)
        assert tensor.shape == (6, 6, 6, 6)
        # float32 displacement: the strain agrees to float32 precision of u~, far below rtol-level
        np.testing.assert_allclose(tensor, fe.strain, rtol=0, atol=1e-6 * np.abs(fe.strain).max())
        np.testing.assert_allclose(tensor[0], sample["strain"] * STRAIN[0], rtol=0, atol=1e-6 * STRAIN[0])
        np.testing.assert_allclose(tensor.mean(axis=(1, 2, 3)), STRAIN, atol=1e-9)  # <eps> = eps_bar


def test_strain_tensor_of_an_eps_xx_only_file_is_one_clear_error(plain_file, tmp_path, tensor_file):
    for path in (plain_file, _old_layout(tmp_path / "old.h5", tensor_file)):
        with pytest.raises(ValueError) as info:
            read_strain_tensor(path, 0)
        assert str(info.value) == (
            f"{path} stores eps_xx only (no 'displacement' dataset), so its full strain tensor is unknown; "
            "regenerate it with `rln-design generate ... --store-displacement` "
            "(DatasetConfig(store_displacement=True))")
    with pytest.raises(IndexError, match="index 4 out of range"):
        read_strain_tensor(tensor_file, 4)


def test_device_batches_store_the_same_displacement(tmp_path, tensor_file):
    out = generate_dataset(DatasetConfig(**TENSOR), tmp_path / "dev.h5", device="cpu", progress=False)
    for index in range(TENSOR["count"]):
        np.testing.assert_allclose(read_strain_tensor(out, index), read_strain_tensor(tensor_file, index),
                                   rtol=0, atol=1e-5 * STRAIN[0])


# ------------------------------------------------------------------ solve_fe(physics=...)


def test_solve_fe_takes_physics_and_refuses_a_conflicting_argument():
    structure = (np.arange(5 * 5 * 5).reshape(5, 5, 5) % 3 == 0).astype(np.uint8)
    problem = Physics(20.0, e_soft=50.0, nu=0.2, imposed_strain=STRAIN, grid=(5, 5, 5))
    by_record = solve_fe(structure, physics=problem)
    by_args = solve_fe(structure, contrast=20.0, e_soft=50.0, nu=0.2, strain=STRAIN)
    np.testing.assert_array_equal(by_record.strain, by_args.strain)
    np.testing.assert_array_equal(solve_fe(structure, physics=problem, contrast=20.0).strain, by_record.strain)
    with pytest.raises(ValueError, match=r"contrast=10.0 conflicts with physics.contrast=20.0: give one of them"):
        solve_fe(structure, physics=problem, contrast=10.0)
    with pytest.raises(ValueError, match=r"nu=0.3 conflicts with physics.nu=0.2"):
        solve_fe(structure, physics=problem, nu=0.3)
    with pytest.raises(ValueError, match=r"strain=\[0.001, 0.0, 0.0, 0.0, 0.0, 0.0\] conflicts with physics.imposed_strain"):
        solve_fe(structure, physics=problem, strain=[1e-3, 0, 0, 0, 0, 0])
    # the displacement it returns gives its strain through the solver's centre operator (float64: exact)
    from rln_design.data.schema import _strain_from_displacement

    assert by_record.displacement.shape == (3, 5, 5, 5)
    np.testing.assert_allclose(_strain_from_displacement(structure, by_record.displacement, problem),
                               by_record.strain, rtol=0, atol=1e-12 * np.abs(by_record.strain).max())
