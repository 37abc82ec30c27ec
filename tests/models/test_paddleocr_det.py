"""PaddleOCR's DBNet detector (PP-OCRv3 mobile) and text-direction classifier from xinit's
zoo, against structures retyped from PaddleOCR's code (tests/reference_paddleocr_det.py):
the same state keys and shapes in Paddle, the same outputs once the reference holds xinit's
weights, and a port of a Paddle checkpoint to torch and Flax that passes parity. The
statistics checked are of a model whose BatchNorm statistics a forward pass set, so the
float32 verdict is judged on realistic values."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backends
from stats_helpers import assert_ks_one

import xinit
from xinit.distributions import ConstantDist
from xinit.models import paddleocr
from xinit.plan import init_plan

DET_INPUT = (1, 3, 64, 64)
CLS_INPUT = (2, 3, 48, 96)


def _image(shape, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, shape).astype(np.float32)


def _paddle_pair(spec, reference_cls):
    import paddle

    model = xinit.build(spec, "paddle", seed=1)
    xinit.randomize_batchnorm(model, seed=2)
    model.eval()
    ref = reference_cls()
    ref.eval()
    mine = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert list(mine) == list(theirs)  # names and registration order
    assert mine == theirs
    ref.set_state_dict(model.state_dict())
    return model, ref, paddle


@pytest.mark.parametrize(
    "name, reference, shape",
    [("ppocrv3_det", "PPOCRv3Det", DET_INPUT), ("ppocr_cls", "PPOCRCls", CLS_INPUT)],
)
def test_the_zoo_model_is_paddleocrs(name, reference, shape):
    require_backends("paddle")
    import reference_paddleocr_det as ref_models

    spec = getattr(paddleocr, name)()
    model, ref, paddle = _paddle_pair(spec, getattr(ref_models, reference))
    x = paddle.to_tensor(_image(shape))
    mine, theirs = model(x), ref(x)
    if isinstance(theirs, dict):
        mine, theirs = mine["maps"], theirs["maps"]
    assert tuple(theirs.shape) == ((shape[0], 1, *shape[2:]) if "det" in name else (2, 2))
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())  # same ops, same order


@pytest.mark.parametrize("name, shape", [("ppocrv3_det", DET_INPUT), ("ppocr_cls", CLS_INPUT)])
def test_a_paddle_checkpoint_ports_to_torch_with_parity(name, shape, tmp_path):
    require_backends("paddle", "torch")
    import paddle

    spec = getattr(paddleocr, name)()
    model = xinit.build(spec, "paddle", seed=1)
    xinit.randomize_batchnorm(model, seed=2)
    xinit.calibrate_batchnorm(model, _image((4, *shape[1:]), 5))
    path = tmp_path / "best_accuracy.pdparams"
    paddle.save(model.state_dict(), str(path))
    ported = xinit.port(path, spec, dst="torch")
    report = xinit.port_parity(path, ported, spec, _image(shape, 9), src="paddle", dst="torch")
    assert report.ok, report.first_divergent


def test_dbnet_on_pplcnetv3_builds_in_three_frameworks():
    """The PPLCNetV3 (det) DBNet: the four maps of layer_list at strides 4 .. 32, RSEFPN,
    DBHead; built in each framework with the same state keys in neutral terms."""
    require_backends("paddle", "torch", "flax")
    spec = paddleocr.dbnet_pplcnetv3()
    assert xinit.blocks.output_shape(spec, DET_INPUT) == {"maps": (1, 1, 64, 64)}
    keys = None
    for framework in ("torch", "paddle", "flax"):
        state = xinit.state_dict(xinit.build(spec, framework))
        names = [k for k in state if not k.endswith("num_batches_tracked")]  # torch's only
        assert keys is None or names == keys
        keys = names
    assert "backbone.layer_list.3.weight" in keys and "head.thresh.conv3.bias" in keys


@pytest.mark.parametrize("name, reference", [("ppocrv3_det", "PPOCRv3Det"),
                                             ("ppocr_cls", "PPOCRCls")])  # fmt: skip
def test_initialisation_is_paddleocrs(name, reference):
    """What PaddleOCR's code draws (Paddle's initialisers: defaults for the backbone convs,
    KaimingUniform for the neck and the transposed convs, whose fans Paddle takes from the
    weight's second axis as xinit does, U(±1/√(C/4)) biases, BatchNorm 1 / 1e-4, the
    classifier's U(±1/√C)) fits the law xinit's spec gives each parameter (KS)."""
    require_backends("paddle")
    import paddle
    import reference_paddleocr_det as ref_models

    paddle.seed(3)
    ref = getattr(ref_models, reference)()
    spec = getattr(paddleocr, name)()
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    neutral = xinit.port(state, spec, src="paddle", dst="neutral")
    checked = set()
    for item in init_plan(spec):
        values = np.asarray(neutral[item.path], np.float64).ravel()
        if isinstance(item.dist, ConstantDist):  # as float32 holds it
            assert np.all(values == np.float32(item.dist.mean)), item.path
        elif values.size >= 64:
            assert_ks_one(values, item.dist, what=item.path)
            checked.add(item.path.rsplit(".", 2)[-2])
    expected = {"conv", "fc"} if "cls" in name else {"conv", "in_conv", "conv1", "conv2", "conv3"}
    assert expected <= checked, checked


V3_DET = {  # the Architecture of PaddleOCR's configs/det/ch_PP-OCRv3/ch_PP-OCRv3_det_student.yml
    "model_type": "det",
    "algorithm": "DB",
    "Transform": None,
    "Backbone": {"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True},
    "Neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
    "Head": {"name": "DBHead", "k": 50},
}
V4_DET = {  # configs/det/ch_PP-OCRv4/ch_PP-OCRv4_det_student.yml
    "model_type": "det",
    "algorithm": "DB",
    "Transform": None,
    "Backbone": {"name": "PPLCNetV3", "scale": 0.75, "det": True},
    "Neck": {"name": "RSEFPN", "out_channels": 96, "shortcut": True},
    "Head": {"name": "DBHead", "k": 50},
}
CLS = {  # configs/cls/cls_mv3.yml
    "model_type": "cls",
    "algorithm": "CLS",
    "Transform": None,
    "Backbone": {"name": "MobileNetV3", "scale": 0.35, "model_name": "small"},
    "Neck": None,
    "Head": {"name": "ClsHead", "class_dim": 2},
}


@pytest.mark.parametrize(
    "arch, zoo",
    [(V3_DET, "ppocrv3_det"), (V4_DET, "dbnet_pplcnetv3"), (CLS, "ppocr_cls")],
)
def test_from_config_gives_the_zoo_model(arch, zoo):
    assert paddleocr.from_config({"Architecture": arch}) == getattr(paddleocr, zoo)()


def test_an_unsupported_detector_part_is_one_line_naming_the_supported():
    arch = {**V3_DET, "Neck": {"name": "FCEFPN", "out_channels": 96}}
    with pytest.raises(xinit.UnknownNameError, match="Neck 'FCEFPN' .*DBFPN, RSEFPN, LKPAN"):
        paddleocr.from_config({"Architecture": arch})
    arch = {**V3_DET, "Neck": {"name": "DBFPN", "out_channels": 96, "shortcut": True}}
    with pytest.raises(xinit.ArgumentError, match="DBFPN: unsupported argument.*shortcut"):
        paddleocr.from_config({"Architecture": arch})
