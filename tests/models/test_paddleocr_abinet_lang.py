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

import numpy as np
import pytest
from helpers import require_backend, require_backends

import xinit
from xinit import randomize_batchnorm
from xinit.graph import Graph
from xinit.layers import LengthMask
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


def spec(arch=ARCH):
    return paddleocr.from_config({"Architecture": arch}, out_channels=CLASSES)


def reference(seed: int = 0, **head):
    """The retyped model at eval with calibrated BatchNorm statistics."""
    require_backend("paddle")
    import paddle
    import reference_paddleocr_heads as ref

    paddle.seed(seed)
    kw = {**HEAD, "use_lang": True, "iter_size": 3, **head}
    m = ref.abinet_model(layers=(1, 1, 1, 1, 1), out_channels=CLASSES, **kw)
    randomize_batchnorm(m, seed=seed + 1)
    m.eval()
    return m


def lines(seed: int = 0, shape=LINES) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def taps(model, x, paths: list[str]) -> dict[str, np.ndarray]:
    """The outputs of the nodes at ``paths`` of xinit's Paddle build with ``model``'s
    weights, on ``x``."""
    import paddle

    extractor = xinit.build(xinit.graph.feature_extractor(spec(), paths), "paddle")
    extractor.set_state_dict(model.state_dict())
    extractor.eval()
    return {k: v.numpy() for k, v in extractor(paddle.to_tensor(x)).items()}


def end_words(model, x) -> None:
    """Raise the stop class's bias in ``cls`` and ``cls_align`` so that it wins at 40% of
    the positions of ``x``, as a trained ABINet ends its words: the lengths then differ
    between lines and passes (random weights alone never predict the stop)."""
    for name in ("cls", "cls_align"):
        logits = taps(model, x, [f"head.{name}"])[f"head.{name}"]
        margin = logits[..., 0] - logits[..., 1:].max(-1)
        bias = getattr(model.head, name).bias
        raised = bias.numpy().copy()
        raised[0] -= np.quantile(margin, 0.6)
        bias.set_value(raised)


def pass_lengths(model, x) -> np.ndarray:
    """The (clipped) lengths each pass masks by, (3, N)."""
    paths = [f"head.lengths{t}" for t in ("", "_1", "_2")]
    out = taps(model, x, paths)
    return np.stack([out[p] for p in paths])


def test_keys_shapes_and_outputs_equal_paddleocrs():
    """The Paddle build has the retyped model's keys and shapes but for the four saved
    sinusoid tables: one ``head.language``, ``w_att_align`` and ``cls_align`` for the three
    passes. After ``set_state_dict`` of the reference's weights the outputs agree within the
    float64-derived parity verdict, layer by layer, on lines whose pass lengths differ."""
    import paddle

    ref = reference(seed=1)
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    built = xinit.build(spec(), "paddle", seed=5)
    built.eval()
    got = {k: tuple(v.shape) for k, v in built.state_dict().items()}
    assert got == {k: v for k, v in want.items() if k not in TABLES}
    assert any(k.startswith("head.language.decoder.3.cross_attn.kv.") for k in got)
    assert not any(k.startswith(("head.language_", "head.cls_align_")) for k in got)
    missing, unexpected = built.set_state_dict(ref.state_dict())
    assert not missing and sorted(unexpected) == sorted(TABLES)

    x = lines()
    end_words(ref, x)
    built.set_state_dict(ref.state_dict())
    used = pass_lengths(ref, x)
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
