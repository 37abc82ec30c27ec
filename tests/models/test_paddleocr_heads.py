"""The recognition heads PaddleOCR pairs with ResNet45 (``xinit.models.paddleocr``), checked
against PaddleOCR's code retyped in Paddle (``tests/reference_paddleocr_heads.py``):
VisionLAN's ``VLHead`` on ResNet45 (``rec_r45_visionlan.yml``) at a narrow size (one encoder
layer, 16 positions from a 16x64 line, 8 characters), so the file runs in seconds."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend, require_backends
from stats_helpers import assert_ks_one, assert_plan_laws

import xinit
from xinit import randomize_batchnorm
from xinit.distributions import NormalDist
from xinit.models import paddleocr
from xinit.plan import init_plan

HEAD = {"n_layers": 1, "n_position": 16, "n_dim": 512, "max_text_length": 7, "d_inner": 256}
ARCH = {
    "model_type": "rec",
    "algorithm": "VisionLAN",
    "Backbone": {"name": "ResNet45", "strides": [2, 2, 2, 1, 1]},
    "Head": {"name": "VLHead", **HEAD, "training_step": "LA"},
}
CHARS = 10  # VLHead's out_channels: 11 classes
LINE = (1, 3, 16, 64)  # ResNet45 (strides 2, 2, 2, 1, 1): 2x8 = 16 positions
# Training-only parts of VLHead and the saved sinusoid tables: in PaddleOCR's state dict,
# not in the spec (dropped with report lines on port)
TRAINING_ONLY = ("head.MLM_VRM.MLM.", "head.MLM_VRM.Prediction.pp_share.")
TRAINING_ONLY += ("head.MLM_VRM.Prediction.w_share.", "head.MLM_VRM.SequenceModeling.position_enc")


def spec():
    return paddleocr.from_config({"Architecture": ARCH}, out_channels=CHARS)


def reference(seed: int = 0):
    require_backend("paddle")
    import paddle
    import reference_paddleocr_heads as ref

    paddle.seed(seed)
    m = ref.vl_model(out_channels=CHARS, n_head=8, **HEAD)
    m.eval()
    return m


def line(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(LINE).astype(np.float32)


def test_state_dict_keys_and_shapes_are_paddleocrs():
    """xinit's Paddle build has the retyped model's keys and shapes, but for VLHead's
    training-only parts and its constant sinusoid buffer."""
    ref = {k: tuple(v.shape) for k, v in reference().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in xinit.build(spec(), "paddle").state_dict().items()}
    assert got == {k: s for k, s in ref.items() if not k.startswith(TRAINING_ONLY)}
    # MLM: encoders of 2 and 1 layers (35 + 19 keys, pos_table each) and 7 more; pp_share 7,
    # w_share 2, SequenceModeling's pos_table 1
    assert sum(k.startswith(TRAINING_ONLY) for k in ref) == 35 + 19 + 7 + 7 + 2 + 1


def test_outputs_equal_paddleocrs_after_set_state_dict():
    """The reference's weights loaded with Paddle's ``set_state_dict``: the outputs are
    bit-equal (the same Paddle kernels in the same order) and every layer passes the parity
    verdict; the sinusoid table is PaddleOCR's buffer bit for bit."""
    require_backend("paddle")
    import paddle

    from xinit.layers.positions import sinusoid_table

    ref = reference(seed=1)
    randomize_batchnorm(ref, seed=2)
    ref.eval()
    built = xinit.build(spec(), "paddle", seed=5)
    built.eval()
    state = ref.state_dict()
    missing, unexpected = built.set_state_dict(state)
    assert not missing and all(k.startswith(TRAINING_ONLY) for k in unexpected)
    table = state["head.MLM_VRM.SequenceModeling.position_enc.pos_table"].numpy()
    assert np.array_equal(table, sinusoid_table(16, 512))
    x = paddle.to_tensor(line())
    want, got = ref(x).numpy(), built(x).numpy()
    assert got.shape == (8, 1, CHARS + 1) and np.array_equal(got, want)
    report = xinit.parity({"paddleocr": ref, "xinit": built}, line())
    assert report.ok, str(report.first_divergent)
    assert len(report.rows) > 100


def test_initialisation_is_paddleocrs():
    """Every tensor PaddleOCR's code draws fits the spec's law (KS at its size): ResNet45's
    KaimingNormal convs, the attention's N(0, 2/(d_model + d_k)) and XavierNormal ``fc``,
    Paddle's default Conv1D and XavierUniform Linears/Embedding; constants are equal."""
    ref = reference(seed=3)
    s = spec()
    state = {k: v.numpy() for k, v in ref.state_dict().items() if not k.startswith(TRAINING_ONLY)}
    neutral = xinit.port(state, s, src="paddle", dst="neutral")
    checked = assert_plan_laws(s, neutral)
    assert len(checked) >= 60 and any(".f0_embedding." in p for p in checked)


def test_the_init_check_catches_a_wrong_law():
    """Power: ``w_qs``'s N(0, 2/(d_model + d_k)) judged as Paddle's default XavierUniform of
    the same shape (what the Linear would get without its ParamAttr) is rejected."""
    ref = reference(seed=3)
    path = "head.MLM_VRM.SequenceModeling.layer_stack.0.slf_attn.w_qs.weight"
    (item,) = [i for i in init_plan(spec()) if i.path == path]
    assert isinstance(item.dist, NormalDist)
    w = ref.head.MLM_VRM.SequenceModeling.layer_stack[0].slf_attn.w_qs.weight.numpy()
    assert_ks_one(w.astype(np.float64).ravel(), item.dist, what=path)
    from xinit.initializers import XavierUniform

    wrong = XavierUniform().resolve(item.param.shape, "linear", item.param.fans)
    with pytest.raises(AssertionError, match="rejects"):
        assert_ks_one(w.astype(np.float64).ravel(), wrong, what=path)


@pytest.mark.parametrize("dst", ["torch", "flax"])
def test_paddle_checkpoint_ports_with_parity(tmp_path, dst):
    """A checkpoint as PaddleOCR's ``paddle.save`` writes it (MLM, pp_share, w_share and
    the pos_table buffer included) ports from the spec alone; the dropped keys are reported,
    and ``port_parity`` proves the port layer by layer against it run in Paddle."""
    require_backends("paddle", dst)
    import paddle

    ref = reference(seed=4)
    randomize_batchnorm(ref, seed=6)
    ref.eval()
    path = tmp_path / "visionlan.pdparams"
    paddle.save(ref.state_dict(), str(path))
    s = spec()
    assert paddleocr.from_config({"Architecture": ARCH}, checkpoint=path) == s  # 11 classes
    ported = xinit.port(path, s, src="paddle", dst=dst)
    notes = "\n".join(ported.report.notes)
    for prefix in TRAINING_ONLY:
        assert prefix.rstrip(".") in notes
    report = xinit.port_parity(path, ported, s, line(3), src="paddle", dst=dst)
    assert report.ok, str(report.first_divergent)
    assert len(report.rows) > 100


def test_zoo_visionlan_has_paddleocrs_full_size_keys():
    """The zoo's ``visionlan`` (rec_r45_visionlan.yml at full size) against PaddleOCR's
    VLHead on ResNet45: every inference key and shape."""
    require_backend("paddle")
    import reference_paddleocr_heads as ref

    want = ref.vl_model(out_channels=37).state_dict()
    want = {k: tuple(v.shape) for k, v in want.items() if not k.startswith(TRAINING_ONLY)}
    got = xinit.build(paddleocr.visionlan(), "paddle").state_dict()
    assert {k: tuple(v.shape) for k, v in got.items()} == want


# configs/rec/rec_r45_visionlan.yml as PaddleOCR ships it (its Global and Architecture; the
# training sections left out)
VISIONLAN_YML = """\
Global:
  character_dict_path:
  max_text_length: &max_text_length 25
  training_step: &training_step LA
  use_space_char: False
Architecture:
  model_type: rec
  algorithm: VisionLAN
  Transform:
  Backbone:
    name: ResNet45
    strides: [2, 2, 2, 1, 1]
  Head:
    name: VLHead
    n_layers: 3
    n_position: 256
    n_dim: 512
    max_text_length: *max_text_length
    training_step: *training_step
"""


def test_from_config_reads_rec_r45_visionlan_yml(tmp_path):
    """The shipped config gives the zoo's ``visionlan``: PaddleOCR's 36 default characters
    and the end (37, VLHead's ``out_channels``), 38 classes out of (26, N, 38)."""
    path = tmp_path / "rec_r45_visionlan.yml"
    path.write_text(VISIONLAN_YML)
    spec_ = paddleocr.from_config(path)
    assert spec_ == paddleocr.visionlan()
    assert xinit.blocks.infer(spec_, (2, 3, 64, 256))[-1].output_shape == (26, 2, 38)
    assert paddleocr.default_input(path) == (1, 3, 64, 256)  # the CLI's input for it
