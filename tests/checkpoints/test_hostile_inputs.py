"""Probes with hostile and careless input: crafted checkpoints, sizes that
inflate, nesting, names that collide, huge requests, seeds and hyper-parameters that would
silently become something else. Every file is built by hand in tmp_path and read for real."""

from __future__ import annotations

import json
import pickle
import re
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit import init, models
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


def test_pickled_dtype_state_with_a_sub_array_is_refused(tmp_path):
    """A 'float64' whose pickled state declares a sub-array (the state's third item) is
    refused by key, like one declaring fields."""
    sub = Reduced(np.dtype, ("f8", False, True), (3, "|", (np.dtype("f8"), (2,)), None, None,
                                                  16, 8, 0))  # fmt: skip
    path = write_pickle(tmp_path / "sub.pdparams", {"w": pickled_array((1,), sub, bytes(16))})
    with pytest.raises(UnsafeCheckpointError, match=r"w: its pickled dtype carries fields or a"):
        load_checkpoint(path)


@pytest.mark.parametrize("code", ["O", "V8", "U2", "M8[s]"])
def test_non_numeric_dtype_codes_are_refused(tmp_path, code):
    dtype = Reduced(np.dtype, (code, False, True), (3, "|", None, None, None, -1, -1, 0))
    path = write_pickle(tmp_path / "w.pdparams", {"w": pickled_array((1,), dtype, bytes(8))})
    # the unpickler's refusal (the type code as pickled), never the later check of the
    # returned arrays (which would mean an object array was built from raw bytes first)
    want = rf"refused to load w: dtype '{re.escape(code)}' is not a plain numeric type"
    with pytest.raises(UnsafeCheckpointError, match=want):
        load_checkpoint(path)


def test_plain_dtypes_still_load_in_both_byte_orders(tmp_path):
    w = np.arange(6, dtype=">f4").reshape(2, 3)
    state = {"w": w, "i": np.arange(3, dtype=np.int64), "b": np.array([True, False])}
    state.update(h=np.array([1.5, -2.0], ">f2"), s=np.array([1, -300], ">i2"))  # 2-byte too
    got = load_checkpoint(write_pickle(tmp_path / "w.pdparams", state))
    for k, v in state.items():  # values equal; byte order native, as numpy's own unpickling
        assert np.array_equal(got[k], v) and got[k].dtype == v.dtype.newbyteorder("="), k
        assert type(got[k]) is np.ndarray


def test_port_refuses_a_dict_array_whose_dtype_hides_an_object():
    sneaky = np.zeros(4, np.dtype([("x", "f8"), ("o", "O")]))
    with pytest.raises(UnsafeCheckpointError, match=r"conv1\.weight: dtype .* not a plain numeric"):
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
    with pytest.raises(UnsafeCheckpointError, match=r"calls numpy\.ndarray\(\.\.\.\) directly"):
        load_checkpoint(path)


def peak_growth_while_loading(path) -> tuple[int, str]:
    """Load ``path`` in a fresh process: (growth of its peak RSS in bytes, the error)."""
    script = textwrap.dedent(
        f"""
        import resource
        from xinit.checkpoints import CheckpointError, load_checkpoint
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            load_checkpoint({str(path)!r})
            error = "loaded"
        except CheckpointError as err:
            error = str(err)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) * 1024)
        print(error)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    growth, error = out.stdout.split("\n", 1)
    return int(growth), error.strip()


def test_zero_stride_file_is_refused_before_allocating(tmp_path):
    """Measured in a fresh process: the peak RSS while refusing stays tens of MB, not 512 MiB."""
    growth, error = peak_growth_while_loading(zero_stride_pdparams(tmp_path / "zero.pdparams"))
    assert growth < 32 << 20
    assert "calls numpy.ndarray(...) directly" in error


# The budget's check while reading, and the check of the returned entries after it.
WHILE_READING = r"would bring the data read to [\d,]+ bytes, over the limit .* refused before"
AFTER_READING = r"entries hold [\d,]+ bytes, over the limit"


def memo_bomb(path, data: bytes | str, count: int):
    """One buffer referenced by ``count`` arrays (pickle's memo), protocol 2. A ``str`` is
    what a Python 2 pickle holds as an array's data: each array encodes it to new bytes."""
    u1 = Reduced(np.dtype, ("u1", False, True), (3, "|", None, None, None, -1, -1, 0))
    state = {f"k{i}": pickled_array((len(data),), u1, data) for i in range(count)}
    return write_pickle(path, state)


def test_memo_bomb_is_refused(tmp_path):
    """One 256 KiB bytes object referenced by 64 arrays: 16 MiB from a ~256 KiB file, over
    the 4x-file-size limit; refused by the running total while reading."""
    path = memo_bomb(tmp_path / "memo.pdparams", bytes(256 << 10), 64)
    assert path.stat().st_size < 300 << 10
    with pytest.raises(CheckpointError, match=WHILE_READING) as info:
        load_checkpoint(path)
    assert not re.search(AFTER_READING, str(info.value))
    assert len(load_checkpoint(path, max_bytes=64 << 20)) == 64  # explicit override


def test_memo_bomb_is_refused_before_it_allocates(tmp_path):
    """A ~1 MiB protocol-2 file whose one string 512 arrays share would make 512 MiB: the
    running total stops it after a few arrays (peak growth measured in a fresh process, under
    32 MiB), with the message of the check made while reading."""
    path = memo_bomb(tmp_path / "memo.pdparams", "\0" * (1 << 20), 512)
    assert path.stat().st_size < (1 << 20) + (64 << 10)
    growth, error = peak_growth_while_loading(path)
    assert re.search(WHILE_READING, error), error
    assert growth < 32 << 20, f"peak grew by {growth / 2**20:.0f} MiB"


def test_one_array_under_many_names_is_refused(tmp_path):
    w = np.zeros(256 << 10, np.uint8)
    path = write_pickle(tmp_path / "tied.pdparams", {f"k{i}": w for i in range(64)})
    with pytest.raises(CheckpointError, match=AFTER_READING):  # one array read: 256 KiB
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


# ---- 4. huge requests are checked against available memory ---------------------------------
def test_huge_build_and_sample_are_refused_with_the_size_needed():
    require_backend("torch")
    from xinit import layers
    from xinit.memory import InsufficientMemoryError

    with pytest.raises(InsufficientMemoryError, match=r"needs 7\.28 TiB"):
        xinit.build(layers.Linear(10**6, 10**6), "torch")
    with pytest.raises(InsufficientMemoryError, match=r"needs 7\.28 TiB"):
        xinit.sample(init.Normal(), (10**6, 10**6), role="linear", framework="torch")


def test_cli_stats_with_a_huge_shape_is_a_clean_error(capsys):
    require_backend("torch")
    from xinit.cli import main

    code = main(["stats", "--shape=1000000,1000000", "--role", "linear", "--backends", "torch"])
    assert code == 2
    assert "TiB of memory" in capsys.readouterr().err


# ---- 9. seeds and hyper-parameters that would silently become something else ---------------
@pytest.mark.parametrize("seed", [1.5, True, "1"])
def test_non_integer_seeds_are_refused(seed):
    require_backend("torch")
    with pytest.raises(ValueError, match="seed must be an integer"):
        xinit.build(models.lenet(), "torch", seed=seed)
    with pytest.raises(ValueError, match="seed must be an integer"):
        xinit.sample(init.Normal(), (4, 4), role="linear", framework="torch", seed=seed)


def test_numpy_integer_seeds_still_work():
    require_backend("torch")
    a = xinit.sample(init.Normal(), (4, 4), role="linear", framework="torch", seed=np.int64(3))
    b = xinit.sample(init.Normal(), (4, 4), role="linear", framework="torch", seed=3)
    assert np.array_equal(a, b)


def test_orthogonal_gain_that_overflows_float32_is_refused():
    with pytest.raises(ValueError, match="not finite in float32"):
        init.Orthogonal(gain=1e308).resolve((8, 8), "linear")
    assert init.Orthogonal(gain=2.0).resolve((8, 8), "linear").gain == 2.0


def test_kaiming_slope_that_overflows_is_a_value_error():
    with pytest.raises(ValueError, match="too large"):
        init.KaimingNormal(nonlinearity="leaky_relu", a=1e200).resolve((8, 8), "linear")


# ---- 10. square weights transposed on the strength of src ----------------------------------
def test_square_weights_transposed_on_src_alone_are_reported():
    from xinit import layers

    spec = layers.Linear(8, 8)
    w = np.arange(64, dtype=np.float32).reshape(8, 8)
    out = xinit.port(
        {"weight": w, "bias": np.zeros(8, np.float32)}, spec, src="paddle", dst="torch"
    )
    assert out.report.square == 1
    assert "1 square weight transposed on the strength of src=paddle" in out.report.summary()
    assert np.array_equal(out["weight"], w.T)
    rect = layers.Linear(8, 4)  # (in, out) = (8, 4): the shape tells, nothing to say
    state = {"weight": np.zeros((8, 4), np.float32), "bias": np.zeros(4, np.float32)}
    assert xinit.port(state, rect, src="paddle", dst="torch").report.square == 0


# ---- 15. messages that misled ----------------------------------------------------------------
@pytest.mark.parametrize("protocol", [0, 1, 4, 5])
def test_other_pickle_protocols_report_torchs_cause_and_no_unsafe_advice(tmp_path, protocol):
    require_backend("torch")
    import torch

    path = tmp_path / "old.pt"
    torch.save({"w": torch.zeros(2)}, path, pickle_protocol=protocol)
    with pytest.raises(CheckpointError, match="Unsupported operand") as info:
        load_checkpoint(path)
    assert not isinstance(info.value, UnsafeCheckpointError)
    assert "False" not in str(info.value)


def safetensors_file(path, dtype_name, bits: np.ndarray, shape, name="w"):
    header = {name: {"dtype": dtype_name, "shape": list(shape), "data_offsets": [0, bits.nbytes]}}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + bits.tobytes())
    return path


def test_bf16_and_fp16_safetensors_load_and_port_to_the_models_dtype(tmp_path):
    from xinit import layers

    w = np.array([[1.5, -2.0], [0.25, 3.0]], np.float32)  # exact in bf16 and fp16
    bf16 = (w.view(np.uint32) >> 16).astype("<u2")
    got = load_checkpoint(safetensors_file(tmp_path / "b.safetensors", "BF16", bf16, (2, 2)))
    assert got["w"].dtype == np.float32 and np.array_equal(got["w"], w)
    assert "1 bfloat16 tensors widened exactly to float32" in got.notes
    path = safetensors_file(tmp_path / "h.safetensors", "F16", w.astype("<f2"), (2, 2), "weight")
    spec = layers.Linear(2, 2, bias=False)
    out = xinit.port(path, spec, dst="torch")
    assert out["weight"].dtype == np.float32 and np.array_equal(out["weight"], w)
    assert "1 converted to the model's dtype: weight: float16 -> float32" in out.report.summary()


def test_permission_errors_are_not_called_corruption(tmp_path):
    import os

    path = save_checkpoint({"w": np.zeros(2, np.float32)}, tmp_path / "w.safetensors")
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):
            pytest.skip("running as a user who can read mode-0 files (root)")
        with pytest.raises(CheckpointError, match="cannot read the file: Permission denied") as e:
            load_checkpoint(path)
        assert "corrupted" not in str(e.value)
    finally:
        os.chmod(path, 0o644)


def test_build_accepts_a_zoo_name_and_says_pass_a_spec_otherwise():
    require_backend("torch")
    a = xinit.build("lenet", "torch", seed=1)
    b = xinit.build(models.lenet(), "torch", seed=1)
    assert all(
        np.array_equal(x.detach(), y.detach()) for x, y in zip(a.parameters(), b.parameters())
    )
    with pytest.raises(TypeError, match="pass a spec"):
        xinit.build(3, "torch")


# ---- 16. wrapper checkpoints -----------------------------------------------------------------
def lenet_torch_state() -> dict[str, np.ndarray]:
    require_backend("torch")
    m = xinit.build(models.lenet(), "torch", seed=0)
    return {k: v.detach().numpy() for k, v in m.state_dict().items()}


def test_state_dict_wrapper_with_metadata_is_unwrapped_with_a_report_line(tmp_path):
    import torch

    state = lenet_torch_state()
    wrapped = {"state_dict": {k: torch.from_numpy(v) for k, v in state.items()}, "epoch": 3,
               "arch": "lenet"}  # fmt: skip
    path = tmp_path / "ckpt.pt"
    torch.save(wrapped, path)
    out = xinit.port(path, "lenet", dst="neutral")
    assert set(out) == set(state)
    assert "unwrapped the checkpoint's 'state_dict' entry (left aside: epoch, arch)" in (
        out.report.summary()
    )


def test_data_parallel_prefix_is_stripped_with_a_report_line():
    state = {f"module.{k}": v for k, v in lenet_torch_state().items()}
    out = xinit.port({"model": state}, "lenet", src="torch", dst="neutral")
    summary = out.report.summary()
    assert "unwrapped the checkpoint's 'model' entry" in summary
    assert "stripped DataParallel's 'module.' prefix from all 10 keys" in summary


def test_cli_port_prefix_map_and_drop_prefix(tmp_path, capsys):
    import torch

    from xinit.cli import main

    state = {f"student.{k}": torch.from_numpy(v) for k, v in lenet_torch_state().items()}
    state["teacher.fc.weight"] = torch.zeros(2, 2)
    path = tmp_path / "distill.pt"
    torch.save(state, path)
    out = tmp_path / "out.safetensors"
    argv = ["port", str(path), str(out), "--model", "lenet", "--to", "neutral", "--no-parity"]
    assert main(argv) == 2  # the prefixes do not fit the spec
    capsys.readouterr()
    assert main([*argv, "--prefix-map", "student.=", "--drop-prefix", "teacher."]) == 0
    assert set(load_checkpoint(out)) == {k.removeprefix("student.") for k in state} - {
        "teacher.fc.weight"
    }


def test_the_target_model_bounds_what_reading_a_file_may_allocate(tmp_path):
    """A file far larger than the model it is ported to is refused before its arrays are
    made (12 MB of data against LeNet's 0.25 MB), with the reason; max_bytes overrides."""
    path = tmp_path / "big.safetensors"
    save_checkpoint({"junk": np.zeros(3_000_000, np.float32)}, path)
    with pytest.raises(CheckpointError, match=r"4x the model's 248,024 bytes") as info:
        xinit.port(path, xinit.models.lenet(), dst="torch")
    assert re.search(WHILE_READING, str(info.value))  # not the check after reading
    with pytest.raises(xinit.PortError, match="junk"):  # read, then refused as unexpected
        xinit.port(path, xinit.models.lenet(), dst="torch", max_bytes=1 << 26)
