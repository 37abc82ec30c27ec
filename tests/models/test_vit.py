"""The ViT zoo: timm's ``vit_{tiny,small,base}_patch16_224`` with timm's names, shapes, order
and parameter counts; a timm state dict loads strictly into the torch build and gives timm's
outputs; the three frameworks agree layer by layer.

timm itself does not import beside this torch (its ``torchvision`` import has no matching
CPU build), so the reference is ``reference_models.torch_vit``: timm's VisionTransformer
retyped from timm 1.0's ``vision_transformer.py`` (PatchEmbed, Attention with its unfused
path, Mlp, Block, the model's own ``cls_token``/``pos_embed``, ``init_weights``)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends

import xinit
from xinit.blocks import num_params, output_shape, param_specs
from xinit.state import state_dict, transfer

# timm's published parameter counts (timm.create_model(name).parameters(), as listed by
# timm's results tables and model cards).
TIMM = {
    "vit_tiny_patch16_224": (192, 3, 5_717_416),
    "vit_small_patch16_224": (384, 6, 22_050_664),
    "vit_base_patch16_224": (768, 12, 86_567_656),
}

# float32 through 12 blocks: each output is sums of up to 768 products per Linear, softmax
# over 197 tokens and 24 LayerNorms; the two implementations (F.scaled_dot_product_attention
# vs timm's unfused q @ k^T) round differently, measured ~1e-6 relative at the logits.
# 1e-5 relative (plus atol 1e-6 for logits near 0) is 10x that; a wrong row or transposed
# weight changes logits by O(1).
RTOL, ATOL = 1e-5, 1e-6


def image(n=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 224, 224)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(TIMM))
def test_timms_names_shapes_order_and_parameter_count(name):
    """Built on torch's meta device (nothing allocated): every key, shape and the order of
    timm's state dict, and timm's published parameter count."""
    torch = require_backend("torch") and __import__("torch")
    from reference_models import torch_vit

    e, heads, count = TIMM[name]
    spec = xinit.models.get(name)
    assert num_params(spec) == count
    assert output_shape(spec, (2, 3, 224, 224)) == (2, 1000)
    with torch.device("meta"):
        ref = torch_vit(e, 12, heads)
    want = {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert sum(p.numel() for p in ref.parameters()) == count
    assert list(param_specs(spec)) == list(want)
    assert {k: ps.shape for k, ps in param_specs(spec).items()} == want
    built = xinit.build(spec, "torch", device="meta")
    assert {k: tuple(v.shape) for k, v in built.state_dict().items()} == want
    assert list(built.state_dict()) == list(want)
    assert all(p.is_meta for p in built.parameters())


def test_the_spec_carries_timms_init():
    """Without a policy the zoo spec is timm's ``init_weights('')``: the preset agrees."""
    spec = xinit.models.vit_tiny_patch16_224()
    params = param_specs(spec)
    assert str(params["blocks.3.attn.qkv.weight"].init) == "TruncatedNormal(std=0.02)"
    assert str(params["blocks.3.attn.qkv.bias"].init) == "Zeros()"
    assert str(params["pos_embed"].init) == "TruncatedNormal(std=0.02)"
    assert str(params["cls_token"].init) == "Normal(std=1e-06)"
    assert str(params["patch_embed.proj.weight"].init) == "KaimingUniform(a=2.236)"
    assert params["norm.weight"].layer.eps == 1e-6


def test_a_timm_state_dict_loads_strictly_and_gives_timms_outputs():
    """timm's (reference) model's ``state_dict()`` loads with ``strict=True`` into the torch
    build; the logits are timm's, and so is every layer's output (parity by path)."""
    torch = require_backend("torch") and __import__("torch")
    from reference_models import torch_vit

    torch.manual_seed(0)
    ref = torch_vit(192, 12, 3).eval()
    built = xinit.build(xinit.models.vit_tiny_patch16_224(), "torch", seed=1)
    result = built.load_state_dict(ref.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    x = image()
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(xinit.run(built, x), want, rtol=RTOL, atol=ATOL)
    report = xinit.parity({"timm": ref, "xinit": built}, x)
    assert report.ok, str(report.first_divergent)
    compared = {r.path for r in report.rows}
    assert {"patch_embed.proj", "blocks.11.attn.qkv", "blocks.11.mlp.fc2", "head"} <= compared
    assert "blocks.0.attn.sdpa" in report.unmatched["xinit"]  # parameter-free, timm's inline


@pytest.mark.parametrize("backend", [b for b in FRAMEWORKS if b != "torch"])
def test_timm_weights_give_timms_outputs_in_paddle_and_flax(backend):
    """A timm checkpoint, ported by ``xinit.port`` (no framework needed) into the backend's
    names and layouts, gives timm's logits."""
    require_backends("torch", backend)
    torch = __import__("torch")
    from reference_models import torch_vit

    torch.manual_seed(1)
    ref = torch_vit(192, 12, 3).eval()
    spec = xinit.models.vit_tiny_patch16_224()
    ckpt = {k: v.numpy() for k, v in ref.state_dict().items()}
    neutral = xinit.port(ckpt, spec, src="torch", dst="neutral")
    built = xinit.build(spec, backend, seed=1)
    xinit.load_state_dict(built, dict(neutral))
    x = image(seed=3)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    rtol = 1e-4 if backend == "flax" else RTOL  # XLA's reductions: PARITY_RTOL of flax
    np.testing.assert_allclose(np.asarray(xinit.run(built, x)), want, rtol=rtol, atol=ATOL)
    native = xinit.port(ckpt, spec, src="torch", dst=backend)
    assert "cls_token" in native and "pos_embed" in native


def test_vit_tiny_parity_over_three_frameworks():
    """Built with rng="xinit" the three frameworks hold the same values and agree layer by
    layer on a 224x224 batch; transfer between them is exact."""
    require_backends(*FRAMEWORKS)
    spec = xinit.models.vit_tiny_patch16_224()
    mods = {b: xinit.build(spec, b, seed=7, rng="xinit") for b in FRAMEWORKS}
    report = xinit.parity(mods, image(n=1, seed=5))
    assert report.ok, str(report.first_divergent)
    assert len(report.rows) > 100
    ref = state_dict(mods["torch"])
    other = xinit.build(spec, "flax", seed=8)
    transfer(mods["paddle"], other)
    for k, v in state_dict(other).items():
        np.testing.assert_array_equal(v, ref[k], err_msg=k)


def test_head_less_and_other_sizes():
    spec = xinit.models.vit_tiny_patch16_224(num_classes=0, img_size=64)
    assert output_shape(spec, (1, 3, 64, 64)) == (1, 192)
    assert param_specs(spec)["pos_embed"].shape == (1, 17, 192)
    with pytest.raises(xinit.layers.SpecError, match=r"not a multiple of the patch size 16"):
        xinit.models.vit_tiny_patch16_224(img_size=100)
    with pytest.raises(xinit.layers.SpecError, match=r"pos_embed: .*197 positions for 17"):
        output_shape(xinit.models.vit_tiny_patch16_224(), (1, 3, 64, 64))
