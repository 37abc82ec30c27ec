"""torchvision's Swin Transformer (v1 and v2) traced and converted: each
``ShiftedWindowAttention`` is one ``WindowAttention`` node (``ShiftedWindowAttentionV2`` one
``WindowAttentionV2``: the window partition merges the batch, which no graph of ops can say),
PatchMerging's strided slices, Permute and StochasticDepth are glue. The traced spec keeps
torchvision's state keys (the buffers included), runs bit-equal to the model in torch at
batch 3 after tracing at batch 1, and converts to Paddle and Flax with xinit's parity verdict
PASS; a planted fault in the lowering (no shift mask, a shift off by one) fails it at the
first shifted block. The small Swins are torchvision's own classes at a small size."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import real_models as real
from helpers import require_backend

import xinit
from xinit import layers as L
from xinit.tracing import TraceError

torch = pytest.importorskip("torch")

SIZE = 32  # patch 4: an 8x8 map (two windows of 4 a side, shifted), then 4x4 (not shifted)


def small_swin(version: str = "v1"):
    """torchvision's SwinTransformer: patch 4, embed 24, depths [2, 2], heads [2, 4], window 4
    (v2: its v2 block and patch merging)."""
    swin = real.vision("torchvision").models.swin_transformer
    v2 = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2}
    torch.manual_seed(0)
    return swin.SwinTransformer(
        [4, 4], 24, [2, 2], [2, 4], [4, 4], num_classes=10, **(v2 if version == "v2" else {})
    )


def images(batch: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


@functools.cache
def _traced(version: str):
    model = small_swin(version).eval()
    return model, xinit.trace(model, torch.from_numpy(images(1)))


@pytest.fixture(params=["v1", "v2"])
def traced(request):
    return _traced(request.param)


def test_each_window_attention_is_one_node_with_torchvisions_fields(traced):
    model, spec = traced
    kinds = (L.WindowAttention, L.WindowAttentionV2)
    nodes = {path: node for path, node in xinit.blocks.walk(spec) if isinstance(node, kinds)}
    assert sorted(nodes) == [f"features.{s}.{b}.attn" for s in (1, 3) for b in (0, 1)]
    for path, node in nodes.items():
        attn = model.get_submodule(path)
        assert node.cosine == hasattr(attn, "logit_scale")  # v2: WindowAttentionV2
        assert node.window_size == tuple(attn.window_size) == (4, 4)
        assert node.shift_size == tuple(attn.shift_size)
        assert (node.dim, node.num_heads) == (attn.qkv.in_features, attn.num_heads)


def test_traced_spec_keeps_the_keys_and_runs_bit_equal_at_batch_3(traced):
    model, spec = traced
    built = xinit.build(spec, "torch")
    # the index buffers too; PatchMerging calls norm before reduction, the traced order
    assert sorted(built.state_dict()) == sorted(model.state_dict())
    built.load_state_dict(model.state_dict(), strict=True)
    index = "features.1.0.attn.relative_position_index"
    assert torch.equal(built.state_dict()[index], model.state_dict()[index])
    x3 = torch.from_numpy(images(3, seed=1))
    with torch.no_grad():
        want, got = model(x3), built.eval()(x3)
    assert torch.equal(want, got), (want - got).abs().max()


def test_a_fresh_torch_build_holds_torchvisions_index():
    """The index buffer is computed, not drawn: a build from the spec alone has
    torchvision's values."""
    tv = real.vision("torchvision").models.swin_transformer
    attn = tv.ShiftedWindowAttention(12, [3, 4], [1, 2], 3)
    built = xinit.build(L.WindowAttention(12, (3, 4), (1, 2), 3), "torch")
    got = built.state_dict()["relative_position_index"]
    assert got.dtype == torch.int64 and torch.equal(got, attn.relative_position_index)


@pytest.mark.parametrize(
    ("version", "to"),
    [
        ("v1", "paddle"),
        ("v1", "flax"),
        ("v2", "paddle"),
        pytest.param("v2", "flax", marks=pytest.mark.slow),  # Flax's parity: ~40 s on 2 cores
    ],
)
def test_convert_passes_parity(version, to):
    require_backend(to)
    model, spec = _traced(version)
    module, report = xinit.convert(model, to, images(2, seed=2), spec=spec)
    assert report.ok, report.summary()
    rows = {r.path for r in report.parity.rows}
    assert {"features.1.1.attn", "features.3.0.attn", "head"} <= rows
    # every tensor moved (v2's coordinate tables too) but the index buffers, which Paddle
    # and Flax compute
    skipped = report.transfer.skipped
    assert sorted(skipped) == sorted(k for k in model.state_dict() if k.endswith("_index"))
    assert len(report.transfer.loaded) == len(model.state_dict()) - len(skipped)


_SHIFTS = L.WindowAttention.shifts


def _no_mask(spec, pad_h, pad_w):
    return None


def _shift_off_by_one(spec, pad_h, pad_w):
    sh, sw = _SHIFTS(spec, pad_h, pad_w)
    return (sh + 1 if sh else 0), sw


@pytest.mark.parametrize(
    ("method", "fault"), [("shift_mask", _no_mask), ("shifts", _shift_off_by_one)]
)
def test_a_planted_fault_in_the_lowering_fails_parity(traced, monkeypatch, method, fault):
    """Paddle's module reads the spec's shift and mask: without the mask, or with a shift one
    off, the first shifted block (features.1.1.attn) disagrees with torchvision's."""
    require_backend("paddle")
    model, spec = traced
    for kind in (L.WindowAttention, L.WindowAttentionV2):
        monkeypatch.setattr(kind, method, fault)
    _, report = xinit.convert(model, "paddle", images(2, seed=3), spec=spec)
    assert not report.ok
    assert report.parity.first_divergent.path == "features.1.1.attn", report.summary()


def test_saved_spec_loads_equal_and_converts(traced, tmp_path):
    require_backend("paddle")
    model, spec = traced
    path = xinit.save_spec(spec, tmp_path / "swin.json")
    loaded = xinit.load_spec(path)
    assert loaded == spec
    _, report = xinit.convert(model, "paddle", images(1, seed=4), spec=loaded)
    assert report.ok, report.summary()


def test_a_subclass_computing_otherwise_is_named_as_unknown():
    """A ShiftedWindowAttention subclass whose forward differs from the kind's (here: no
    relative-position bias) is refused by the tracer's check, naming its path."""
    swin = real.vision("torchvision").models.swin_transformer

    class NoBias(swin.ShiftedWindowAttention):
        def get_relative_position_bias(self):
            return torch.zeros(1)

    model = torch.nn.Sequential(NoBias(8, [2, 2], [1, 1], 2))
    with torch.no_grad():
        model[0].relative_position_bias_table.normal_()
    with pytest.raises(TraceError) as err:
        xinit.trace(model, torch.randn(1, 4, 4, 8))
    assert "'0'" in str(err.value) and "computes other than its WindowAttention" in str(err.value)


@pytest.mark.slow
def test_full_size_swin_t_converts_to_paddle():
    require_backend("paddle")
    torch.manual_seed(0)
    model = real.vision("torchvision").models.swin_t().eval()
    x = images(1, size=224)
    spec = xinit.trace(model, torch.from_numpy(x))
    built = xinit.build(spec, "torch")
    built.load_state_dict(model.state_dict(), strict=True)
    x3 = torch.from_numpy(images(3, size=224, seed=5))
    with torch.no_grad():
        assert torch.equal(model(x3), built.eval()(x3))
    _, report = xinit.convert(model, "paddle", x, spec=spec)
    assert report.ok, report.summary()
