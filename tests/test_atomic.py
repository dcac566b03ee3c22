"""Tests of rln_design._atomic (temp file beside the target, then os.replace)."""

import os
import stat

import matplotlib

matplotlib.use("Agg")
import matplotlib.figure  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rln_design._atomic import atomic_path, save_figure_atomic, write_text_atomic  # noqa: E402


def test_write_text_creates_parents_and_gives_the_mode_open_would(tmp_path):
    old = os.umask(0o027)
    try:
        path = write_text_atomic(tmp_path / "a" / "b" / "card.md", "héllo\n")
    finally:
        os.umask(old)
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # 0666 & ~umask, not mkstemp's 0600
    assert os.listdir(path.parent) == ["card.md"]


def test_exception_inside_the_block_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "model.pt", "old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("half-writ")
            assert tmp.parent == path.parent and tmp != path
            raise KeyboardInterrupt  # Ctrl-C mid-write
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["model.pt"]


def test_replaces_an_existing_file_through_a_file_handle(tmp_path):
    path = tmp_path / "field.npy"
    np.save(path, np.zeros(3))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, np.arange(4.0))
    np.testing.assert_array_equal(np.load(path), np.arange(4.0))
    assert os.listdir(tmp_path) == ["field.npy"]


def test_writers_that_choose_by_file_name_see_the_target_suffix(tmp_path):
    # np.save appends .npy to a name without it: the temporary name must end in .npy
    with atomic_path(tmp_path / "field.npy") as tmp:
        assert tmp.suffix == ".npy" and tmp.name.startswith(".field.npy.")
        np.save(tmp, np.arange(3.0))
    with atomic_path(tmp_path / "weights.pt") as tmp:
        torch.save({"w": torch.ones(2)}, tmp)
    np.testing.assert_array_equal(np.load(tmp_path / "field.npy"), np.arange(3.0))
    assert torch.load(tmp_path / "weights.pt", weights_only=True)["w"].tolist() == [1.0, 1.0]
    assert sorted(os.listdir(tmp_path)) == ["field.npy", "weights.pt"]


def test_save_figure_takes_the_format_from_the_target_suffix(tmp_path):
    fig = matplotlib.figure.Figure(figsize=(1, 1))
    fig.subplots().plot([0, 1])
    png = save_figure_atomic(fig, tmp_path / "curve.png", dpi=20)
    svg = save_figure_atomic(fig, tmp_path / "curve.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in svg.read_bytes()[:500]
    bare = save_figure_atomic(fig, tmp_path / "curve", dpi=20)  # no suffix: PNG, at exactly that name
    assert bare.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == ["curve", "curve.png", "curve.svg"]
