"""ABINet's vision model (``ABINetHead`` with ``use_lang: False`` on ResNet45,
``xinit.models.paddleocr.rec_abinet_head``) against PaddleOCR's code retyped in Paddle
(``tests/reference_paddleocr_heads.abinet_model``). Narrow in the default run: one encoder
layer of 256 hidden, a 32x64 line (8x16 = 128 positions, the smallest PositionAttention's
U-Net takes), 8 reading positions, ResNet45 with one block per stage (its ``layers``
argument). The port of a checkpoint, the full size, and reading the shipped config, with
either ``use_lang``, are ``test_paddleocr_abinet_lang.py``'s."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend
from stats_helpers import assert_ks_one, assert_plan_laws
from test_paddleocr_abinet_lang import ARCH as LANG_ARCH
from test_paddleocr_abinet_lang import HEAD

import xinit
from xinit import randomize_batchnorm
from xinit.initializers import XavierUniform
from xinit.layers.positions import sinusoid_table
from xinit.models import paddleocr
from xinit.plan import init_plan

# the language-model tests' small head, without its language model
ARCH = {**LANG_ARCH, "Head": {**LANG_ARCH["Head"], "use_lang": False}}
CLASSES = 11  # ABINetHead's out_channels: '</s>' and 10 characters
LINE = (1, 3, 32, 64)
# the sinusoid tables PaddleOCR saves as buffers: not in the spec (dropped on port)
TABLES = ("head.pos_encoder.pe", "head.decoder.pos_encoder.pe")


def spec(arch=ARCH, **kw):
    return paddleocr.from_config({"Architecture": arch}, out_channels=CLASSES, **kw)


def reference(seed: int = 0, **head):
    require_backend("paddle")
    import paddle
    import reference_paddleocr_heads as ref

    paddle.seed(seed)
    m = ref.abinet_model(layers=(1, 1, 1, 1, 1), out_channels=CLASSES, **{**HEAD, **head})
    m.eval()
    return m


def line(seed: int = 0, shape=LINE) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_state_dict_keys_and_shapes_are_paddleocrs():
    """xinit's Paddle build has the retyped model's keys and shapes, but for the two saved
    sinusoid tables; the output is (N, max_length + 1, classes)."""
    ref = {k: tuple(v.shape) for k, v in reference().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in xinit.build(spec(), "paddle").state_dict().items()}
    assert got == {k: s for k, s in ref.items() if k not in TABLES}
    assert set(ref) - set(got) == set(TABLES)
    assert xinit.blocks.infer(spec(), LINE)[-1].output_shape == (1, 8, CLASSES)


def _exact_table(length: int, dim: int) -> np.ndarray:
    """sin/cos of p / 10000^(2i/dim) in float64: the table both computations round."""
    angle = np.arange(length)[:, None] * np.exp(np.arange(0, dim, 2) * (-np.log(1e4) / dim))
    table = np.empty((length, dim))
    table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    return table


def test_outputs_equal_paddleocrs_after_set_state_dict():
    """The reference's weights loaded with ``set_state_dict``. PaddleOCR computes its
    sinusoid tables in float32 ops, the spec rounds the float64 table once: (1) the spec's
    table is the float64 one to half a float32 ulp, PaddleOCR's within its angle's float32
    rounding (3 ulp of p·rate); (2) with the spec's table put in the reference's buffers the
    outputs are bit-equal (same Paddle kernels, same order); (3) with PaddleOCR's own tables
    every layer passes the float64-derived parity verdict."""
    require_backend("paddle")
    import paddle

    ref = reference(seed=1)
    randomize_batchnorm(ref, seed=2)
    ref.eval()
    built = xinit.build(spec(), "paddle", seed=5)
    built.eval()
    missing, unexpected = built.set_state_dict(ref.state_dict())
    assert not missing and sorted(unexpected) == sorted(TABLES)

    ours = sinusoid_table(128, 512)[0].astype(np.float64)
    theirs = ref.head.pos_encoder.pe.numpy()[:, 0].astype(np.float64)
    exact = _exact_table(128, 512)
    assert np.all(np.abs(ours - exact) <= np.spacing(np.abs(exact).astype(np.float32)) / 2)
    angle_ulp = np.spacing(np.float32(np.arange(128)))[:, None]  # p·rate <= p
    assert np.all(np.abs(theirs - exact) <= 3 * angle_ulp + np.spacing(np.float32(1)))
    assert not np.array_equal(ours, theirs)  # so (2) and (3) test different things

    x = line()
    report = xinit.parity({"paddleocr": ref, "xinit": built}, x)
    assert report.ok, str(report.first_divergent)
    assert len(report.rows) > 60

    for layer, length in ((ref.head.pos_encoder, 128), (ref.head.decoder.pos_encoder, 8)):
        table = sinusoid_table(length, 512).transpose(1, 0, 2)
        layer.pe.set_value(paddle.to_tensor(np.ascontiguousarray(table)))
    want, got = ref(paddle.to_tensor(x)).numpy(), built(paddle.to_tensor(x)).numpy()
    assert got.shape == (1, 8, CLASSES) and np.array_equal(got, want)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-6)  # eval: class probabilities


def test_initialisation_is_paddleocrs():
    """Every tensor PaddleOCR's code draws fits the spec's law (KS at its size): ResNet45's
    KaimingNormal convs, Paddle's default N(0, 2/fan_in) convs of PositionAttention and its
    XavierUniform Linears; constants (biases, norms) are equal."""
    ref = reference(seed=3)
    s = spec()
    state = {k: v.numpy() for k, v in ref.state_dict().items() if k not in TABLES}
    neutral = xinit.port(state, s, src="paddle", dst="neutral")
    checked = assert_plan_laws(s, neutral)
    assert len(checked) >= 25
    for part in (".k_encoder.0.0.", ".k_decoder.3.1.", ".project.", ".self_attn.qkv.", ".cls."):
        assert any(part in p for p in checked), part


def test_the_init_check_catches_a_wrong_law():
    """Power: ``project``'s Paddle default XavierUniform judged as PyTorch's nn.Linear default
    U(±1/√fan_in) (what a port written with torch defaults would draw) is rejected."""
    ref = reference(seed=3)
    path = "head.decoder.project.weight"
    (item,) = [i for i in init_plan(spec()) if i.path == path]
    w = ref.head.decoder.project.weight.numpy().astype(np.float64).ravel()
    assert_ks_one(w, item.dist, what=path)
    assert item.dist == XavierUniform().resolve(item.param.shape, "linear", item.param.fans)
    bound = 1 / np.sqrt(512)
    from xinit.initializers import Uniform

    wrong = Uniform(-bound, bound).resolve(item.param.shape, "linear", item.param.fans)
    with pytest.raises(AssertionError, match="rejects"):
        assert_ks_one(w, wrong, what=path)


def test_bad_widths_are_refused_by_name():
    """PaddleOCR's PositionAttention is 512 wide whatever d_model says: another d_model is a
    clear error, not a model PaddleOCR could not build."""
    arch = {**ARCH, "Head": {**ARCH["Head"], "d_model": 256}}
    with pytest.raises(ValueError, match="PositionAttention is 512 wide.*d_model=256"):
        spec(arch)


def _replaced(graph, path: str, new):
    """``graph`` (a Graph of single output) with the node at dotted ``path`` replaced."""
    from xinit.graph import Graph

    name, _, rest = path.partition(".")
    nodes = [
        (n, (_replaced(s, rest, new) if rest else new) if n == name else s, refs)
        for n, s, refs in graph.nodes
    ]
    return Graph(nodes, inputs=graph.inputs, outputs=graph.outputs[0][1])


def test_the_reference_check_catches_a_wrong_attention_scale():
    """Power: PositionAttention's scores scaled by √(C / 8) (a head's width, as the encoder's
    attention scales) instead of PaddleOCR's √C fail the parity verdict against the retyped
    model, first at PositionAttention (its k_encoder/k_decoder agree), with PaddleOCR's
    weights loaded."""
    from xinit.blocks import Sequential
    from xinit.layers import ScalarOp

    ref = reference(seed=1)
    randomize_batchnorm(ref, seed=2)
    ref.eval()
    s = spec()
    head = _replaced(s["head"], "decoder.scaled", ScalarOp("div", (512 / 8) ** 0.5))
    wrong = xinit.build(Sequential(backbone=s["backbone"], head=head), "paddle", seed=5)
    wrong.set_state_dict(ref.state_dict())
    wrong.eval()
    report = xinit.parity({"paddleocr": ref, "xinit": wrong}, line())
    assert not report.ok
    # the reference's layers are the rows: the first to differ is PositionAttention itself
    assert report.first_divergent.path == "head.decoder", report.first_divergent.path
