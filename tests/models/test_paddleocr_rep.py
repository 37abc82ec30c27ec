"""``xinit.reparameterize`` against PaddleOCR's own ``LearnableRepLayer.rep()`` (retyped in
tests/reference_paddleocr.py), as ``tools/export_model.py`` runs it on every layer that has
one: the same parameter count (and parameters + buffers), the same state keys and shapes
after fusing, and the same outputs (the parity verdict, float32 rounding measured against
float64), for the PP-OCRv4 mobile recogniser's and detector's PPLCNetV3.

The default cases are narrow (scale 0.25, two kxk branches); full size is ``slow``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backends

import xinit
from xinit.models import paddleocr
from xinit.models.paddleocr.det import DET_OUT, dbnet, det_pplcnetv3

CLASSES = 11
LCNET_REC = {  # ch_PP-OCRv4_rec.yml's shape: PPLCNetV3, SVTR neck, CTC head
    "Backbone": {"name": "PPLCNetV3", "scale": 0.25, "conv_kxk_num": 2},
    "Neck": {"name": "SequenceEncoder", "encoder_type": "svtr", "dims": 32, "depth": 2,
             "hidden_dims": 32, "kernel_size": [1, 3]},
    "Head": {"name": "CTCHead"},
}  # fmt: skip
CASES = {  # name -> (input, LearnableRepLayers in it)
    "rec_small": ((1, 3, 48, 64), 28),
    "det_small": ((1, 3, 64, 64), 28),
    "rec_full": ((1, 3, 48, 320), 28),
    "det_full": ((1, 3, 320, 320), 28),
}


def spec_of(name: str):
    if name == "rec_small":
        return paddleocr.from_config({"Architecture": LCNET_REC}, out_channels=CLASSES)
    if name == "det_small":
        return dbnet(det_pplcnetv3(0.25, 2), [int(w * 0.25) for w in DET_OUT], 32)
    return paddleocr.ppocrv4_rec() if name == "rec_full" else paddleocr.dbnet_pplcnetv3()


def reference(name: str):
    """The retyped PaddleOCR model, seeded, with calibrated BatchNorm statistics."""
    import paddle
    import reference_paddleocr as rec
    import reference_paddleocr_det as det

    paddle.seed(1)
    if name == "rec_small":
        m = rec.lcnetv3_svtr(CLASSES, scale=0.25, conv_kxk_num=2, dims=32, hidden_dims=32)
    elif name == "det_small":
        m = det.ppocrv4_mobile_det(0.25, 2, 32)
    elif name == "rec_full":
        m = rec.lcnetv3_svtr(6625, multihead=True)
    else:
        m = det.ppocrv4_mobile_det()
    xinit.randomize_batchnorm(m, seed=2)
    shape = CASES[name][0]
    images = np.random.default_rng(5).uniform(-1, 1, (4, *shape[1:])).astype(np.float32)
    xinit.calibrate_batchnorm(m, images)
    m.eval()
    return m


def _count(tensors) -> int:
    return sum(int(np.prod(t.shape)) for t in tensors)


def _trainable(model) -> int:
    """Paddle's trainable parameters (its BatchNorm statistics are parameters too, frozen)."""
    return _count(p for p in model.parameters() if not p.stop_gradient)


def _check(name: str):
    require_backends("paddle", "torch")
    ref = reference(name)
    spec = spec_of(name)
    built = xinit.build(spec, "paddle", seed=5)
    missing, unexpected = built.set_state_dict(ref.state_dict())
    assert not missing and not unexpected
    built.eval()
    torch_model = xinit.build(spec, "torch", seed=5)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    xinit.load_state_dict(torch_model, xinit.port(state, spec, src="paddle", dst="neutral"))
    params_before, values_before = _trainable(ref), _count(ref.state_dict().values())

    fused, report = xinit.reparameterize(built)
    fused_torch, _ = xinit.reparameterize(torch_model)
    repped = [layer for layer in ref.sublayers() if hasattr(layer, "rep")]
    for layer in repped:  # what tools/export_model.py does before saving
        layer.rep()
    assert len(repped) == CASES[name][1] == len(report.fused)

    assert (report.params_before, report.values_before) == (params_before, values_before)
    assert report.params_after == _trainable(ref)
    assert report.values_after == _count(ref.state_dict().values())
    theirs = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in fused.state_dict().items()} == theirs
    # PaddleOCR registers reparam_conv last in its layer (after lab, act): same keys,
    # another order; set_state_dict goes by name
    missing, unexpected = fused.set_state_dict(ref.state_dict())
    assert not missing and not unexpected

    x = np.random.default_rng(9).uniform(-1, 1, CASES[name][0]).astype(np.float32)
    fused, _ = xinit.reparameterize(built)  # xinit's own fused weights, not PaddleOCR's
    parity = xinit.parity({"paddleocr": ref, "xinit": fused, "torch": fused_torch}, x)
    assert parity.ok, str(parity.first_divergent)
    assert sum("reparam_conv" in r.path for r in parity.rows) == CASES[name][1]
    return report, parity


@pytest.mark.parametrize("name", ["rec_small", "det_small"])
def test_reparameterize_is_paddleocrs_rep(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rec_full", "det_full"])
def test_full_size_reparameterize_is_paddleocrs_rep(name):
    report, parity = _check(name)
    print(name, report.summary().splitlines()[0], parity.worst_ratio())


def test_a_missing_fusion_is_seen():
    """The check has power: the fused model with one reparam_conv's bias zeroed (a branch's
    BatchNorm shift lost) leaves parity with PaddleOCR's rep()."""
    require_backends("paddle")
    import paddle

    ref = reference("rec_small")
    built = xinit.build(spec_of("rec_small"), "paddle", seed=5)
    built.set_state_dict(ref.state_dict())
    fused, _ = xinit.reparameterize(built)
    for layer in [la for la in ref.sublayers() if hasattr(la, "rep")]:
        layer.rep()
    bias = fused.backbone.blocks3[0].dw_conv.reparam_conv.bias
    bias.set_value(paddle.zeros_like(bias))
    x = np.random.default_rng(9).uniform(-1, 1, CASES["rec_small"][0]).astype(np.float32)
    assert not xinit.parity({"paddleocr": ref, "xinit": fused}, x).ok
