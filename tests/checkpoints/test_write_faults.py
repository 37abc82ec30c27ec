"""Write-side faults, as a careless user or a full disk causes them: every failure is one
clear error (``xinit <verb>: error: ...``, exit code 2 on the command line), the old file is
left intact, temporary files follow one pattern and are cleaned up after a killed writer,
modes are kept, and equal weights give equal bytes.

Disk-full and read-only cases use a small tmpfs mounted for the test (root only: skipped
otherwise); ``ulimit -f`` runs in a subprocess.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import installed

from xinit.checkpoints import (
    TMP_PREFIX,
    CheckpointWriteError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from xinit.cli import main

ROOT = Path(__file__).resolve().parents[2]
# formats whose writers need no framework, plus those whose framework is installed
FORMATS = [".safetensors", ".pdparams"] + [
    s for s, fw in ((".pt", "torch"), (".msgpack", "flax")) if fw in installed()
]


def small_state(n: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"conv.weight": rng.standard_normal((n, 3, 3, 3)).astype(np.float32)}


def big_state() -> dict[str, np.ndarray]:
    return {"w": np.ones((1024, 1024), np.float32)}  # 4 MiB: more than the test tmpfs holds


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "1m"):
    """A tmpfs of ``size`` mounted on ``folder`` (skips unless this process may mount)."""
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount_read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


# ---- disk full, read-only, ulimit -f ---------------------------------------------------------
@pytest.mark.parametrize("suffix", FORMATS)
def test_disk_full_is_one_clear_error_and_keeps_the_old_file(tmp_path, suffix):
    with tmpfs(tmp_path / "mnt") as mnt:
        path = mnt / f"model{suffix}"
        save_checkpoint(small_state(), path)
        before = path.read_bytes()
        with pytest.raises(CheckpointWriteError, match=f"cannot write {path}") as info:
            save_checkpoint(big_state(), path)
        assert "No space left" in str(info.value) or "space" in str(info.value).lower()
        assert path.read_bytes() == before
        assert leftovers(mnt) == []


def test_cli_init_on_a_full_disk_exits_2(tmp_path, capsys):
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        path = mnt / "lenet.safetensors"
        path.write_bytes(b"old")
        code, err = cli(capsys, "init", "lenet", "--out", str(path), "--format", "json")
        assert code == 2
        assert err.startswith(f"xinit init: error: cannot write {path}:")
        assert "No space left" in err
        assert path.read_bytes() == b"old"
        assert leftovers(mnt) == []


def test_read_only_file_system_is_a_clear_error(tmp_path, capsys):
    with tmpfs(tmp_path / "mnt") as mnt:
        path = mnt / "model.safetensors"
        save_checkpoint(small_state(), path)
        before = path.read_bytes()
        remount_read_only(mnt)
        with pytest.raises(CheckpointWriteError, match="Read-only file system"):
            save_checkpoint(small_state(8), path)
        code, err = cli(capsys, "init", "lenet", "--out", str(mnt / "new.safetensors"))
        assert code == 2 and err.startswith("xinit init: error: cannot write")
        assert "Read-only file system" in err
        assert path.read_bytes() == before


def test_a_folder_that_cannot_be_written_is_a_clear_error(tmp_path, capsys):
    """Without root a chmod 0555 folder does it; root ignores modes, so a read-only mount."""
    if os.geteuid() == 0:
        stack = tmpfs(tmp_path / "mnt")
    else:
        stack = contextlib.nullcontext(tmp_path / "locked")
        (tmp_path / "locked").mkdir()
    with stack as folder:
        if os.geteuid() == 0:
            remount_read_only(folder)
        else:
            folder.chmod(0o555)
        try:
            code, err = cli(capsys, "init", "lenet", "--out", str(folder / "w.safetensors"))
        finally:
            folder.chmod(0o755) if os.geteuid() != 0 else None
        assert code == 2
        assert err.startswith(f"xinit init: error: cannot write {folder / 'w.safetensors'}")
        assert "Traceback" not in err


def test_a_read_only_file_is_not_replaced(tmp_path):
    """A file with no write bit is refused even for root (rename would replace it)."""
    path = tmp_path / "frozen.safetensors"
    save_checkpoint(small_state(), path)
    path.chmod(0o444)
    before = path.read_bytes()
    with pytest.raises(CheckpointWriteError, match="read-only .mode 0444."):
        save_checkpoint(small_state(8), path)
    assert path.read_bytes() == before


def test_ulimit_f_is_a_clear_error(tmp_path):
    path = tmp_path / "lenet.safetensors"
    path.write_bytes(b"old")
    # bash's ulimit (KiB) rather than preexec_fn: forking a process that runs JAX's threads
    # is unsafe; lenet's weights are ~250 KB
    command = f"ulimit -f 64 && exec {shlex.quote(sys.executable)} -m xinit.cli init lenet"
    done = subprocess.run(
        ["bash", "-c", f"{command} --out {shlex.quote(str(path))}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"xinit init: error: cannot write {path}:")
    assert "File too large" in done.stderr
    assert path.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


# ---- bad --out values --------------------------------------------------------------------
def test_bad_out_values_are_clear_errors(tmp_path, capsys):
    folder = tmp_path / "existing"
    folder.mkdir()
    long_name = str(tmp_path / ("a" * 300 + ".safetensors"))  # 312 characters
    for out, needle in (
        (str(folder), "is an existing folder"),
        ("", "empty path"),
        (long_name, "the file name has 312 bytes"),
    ):
        code, err = cli(capsys, "init", "lenet", "--out", out)
        assert code == 2, out
        assert err.startswith("xinit init: error: ") and needle in err, err
    assert list(folder.iterdir()) == []


def test_port_refuses_a_bad_out_before_reading(tmp_path, capsys):
    src = tmp_path / "in.pdparams"
    save_checkpoint(small_state(), src)
    (tmp_path / "dir.pt").mkdir()
    for out, needle in ((str(tmp_path / "dir.pt"), "is a folder"), ("", "empty path")):
        code, err = cli(
            capsys, "port", str(src), out, "--model", "lenet", "--to", "torch", "--no-parity"
        )
        assert code == 2 and err.startswith("xinit port: error: ") and needle in err, err


def test_out_with_a_trailing_slash_is_a_folder(tmp_path, capsys):
    code, err = cli(capsys, "init", "lenet", "--out", f"{tmp_path}/new/", "--format", "json")
    assert code == 2 and "does not exist (pass --parents to make it)" in err, err
    assert not (tmp_path / "new").exists()
    argv = ["init", "lenet", "--out", f"{tmp_path}/new/", "--parents", "--format", "json"]
    code, _ = cli(capsys, *argv)
    assert code == 0
    assert (tmp_path / "new").is_dir()
    state = load_checkpoint(tmp_path / "new" / "lenet.safetensors")
    assert state["conv1.weight"].shape == (6, 3, 5, 5)


# ---- temporary files ---------------------------------------------------------------------
def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_temporaries_follow_one_pattern_and_stale_ones_are_removed(tmp_path):
    """Only files of xinit's pattern, from a dead process, older than this one, go."""
    old = time.time() - 3600
    stale = tmp_path / f"{TMP_PREFIX}{dead_pid()}-0badcafe-w.pt"
    alive = tmp_path / f"{TMP_PREFIX}{os.getppid()}-0badcafe-w.pt"  # pytest's parent runs
    fresh = tmp_path / f"{TMP_PREFIX}{dead_pid()}-0badcafe-x.pt"  # newer than this process
    foreign = tmp_path / ".tmpqXGaJV"
    for p in (stale, alive, fresh, foreign):
        p.write_bytes(b"partial")
    for p in (stale, alive, foreign):
        os.utime(p, (old, old))
    save_checkpoint(small_state(), tmp_path / "w.safetensors")
    assert not stale.exists()
    assert alive.exists() and fresh.exists() and foreign.exists()


def supports_unnamed_files(folder: Path) -> bool:
    """Whether ``folder``'s file system makes O_TMPFILE files (Linux: ext4, tmpfs, xfs...)."""
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600))
    except (AttributeError, OSError):
        return False
    return os.path.isdir("/proc/self/fd")


def kill_9_mid_write(target: Path, *, unnamed: bool) -> int:
    """Start a writer of a 128 MiB file to ``target``, SIGKILL it when half is written, and
    return its pid. ``unnamed=False`` runs it as on a system without O_TMPFILE."""
    writer = (
        "import sys\n"
        "from xinit.checkpoints import atomic, atomic_write\n"
        f"if not {unnamed}: atomic._unnamed_file = lambda folder: None\n"
        "def write(f):\n"
        "    for i in range(32):\n"
        "        f.write(bytes(4 << 20))\n"
        "        if i == 15: f.flush(); print('half', flush=True); sys.stdin.readline()\n"
        f"atomic_write({str(target)!r}, write)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", writer],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert child.stdout.readline().strip() == "half"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    return child.pid


def test_kill_9_during_a_large_write_leaves_nothing_behind(tmp_path):
    """On Linux the file being written has no name until it is complete (O_TMPFILE, then
    linkat): a writer killed with SIGKILL half-way through 128 MiB leaves no file at all,
    and the file it was replacing is as it was."""
    if not supports_unnamed_files(tmp_path):
        pytest.skip("this file system makes no O_TMPFILE files")
    target = tmp_path / "w.safetensors"
    target.write_bytes(b"old")
    kill_9_mid_write(target, unnamed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]
    assert target.read_bytes() == b"old"
    kill_9_mid_write(tmp_path / "new.safetensors", unnamed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


def test_kill_9_without_unnamed_files_leaves_a_temporary_the_next_run_removes(tmp_path):
    """The fallback (no O_TMPFILE): a named temporary file, removed by the next write."""
    target = tmp_path / "w.safetensors"
    pid = kill_9_mid_write(target, unnamed=False)
    left = leftovers(tmp_path)
    assert len(left) == 1 and left[0].startswith(f"{TMP_PREFIX}{pid}-"), left
    assert left[0].endswith("-w.safetensors")
    done = subprocess.run(
        [sys.executable, "-m", "xinit.cli", "init", "lenet", "--out", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    assert leftovers(tmp_path) == []
    assert load_checkpoint(target)["conv1.weight"].shape == (6, 3, 5, 5)


def test_a_refused_link_falls_back_to_a_named_copy(tmp_path, monkeypatch):
    """Where the unnamed file cannot be linked (no /proc, a refusing file system), its bytes
    are copied to a named temporary file and renamed: the same file, nothing left over."""
    if not supports_unnamed_files(tmp_path):
        pytest.skip("this file system makes no O_TMPFILE files")
    from xinit.checkpoints import atomic

    monkeypatch.setattr(atomic, "_link", lambda fd, path: False)
    path = tmp_path / "w.safetensors"
    save_checkpoint(small_state(), path)
    assert load_checkpoint(path)["conv.weight"].shape == (4, 3, 3, 3)
    assert leftovers(tmp_path) == []


# ---- modes and bytes ---------------------------------------------------------------------
@pytest.mark.parametrize("suffix", FORMATS)
def test_an_existing_file_keeps_its_mode_and_a_new_one_gets_the_umask(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    old_mask = os.umask(0o022)
    try:
        save_checkpoint(small_state(), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        path.chmod(0o640)
        save_checkpoint(small_state(8), path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert load_checkpoint(path)["conv.weight"].shape == (8, 3, 3, 3)
    finally:
        os.umask(old_mask)


def test_a_failed_write_through_atomic_write_names_the_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"old")

    def crash(f):
        f.write(b"half")
        raise RuntimeError("device vanished")

    with pytest.raises(CheckpointWriteError, match=r"cannot write .*w\.bin: RuntimeError: device"):
        atomic_write(path, crash)
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_init_writes_the_same_bytes_every_run(tmp_path, capsys):
    """safetensors orders its metadata at random (per write); xinit sorts the header."""
    outs = []
    for i in range(3):
        out = tmp_path / f"w{i}.safetensors"
        code, err = cli(capsys, "init", "lenet", "--out", str(out), "--format", "json")
        assert code == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
