"""The graph zoo: torchvision's VGG (and VGG-19's relu1_1..relu4_1 encoder), CenterNet's
PoseResNet with its heads, and U-Net, against hand-written torch references (keys, order,
shapes, strict loads, outputs), with parity across the three frameworks and summaries."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends
from reference_models import torch_pose_resnet, torch_unet, torch_vgg
from stats_helpers import assert_moments

import xinit
from xinit import models
from xinit.blocks import infer, param_specs
from xinit.distributions import NormalDist
from xinit.state import state_dict, transfer


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def keys_and_shapes(module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def spec_keys(spec) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, p.shape) for k, p in param_specs(spec).items()]


def parity_of(spec, x, seed=0):
    """Every framework built with the same weights (torch's, BN statistics randomised,
    transferred), then layer-by-layer parity; returns the report and the torch output."""
    require_backends(*FRAMEWORKS)
    mods = {b: xinit.build(spec, b, seed=seed, rng="xinit") for b in FRAMEWORKS}
    xinit.randomize_batchnorm(mods["torch"], seed=seed + 1)
    for b in FRAMEWORKS[1:]:
        transfer(mods["torch"], mods[b])
    return xinit.parity(mods, x), {b: xinit.run(m, x) for b, m in mods.items()}


# ---- VGG -------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [11, 13, 16, 19])
@pytest.mark.parametrize("bn", [False, True], ids=["plain", "bn"])
def test_vgg_keys_order_and_shapes_are_torchvisions(depth, bn):
    torch = pytest.importorskip("torch")
    with torch.device("meta"):  # keys and shapes only: no 138M-value init
        ref = torch_vgg(depth, bn)
    spec = models.get(f"vgg{depth}{'_bn' if bn else ''}")
    assert spec_keys(spec) == keys_and_shapes(ref)
    assert xinit.summary(spec, (1, 3, 224, 224)).total_params == sum(
        p.numel() for p in ref.parameters()
    )


def test_vgg11_bn_loads_a_torchvision_state_strictly_and_runs_alike():
    torch = pytest.importorskip("torch")
    require_backend("torch")
    torch.manual_seed(0)
    ref = torch_vgg(11, True, num_classes=10).eval()
    for m in ref.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    ours = xinit.build(models.vgg11_bn(num_classes=10), "torch", seed=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = rand(2, 3, 32, 32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(xinit.run(ours, x), want, rtol=1e-5, atol=1e-6)


def test_vgg_default_init_is_torchvisions():
    require_backend("torch")
    sd = state_dict(xinit.build(models.vgg11(num_classes=10), "torch", seed=2))
    # convs: kaiming normal, fan_out = out * 3 * 3, relu gain; biases 0
    for key, cout in (("features.3.weight", 128), ("features.8.weight", 256)):
        assert_moments(sd[key], NormalDist(0.0, float(np.sqrt(2.0 / (cout * 9)))), key)
    for key in ("features.0.bias", "features.18.bias", "classifier.0.bias", "classifier.6.bias"):
        assert not sd[key].any(), key
    assert_moments(sd["classifier.3.weight"], NormalDist(0.0, 0.01), "classifier.3.weight")
    bn = state_dict(xinit.build(models.vgg11_bn(num_classes=10), "torch", seed=2))
    assert (bn["features.1.weight"] == 1).all() and not bn["features.1.bias"].any()


def test_vgg_features_parity_and_summary():
    spec = models.vgg11_bn(num_classes=0)  # features + pool (the classifier is Linear only)
    report, outs = parity_of(spec, rand(1, 3, 32, 32))
    assert report.ok, report
    assert outs["flax"].shape == (1, 512 * 7 * 7)
    rows = xinit.summary(spec, (1, 3, 32, 32)).rows
    assert [r.path for r in rows][:3] == ["features.0", "features.1", "features.2"]


def test_vgg19_encoder_taps_equal_the_reference_slices():
    torch = pytest.importorskip("torch")
    require_backend("torch")
    torch.manual_seed(1)
    ref = torch_vgg(19, num_classes=10).eval()
    spec = models.vgg19_encoder()
    enc = xinit.build(spec, "torch", seed=0)
    wanted = {k: v for k, v in ref.state_dict().items() if k in param_specs(spec)}
    enc.load_state_dict(wanted, strict=True)
    x = rand(1, 3, 32, 32)
    got = xinit.run(enc, x)
    assert list(got) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    with torch.no_grad():
        t, taps = torch.from_numpy(x), {}
        for i, layer in enumerate(ref.features[:21]):
            t = layer(t)
            taps[i] = t.clone()
    for key, index in (("relu1_1", 1), ("relu2_1", 6), ("relu3_1", 11), ("relu4_1", 20)):
        np.testing.assert_allclose(got[key], taps[index].numpy(), rtol=1e-5, atol=1e-5)
    report, _ = parity_of(spec, rand(1, 3, 16, 16))
    assert report.ok, report


# ---- CenterNet -------------------------------------------------------------------------------
HEADS = {"hm": 80, "wh": 2, "reg": 2}


def test_centernet_keys_and_outputs_match_msra_resnet():
    torch = pytest.importorskip("torch")
    require_backend("torch")
    torch.manual_seed(2)
    ref = torch_pose_resnet(18, HEADS, 64).eval()
    spec = models.centernet_resnet(depth=18, heads=HEADS, head_conv=64)
    assert spec_keys(spec) == keys_and_shapes(ref)
    ours = xinit.build(spec, "torch", seed=3)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = rand(1, 3, 64, 64)
    with torch.no_grad():
        want = ref(torch.from_numpy(x))
    got = xinit.run(ours, x)
    assert list(got) == ["hm", "wh", "reg"]
    for k in HEADS:
        np.testing.assert_allclose(got[k], want[k].numpy(), rtol=1e-4, atol=1e-5)
    assert xinit.summary(spec, (1, 3, 64, 64)).output_shape["hm"] == (1, 80, 16, 16)


def test_centernet_parity_with_three_heads():
    spec = models.centernet_resnet(depth=18, heads={"hm": 3, "wh": 2, "reg": 2}, head_conv=8)
    report, outs = parity_of(spec, rand(1, 3, 32, 32))
    assert report.ok, report
    for b in FRAMEWORKS[1:]:
        for k in ("hm", "wh", "reg"):
            np.testing.assert_allclose(outs[b][k], outs["torch"][k], rtol=1e-4, atol=1e-4)


# ---- U-Net -----------------------------------------------------------------------------------
def test_unet_keys_and_outputs_match_the_reference():
    torch = pytest.importorskip("torch")
    require_backend("torch")
    torch.manual_seed(3)
    ref = torch_unet(3, 2, base=8, depth=3).eval()
    spec = models.unet(in_channels=3, num_classes=2, base_channels=8, depth=3)
    assert spec_keys(spec) == keys_and_shapes(ref)
    ours = xinit.build(spec, "torch", seed=1)
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = rand(1, 3, 32, 32)
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(xinit.run(ours, x), want, rtol=1e-4, atol=1e-5)
    full = xinit.summary(models.unet(), (1, 3, 64, 64))
    assert full.output_shape == (1, 2, 64, 64)
    assert full.total_params == sum(p.numel() for p in torch_unet().parameters())


def test_unet_parity_and_odd_sizes_refused():
    spec = models.unet(base_channels=4, depth=2)
    report, outs = parity_of(spec, rand(1, 3, 16, 16))
    assert report.ok, report
    assert outs["paddle"].shape == (1, 2, 16, 16)
    with pytest.raises(
        xinit.layers.SpecError, match=r"up1.cat: concat .*x2 \(1, 8, 7, 7\), up \(1, 8, 6, 6\)"
    ):
        infer(spec, (1, 3, 14, 14))


# ---- the CenterNet preset is the seed's init_weights ------------------------------------------
def test_centernet_preset_equals_the_seed_loop_parameter_by_parameter():
    """xinit.build with presets.centernet_heads() (and the spec's own defaults, which are the
    same) against the seed's init_weights on the hand-written PoseResNet: constants exactly,
    random laws by their moments; parameters the seed leaves alone keep PyTorch's default."""
    torch = pytest.importorskip("torch")
    require_backend("torch")
    from stats_helpers import assert_ks_two

    from xinit import presets
    from xinit.distributions import UniformDist

    heads = {"hm": 80, "wh": 2, "reg": 2}
    spec = models.centernet_resnet(18, heads, head_conv=256)  # larger heads: more samples
    torch.manual_seed(4)
    seed_sd = {k: v.numpy() for k, v in torch_pose_resnet(18, heads, 256).state_dict().items()}
    for policy in (None, presets.centernet_heads()):
        ours = state_dict(xinit.build(spec, "torch", seed=6, policy=policy))
        assert list(ours) == list(seed_sd)
        assert np.all(ours["hm.2.bias"] == np.float32(-2.19))
        assert np.all(seed_sd["hm.2.bias"] == ours["hm.2.bias"])
        for key in ("wh.2.bias", "reg.2.bias", "deconv_layers.1.bias", "deconv_layers.7.bias"):
            assert not ours[key].any() and not seed_sd[key].any(), key
        for key in ("deconv_layers.1.weight", "deconv_layers.4.weight"):
            assert np.all(ours[key] == 1) and np.all(seed_sd[key] == 1), key
        small = NormalDist(0.0, 0.001)
        for key in ("deconv_layers.0.weight", "deconv_layers.3.weight", "wh.2.weight"):
            assert_moments(ours[key], small, f"xinit {key}")
            assert_moments(seed_sd[key], small, f"seed {key}")
        # left at PyTorch's default by the seed: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        for key in ("hm.2.weight", "hm.0.weight"):
            fan_in = 256 if key == "hm.2.weight" else 256 * 9
            law = UniformDist(-1 / np.sqrt(fan_in), 1 / np.sqrt(fan_in))
            assert_moments(ours[key], law, f"xinit {key}")
            assert_moments(seed_sd[key], law, f"seed {key}")
        assert_ks_two(ours["reg.2.weight"].ravel(), seed_sd["reg.2.weight"].ravel(), "reg.2")


def test_centernet_backbone_from_a_checkpoint_rest_by_the_preset():
    """The seed's last step: the backbone from a checkpoint (strict=False), everything the
    checkpoint lacks initialised by the preset, the loaded tensors untouched."""
    torch = pytest.importorskip("torch")
    require_backend("torch")
    from reference_models import torch_resnet18

    from xinit import presets

    torch.manual_seed(5)
    backbone = {k: v for k, v in torch_resnet18().state_dict().items() if not k.startswith("fc")}
    spec = models.centernet_resnet(18, {"hm": 3, "wh": 2}, head_conv=16)
    model = xinit.build(spec, "torch", seed=1)
    result = model.load_state_dict(backbone, strict=False)
    assert not result.unexpected_keys
    assert all(k.startswith(("deconv_layers", "hm", "wh")) for k in result.missing_keys)
    report = xinit.apply(presets.centernet_heads(heads=("hm", "wh")), model, skip=backbone.keys())
    assert "hm.2.bias" in report.initialized and "layer1.0.conv1.weight" in report.skipped
    sd = model.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in backbone.items())
    assert torch.all(sd["hm.2.bias"] == torch.tensor(-2.19))
