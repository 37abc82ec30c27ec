"""xinit.port: raw checkpoints between conventions, with strict accounting."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit import PortError, models, port
from xinit.blocks import param_specs
from xinit.checkpoints import load_checkpoint, save_checkpoint
from xinit.state import load_state_dict, state_dict


def paddle_lenet_state() -> dict[str, np.ndarray]:
    require_backend("paddle")
    m = xinit.build(models.lenet(), "paddle", rng="xinit")
    return {k: v.numpy() for k, v in m.state_dict().items()}


def assert_bits(a, b, key=""):
    assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), key


# ---- PaddleOCR ResNet45 .pdparams -> torch / flax -------------------------------------------
@pytest.fixture(scope="module")
def resnet45_pdparams(tmp_path_factory):
    require_backend("paddle")
    import paddle

    from xinit import randomize_batchnorm

    m = xinit.build(models.resnet45(), "paddle", rng="xinit")
    randomize_batchnorm(m, seed=3)
    path = tmp_path_factory.mktemp("ocr") / "rec_resnet45.pdparams"
    paddle.save(m.state_dict(), str(path))
    return path, state_dict(m)


def test_paddleocr_resnet45_to_torch_loads_strictly(resnet45_pdparams):
    require_backend("torch")
    import torch

    path, neutral = resnet45_pdparams
    spec = models.resnet45()
    out = port(path, spec, dst="torch")  # src from the suffix
    r = out.report
    assert r.src == "paddle" and len(r.moved) == 250
    assert r.renamed == 100  # _mean/_variance -> running_mean/running_var, 50 BatchNorms
    assert r.relaid == 0  # no Linear in ResNet45
    assert len(r.filled) == 50 and all(k.endswith("num_batches_tracked") for k in r.filled)
    assert list(out) == list(param_specs(spec))
    m = xinit.build(spec, "torch", rng="xinit", seed=7)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in out.items()}, strict=True)
    got = state_dict(m)
    for k, v in neutral.items():
        assert_bits(got[k], v, k)
    assert int(got["bn1.num_batches_tracked"]) == 0


def test_paddleocr_resnet45_to_flax(resnet45_pdparams):
    require_backend("flax")
    path, neutral = resnet45_pdparams
    spec = models.resnet45()
    out = port(path, spec, dst="flax")
    assert out.report.relaid == 50  # every conv kernel (50) -> HWIO
    assert out["conv1.kernel"].shape == (3, 3, 3, 32)
    assert "bn1.mean" in out and "bn1.var" in out and "bn1.scale" in out
    assert len(out.report.skipped) == 0 and not out.report.filled
    m = xinit.build(spec, "flax", rng="xinit", seed=7)
    load_state_dict(m, port(out, spec, src="flax", dst="neutral"))
    got = state_dict(m)
    for k, v in neutral.items():
        assert_bits(got[k], v, k)


# ---- a torchvision-format ResNet50 checkpoint ----------------------------------------------
TORCHVISION_RESNET50_KEYS = [  # a sample of torchvision's resnet50 state_dict keys
    "conv1.weight",
    "bn1.running_mean",
    "bn1.num_batches_tracked",
    "layer1.0.downsample.0.weight",
    "layer1.0.downsample.1.running_var",
    "layer3.5.conv3.weight",
    "layer4.2.bn3.num_batches_tracked",
    "fc.weight",
    "fc.bias",
]


@pytest.fixture(scope="module")
def resnet50_pth(tmp_path_factory):
    require_backend("torch")
    import torch

    from xinit import randomize_batchnorm

    m = xinit.build(models.resnet50(), "torch", rng="xinit")
    randomize_batchnorm(m, seed=5)
    with torch.no_grad():
        for name, buf in m.named_buffers():
            if name.endswith("num_batches_tracked"):
                buf.fill_(1234)
    path = tmp_path_factory.mktemp("tv") / "resnet50-0676ba61.pth"
    torch.save(m.state_dict(), path)
    return path, state_dict(m)


def test_torchvision_resnet50_loads_strictly_into_the_torch_build(resnet50_pth):
    import torch

    path, neutral = resnet50_pth
    sd = torch.load(path, weights_only=True)
    assert len(sd) == 320 and all(k in sd for k in TORCHVISION_RESNET50_KEYS)
    m = xinit.build(models.resnet50(), "torch", rng="xinit", seed=1)
    m.load_state_dict(sd, strict=True)
    m2 = xinit.build(models.resnet50(), "torch", rng="xinit", seed=2)
    report = load_state_dict(m2, load_checkpoint(path))
    assert len(report.loaded) == 320
    got = state_dict(m2)
    for k, v in neutral.items():
        assert_bits(got[k], v, k)


def test_torchvision_resnet50_ports_to_paddle(resnet50_pth):
    require_backend("paddle")
    import paddle

    path, neutral = resnet50_pth
    out = port(path, models.resnet50(), dst="paddle")
    r = out.report
    assert len(r.moved) == 320 - 53 and len(r.skipped) == 53  # counters: Paddle has none
    assert r.relaid == 1  # fc.weight transposed to (in, out)
    assert out["fc.weight"].shape == (2048, 1000)
    m = xinit.build(models.resnet50(), "paddle", rng="xinit", seed=1)
    missing, unexpected = m.set_state_dict({k: paddle.to_tensor(v) for k, v in out.items()})
    assert not missing and not unexpected
    got = state_dict(m)
    assert set(got) == {k for k in neutral if not k.endswith("num_batches_tracked")}
    for k, v in got.items():
        assert_bits(v, neutral[k], k)


def test_torchvision_resnet50_ports_to_flax(resnet50_pth, tmp_path):
    require_backend("flax")
    from flax import nnx

    path, neutral = resnet50_pth
    out = port(path, models.resnet50(), dst="flax")
    assert out["fc.kernel"].shape == (2048, 1000)
    assert out["layer2.0.conv2.kernel"].shape == (3, 3, 128, 128)
    flax_file = tmp_path / "resnet50.msgpack"
    save_checkpoint(out, flax_file)
    m = xinit.build(models.resnet50(), "flax", rng="xinit", seed=1)
    _, st = nnx.split(m)
    from flax import serialization

    nnx.replace_by_pure_dict(st, serialization.msgpack_restore(flax_file.read_bytes()))
    nnx.update(m, st)
    got = state_dict(m)
    for k, v in got.items():
        assert_bits(v, neutral[k], k)


# ---- strict accounting ------------------------------------------------------------------
def test_missing_key_is_listed():
    state = paddle_lenet_state()
    del state["conv2.bias"]
    with pytest.raises(PortError) as info:
        port(state, models.lenet(), src="paddle", dst="torch")
    assert info.value.missing == ["conv2.bias"] and "1 missing" in str(info.value)
    assert not info.value.unexpected and not info.value.mismatched


def test_extra_key_is_listed():
    state = paddle_lenet_state()
    state["fc4.weight"] = np.zeros((10, 10), np.float32)
    with pytest.raises(PortError) as info:
        port(state, models.lenet(), src="paddle", dst="torch")
    assert info.value.unexpected == ["fc4.weight"] and "1 unexpected" in str(info.value)
    assert not info.value.missing


def test_wrong_shape_is_listed_with_a_layout_hint():
    state = paddle_lenet_state()
    state["fc1.weight"] = state["fc1.weight"].T.copy()  # torch's (out, in) in a paddle file
    state["conv1.weight"] = np.zeros((6, 3, 3, 3), np.float32)
    with pytest.raises(PortError) as info:
        port(state, models.lenet(), src="paddle", dst="torch")
    msg = str(info.value)
    assert "2 shape/dtype mismatch" in msg
    assert (
        "fc1.weight: checkpoint has (120, 400) float32, paddle layout of fc1.weight is (400, 120)"
        in msg
    )
    assert "is src='torch'?" in msg
    assert "conv1.weight: checkpoint has (6, 3, 3, 3)" in msg


def test_all_three_problems_in_one_error():
    state = paddle_lenet_state()
    del state["fc3.bias"]
    state["backbone.extra"] = np.zeros(1, np.float32)
    state["conv2.weight"] = state["conv2.weight"].reshape(16, -1)  # same numel: never reshaped
    with pytest.raises(PortError) as info:
        port(state, models.lenet(), src="paddle", dst="flax")
    err = info.value
    assert err.missing == ["fc3.bias"]
    assert err.unexpected == ["backbone.extra"]
    assert len(err.mismatched) == 1 and err.mismatched[0].startswith("conv2.weight")


def test_non_strict_reports_missing_and_unexpected_but_never_reshapes():
    state = paddle_lenet_state()
    del state["fc3.bias"]
    state["extra"] = np.zeros(1, np.float32)
    out = port(state, models.lenet(), src="paddle", dst="torch", strict=False)
    assert out.report.missing == ["fc3.bias"] and out.report.unexpected == ["extra"]
    assert "fc3.bias" not in out and "extra" not in out
    state["fc1.weight"] = state["fc1.weight"].reshape(-1)
    with pytest.raises(PortError, match="fc1.weight"):
        port(state, models.lenet(), src="paddle", dst="torch", strict=False)


def test_dtype_kind_mismatch_is_listed_and_dtypes_are_kept():
    state = paddle_lenet_state()
    state["fc2.bias"] = state["fc2.bias"].astype(np.float64)
    out = port(state, models.lenet(), src="paddle", dst="torch")
    assert out["fc2.bias"].dtype == np.float64  # kept as the checkpoint has it
    state["fc2.bias"] = np.zeros(84, np.int64)
    with pytest.raises(PortError, match="fc2.bias: checkpoint has \\(84,\\) int64"):
        port(state, models.lenet(), src="paddle", dst="torch")


# ---- prefixes ----------------------------------------------------------------------------
def test_prefixed_keys_fail_with_a_hint_and_strip_prefix_fixes_them():
    state = {f"backbone.{k}": v for k, v in paddle_lenet_state().items()}
    with pytest.raises(PortError) as info:
        port(state, models.lenet(), src="paddle", dst="torch")
    assert "strip_prefix='backbone.'" in str(info.value)
    out = port(state, models.lenet(), src="paddle", dst="torch", strip_prefix="backbone.")
    assert len(out.report.moved) == 10 and len(out.report.stripped) == 10
    assert out["fc1.weight"].shape == (120, 400)  # transposed back to (out, in)


def test_prefix_map_maps_and_drops_explicitly():
    lenet_state = paddle_lenet_state()
    state = {f"Student.backbone.{k}": v for k, v in lenet_state.items()}
    state["Student.head.fc.weight"] = np.zeros((3, 3), np.float32)
    state["Teacher.backbone.conv1.weight"] = np.zeros((1,), np.float32)
    out = port(
        state,
        models.lenet(),
        src="paddle",
        dst="torch",
        prefix_map={"Student.backbone.": "", "Student.head.": None, "Teacher.": None},
    )
    assert sorted(out.report.dropped) == ["Student.head.fc.weight", "Teacher.backbone.conv1.weight"]
    assert len(out.report.moved) == 10
    assert "dropped by prefix_map" in out.report.summary()
    # without dropping the head, its key is unexpected, not silently ignored
    with pytest.raises(PortError, match="Student.head.fc.weight"):
        port(
            state,
            models.lenet(),
            src="paddle",
            dst="torch",
            prefix_map={"Student.backbone.": "", "Teacher.": None},
        )


def test_prefix_clash_is_an_error():
    state = paddle_lenet_state()
    state["backbone.conv1.bias"] = state["conv1.bias"]
    with pytest.raises(PortError, match="share a name"):
        port(state, models.lenet(), src="paddle", dst="torch", strip_prefix="backbone.")


def test_nested_checkpoints_flatten_and_zoo_names_work():
    require_backend("torch")
    m = xinit.build(models.lenet(), "torch", rng="xinit")
    ckpt = {"state_dict": m.state_dict()}
    out = port(ckpt, "lenet", src="torch", dst="paddle", strip_prefix="state_dict.")
    assert out["fc1.weight"].shape == (400, 120)
    with pytest.raises(ValueError, match="src="):
        port(ckpt, "lenet", dst="paddle")


@pytest.mark.parametrize("src", ["torch", "paddle", "flax", "neutral"])
@pytest.mark.parametrize("dst", ["torch", "paddle", "flax", "neutral"])
def test_port_round_trips_bit_exact(src, dst):
    for name in {src, dst} - {"neutral"}:
        require_backend(name)
    spec = models.lenet()
    rng = np.random.default_rng(0)
    neutral = {
        k: rng.standard_normal(ps.shape).astype(ps.dtype) for k, ps in param_specs(spec).items()
    }
    a = port(neutral, spec, src="neutral", dst=src)
    b = port(a, spec, src=src, dst=dst)
    back = port(port(b, spec, src=dst, dst=src), spec, src=src, dst="neutral")
    for k, v in neutral.items():
        assert_bits(back[k], v, k)
