"""``WindowAttention`` and ``WindowAttentionV2`` against torchvision's own
``ShiftedWindowAttention`` and ``ShiftedWindowAttentionV2``: with its weights
(moved by ``xinit.transfer``), torch's module gives torchvision's bits and Paddle's and
Flax's stay within 4x torchvision's own float32 rounding (both measured against torchvision
in float64), over maps that need padding, a shift on one axis only (the other's window covers
it), non-square windows and a window larger than the map."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real
from helpers import installed

import xinit
from xinit import layers as L

torch = pytest.importorskip("torch")

CASES = {  # (H, W), window, shift, dim, heads
    "shifted": ((8, 8), (4, 4), (2, 2), 8, 2),
    "padded": ((5, 6), (2, 2), (1, 1), 8, 2),
    "one_axis": ((4, 8), (4, 4), (2, 2), 12, 3),
    "non_square": ((6, 10), (3, 4), (1, 2), 8, 4),
    "window_over_map": ((3, 3), (4, 4), (2, 2), 6, 1),
}


VERSIONS = {"v1": ("ShiftedWindowAttention", L.WindowAttention)}
VERSIONS["v2"] = ("ShiftedWindowAttentionV2", L.WindowAttentionV2)


def _torchvision(version, window, shift, dim, heads):
    tv = real.vision("torchvision").models.swin_transformer
    torch.manual_seed(0)
    cls = getattr(tv, VERSIONS[version][0])
    attn = cls(dim, list(window), list(shift), heads).eval()
    with torch.no_grad():  # biases and table away from their zero/tiny starts
        for p in attn.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return attn


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_framework_computes_torchvisions_attention(case, version):
    (h, w), window, shift, dim, heads = CASES[case]
    attn = _torchvision(version, window, shift, dim, heads)
    x = np.random.default_rng(1).standard_normal((3, h, w, dim)).astype(np.float32)
    with torch.no_grad():
        want = attn(torch.from_numpy(x))
        ref64 = attn.double()(torch.from_numpy(x).double()).numpy()
        attn.float()
    rounding = np.abs(want.numpy() - ref64).max()
    bound = 4 * max(rounding, np.finfo(np.float32).eps * np.abs(ref64).max())
    spec = VERSIONS[version][1](dim, window, shift, heads)
    for fw in installed():
        built = xinit.build(spec, fw)
        xinit.transfer(attn, built)
        got = np.asarray(xinit.run(built, x))
        if fw == "torch":
            assert np.array_equal(got, want.numpy()), f"{case} {version}: torch differs"
        err = np.abs(got - ref64).max()
        assert err <= bound, f"{case} {version} {fw}: {err:.3g} from float64, bound {bound:.3g}"


def test_the_shift_mask_is_torchvisions():
    """Regions as torchvision numbers them: on an 8x8 map, window 4, shift 2, the last
    window row and column hold three regions each side, -100 between them."""
    spec = L.WindowAttention(8, (4, 4), (2, 2), 2)
    mask = spec.shift_mask(8, 8)
    assert mask.shape == (4, 16, 16)
    assert not mask[0].any()  # the top-left window lies in one region
    assert set(np.unique(mask)) == {0.0, -100.0}
    assert spec.shift_mask(4, 8) is not None and spec.shifts(4, 8) == (0, 2)
    assert spec.shift_mask(4, 4) is None  # the window covers the map: nothing shifted


def test_bad_specs_and_inputs_are_named():
    with pytest.raises(L.SpecError, match="not divisible by num_heads"):
        L.WindowAttention(10, (4, 4), (0, 0), 3)
    with pytest.raises(L.SpecError, match="window_size"):
        L.WindowAttention(8, (4, 4, 4), (0, 0), 2)
    with pytest.raises(L.SpecError, match=r"\(B, H, W, C=8\)"):
        L.WindowAttention(8, (4, 4), (2, 2), 2).output_shape((2, 8, 4, 4))


def test_v2_buffers_are_torchvisions():
    """A build from the spec alone holds torchvision's coordinates and index, bit for bit."""
    tv = real.vision("torchvision").models.swin_transformer
    attn = tv.ShiftedWindowAttentionV2(12, [3, 4], [1, 2], 3)
    state = xinit.build(L.WindowAttentionV2(12, (3, 4), (1, 2), 3), "torch").state_dict()
    for name in ("relative_coords_table", "relative_position_index"):
        want = getattr(attn, name)
        assert state[name].dtype == want.dtype and torch.equal(state[name], want), name
    with pytest.raises(L.SpecError, match="2 or more"):
        L.WindowAttentionV2(8, (1, 4), (0, 0), 2)
