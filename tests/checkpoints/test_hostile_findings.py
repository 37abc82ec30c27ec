"""Hostile-input findings, each kept as a test: bfloat16 tensors handed to
``xinit.port`` in a dict, safetensors files whose tensors share bytes, object arrays given to
``save_checkpoint``, and inputs of the wrong shape or dtype given to ``xinit.run``. (Writes
killed with SIGKILL are in ``test_write_faults.py``.)"""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from helpers import installed, require_backend

import xinit
from xinit import SpecError, port
from xinit.blocks import Sequential
from xinit.checkpoints import (
    CheckpointError,
    CheckpointWriteError,
    load_checkpoint,
    save_checkpoint,
)
from xinit.layers import Embedding, Linear


# ---- bfloat16 tensors in a dict ------------------------------------------------------------
def torch_bf16_lenet():
    require_backend("torch")
    module = xinit.build("lenet", "torch", seed=1)
    return {k: v.detach().bfloat16() for k, v in module.state_dict().items()}


def test_a_dict_of_torch_bfloat16_tensors_ports_as_the_pt_file_does(tmp_path):
    import torch

    state = torch_bf16_lenet()
    path = tmp_path / "bf16.pt"
    torch.save(state, path)
    from_file = port(path, "lenet", src="torch", dst="paddle")
    from_dict = port(state, "lenet", src="torch", dst="paddle")
    assert list(from_dict) == list(from_file)
    for key, value in from_file.items():
        assert from_dict[key].dtype == value.dtype == np.float32, key
        np.testing.assert_array_equal(from_dict[key], value, err_msg=key)
    # widened exactly: every value is the bfloat16 value itself
    want = state["fc1.weight"].float().numpy().T  # paddle keeps Linear weights (in, out)
    np.testing.assert_array_equal(from_dict["fc1.weight"], want)


def test_a_dict_of_paddle_bfloat16_tensors_is_widened_not_read_as_its_bits():
    """Paddle hands bfloat16 to numpy as uint16 bit patterns; those must not pass for ints."""
    require_backend("paddle")
    import paddle

    module = xinit.build("lenet", "paddle", seed=2)
    state = {k: v.astype("bfloat16") for k, v in module.state_dict().items()}
    out = port(state, "lenet", src="paddle", dst="torch")
    want = state["conv1.weight"].astype("float32").numpy()
    assert out["conv1.weight"].dtype == np.float32
    np.testing.assert_array_equal(out["conv1.weight"], want)
    assert isinstance(paddle.bfloat16, paddle.dtype)


# ---- safetensors tensors that overlap ----------------------------------------------------
def rewrite_header(path, edit) -> None:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + size])
    edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size :])


def test_safetensors_tensors_that_share_bytes_are_refused_by_name(tmp_path):
    from safetensors import SafetensorError
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "overlap.safetensors"
    a = np.arange(8, dtype=np.float32)
    save_file({"a": a, "b": np.zeros(4, np.float32), "c": np.ones(2, np.float32)}, str(path))
    assert set(load_checkpoint(path)) == {"a", "b", "c"}  # the honest file reads

    def point_b_into_a(header):
        start = header["a"]["data_offsets"][0]
        header["b"]["data_offsets"] = [start + 8, start + 24]  # a's values 2..5

    rewrite_header(path, point_b_into_a)
    with pytest.raises(SafetensorError):  # safetensors' own loader refuses the file
        load_file(str(path))
    with pytest.raises(CheckpointError, match=r"'a' \(bytes .*\) and 'b' \(bytes .*\) overlap"):
        load_checkpoint(path)


def test_empty_safetensors_tensors_may_share_an_offset(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "empty.safetensors"
    save_file({"a": np.zeros((0, 3), np.float32), "b": np.ones(2, np.float32)}, str(path))
    got = load_checkpoint(path)
    assert got["a"].shape == (0, 3) and got["b"].tolist() == [1.0, 1.0]


# ---- object arrays are never written -------------------------------------------------------
WRITABLE = [".safetensors", ".pdparams"] + [
    s for s, fw in ((".pt", "torch"), (".msgpack", "flax")) if fw in installed()
]


@pytest.mark.parametrize("suffix", WRITABLE)
def test_save_checkpoint_refuses_an_object_array_naming_its_key(tmp_path, suffix):
    path = tmp_path / f"w{suffix}"
    state = {"ok": np.zeros(3, np.float32), "bad": np.array([1.0, "os.system"], dtype=object)}
    with pytest.raises(CheckpointWriteError, match=r"'bad': dtype .*not a plain numeric type"):
        save_checkpoint(state, path)
    assert list(tmp_path.iterdir()) == []


# ---- xinit.run on inputs that do not fit -------------------------------------------------
@pytest.mark.parametrize("framework", ["torch", "paddle", "flax"])
def test_run_names_the_layer_and_shapes_of_an_input_that_does_not_fit(framework):
    require_backend(framework)
    module = xinit.build("lenet", framework)
    ok = np.zeros((2, 3, 32, 32), np.float32)
    assert np.asarray(xinit.run(module, ok)).shape == (2, 10)
    with pytest.raises(SpecError, match=r"conv1: Conv expects 3 input channels; got 1 "):
        xinit.run(module, np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(SpecError, match=r"\(2, 3, 8, 8\)"):  # too small for two 5x5 convs
        xinit.run(module, np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(SpecError, match=r"conv1 \(conv\) computes in float32; got a float64"):
        xinit.run(module, ok.astype(np.float64))
    for dtype in (np.int64, np.complex64, np.str_):
        with pytest.raises(SpecError, match="run: "):
            xinit.run(module, ok.astype(dtype))


def test_run_wants_token_ids_for_an_embedding():
    require_backend("torch")
    module = xinit.build(Sequential(("wte", Embedding(50, 8)), ("head", Linear(8, 3))), "torch")
    ids = np.array([[1, 2, 3]], np.int64)
    assert xinit.run(module, ids).shape == (1, 3, 3)
    with pytest.raises(SpecError, match=r"wte \(embedding\) takes integer token ids; got float32"):
        xinit.run(module, ids.astype(np.float32))
