"""Probes with hostile and careless input (issue 15, part 1): crafted checkpoints, sizes that
inflate, nesting, names that collide, huge requests, seeds and hyper-parameters that would
silently become something else. Every file is built by hand in tmp_path and read for real."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit import models
from xinit.checkpoints import (
    PADDLE_BIG_PARAMS,
    CheckpointError,
    UnsafeCheckpointError,
    load_checkpoint,
    save_checkpoint,
)

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct


class Reduced:
    """Pickles as ``func(*args)`` then ``BUILD state``: a crafted object, by hand."""

    def __init__(self, func, args, state=None):
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


def pickled_array(shape, dtype, data) -> Reduced:
    """An ndarray exactly as numpy pickles one, with a chosen dtype object and data."""
    return Reduced(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))


def write_pickle(path, obj):
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


# ---- 1. dtypes with object fields ----------------------------------------------------------
def test_pickled_dtype_hiding_an_object_field_is_refused_naming_the_key(tmp_path):
    """numpy.dtype + BUILD could make a 'float64' whose fields hold an object: reading it
    crashed the process. Only whitelisted type codes are built; the key is named."""
    hidden = Reduced(
        np.dtype, ("f8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0)
    )
    path = write_pickle(
        tmp_path / "obj.pdparams",
        {"ok": np.ones(2, np.float32), "conv1.weight": pickled_array((2,), hidden, bytes(16))},
    )
    with pytest.raises(UnsafeCheckpointError, match=r"conv1\.weight.*fields"):
        load_checkpoint(path)


@pytest.mark.parametrize("code", ["O", "V8", "U2", "M8[s]"])
def test_non_numeric_dtype_codes_are_refused(tmp_path, code):
    dtype = Reduced(np.dtype, (code, False, True), (3, "|", None, None, None, -1, -1, 0))
    path = write_pickle(tmp_path / "w.pdparams", {"w": pickled_array((1,), dtype, bytes(8))})
    with pytest.raises(UnsafeCheckpointError, match="w: dtype"):
        load_checkpoint(path)


def test_plain_dtypes_still_load_in_both_byte_orders(tmp_path):
    w = np.arange(6, dtype=">f4").reshape(2, 3)
    state = {"w": w, "i": np.arange(3, dtype=np.int64), "b": np.array([True, False])}
    got = load_checkpoint(write_pickle(tmp_path / "w.pdparams", state))
    for k, v in state.items():  # values equal; byte order native, as numpy's own unpickling
        assert np.array_equal(got[k], v) and got[k].dtype == v.dtype.newbyteorder("="), k
        assert type(got[k]) is np.ndarray


def test_port_refuses_a_dict_array_whose_dtype_hides_an_object():
    sneaky = np.zeros(4, np.dtype([("x", "f8"), ("o", "O")]))
    with pytest.raises(UnsafeCheckpointError, match=r"conv1\.weight"):
        xinit.port({"conv1.weight": sneaky}, models.lenet(), src="torch", dst="neutral")


# ---- 2. size limits ------------------------------------------------------------------------
def zero_stride_pdparams(path):
    """224 bytes that declared a 512 MiB tensor: a zero-stride slice joined as a big param."""
    n = 1 << 26
    view = Reduced(np.ndarray, ((n,), np.dtype("f8"), b"\0" * 8, 0, (0,)))
    big = {"w": {"OriginShape": [n], "slices": ["w@@.0"]}}
    return write_pickle(path, {"w@@.0": view, PADDLE_BIG_PARAMS: big})


def test_zero_stride_slices_are_refused(tmp_path):
    path = zero_stride_pdparams(tmp_path / "zero.pdparams")
    assert path.stat().st_size < 400
    with pytest.raises(UnsafeCheckpointError, match="numpy.ndarray"):
        load_checkpoint(path)


def test_zero_stride_file_is_refused_before_allocating(tmp_path):
    """Measured in a fresh process: the peak RSS while refusing stays tens of MB, not 512 MiB."""
    path = zero_stride_pdparams(tmp_path / "zero.pdparams")
    script = textwrap.dedent(
        f"""
        import resource
        from xinit.checkpoints import CheckpointError, load_checkpoint
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_checkpoint({str(path)!r})
        except CheckpointError:
            pass
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 32 << 20


def test_memo_bomb_is_refused(tmp_path):
    """One 256 KiB bytes object referenced by 64 arrays (pickle's memo): 16 MiB from a
    ~256 KiB file, over the 4x-file-size limit; refused while reading."""
    data = bytes(256 << 10)
    u1 = Reduced(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 0))
    state = {f"k{i}": pickled_array((len(data),), u1, data) for i in range(64)}
    path = write_pickle(tmp_path / "memo.pdparams", state)
    assert path.stat().st_size < 300 << 10
    with pytest.raises(CheckpointError, match="over the limit"):
        load_checkpoint(path)
    assert len(load_checkpoint(path, max_bytes=64 << 20)) == 64  # explicit override


def test_one_array_under_many_names_is_refused(tmp_path):
    w = np.zeros(256 << 10, np.uint8)
    path = write_pickle(tmp_path / "tied.pdparams", {f"k{i}": w for i in range(64)})
    with pytest.raises(CheckpointError, match="over the limit"):
        load_checkpoint(path)


def test_deflated_torch_bomb_is_refused_before_torch_load(tmp_path):
    require_backend("torch")
    import torch

    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1 << 22)}, plain)  # 16 MiB of zeros, stored
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    assert bomb.stat().st_size < 200 << 10
    with pytest.raises(CheckpointError, match="record .* over the limit"):
        load_checkpoint(bomb)


def test_safetensors_header_is_checked_against_the_file(tmp_path):
    header = {"w": {"dtype": "F32", "shape": [1 << 20, 1 << 20], "data_offsets": [0, 16]}}
    raw = json.dumps(header).encode()
    path = tmp_path / "lie.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(16))
    with pytest.raises(CheckpointError, match="data_offsets"):
        load_checkpoint(path)


# ---- 3. self-referencing and deeply nested pickles -----------------------------------------
def test_self_referencing_pickle_is_a_clean_error(tmp_path):
    d: dict = {"w": np.zeros(2, np.float32)}
    d["self"] = d
    with pytest.raises(CheckpointError, match="nested deeper|holds itself"):
        load_checkpoint(write_pickle(tmp_path / "self.pdparams", d))


def test_deeply_nested_pickle_is_a_clean_error(tmp_path):
    n = 100_000  # {"a": {"a": ... }}: opcodes written by hand (pickle.dumps would recurse)
    key = b"X" + struct.pack("<I", 1) + b"a"
    path = tmp_path / "deep.pdparams"
    path.write_bytes(b"\x80\x02" + (b"}" + key) * n + b"}" + b"s" * n + b".")
    with pytest.raises(CheckpointError, match="nested deeper"):
        load_checkpoint(path)


# ---- 5. names that collide when flattened --------------------------------------------------
def test_flat_and_nested_entries_with_one_name_are_an_error(tmp_path):
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    path = write_pickle(tmp_path / "dup.pdparams", {"conv1.weight": a, "conv1": {"weight": b}})
    with pytest.raises(CheckpointError, match=r"\['conv1\.weight'\] and \['conv1'\]\['weight'\]"):
        load_checkpoint(path)


def test_save_checkpoint_refuses_keys_that_become_one_name(tmp_path):
    a, b = np.zeros(2, np.float32), np.ones(2, np.float32)
    with pytest.raises(ValueError, match=r"1.*'1'"):
        save_checkpoint({1: a, "1": b}, tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()
