"""``rln-design generate --workers 2`` stopped by kill -9, SIGTERM or two Ctrl-C: no orphan worker,
no lost sample, no hang; the rerun resumes to the file an uninterrupted run writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from rln_design.data import DatasetConfig, generate_dataset, partial_path

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

CONFIG = dict(contrast=10.0, count=48, realizations=2, size=7)
ARGS = ["generate", "--contrast", "10", "--count", "48", "--realizations", "2", "--grid", "7",
        "--workers", "2", "--chunk-size", "1", "--quiet"]
CLI = [sys.executable, "-c", "from rln_design.cli import main; main()"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The same dataset, uninterrupted, in this process."""
    out = tmp_path_factory.mktemp("ref") / "ref.h5"
    return _read(generate_dataset(DatasetConfig(**CONFIG), out, workers=1, progress=False))


def _read(path) -> dict:
    with h5py.File(path, "r", locking=False) as f:
        return {name: f[name][()] for name in ("done", "structures", "strain", "iterations")}


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError):
            continue
        if int(ppid) == pid and state != "Z":
            kids.append(int(stat.parent.name))
    return kids


def _alive(pids) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@pytest.fixture
def start():
    """``start(out)``: run the CLI until >= 2 samples are saved; kills what is left at teardown."""
    started = []

    yield lambda out: _start(out, started)
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _start(out: Path, started: list) -> tuple[subprocess.Popen, list[int]]:
    """Start the CLI; return once >= 2 samples are saved, with the worker pids."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*CLI, *ARGS, "--out", str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    started.append(proc.pid)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
        try:
            with h5py.File(partial_path(out), "r", locking=False) as f:
                if f["done"][()].sum() >= 2:
                    break
        except (OSError, KeyError):  # not created yet, or caught mid-write
            continue
    assert proc.poll() is None, f"generate ended before it could be stopped: {proc.communicate()}"
    workers = _children(proc.pid)
    started.extend(workers)
    assert len(workers) >= 2, workers
    return proc, workers


def _wait_gone(pids, seconds=10.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _alive(pids)


def _check_saved_then_resume(out: Path, reference: dict):
    """Every sample marked done is the reference's; the rerun completes to the reference."""
    saved = _read(partial_path(out))
    kept = saved["done"]
    assert 2 <= kept.sum() < len(kept)
    for name in ("structures", "strain", "iterations"):
        np.testing.assert_array_equal(saved[name][kept], reference[name][kept], err_msg=name)
    rerun = subprocess.run([*CLI, *ARGS, "--out", str(out)], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert rerun.returncode == 0, rerun.stderr
    assert out.exists() and not partial_path(out).exists()
    final = _read(out)
    for name in ("done", "structures", "strain", "iterations"):
        assert final[name].tobytes() == reference[name].tobytes(), name


def test_kill_9_leaves_no_orphan_and_the_rerun_keeps_every_sample(tmp_path, reference, start):
    out = tmp_path / "d.h5"
    proc, workers = start(out)
    proc.kill()
    proc.wait(timeout=10)
    assert _wait_gone(workers) == [], "pool workers outlived their killed parent"
    _check_saved_then_resume(out, reference)


def test_sigterm_saves_and_exits_143(tmp_path, reference, start):
    out = tmp_path / "d.h5"
    proc, workers = start(out)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert "samples saved in" in stderr and "re-run the same command to resume" in stderr
    assert "Traceback" not in stderr
    assert _wait_gone(workers) == []
    _check_saved_then_resume(out, reference)


def test_two_ctrl_c_stop_at_once_without_a_hang(tmp_path, reference, start):
    out = tmp_path / "d.h5"
    proc, workers = start(out)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("generate hung after two Ctrl-C")
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "samples saved in" in stderr
    assert _wait_gone(workers) == []
    _check_saved_then_resume(out, reference)
