"""torchvision's Swin Transformer traced and converted: each ``ShiftedWindowAttention`` is one
``WindowAttention`` node (the window partition merges the batch, which no graph of ops can
say), PatchMerging's strided slices, Permute and StochasticDepth are glue. The traced spec
keeps torchvision's state keys (the index buffers included), runs bit-equal to the model in
torch at batch 3 after tracing at batch 1, and converts to Paddle and Flax with xinit's parity
verdict PASS; a planted fault in the lowering (no shift mask, a shift off by one) fails it
at the first shifted block. The small Swin is torchvision's own classes at a small size."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real
from helpers import require_backend

import xinit
from xinit import layers as L
from xinit.tracing import TraceError

torch = pytest.importorskip("torch")

SIZE = 32  # patch 4: an 8x8 map (two windows of 4 a side, shifted), then 4x4 (not shifted)


def small_swin():
    """torchvision's SwinTransformer: patch 4, embed 24, depths [2, 2], heads [2, 4], window 4."""
    tv = real.vision("torchvision").models
    torch.manual_seed(0)
    return tv.swin_transformer.SwinTransformer([4, 4], 24, [2, 2], [2, 4], [4, 4], num_classes=10)


def images(batch: int, size: int = SIZE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


@pytest.fixture(scope="module")
def traced():
    model = small_swin().eval()
    return model, xinit.trace(model, torch.from_numpy(images(1)))


def test_each_window_attention_is_one_node_with_torchvisions_fields(traced):
    model, spec = traced
    nodes = {
        path: node for path, node in xinit.blocks.walk(spec) if isinstance(node, L.WindowAttention)
    }
    assert sorted(nodes) == [f"features.{s}.{b}.attn" for s in (1, 3) for b in (0, 1)]
    for path, node in nodes.items():
        attn = model.get_submodule(path)
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


@pytest.mark.parametrize("to", ["paddle", "flax"])
def test_convert_passes_parity(traced, to):
    require_backend(to)
    model, spec = traced
    module, report = xinit.convert(model, to, images(2, seed=2), spec=spec)
    assert report.ok, report.summary()
    rows = {r.path for r in report.parity.rows}
    assert {"features.1.1.attn", "features.3.0.attn", "head"} <= rows
    # every parameter moved; the index buffers are skipped: Paddle and Flax compute them
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
    monkeypatch.setattr(L.WindowAttention, method, fault)
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


def test_swin_v2_attention_is_named_as_unknown():
    """v2's cosine attention and its cpb_mlp have no kind: the trace names each block."""
    model = real.torchvision_small("swin_v2_small").eval()
    with pytest.raises(TraceError) as err:
        xinit.trace(model, torch.from_numpy(images(1)))
    text = str(err.value)
    assert "features.1.0.attn" in text and "ShiftedWindowAttentionV2" in text


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
