"""Checkpoint files: .pdparams, .pt, safetensors, flax msgpack; safe loading; atomic writes."""

from __future__ import annotations

import os
import pickle
import subprocess

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit.checkpoints import (
    PADDLE_BIG_PARAMS,
    PADDLE_NAME_TABLE,
    CheckpointError,
    CheckpointWriteError,
    UnsafeCheckpointError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from xinit.models import lenet
from xinit.state import load_state_dict, state_dict

SUFFIX = {"paddle": ".pdparams", "torch": ".pt", "safetensors": ".safetensors", "flax": ".msgpack"}
NEEDS = {"paddle": None, "torch": "torch", "safetensors": "safetensors", "flax": "flax"}


def sample_state() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "conv1.weight": rng.standard_normal((6, 3, 5, 5)).astype(np.float32),
        "conv1.bias": rng.standard_normal(6).astype(np.float32),
        "bn.running_var": rng.random(4).astype(np.float32),
        "bn.num_batches_tracked": np.array(12, dtype=np.int64),
        "fc.weight": rng.standard_normal((3, 4)).astype(np.float64),
        "head.0.scale": rng.standard_normal(2).astype(np.float16),
    }


def assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


@pytest.mark.parametrize("fmt", list(SUFFIX))
def test_write_read_round_trip_keeps_values_and_dtypes(tmp_path, fmt):
    if NEEDS[fmt]:
        pytest.importorskip(NEEDS[fmt])
    path = tmp_path / f"model{SUFFIX[fmt]}"
    state = sample_state()
    save_checkpoint(state, path)
    assert_same(load_checkpoint(path), state)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_reads_what_paddle_save_writes(tmp_path):
    require_backend("paddle")
    import paddle

    m = xinit.build(lenet(), "paddle", rng="xinit")
    path = tmp_path / "lenet.pdparams"
    paddle.save(m.state_dict(), str(path))
    got = load_checkpoint(path)
    want = {k: v.numpy() for k, v in m.state_dict().items()}
    assert_same(got, want)
    assert PADDLE_NAME_TABLE not in got
    # protocol 2 (older PaddleOCR files): bytes come through _codecs.encode
    path2 = tmp_path / "lenet_p2.pdparams"
    paddle.save(m.state_dict(), str(path2), protocol=2)
    assert_same(load_checkpoint(path2), want)


def test_paddle_load_reads_what_we_write(tmp_path):
    require_backend("paddle")
    import paddle

    src = xinit.build(lenet(), "paddle", rng="xinit")
    want = {k: v.numpy() for k, v in src.state_dict().items()}
    path = tmp_path / "ours.pdparams"
    save_checkpoint(want, path)
    loaded = paddle.load(str(path))
    assert all(isinstance(v, paddle.Tensor) for v in loaded.values())
    dst = xinit.build(lenet(), "paddle", seed=9, rng="xinit")
    missing, unexpected = dst.set_state_dict(loaded)
    assert not missing and not unexpected
    assert_same({k: v.numpy() for k, v in dst.state_dict().items()}, want)


def test_torch_load_reads_what_we_write(tmp_path):
    require_backend("torch")
    import torch

    src = xinit.build(lenet(), "torch", rng="xinit")
    path = tmp_path / "ours.pt"
    save_checkpoint(state_dict(src), path)
    dst = xinit.build(lenet(), "torch", seed=9, rng="xinit")
    dst.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert_same(state_dict(dst), state_dict(src))


def test_flax_file_is_the_nnx_pure_dict(tmp_path):
    require_backend("flax")
    from flax import nnx, serialization

    from xinit import port

    src = xinit.build(lenet(), "flax", rng="xinit")
    native = port(state_dict(src), lenet(), src="neutral", dst="flax")
    path = tmp_path / "lenet.msgpack"
    save_checkpoint(native, path)
    restored = serialization.msgpack_restore(path.read_bytes())
    dst = xinit.build(lenet(), "flax", seed=9, rng="xinit")
    graphdef, st = nnx.split(dst)
    nnx.replace_by_pure_dict(st, restored)
    nnx.update(dst, st)
    assert_same(state_dict(dst), state_dict(src))


# ---- loading never runs code ----------------------------------------------------------------
class _System:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('os').system('touch {self.marker}')",))


class _Popen:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (subprocess.Popen, (["touch", str(self.marker)],))


@pytest.mark.parametrize("payload", [_System, _Eval, _Popen], ids=["os.system", "eval", "Popen"])
def test_malicious_pdparams_is_refused_without_running(tmp_path, payload):
    marker = tmp_path / "pwned"
    state = {"conv1.weight": np.zeros((2, 2), np.float32), "evil": payload(marker)}
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=4))
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and "refused" in msg
    named = {_System: "system", _Eval: "builtins.eval", _Popen: "subprocess.Popen"}[payload]
    assert named in msg  # the forbidden global (posix.system / nt.system), or eval's form
    assert not marker.exists()


class _NumpyCall:
    """A numpy function that writes ``marker`` when called, pickled as ``func(marker, ...)``."""

    def __init__(self, func, marker):
        self.func, self.marker = func, marker

    def __reduce__(self):
        if self.func is np.memmap:
            return (np.memmap, (str(self.marker), np.uint8, "w+", 0, (4,)))
        return (self.func, (str(self.marker), np.zeros(3, np.float32)))


@pytest.mark.parametrize("func", [np.save, np.savetxt, np.memmap], ids=lambda f: f.__name__)
def test_numpy_globals_that_are_not_array_reconstructors_are_refused(tmp_path, func):
    """numpy.save(path, array) in a .pdparams would write a file while loading if numpy's
    functions were trusted as a whole: refused by name before the call, nothing written."""
    marker = tmp_path / "written.npy"
    state = {"conv1.weight": np.zeros((2, 2), np.float32), "evil": _NumpyCall(func, marker)}
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=rf"the global numpy\.{func.__name__}\b"):
        load_checkpoint(path)
    assert not marker.exists() and not marker.with_suffix("").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pdparams"]


def test_malicious_pdparams_is_refused_by_port_too(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"conv1.weight": _System(marker)}, protocol=2))
    with pytest.raises(UnsafeCheckpointError, match=r"the global (posix|nt)\.system"):
        xinit.port(path, lenet(), dst="neutral")
    assert not marker.exists()


def test_malicious_torch_file_is_refused_without_running(tmp_path):
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(2), "evil": _System(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_checkpoint(path)
    assert not marker.exists()


def test_paddle_tensor_forms_and_big_param_slices(tmp_path):
    """Paddle pickles a bare DenseTensor as eval('data', {'data': array}) (allowed, never
    evaluated) and splits huge tensors into slices under UnpackBigParamInfor@@."""
    w = np.arange(12, dtype=np.float32).reshape(3, 4)

    class DenseTensorForm:
        def __reduce__(self):
            return (eval, ("data", {"data": w}))

    state = {
        "a": DenseTensorForm(),
        "b@@.0": w.ravel()[:5],
        "b@@.1": w.ravel()[5:],
        PADDLE_BIG_PARAMS: {"b": {"OriginShape": (3, 4), "slices": ["b@@.0", "b@@.1"]}},
        "c": ("linear_0.w_0", w),  # a pickled paddle Tensor: (name, array)
    }
    path = tmp_path / "forms.pdparams"
    path.write_bytes(pickle.dumps(state, protocol=2))
    got = load_checkpoint(path)
    assert set(got) == {"a", "b", "c"}
    for k in got:
        assert np.array_equal(got[k], w)


# ---- truncated and corrupted files -----------------------------------------------------------
@pytest.mark.parametrize("fmt", list(SUFFIX))
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_damaged_files_give_a_clear_error_naming_the_file(tmp_path, fmt, damage):
    if NEEDS[fmt]:
        pytest.importorskip(NEEDS[fmt])
    path = tmp_path / f"model{SUFFIX[fmt]}"
    save_checkpoint(sample_state(), path)
    raw = path.read_bytes()
    if damage == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(bytes(range(256)) * 8)
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, UnsafeCheckpointError) or damage == "garbage"


def test_missing_file_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(
        ValueError, match="cannot tell the checkpoint format from the suffix '.xyz'"
    ):
        load_checkpoint(tmp_path / "weights.xyz")
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        save_checkpoint({}, tmp_path / "w.pt", format="onnx")


def test_non_array_entries_are_refused(tmp_path):
    path = tmp_path / "meta.pdparams"
    path.write_bytes(pickle.dumps({"w": np.zeros(2, np.float32), "name": "resnet"}, protocol=4))
    with pytest.raises(CheckpointError, match=r"entries that are not arrays: name \(str\)"):
        load_checkpoint(path)


# ---- atomic writes -----------------------------------------------------------------------
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "model.safetensors"
    pytest.importorskip("safetensors")
    save_checkpoint(sample_state(), path)
    before = path.read_bytes()

    def crash(f):
        f.write(b"half a checkpoint")
        raise RuntimeError("disk full")

    with pytest.raises(CheckpointWriteError, match="disk full"):
        atomic_write(path, crash)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_a_failed_save_checkpoint_keeps_the_old_file(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    save_checkpoint(sample_state(), path)
    before = path.read_bytes()
    bad = {"w": torch.zeros(2), "meta": np.array([{"epoch": 3}], dtype=object)}
    with pytest.raises(CheckpointWriteError, match="'meta': dtype"):
        save_checkpoint(bad, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    # bfloat16, which numpy lacks, is widened exactly to float32 (as reading a file does)
    save_checkpoint({"w": torch.tensor([1.5, -3.0e38], dtype=torch.bfloat16)}, path)
    saved = torch.load(path, weights_only=True)["w"]
    assert saved.dtype == torch.float32
    assert saved.tolist() == torch.tensor([1.5, -3.0e38], dtype=torch.bfloat16).float().tolist()


def test_load_into_a_module_from_each_format(tmp_path):
    """safetensors holds the neutral state: write it from one backend, load into another."""
    require_backend("torch")
    require_backend("paddle")
    pytest.importorskip("safetensors")
    src = xinit.build(lenet(), "torch", rng="xinit")
    path = tmp_path / "lenet.safetensors"
    save_checkpoint(state_dict(src), path)
    dst = xinit.build(lenet(), "paddle", seed=4, rng="xinit")
    load_state_dict(dst, load_checkpoint(path))
    assert_same(state_dict(dst), state_dict(src))
