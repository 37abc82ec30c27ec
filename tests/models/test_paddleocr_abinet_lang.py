"""ABINet with its language model (``ABINetHead`` with ``use_lang: True``, ``iter_size`` 3,
``xinit.models.paddleocr.rec_abinet_language``) against PaddleOCR's code retyped in Paddle
(``tests/reference_paddleocr_heads.abinet_model(use_lang=True)``). Narrow in the default run
(one encoder layer of 256 hidden, a 32x64 line, 8 reading positions, ResNet45 with one
block per stage; the language model's 4 blocks are PaddleOCR's); full size in the slow run.

The passes share their weights (``Reuse``), and each is masked by the lengths of the last
logits: the inputs here are chosen so that those lengths differ between samples and passes,
and both planted faults (a length one too long, the mask's diagonal left out) change the
output."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import require_backend, require_backends

import xinit
from xinit import calibrate_batchnorm, randomize_batchnorm
from xinit.blocks import Sequential
from xinit.graph import Graph, Reuse
from xinit.layers import LengthMask, ScalarOp
from xinit.models import paddleocr
from xinit.models.paddleocr.rec_abinet_language import lengths

HEAD = {"num_layers": 1, "dim_feedforward": 256, "max_length": 7, "image_size": [32, 64]}
ARCH = {
    "model_type": "rec",
    "algorithm": "ABINet",
    "Backbone": {"name": "ResNet45", "layers": [1, 1, 1, 1, 1]},
    "Head": {"name": "ABINetHead", "use_lang": True, "iter_size": 3, **HEAD},
}
CLASSES = 11  # '</s>' and 10 characters
POSITIONS = 8  # max_length + 1
LINES = (4, 3, 32, 64)
# the sinusoid tables PaddleOCR saves as buffers: not in the spec (dropped on port)
TABLES = (
    "head.pos_encoder.pe",
    "head.decoder.pos_encoder.pe",
    "head.language.token_encoder.pe",
    "head.language.pos_encoder.pe",
)


def arch(use_lang: bool = True) -> dict:
    return {**ARCH, "Head": {**ARCH["Head"], "use_lang": use_lang}}


def spec(use_lang: bool = True):
    return paddleocr.from_config({"Architecture": arch(use_lang)}, out_channels=CLASSES)


def reference(seed: int = 0, use_lang: bool = True):
    """The retyped model at eval, its BatchNorms given random affine parameters, then the
    running statistics a training pass on four lines gives (as a trained model has)."""
    require_backend("paddle")
    import paddle
    import reference_paddleocr_heads as ref

    paddle.seed(seed)
    kw = {**HEAD, "use_lang": use_lang, "iter_size": 3}
    m = ref.abinet_model(layers=(1, 1, 1, 1, 1), out_channels=CLASSES, **kw)
    randomize_batchnorm(m, seed=seed + 1)
    calibrate_batchnorm(m, lines(seed + 2))
    m.eval()
    return m


def lines(seed: int = 0, shape=LINES) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


LENGTHS = ("head.lengths", "head.lengths_1", "head.lengths_2")  # each pass's mask's lengths


@functools.cache
def ended(use_lang: bool = True):
    """(the retyped model, lines, the lengths each pass masks by (3, N)) with the stop
    class's bias in ``cls`` and ``cls_align`` raised so that it wins at 40% of the lines'
    positions, as a trained ABINet ends its words: the lengths then differ between lines
    and passes (random weights alone never predict the stop). Shared: no test changes it."""
    require_backend("paddle")
    import paddle

    ref, x = reference(seed=1, use_lang=use_lang), lines()
    classifiers = ("head.cls", "head.cls_align") if use_lang else ("head.cls",)
    paths = [*classifiers, *(LENGTHS if use_lang else ())]
    extractor = xinit.build(xinit.graph.feature_extractor(spec(use_lang), paths), "paddle")
    extractor.eval()

    def run() -> dict[str, np.ndarray]:
        extractor.set_state_dict(ref.state_dict())
        return {k: v.numpy() for k, v in extractor(paddle.to_tensor(x)).items()}

    for path in classifiers:
        logits = run()[path]
        margin = logits[..., 0] - logits[..., 1:].max(-1)
        bias = getattr(ref.head, path.removeprefix("head.")).bias
        ordered = np.sort(margin.ravel())
        k = int(0.6 * ordered.size)  # between two margins: no position is a tie
        raised = bias.numpy().copy()
        raised[0] -= (ordered[k - 1] + ordered[k]) / 2
        bias.set_value(raised)
    out = run()
    return ref, x, np.stack([out[p] for p in LENGTHS]) if use_lang else None


def test_keys_shapes_and_outputs_equal_paddleocrs():
    """The Paddle build has the retyped model's keys and shapes but for the four saved
    sinusoid tables: one ``head.language``, ``w_att_align`` and ``cls_align`` for the three
    passes. After ``set_state_dict`` of the reference's weights the outputs agree within the
    float64-derived parity verdict, layer by layer, on lines whose pass lengths differ."""
    require_backend("paddle")
    import paddle

    ref, x, used = ended()
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    built = xinit.build(spec(), "paddle", seed=5)
    built.eval()
    got = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert got == {k: v for k, v in want.items() if k not in TABLES}
    assert any(k.startswith("head.language.decoder.3.cross_attn.kv.") for k in got)
    assert not any(k.startswith(("head.language_", "head.cls_align_")) for k in got)
    missing, unexpected = built.set_state_dict(ref.state_dict())
    assert not missing and sorted(unexpected) == sorted(TABLES)

    assert len(set(used.ravel())) >= 3 and used.min() >= 2 and used.max() <= POSITIONS, used
    assert ((used > 2) & (used < POSITIONS)).any(), used  # a length one off would show

    report = xinit.parity({"paddleocr": ref, "xinit": built}, x)
    assert report.ok, str(report.first_divergent)
    paths = [r.path for r in report.rows]
    assert "head.language.decoder.3.cross_attn" in paths and "head.cls_align" in paths
    out = built(paddle.to_tensor(x)).numpy()
    assert out.shape == (4, POSITIONS, CLASSES)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)  # eval: class probabilities


@pytest.mark.parametrize("fw", ["paddle", "torch", "flax"])
def test_lengths_and_mask_are_paddleocrs(fw):
    """The spec's lengths (``lengths``) and mask (``LengthMask(diagonal=True)``) against
    PaddleOCR's ``_get_length``, clip and ``_get_mask`` retyped, on logits whose stop class
    0 wins first at position 0, in the middle, at the end, twice, or nowhere."""
    require_backends("paddle", fw)
    import paddle
    import reference_paddleocr_heads as ref

    first_end_length, length_mask = ref._abinet_classes()[2:]
    winners = [[0, 3, 4, 5, 6, 7, 8, 9], [5, 2, 9, 0, 1, 0, 3, 4], [1] * 7 + [0], [4] * 8]
    winners += [[2, 0, 0, 0, 0, 0, 0, 0]]
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((len(winners), POSITIONS, CLASSES)).astype(np.float32)
    for n, row in enumerate(winners):
        logits[n, np.arange(POSITIONS), row] = 5.0
    want_len = paddle.clip(first_end_length(paddle.to_tensor(logits)), 2, POSITIONS)
    want_mask = length_mask(want_len, POSITIONS).numpy()
    want_len = want_len.numpy()
    assert want_len.tolist() == [2, 4, 8, 8, 2]

    graph = Graph(
        [
            ("lengths", lengths(POSITIONS), "x"),
            ("mask", LengthMask(POSITIONS, diagonal=True)),
        ],
        outputs={"lengths": "lengths", "mask": "mask"},
    )
    out = xinit.run(xinit.build(graph, fw), logits)
    np.testing.assert_array_equal(np.asarray(out["lengths"]), want_len.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(out["mask"]), want_mask)


@pytest.mark.parametrize("dst", ["torch", "flax"])
@pytest.mark.parametrize("use_lang", [True, False])
def test_paddle_checkpoint_ports_with_parity(tmp_path, dst, use_lang):
    """A checkpoint as ``paddle.save`` writes it (the ``pe`` buffers included) ports from
    the config alone (the classes read from ``head.cls.bias``); the dropped tables are
    reported, and ``port_parity`` proves the port layer by layer against it run in Paddle,
    the three passes included (``use_lang=False``: the vision model)."""
    require_backends("paddle", dst)
    import paddle

    ref, x, _ = ended(use_lang)
    path = tmp_path / "abinet.pdparams"
    paddle.save(ref.state_dict(), str(path))
    s = spec(use_lang)
    assert paddleocr.from_config({"Architecture": arch(use_lang)}, checkpoint=path) == s
    ported = xinit.port(path, s, src="paddle", dst=dst)
    notes = "\n".join(ported.report.notes)
    for key in TABLES if use_lang else TABLES[:2]:
        assert f"{key} (the fixed sinusoid table" in notes
    report = xinit.port_parity(path, ported, s, x, src="paddle", dst=dst)
    assert report.ok, str(report.first_divergent)
    attention = "head.language.decoder.3.cross_attn.attention"
    assert (attention in [r.path for r in report.rows]) == use_lang


def _replaced(graph: Graph, name: str, new) -> Graph:
    """``graph`` with its node ``name`` replaced by ``new`` (inputs and outputs kept)."""
    nodes = [(n, new if n == name else s, refs) for n, s, refs in graph.nodes]
    return Graph(nodes, inputs=graph.inputs, outputs=graph.outputs[0][1])


FAULTS = {
    # the first pass's lengths one too long (the '+ 1' of _get_length made '+ 2')
    "length_off_by_one": lambda head: _replaced(
        head,
        "lengths",
        _replaced(head.node("lengths"), "length", ScalarOp("add", 2.0)),
    ),
    # the first pass's mask without its diagonal: each token sees its own input
    "diagonal_missing": lambda head: _replaced(head, "mask", LengthMask(POSITIONS)),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_the_reference_check_catches_a_planted_fault(fault):
    """Power: one fault in the first pass's lengths or mask fails the parity verdict
    against the retyped model, with PaddleOCR's weights loaded and the same lines as the
    test that passes."""
    require_backend("paddle")
    ref, x, _ = ended()
    s = spec()
    wrong = Sequential(backbone=s["backbone"], head=FAULTS[fault](s["head"]))
    built = xinit.build(wrong, "paddle", seed=5)
    built.set_state_dict(ref.state_dict())
    built.eval()
    report = xinit.parity({"paddleocr": ref, "xinit": built}, x)
    assert not report.ok
    assert report.first_divergent.path.startswith(("head.language", "head.w_att_align"))


def test_passes_share_one_set_of_weights():
    """The second and third passes are ``Reuse`` nodes of the first's ``language``,
    ``w_att_align`` and ``cls_align``: the same parameter count as PaddleOCR's model, which
    one pass alone has too."""
    head = spec()["head"]
    for name in ("language", "w_att_align", "cls_align"):
        assert head.node(f"{name}_1") == Reuse(name) == head.node(f"{name}_2")
    one = paddleocr.from_config(
        {"Architecture": {**ARCH, "Head": {**ARCH["Head"], "iter_size": 1}}},
        out_channels=CLASSES,
    )
    count = xinit.summary(spec(), LINES).total_params
    assert count == xinit.summary(one, LINES).total_params
    ref = reference()
    assert count == sum(p.size for p in ref.parameters() if p.trainable)


def test_bad_iter_size_is_refused_by_name():
    bad = {**ARCH, "Head": {**ARCH["Head"], "iter_size": 0}}
    with pytest.raises(xinit.ArgumentError, match="iter_size must be a positive int; got 0"):
        paddleocr.from_config({"Architecture": bad}, out_channels=CLASSES)


# configs/rec/rec_r45_abinet.yml's Global and Architecture as PaddleOCR ships it (USE_LANG:
# True; the tests also read it with False)
ABINET_YML = """\
Global:
  character_dict_path:
  character_type: en
  max_text_length: 25
  use_space_char: False
Architecture:
  model_type: rec
  algorithm: ABINet
  in_channels: 3
  Transform:
  Backbone:
    name: ResNet45
  Head:
    name: ABINetHead
    use_lang: USE_LANG
    iter_size: 3
"""


@pytest.mark.parametrize("use_lang", [True, False])
def test_from_config_reads_rec_r45_abinet_yml(tmp_path, use_lang):
    """The shipped config gives the zoo's ``abinet`` (three passes), with ``use_lang:
    False`` ``abinet(use_lang=False)`` (the vision model): PaddleOCR's 36 default characters
    and '</s>' (37 classes), (N, 26, 37) out of a 32x128 line."""
    path = tmp_path / "rec_r45_abinet.yml"
    path.write_text(ABINET_YML.replace("USE_LANG", str(use_lang)))
    spec_ = paddleocr.from_config(path)
    assert spec_ == paddleocr.abinet(use_lang=use_lang)
    assert xinit.blocks.infer(spec_, (2, 3, 32, 128))[-1].output_shape == (2, 26, 37)
    assert paddleocr.default_input(path) == (1, 3, 32, 128)  # the CLI's input for it
    names = [name for name, _, _ in spec_["head"].nodes]
    passes = [n for n in ("language", "language_1", "language_2") if n in names]
    assert len(passes) == (3 if use_lang else 0)


@pytest.mark.slow
@pytest.mark.parametrize("dst", ["torch", "flax"])
@pytest.mark.parametrize("use_lang", [True, False])
def test_zoo_abinet_full_size_ports_with_parity(tmp_path, dst, use_lang):
    """The zoo's ``abinet`` (rec_r45_abinet.yml, full size; ``use_lang=False``: the vision
    model) against PaddleOCR's ABINetHead on ResNet45: every key and shape, and a checkpoint
    ports with parity PASS."""
    require_backends("paddle", dst)
    import paddle
    import reference_paddleocr_heads as ref_models

    paddle.seed(7)
    ref = ref_models.abinet_model(out_channels=37, use_lang=use_lang, iter_size=3)
    randomize_batchnorm(ref, seed=8)
    ref.eval()
    model = paddleocr.abinet(use_lang=use_lang)
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items() if k not in TABLES}
    got = xinit.build(model, "paddle").state_dict()
    assert {k: tuple(v.shape) for k, v in got.items()} == want
    path = tmp_path / "abinet.pdparams"
    paddle.save(ref.state_dict(), str(path))
    ported = xinit.port(path, model, src="paddle", dst=dst)
    x = lines(9, (2, 3, 32, 128))
    report = xinit.port_parity(path, ported, model, x, src="paddle", dst=dst)
    assert report.ok, str(report.first_divergent)
