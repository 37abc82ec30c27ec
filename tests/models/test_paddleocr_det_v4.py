"""PP-OCRv4 server detection's parts and DBNet++'s neck in xinit's PaddleOCR family, against
PaddleOCR's code retyped in Paddle (tests/reference_paddleocr_det.py): ``PFHeadLocal``
(both modes), ``DBFPN(use_asf=True)`` (ASFBlock), RSEFPN/LKPAN with ``intracl`` and
``PPHGNet_small(det=True)``. Per model: the same state keys (in order) and shapes, the same
outputs once the reference's weights are set (the parity verdict), PaddleOCR's initial laws
(KS), and a Paddle checkpoint made here ported to torch and Flax with parity PASS.

The default cases are narrow (64x64 pages); the full-size server detector is ``slow``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backends
from stats_helpers import assert_ks_one

import xinit
from xinit.distributions import ConstantDist
from xinit.models import paddleocr
from xinit.models.paddleocr.det import det_pphgnet, detector
from xinit.plan import init_plan

MV3 = {"name": "MobileNetV3", "scale": 0.5, "model_name": "large", "disable_se": True}
SMALL_HGNET_DET = (  # PPHGNet's det stage rows (in, mid, out, blocks, downsample, stride)
    (32, 16, 48, 1, False, 2),
    (48, 16, 64, 1, True, 2),
    (64, 24, 96, 2, True, 2),
    (96, 32, 128, 1, True, 2),
)
ARCH = {  # small detectors, as PaddleOCR configs
    "mv3_pfhead_small": {
        "model_type": "det",
        "Backbone": MV3,
        "Neck": {"name": "RSEFPN", "out_channels": 32, "shortcut": True, "intracl": True},
        "Head": {"name": "PFHeadLocal", "k": 50, "mode": "small", "fix_nan": True},
    },
    "mv3_dbfpn_asf": {
        "model_type": "det",
        "Backbone": MV3,
        "Neck": {"name": "DBFPN", "out_channels": 32, "use_asf": True},
        "Head": {"name": "DBHead", "k": 50},
    },
}
CASES = ["server_small", *ARCH]
PAGE = (1, 3, 64, 64)


def spec_of(name: str):
    if name in ARCH:
        return paddleocr.from_config({"Architecture": ARCH[name]})
    # PP-OCRv4 server's structure (PPHGNet det, LKPAN intracl, PFHeadLocal large), narrower
    neck = paddleocr.lkpan(tuple(r[2] for r in SMALL_HGNET_DET), 32, intracl=True)
    backbone = det_pphgnet((16, 16, 32), SMALL_HGNET_DET, 3)
    return detector(backbone, neck, paddleocr.pf_head_local(32, "large"))


def reference(name: str, seed: int = 0):
    """The retyped PaddleOCR model under Paddle's own init with ``seed``, in eval mode."""
    import paddle
    import reference_paddleocr_det as ref

    paddle.seed(seed)
    if name == "server_small":
        m = ref.ppocrv4_server_det((16, 16, 32), SMALL_HGNET_DET, 3, width=32)
    elif name == "mv3_pfhead_small":
        m = ref.mv3_rsefpn_intracl_pfhead(32)
    else:
        m = ref.mv3_dbfpn_asf(32)
    m.eval()
    return m


def page(seed: int = 0, shape=PAGE) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _calibrated(model, seed: int):
    xinit.randomize_batchnorm(model, seed=seed)
    xinit.calibrate_batchnorm(model, page(seed + 1, (4, *PAGE[1:])))
    model.eval()
    return model


@pytest.mark.parametrize("name", CASES)
def test_state_keys_and_shapes_are_paddleocrs(name):
    require_backends("paddle")
    ref = reference(name)
    built = xinit.build(spec_of(name), "paddle", rng="xinit")
    want = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    got = [(k, tuple(v.shape)) for k, v in built.state_dict().items()]
    assert got == want  # names, shapes and registration order


@pytest.mark.parametrize("name", CASES)
def test_outputs_equal_paddleocrs_after_set_state_dict(name):
    """The reference's weights (calibrated BatchNorm statistics) set into xinit's Paddle
    build: every layer agrees within the float32 rounding of both (the parity verdict),
    and the probability map too."""
    require_backends("paddle")
    import paddle

    ref = _calibrated(reference(name, seed=1), 2)
    built = xinit.build(spec_of(name), "paddle", rng="xinit", seed=5)
    missing, unexpected = built.set_state_dict(ref.state_dict())
    assert not missing and not unexpected
    built.eval()
    report = xinit.parity({"paddleocr": ref, "xinit": built}, page(9))
    assert report.ok, str(report.first_divergent)
    assert len(report.rows) > 60
    x = paddle.to_tensor(page(9))
    mine, theirs = built(x)["maps"].numpy(), ref(x)["maps"].numpy()
    assert mine.shape == (1, 1, 64, 64) and mine.min() >= 0 and mine.max() <= 1
    np.testing.assert_array_equal(mine, theirs)  # the same ops in the same order


# Flax's layer-by-layer run of the IntraCL blocks' many conv shapes takes ~50 s on 2 cores
PORTS = [(n, "torch") for n in CASES] + [
    ("mv3_dbfpn_asf", "flax"),
    pytest.param("server_small", "flax", marks=pytest.mark.slow),
    pytest.param("mv3_pfhead_small", "flax", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name, dst", PORTS)
def test_a_paddle_checkpoint_ports_with_parity(name, dst, tmp_path):
    require_backends("paddle", dst)
    import paddle

    ref = _calibrated(reference(name, seed=4), 6)
    path = tmp_path / "best_accuracy.pdparams"
    paddle.save(ref.state_dict(), str(path))
    spec = spec_of(name)
    ported = xinit.port(path, spec, dst=dst)
    report = xinit.port_parity(path, ported, spec, page(3), src="paddle", dst=dst)
    assert report.ok, report.first_divergent
    assert len(report.rows) > 200


@pytest.mark.parametrize("name", CASES)
def test_initialisation_is_paddleocrs(name):
    """What the retyped PaddleOCR code draws (Paddle's default convs in IntraCLBlock,
    LocalModule and ASFBlock's ``conv``; KaimingUniform for the necks, the ASF scales and
    the transposed convs; KaimingNormal for PPHGNet) fits the law xinit's spec gives each
    tensor (KS); constants are equal."""
    require_backends("paddle")
    ref = reference(name, seed=3)
    spec = spec_of(name)
    state = {k: v.numpy() for k, v in ref.state_dict().items()}
    neutral = xinit.port(state, spec, src="paddle", dst="neutral")
    checked = set()
    for item in init_plan(spec):
        values = np.asarray(neutral[item.path], np.float64).ravel()
        if isinstance(item.dist, ConstantDist):
            assert np.all(values == np.float32(item.dist.mean)), item.path
        elif values.size >= 64:
            assert_ks_one(values, item.dist, what=item.path)
            checked.add(item.path)
    expected = {  # each law at least once
        "server_small": ("stem.0.conv", "c_layer_7x7", "v_layer_7x1", "last_3.conv", "conv2"),
        "mv3_pfhead_small": ("in_conv", "c_layer_5x5", "q_layer_1x7", "last_3.conv", "conv2"),
        "mv3_dbfpn_asf": ("in2_conv", "p2_conv", "asf.conv", "conv2"),
    }[name]
    missing = [e for e in expected if not any(f".{e}.weight" in p for p in checked)]
    assert not missing, missing


def test_the_refinement_and_the_fusion_matter():
    """A planted fault is seen: PFHeadLocal's map without its refinement (DBHead's shrink
    map alone) and DBFPN's fused map without the ASF weights both leave parity."""
    require_backends("paddle")
    import paddle

    for name, cut in (("server_small", "cbn"), ("mv3_dbfpn_asf", "asf")):
        ref = _calibrated(reference(name, seed=1), 2)
        x = paddle.to_tensor(page(9))
        full = ref(x)["maps"].numpy()
        if cut == "cbn":
            plain = ref.head.binarize(ref.neck(ref.backbone(x))).numpy()
        else:
            ref.neck.use_asf = False
            plain = ref.head(ref.neck(ref.backbone(x)))["maps"].numpy()
        assert np.abs(full - plain).max() > 1e3 * np.finfo(np.float32).eps, name


def test_from_config_reads_pp_ocrv4_server_det():
    """``PP-OCRv4_server_det.yml``'s Architecture gives the zoo's ``ppocrv4_server_det``;
    ``intracl`` on DBFPN and an unknown PFHeadLocal mode are refused by name."""
    arch = {
        "model_type": "det",
        "algorithm": "DB",
        "Transform": None,
        "Backbone": {"name": "PPHGNet_small", "det": True},
        "Neck": {"name": "LKPAN", "out_channels": 256, "intracl": True},
        "Head": {"name": "PFHeadLocal", "k": 50, "mode": "large", "fix_nan": True},
    }
    assert paddleocr.from_config({"Architecture": arch}) == paddleocr.ppocrv4_server_det()
    bad = {**arch, "Neck": {"name": "DBFPN", "out_channels": 256, "intracl": True}}
    with pytest.raises(xinit.ArgumentError, match="DBFPN: unsupported argument.*intracl"):
        paddleocr.from_config({"Architecture": bad})
    with pytest.raises(ValueError, match="PFHeadLocal mode"):
        paddleocr.from_config({"Architecture": {**arch, "Head": {**arch["Head"], "mode": "x"}}})


@pytest.mark.slow
def test_full_size_pp_ocrv4_server_det_is_paddleocrs(tmp_path):
    """The zoo's ``ppocrv4_server_det`` (PPHGNet_small det, LKPAN 256 with IntraCL, PFHeadLocal
    large) against the full-size reference: keys, shapes, outputs after set_state_dict."""
    require_backends("paddle")
    import paddle
    import reference_paddleocr_det as ref_models

    paddle.seed(0)
    ref = ref_models.ppocrv4_server_det()
    ref.eval()
    built = xinit.build(paddleocr.ppocrv4_server_det(), "paddle", rng="xinit")
    want = [(k, tuple(v.shape)) for k, v in ref.state_dict().items()]
    assert [(k, tuple(v.shape)) for k, v in built.state_dict().items()] == want
    built.set_state_dict(ref.state_dict())
    built.eval()
    x = paddle.to_tensor(page(9, (1, 3, 128, 128)))
    np.testing.assert_array_equal(built(x)["maps"].numpy(), ref(x)["maps"].numpy())
