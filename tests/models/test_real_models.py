"""Real models xinit did not build, as users have them: torchvision and timm classifiers
(random init), every paddle.vision classifier, a Flax NNX ViT and LSTM. Each is read
(``state_dict``: every tensor the framework saves, nothing else), initialised with its own
framework's defaults (``apply(Default(fw), param="*")``: every parameter set, or left as is
with a reason when the framework has no default for its class), diagnosed, and transferred
into a second instance bit-exactly. The small torchvision configs are the same module
classes as the named models; the full-size ones are ``slow``."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real
from helpers import require_backend

import xinit
from xinit import Policy, Rule, init

IMAGE = (2, 3, 32, 32)


def native_state(fw: str, model) -> dict[str, np.ndarray]:
    """What the framework itself saves of ``model``: its own state dict, as numpy."""
    if fw == "torch":
        return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    if fw == "paddle":
        return {k: np.array(v.numpy()) for k, v in model.state_dict().items()}
    from flax import nnx

    out = {}
    for kind in (nnx.Param, nnx.BatchStat):
        for k, v in nnx.state(model, kind).flat_state():
            out[".".join(map(str, k))] = np.array(v.get_value())
    return out


def check_model(fw: str, make, input_shape, *, diagnose: bool = True):
    """Read, apply the framework's defaults, diagnose, transfer into a second instance."""
    require_backend(fw)
    a, b = make(0), make(1)
    own = native_state(fw, a)
    state = xinit.state_dict(a)
    # every tensor the framework saves is read once: torch's names are the neutral ones;
    # Paddle's too, one for one; Flax packs (attention's q/k/v kernels are one in_proj_weight,
    # an LSTM cell's per-gate kernels one weight_ih), so its elements are counted
    if fw == "torch":
        assert state.keys() == own.keys(), sorted(set(state) ^ set(own))[:8]
    elif fw == "paddle":
        assert len(state) == len(own), (len(state), len(own))
    numel = sum(v.size for v in state.values())
    assert numel == sum(v.size for v in own.values()), (numel, sorted(state)[:8])
    del state  # the full-size models hold 100 M values: one copy fewer at a time

    report = xinit.apply(Policy(Rule(init.Default(fw), param="*")), a, seed=3)
    statuses = {e.status for e in report}
    assert statuses <= {"initialized", "left"}, statuses
    assert all(reason for reason in report.left.values())
    after = native_state(fw, a)
    changed = {k for k in own if not np.array_equal(own[k], after[k])}
    assert changed, "apply changed nothing"
    trainable = {name for e in report for name in e.native.split("+")}  # "+": split natively
    assert not changed - trainable, f"apply touched buffers: {sorted(changed - trainable)[:5]}"
    del own, after

    if diagnose:
        result = xinit.diagnose(a, input_shape)
        rows = result.rows
        assert rows and all(np.isfinite(r.std) and r.std > 0 for r in rows if r.kind), rows[:3]

    xinit.transfer(a, b)
    got = native_state(fw, b)
    for k, v in native_state(fw, a).items():
        assert got[k].dtype == v.dtype, k
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    return report


def _seeded(fw: str, build):
    def make(seed: int):
        if fw == "torch":
            import torch

            torch.manual_seed(seed)
        else:
            import paddle

            paddle.seed(seed)
        return build()

    return make


# ---- torchvision: small configs of the transformer families, and the CNNs as they are ------
TORCHVISION_FAST = {
    "vit_small": IMAGE,
    "swin_small": IMAGE,
    "swin_v2_small": IMAGE,
    "maxvit_small": IMAGE,
    "convnext_small": IMAGE,
    "mobilenet_v3_small": IMAGE,
    "shufflenet_v2_x0_5": IMAGE,
    "squeezenet1_1": (2, 3, 64, 64),
    "regnet_y_400mf": IMAGE,
    "mnasnet0_5": IMAGE,
    "resnet18": IMAGE,
}
TORCHVISION_SLOW = {
    "swin_t": IMAGE,
    "convnext_tiny": IMAGE,
    "maxvit_t": (1, 3, 224, 224),
    "efficientnet_b0": IMAGE,
    "efficientnet_v2_s": IMAGE,
    "densenet121": IMAGE,
    "googlenet": IMAGE,
    "inception_v3": (2, 3, 299, 299),  # its aux head needs 17x17 at Mixed_6e, BN over 2
    "mobilenet_v2": IMAGE,
    "regnet_x_400mf": IMAGE,
    "alexnet": (1, 3, 64, 64),
    "vgg11_bn": IMAGE,
    "resnext50_32x4d": IMAGE,
    "wide_resnet50_2": IMAGE,
    "vit_b_16": (1, 3, 224, 224),
}


def _torchvision(name):
    return _seeded("torch", lambda: real.torchvision_small(name).eval())


@pytest.mark.parametrize("name", TORCHVISION_FAST)
def test_torchvision(name):
    check_model("torch", _torchvision(name), TORCHVISION_FAST[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", TORCHVISION_SLOW)
def test_torchvision_full_size(name):
    check_model("torch", _torchvision(name), TORCHVISION_SLOW[name])


def test_paddle_defaults_on_convnext_tiny_name_what_they_leave():
    """``apply(Policy(Rule(init.Default("paddle"), param="*")), convnext_tiny)`` completes:
    every layer gets Paddle's law, and each ``layer_scale`` (a tensor of ``CNBlock``, no Paddle
    layer) is left as it is, named in the report with why."""
    model = _seeded("torch", lambda: real.vision("torchvision").models.convnext_tiny())(0)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    report = xinit.apply(Policy(Rule(init.Default("paddle"), param="*")), model, seed=1)
    scales = {name for name in before if name.endswith("layer_scale")}
    assert len(scales) == 18 and report.left.keys() == scales  # 3 + 3 + 9 + 3 blocks
    assert all("CNBlock" in why and "paddle" in why for why in report.left.values())
    assert set(report.initialized) == before.keys() - scales
    text = str(report)
    for name in scales:
        assert f"{name} - " in text and "no framework default: left as is" in text
        assert model.get_parameter(name).equal(before[name]), name
    assert report.counts()["left"] == len(scales) and "no framework default" in report.caption()
    # Paddle's law, not torch's: a 1x1-free 7x7 depthwise conv draws N(0, 2/(C_in·49)) with the
    # full C_in (Paddle ignores groups), a Linear U(±√(6/(in+out)))
    conv = model.get_parameter("features.1.0.block.0.weight")  # (96, 1, 7, 7), groups 96
    law = init.Default("paddle").resolve(tuple(conv.shape), param=_param(model, conv))
    assert law.std == pytest.approx((2 / (96 * 49)) ** 0.5)


def _param(model, tensor):
    """The read ParamSpec of ``tensor`` (a parameter of ``model``)."""
    from xinit.native import slots

    name = next(n for n, p in model.named_parameters() if p is tensor)
    return slots(model)[name].spec


def test_vit_state_dict_and_swin_transfer_as_torchvision_builds_them():
    """``xinit.state_dict(vit_b_16)`` reads every tensor torch saves (``class_token`` and the
    position table on containers); ``xinit.transfer(swin_t, swin_t_copy)`` moves every
    parameter and persistent buffer (the relative-position tables and their index buffers)
    bit-exactly into a second, differently drawn instance."""
    tv = real.vision("torchvision")
    import torch

    vit = tv.models.vit_b_16()
    state = xinit.state_dict(vit)
    assert state.keys() == vit.state_dict().keys()
    assert state["class_token"].shape == (1, 1, 768)
    assert state["encoder.pos_embedding"].shape == (1, 197, 768)
    del vit, state

    swin_t, swin_t_copy = (_seeded("torch", tv.models.swin_t)(seed) for seed in (0, 1))
    want = swin_t.state_dict()
    index = "features.1.0.attn.relative_position_index"
    assert index in want and "features.1.0.attn.relative_position_bias_table" in want
    differ = [k for k, v in swin_t_copy.state_dict().items() if not torch.equal(v, want[k])]
    # the copy starts elsewhere (its zero biases, unit norms and index buffers are the same)
    assert "features.1.0.attn.relative_position_bias_table" in differ and len(differ) > 50
    xinit.transfer(swin_t, swin_t_copy)
    got = swin_t_copy.state_dict()
    assert got.keys() == want.keys()
    for k, v in want.items():
        assert got[k].dtype == v.dtype and torch.equal(got[k], v), k


def test_torch_transformer_default_is_xavier_as_torch_gives():
    """``nn.Transformer`` re-draws every >1-d parameter with Xavier after building its
    layers: ``Default("torch")`` on a native one gives that (KS against torch's own draws of
    the same matrices), not the layers' own defaults."""
    require_backend("torch")
    import torch
    from stats_helpers import assert_ks_one

    torch.manual_seed(0)
    native = torch.nn.Transformer(64, 4, 1, 1, 128, batch_first=True)
    report = xinit.apply(Policy(Rule(init.Default("torch"), param="*")), native, seed=1)
    for path in ("encoder.layers.0.self_attn.out_proj.weight", "decoder.layers.0.linear1.weight"):
        rows, cols = native.get_parameter(path).shape
        bound = (6 / (rows + cols)) ** 0.5
        assert report[path].distribution == f"U({-bound:.4g}, {bound:.4g})", report[path]
    torch.manual_seed(2)
    reference = torch.nn.Transformer(64, 4, 1, 1, 128, batch_first=True)
    for path in ("encoder.layers.0.self_attn.out_proj.weight", "decoder.layers.0.linear2.weight"):
        ours = native.get_parameter(path).detach().numpy().ravel()
        theirs = reference.get_parameter(path).detach().numpy().ravel()
        bound = float(np.abs(theirs).max())
        from xinit.distributions import UniformDist

        rows, cols = native.get_parameter(path).shape
        law = UniformDist(-((6 / (rows + cols)) ** 0.5), (6 / (rows + cols)) ** 0.5)
        assert_ks_one(ours, law, path)
        assert_ks_one(theirs, law, f"torch's own {path}")
        assert bound <= law.high
    # a linear layer outside any nn.Transformer keeps torch's own Linear default
    alone = torch.nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
    alone_report = xinit.apply(Policy(Rule(init.Default("torch"), param="*")), alone)
    assert alone_report["self_attn.out_proj.weight"].distribution == "U(-0.125, 0.125)"


# ---- timm -----------------------------------------------------------------------------------
TIMM = {
    "vit_tiny_patch16_224": (1, 3, 224, 224),
    "deit_tiny_patch16_224": (1, 3, 224, 224),
    "swin_tiny_patch4_window7_224": (1, 3, 224, 224),
    "convnext_atto": IMAGE,
}


@pytest.mark.parametrize("name", TIMM)
def test_timm(name):
    check_model(
        "torch",
        _seeded("torch", lambda: real.timm_model(name).eval()),
        TIMM[name],
        diagnose=name == "convnext_atto",  # the 224-pixel ones: read/apply/transfer only
    )


# ---- paddle.vision: every classifier -----------------------------------------------------
# (every function of paddle.vision.models, LeNet, and VGG with batch norm; the cheapest of each
# class in CI, the rest slow; the lists are checked against paddle.vision.models itself)
PADDLE_FAST = {
    "mobilenet_v3_small": IMAGE,
    "shufflenet_v2_x0_25": IMAGE,
    "shufflenet_v2_x0_33": IMAGE,
    "squeezenet1_1": (2, 3, 64, 64),
    "lenet": (2, 1, 28, 28),
    "resnet18": IMAGE,
}
PADDLE_SLOW = {
    "squeezenet1_0": (2, 3, 64, 64),
    "mobilenet_v1": IMAGE,
    "mobilenet_v2": IMAGE,
    "mobilenet_v3_large": IMAGE,
    "shufflenet_v2_swish": IMAGE,
    **dict.fromkeys([f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")], IMAGE),
    **dict.fromkeys([f"densenet{n}" for n in (121, 161, 169, 201, 264)], IMAGE),
    "googlenet": (1, 3, 224, 224),  # a fixed 7x7 pool and a 1024-wide head
    "inception_v3": (1, 3, 80, 80),
    "alexnet": (1, 3, 224, 224),  # a 256x6x6-wide head, no adaptive pool
    "vgg11": IMAGE,
    # the deeper VGGs and VGG with BN without the 120 M-value head vgg11 has: num_classes=0
    **dict.fromkeys([f"vgg{n}" for n in (13, 16, 19)], IMAGE),
    "vgg11_bn": IMAGE,  # vgg11(batch_norm=True)
    **dict.fromkeys([f"resnet{n}" for n in (34, 50, 101, 152)], IMAGE),
    **dict.fromkeys(
        [f"resnext{d}_{w}x4d" for d in (50, 101, 152) for w in (32, 64)], (1, 3, 32, 32)
    ),
    "wide_resnet50_2": IMAGE,
    "wide_resnet101_2": (1, 3, 32, 32),
}


def _paddle(name):
    def build():
        import paddle

        if name == "lenet":
            return paddle.vision.models.LeNet()
        if name == "vgg11_bn":
            model = paddle.vision.models.vgg11(batch_norm=True, num_classes=0)
        elif name in ("vgg13", "vgg16", "vgg19"):
            model = getattr(paddle.vision.models, name)(num_classes=0)
        else:
            model = real.paddle_model(name)
        model.eval()
        return model

    return _seeded("paddle", build)


def test_paddle_lists_hold_every_classifier():
    """Every model function of ``paddle.vision.models`` is in one of the lists."""
    require_backend("paddle")
    import inspect

    import paddle

    functions = {
        n for n, f in inspect.getmembers(paddle.vision.models, inspect.isfunction) if n[0] != "_"
    }
    listed = (PADDLE_FAST.keys() | PADDLE_SLOW.keys()) - {"lenet", "vgg11_bn"}
    assert functions == listed, sorted(functions ^ listed)


@pytest.mark.parametrize("name", PADDLE_FAST)
def test_paddle_vision(name):
    check_model("paddle", _paddle(name), PADDLE_FAST[name])


@pytest.mark.slow
@pytest.mark.parametrize("name", PADDLE_SLOW)
def test_paddle_vision_full_size(name):
    check_model("paddle", _paddle(name), PADDLE_SLOW[name])


# ---- Flax NNX, written as a Flax user writes them ------------------------------------------
def test_flax_vit():
    report = check_model("flax", real.flax_vit, IMAGE)
    assert report.left.keys() == {"cls_token", "pos_embed"}


@pytest.mark.parametrize("cell", ["LSTMCell", "OptimizedLSTMCell", "GRUCell", "SimpleCell"])
def test_flax_lstm(cell):
    # diagnose hands a hand-written Flax model a channel-first input moved channel-last, so a
    # (N, L, D) sequence model cannot be diagnosed there yet: read, apply, transfer
    report = check_model("flax", lambda seed: real.flax_lstm(seed, cell), None, diagnose=False)
    assert report.left.keys() == {"scale"}
