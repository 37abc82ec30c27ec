"""The examples as a newcomer runs them: ``--help`` prints the whole description and
exits 0 having written nothing, and a run leaves nothing behind in the temp folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import require_backends

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))


def run_example(path: Path, args: list[str], cwd: Path, tmp: Path) -> subprocess.CompletedProcess:
    """``python examples/NAME.py ARGS`` in ``cwd``, with ``tmp`` as the temp folder."""
    env = {**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(path.parents[1])}
    return subprocess.run(
        [sys.executable, str(path), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_help_prints_usage_and_writes_nothing(path, tmp_path):
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), tmp.mkdir()
    done = run_example(path, ["--help"], cwd, tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
    doc = " ".join(path.read_text().split('"""')[1].split())
    assert doc in " ".join(done.stdout.split()), "the description is not the whole docstring"
    assert not list(cwd.iterdir()), f"--help wrote {list(cwd.iterdir())}"
    assert not list(tmp.iterdir()), f"--help wrote {list(tmp.iterdir())} in the temp folder"


def test_a_run_leaves_nothing_in_the_temp_folder(tmp_path):
    """The checkpoints of a run go to a temp folder removed at exit (they were 83-100 MB)."""
    require_backends("paddle", "torch")
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir(), tmp.mkdir()
    path = next(p for p in EXAMPLES if p.stem == "port_paddleocr_crnn")
    done = run_example(path, ["--light", "--rows", "4"], cwd, tmp)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "rec_crnn.pdparams" in done.stdout and "PASS" in done.stdout
    assert not list(cwd.iterdir()) and not list(tmp.iterdir()), list(tmp.iterdir())


def test_ppocr_v4_rec_reads_the_same_line_in_paddle_and_torch_fused_or_not(tmp_path):
    """Config -> Paddle checkpoint -> one ``xinit port`` command (PASS) -> the same CTC
    reading in Paddle, PyTorch and the re-parameterised PyTorch model, smaller."""
    require_backends("paddle", "torch")
    path = next(p for p in EXAMPLES if p.stem == "port_ppocr_v4_rec")
    done = run_example(
        path, ["--workdir", str(tmp_path / "w"), "--width", "64"], tmp_path, tmp_path
    )
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "PASS: every layer agrees" in out and "all three read the same" in out
    paddle_read = out.split("Paddle reads  ")[1].splitlines()[0]
    assert paddle_read == out.split("PyTorch reads ")[1].splitlines()[0]
    before, after = out.split("parameters ")[1].split(";")[0].split(" -> ")
    assert int(after.replace(",", "")) < int(before.replace(",", ""))
    assert {"ch_PP-OCRv4_rec.yml", "en_dict.txt", "best_accuracy.pdparams", "rec.pt"} <= {
        p.name for p in (tmp_path / "w").iterdir()
    }


@pytest.mark.slow  # ~35 s of CPU (Paddle, PyTorch and a Flax trace of DBNet); 113 s wall here
def test_ppocr_det_draws_the_same_map_in_every_framework(tmp_path):
    """Config -> Paddle checkpoint -> one ``xinit port`` command (PASS) -> the shrink map in
    Paddle, PyTorch (and Flax) within float32 rounding, the conv+BN-folded map alike."""
    require_backends("paddle", "torch")
    path = next(p for p in EXAMPLES if p.stem == "port_ppocr_det")
    done = run_example(path, ["--size", "64"], tmp_path, tmp_path)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-2000:]
    assert "parity of the maps, paddle vs torch" in out and "binarised alike" in out
    assert "FAIL" not in out and "PASS: every layer agrees" in out
