"""The PyTorch tracer on real timm models (random init, nothing downloaded): ViT and DeiT
(timm's ``Attention`` as qkv -> sdpa -> proj), ConvNeXt (``gamma.reshape(1, -1, 1, 1)`` in
arithmetic), and the families built on ``BatchNormAct2d`` (norm node + activation node). The
traced spec has the model's own state keys, runs equal to it in PyTorch (traced at batch 1,
run at batch 3), and ``xinit.convert`` takes it to Paddle and Flax with xinit's parity
verdict (float64-derived) passing against the timm model itself. A fault planted after the
trace is caught by that verdict at the layer where it acts; a timm layer configured beyond
what the decomposition computes is refused, named by its path."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real
from helpers import require_backend

import xinit
from xinit.blocks import walk
from xinit.tracing import TraceError

torch = pytest.importorskip("torch")


def _vit(**kw):
    timm = real.vision("timm")
    small = dict(img_size=32, patch_size=8, depth=2, num_classes=10)
    return timm.create_model(
        kw.pop("name", "vit_tiny_patch16_224"), pretrained=False, **small, **kw
    )


def _convnext():
    """timm's ConvNeXt classes, four stages of one block, 8 to 32 channels."""
    timm = real.vision("timm")
    return timm.models.convnext.ConvNeXt(depths=(1,) * 4, dims=(8, 16, 24, 32), num_classes=10)


def _same_padding():
    """timm's TensorFlow-style convs (``tf_`` EfficientNets): "SAME" padding, uneven where
    the stride is 2, each then a BatchNormAct2d."""
    layers = real.vision("timm").layers
    return torch.nn.Sequential(
        layers.Conv2dSame(3, 8, 3, stride=2),
        layers.BatchNormAct2d(8, act_layer=torch.nn.SiLU),
        layers.Conv2dSame(8, 8, 5, groups=8),
        layers.BatchNormAct2d(8),
    )


def _create(name: str):
    return lambda: real.vision("timm").create_model(name, pretrained=False, num_classes=10)


# name -> (factory, torch check fast, convert to paddle/flax fast): the rest are slow
FAMILIES = {
    "vit": (_vit, True, True),
    "deit_distilled": (lambda: _vit(name="deit_tiny_distilled_patch16_224"), True, False),
    "deit3": (lambda: _vit(name="deit3_small_patch16_224"), True, False),  # LayerScale
    "convnext": (_convnext, True, True),
    "regnety_002": (_create("regnety_002"), True, False),  # BatchNormAct2d, SE
    "same_padding": (_same_padding, True, True),
    "convnext_atto": (_create("convnext_atto"), True, False),
    "resnet18": (_create("resnet18"), True, False),
    "efficientnet_b0": (_create("efficientnet_b0"), False, False),
    "tf_efficientnet_b0": (_create("tf_efficientnet_b0"), False, False),  # Conv2dSame
    "mobilenetv3_small_050": (_create("mobilenetv3_small_050"), False, False),
    "regnetx_002": (_create("regnetx_002"), False, False),
    "vit_small_224": (_create("vit_small_patch16_224"), False, False),
}
SIZES = {"vit_small_224": 224, "same_padding": 31}


def _cases(which: int):
    return [
        n if fast[which] else pytest.param(n, marks=pytest.mark.slow)
        for n, fast in ((n, f[1:]) for n, f in FAMILIES.items())
    ]


def _input(name: str, batch: int, seed: int) -> np.ndarray:
    size = SIZES.get(name, 32)
    return np.random.default_rng(seed).standard_normal((batch, 3, size, size)).astype(np.float32)


def _model(name: str):
    torch.manual_seed(0)
    return FAMILIES[name][0]().eval()


@pytest.mark.parametrize("name", _cases(0))
def test_traced_timm_spec_runs_as_the_model_in_torch(name):
    model = _model(name)
    spec = xinit.trace(model, torch.from_numpy(_input(name, 1, 0)))
    built = xinit.build(spec, "torch")
    # the same keys (a learned token's may come in another order: DeiT's dist_token)
    assert sorted(built.state_dict()) == sorted(model.state_dict())
    built.load_state_dict(model.state_dict(), strict=True)
    x3 = torch.from_numpy(_input(name, 3, 1))
    with torch.no_grad():  # batch 1 traced, batch 3 run: the same ops on the same weights
        want, got = model(x3), built.eval()(x3)
    assert torch.equal(want, got), (want - got).abs().max()


@pytest.mark.parametrize("name", _cases(1))
def test_timm_model_converts_to_paddle_and_flax_with_parity(name):
    model = _model(name)
    x = _input(name, 2, 1)
    for fw in ("paddle", "flax"):
        require_backend(fw)
        _, report = xinit.convert(model, fw, x)
        assert report.transfer.loaded and report.parity.rows and report.ok, report.parity


def test_timm_layers_become_their_kinds_under_timm_names():
    vit = xinit.trace(_model("vit"), torch.zeros(1, 3, 32, 32))
    paths = {path for path, _ in walk(vit)}
    assert {"blocks.0.attn.qkv", "blocks.0.attn.sdpa", "blocks.0.attn.proj"} <= paths
    convnext = xinit.trace(_model("convnext"), torch.zeros(1, 3, 32, 32))
    gamma = dict(walk(convnext))["stages.0.blocks.0.gamma"]
    assert type(gamma).__name__ == "LearnedTensor" and gamma.shape == (8,)
    regnet = dict(walk(xinit.trace(_model("regnety_002"), torch.zeros(1, 3, 32, 32))))
    assert type(regnet["stem.bn"]).__name__ == "BatchNorm"
    assert type(regnet["stem.bn_relu"]).__name__ == "ReLU"


def test_a_fault_planted_after_the_trace_is_caught_where_it_acts():
    """The traced spec, converted, against a timm model changed after the trace: a norm's
    activation removed (``stem.bn`` of a RegNetY no longer applies its ReLU) and a ViT
    attention's heads merged into one. The verdict passes before the fault and
    fails where it acts: the norm's own row compares its output before the activation, so
    it still passes and its block ``stem`` fails."""
    require_backend("paddle")
    regnet = _model("regnety_002")
    x = _input("regnety_002", 2, 1)
    spec = xinit.trace(regnet, torch.from_numpy(x[:1]))
    _, report = xinit.convert(regnet, "paddle", x, spec=spec)
    assert report.ok, report.parity
    regnet.stem.bn.act = torch.nn.Identity()
    _, report = xinit.convert(regnet, "paddle", x, spec=spec)
    rows = {row.path: row.passed for row in report.parity.rows}
    assert rows["stem.conv"] and rows["stem.bn"] and not report.ok
    assert report.parity.first_divergent.path == "stem", report.parity.summary()
    vit = _model("vit")
    spec = xinit.trace(vit, torch.zeros(1, 3, 32, 32))
    attn = vit.blocks[1].attn
    attn.num_heads, attn.head_dim = 1, attn.attn_dim  # one head of 192 where 3 were traced
    _, report = xinit.convert(vit, "paddle", _input("vit", 2, 1), spec=spec)
    rows = {row.path: row.passed for row in report.parity.rows}
    assert rows["blocks.1.attn.qkv"] and not report.ok
    assert report.parity.first_divergent.path == "blocks.1.attn.proj", report.parity.summary()


def test_a_timm_layer_beyond_its_kinds_is_named_with_its_path():
    """timm's Attention with q/k normalisation (the sdpa kind has none) and ConvNeXt-V2's
    GRN (``Tensor.norm``, ``torch.addcmul``: no kind): each named at its module path."""
    vit = _vit(qk_norm=True).eval()
    with pytest.raises(TraceError) as err:
        xinit.trace(vit, torch.zeros(1, 3, 32, 32))
    lines = str(err.value).splitlines()[1:]
    assert len(lines) == 2 and lines[0].startswith("  blocks.0: layer 'attn'")
    assert "timm.layers.attention.Attention" in lines[0] and "(q_norm)" in lines[0]
    assert lines[1].startswith("  blocks.1: layer 'attn'")
    timm = real.vision("timm")
    v2 = timm.models.convnext.ConvNeXt(
        depths=(1,) * 4, dims=(8,) * 4, use_grn=True, ls_init_value=None
    )
    with pytest.raises(TraceError, match=r"stages\.0\.blocks\.0\.mlp\.grn: operation Tensor.norm"):
        xinit.trace(v2.eval(), torch.zeros(1, 3, 32, 32))


class _NormActs(torch.nn.Module):
    """timm's norm + activation layers in a row, each with another activation, one without
    (``apply_act=False``), the last on an (N, L, C) sequence."""

    def __init__(self):
        super().__init__()
        layers = real.vision("timm").layers
        nn = torch.nn
        self.conv = nn.Conv2d(3, 8, 3)
        self.gn = layers.GroupNormAct(8, 2, act_layer=nn.SiLU)
        self.ln2d = layers.LayerNormAct2d(8, act_layer=nn.GELU)
        self.bn = layers.BatchNormAct2d(8, act_layer=nn.Hardswish)
        self.bn_plain = layers.BatchNormAct2d(8, apply_act=False)
        self.ln = layers.LayerNormAct(8, act_layer=nn.ReLU)

    def forward(self, x):
        y = self.bn_plain(self.bn(self.ln2d(self.gn(self.conv(x)))))
        return self.ln(y.flatten(2).transpose(1, 2))


def test_timm_norm_act_layers_are_the_norm_then_the_activation():
    torch.manual_seed(0)
    model = _NormActs().eval()
    with torch.no_grad():  # statistics and affine parameters away from their initial values
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)):
                m.weight.normal_()
                m.bias.normal_()
    spec = xinit.trace(model, torch.zeros(1, 3, 8, 8))
    kinds = [(name, type(node).__name__) for name, node in spec.steps]
    assert kinds == [
        ("conv", "Conv"),
        ("gn", "GroupNorm"),
        ("gn_silu", "SiLU"),
        ("ln2d", "LayerNorm2d"),
        ("ln2d_gelu", "GELU"),
        ("bn", "BatchNorm"),
        ("bn_hardswish", "Hardswish"),
        ("bn_plain", "BatchNorm"),
        ("flatten", "Flatten"),
        ("transpose", "Permute"),
        ("ln", "LayerNorm"),
        ("ln_relu", "ReLU"),
    ]
    built = xinit.build(spec, "torch")
    built.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(built.eval()(x), model(x))
    for fw in ("paddle", "flax"):
        require_backend(fw)
        _, report = xinit.convert(model, fw, x.numpy()[:2])
        compared = [row.path for row in report.parity.rows]
        assert {"gn", "ln2d", "bn", "bn_plain", "ln"} <= set(compared)
        assert report.ok, report.parity.summary()
