"""Presets reproduce the classic ``init_weights`` loops they are named after.

For each preset and each of torch and paddle:

* ``R``: a hand-written native model initialised by its own loop (``for m in
  self.modules(): if isinstance(m, nn.Conv2d): nn.init.kaiming_normal_(...)``, Paddle's
  ``ParamAttr(initializer=KaimingNormal())`` / ``paddle.nn.init``);
* ``P``: the same hand-written model, its matched parameters overwritten with a sentinel,
  then ``xinit.apply(preset, model)``;
* ``X``: ``xinit.build(spec, backend, policy=preset)`` of the equivalent xinit spec.

Every parameter a rule sets must follow the preset's law in R, P and X (constants exactly;
random laws: mean/std |z| <= 5 with standard errors from n, one-sample KS p > 1e-4), R and P
must agree parameter by parameter (two-sample KS, or exact for constants, including the
parameters no rule touches), and X must agree with R wherever they share a path and shape.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import require_backend
from stats_helpers import P_MIN, assert_ks_one, assert_moments, case_seed, ks_two

import xinit
from xinit import presets
from xinit.blocks import Sequential, param_specs
from xinit.distributions import ConstantDist
from xinit.layers import (
    AdaptiveAvgPool,
    BatchNorm,
    Conv,
    ConvTranspose,
    Flatten,
    Linear,
    ReLU,
)
from xinit.native import native_param_specs, neutral_values
from xinit.policy import Policy

KS_SAMPLE = 50_000  # KS on the first elements: i.i.d. draws, so a prefix is a fair sample
PRIOR = -math.log((1 - 0.1) / 0.1)  # CenterNet's -2.19, as bias_init_with_prob(0.1) computes it


# ---- checks ------------------------------------------------------------------------------
def laws(policy: Policy, params: dict, spec_defaults: bool) -> dict:
    """Path -> the distribution the preset (or, in a build, the spec default) gives it;
    None where the framework's own init is kept."""
    plan = policy.plan(params)
    out = {}
    for path, ps in params.items():
        m = plan.matched.get(path)
        init = m.init if m else (ps.init if spec_defaults else None)
        out[path] = None if init is None else init.resolve(ps.shape, ps.role, ps.fans, param=ps)
    return out


def assert_follows(values: dict, expected: dict, what: str) -> int:
    checked = 0
    for path, dist in expected.items():
        if dist is None:
            continue
        x = np.asarray(values[path], dtype=np.float64).ravel()
        if isinstance(dist, ConstantDist):
            np.testing.assert_array_equal(x, np.float32(dist.value), err_msg=f"{what} {path}")
        else:
            assert_moments(x, dist, f"{what} {path}")
            if x.size >= 50:
                assert_ks_one(x[:KS_SAMPLE], dist, f"{what} {path}")
        checked += 1
    return checked


def assert_same_laws(a: dict, b: dict, what: str, paths=None) -> None:
    for path in a if paths is None else paths:
        x, y = np.asarray(a[path]).ravel(), np.asarray(b[path]).ravel()
        if np.all(x == x[0]):
            np.testing.assert_array_equal(y, x, err_msg=f"{what} {path}")
        elif x.size >= 50:
            p = ks_two(x[:KS_SAMPLE], y[:KS_SAMPLE])
            assert p > P_MIN, f"{what} {path}: two-sample KS p={p:.3g}"


def scramble(module, paths) -> None:
    """Fill the given parameters with 7.0 so a value not written by apply cannot pass."""
    from xinit.backends import backend_of

    adapter = backend_of(module)
    for path, (_, p) in native_param_specs(module, adapter).items():
        if path in paths:
            adapter.assign(p.holder, adapter.full(p.native_shape, 7.0, "cpu"))


def seed_framework(backend: str, seed: int) -> None:
    if backend == "torch":
        import torch

        torch.manual_seed(seed)
    else:
        import paddle

        paddle.seed(seed)


def run_case(name: str, backend: str):
    require_backend(backend)
    policy, spec, hand = CASES[name]()
    seed_framework(backend, case_seed(name, backend, "R"))
    ref = hand[backend](True)
    seed_framework(backend, case_seed(name, backend, "P"))
    model = hand[backend](False)
    params = {p: s for p, (s, _) in native_param_specs(model).items()}
    expected = laws(policy, params, spec_defaults=False)
    scramble(model, {p for p, d in expected.items() if d is not None})
    report = xinit.apply(policy, model, seed=case_seed(name, backend, "apply"))
    assert set(report.initialized) == {p for p, d in expected.items() if d is not None}
    R, P = neutral_values(ref), neutral_values(model)
    assert set(R) == set(P) == set(params)
    n = assert_follows(R, expected, f"{name} {backend} hand-written loop")
    assert n == len(report.initialized) > 0
    assert_follows(P, expected, f"{name} {backend} preset on the hand-written model")
    assert_same_laws(R, P, f"{name} {backend} loop vs preset")
    built = xinit.build(spec, backend, seed=case_seed(name, backend, "X"), policy=policy)
    X = neutral_values(built)
    xparams = {p: s for p, s in param_specs(spec).items() if s.trainable}
    assert_follows(X, laws(policy, xparams, spec_defaults=True), f"{name} {backend} xinit build")
    common = [p for p in X if p in R and np.shape(X[p]) == np.shape(R[p]) and expected.get(p)]
    assert_same_laws(R, X, f"{name} {backend} loop vs xinit build", common)
    return report, common


# ---- hand-written models -----------------------------------------------------------------
def torch_vgg(init: bool):
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
            self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
            self.relu, self.pool = nn.ReLU(), nn.AdaptiveAvgPool2d(4)
            self.fc1, self.fc2 = nn.Linear(64 * 16, 256), nn.Linear(256, 10)
            if init:
                self.init_weights()

        def init_weights(self):
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.xavier_normal_(m.weight)
                    if m.bias is not None:
                        nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
                elif isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.pool(self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))))
            return self.fc2(self.relu(self.fc1(torch.flatten(x, 1))))

    return Net()


def paddle_vgg(init: bool):
    import paddle
    from paddle import nn

    class Net(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2D(3, 32, 3, padding=1), nn.BatchNorm2D(32)
            self.conv2, self.bn2 = nn.Conv2D(32, 64, 3, padding=1), nn.BatchNorm2D(64)
            self.relu, self.pool = nn.ReLU(), nn.AdaptiveAvgPool2D(4)
            self.fc1, self.fc2 = nn.Linear(64 * 16, 256), nn.Linear(256, 10)
            if init:
                for m in self.sublayers():
                    if isinstance(m, nn.Conv2D):
                        nn.init.xavier_normal_(m.weight)
                        nn.init.constant_(m.bias, 0)
                    elif isinstance(m, nn.BatchNorm2D):
                        nn.init.constant_(m.weight, 1)
                        nn.init.constant_(m.bias, 0)
                    elif isinstance(m, nn.Linear):
                        nn.init.normal_(m.weight, 0, 0.01)
                        nn.init.constant_(m.bias, 0)

        def forward(self, x):
            x = self.pool(self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))))
            return self.fc2(self.relu(self.fc1(paddle.flatten(x, 1))))

    return Net()


def vgg_spec() -> Sequential:
    return Sequential(
        ("conv1", Conv(3, 32, 3, padding=1)),
        ("bn1", BatchNorm(32)),
        ("relu", ReLU()),
        ("conv2", Conv(32, 64, 3, padding=1)),
        ("bn2", BatchNorm(64)),
        ("relu", ReLU()),
        ("pool", AdaptiveAvgPool(4)),
        ("flatten", Flatten()),
        ("fc1", Linear(64 * 16, 256)),
        ("relu", ReLU()),
        ("fc2", Linear(256, 10)),
    )


HEADS = {"hm": 20, "wh": 2, "reg": 2}


def torch_centernet(init: bool):
    from torch import nn

    class CenterNet(nn.Module):
        """msra_resnet-style: backbone stem, deconv_layers, one Sequential per head."""

        def __init__(self, heads=HEADS, head_conv=64):
            super().__init__()
            self.heads = heads
            self.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
            self.deconv_layers = nn.Sequential(
                nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
                nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(inplace=True),
            )
            for head, classes in heads.items():
                fc = nn.Sequential(
                    nn.Conv2d(64, head_conv, 3, padding=1, bias=True),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(head_conv, classes, 1),
                )
                self.__setattr__(head, fc)
            if init:
                self.init_weights()

        def init_weights(self):
            for _, m in self.deconv_layers.named_modules():
                if isinstance(m, nn.ConvTranspose2d):
                    nn.init.normal_(m.weight, std=0.001)
                elif isinstance(m, nn.BatchNorm2d):
                    nn.init.constant_(m.weight, 1)
                    nn.init.constant_(m.bias, 0)
            for head in self.heads:  # the seed's loop, verbatim in effect
                for m in self.__getattr__(head).modules():
                    if isinstance(m, nn.Conv2d) and m.weight.shape[0] == self.heads[head]:
                        if "hm" in head:
                            nn.init.constant_(m.bias, -2.19)
                        else:
                            nn.init.normal_(m.weight, std=0.001)
                            nn.init.constant_(m.bias, 0)

    return CenterNet()


def paddle_centernet(init: bool):
    from paddle import nn

    class CenterNet(nn.Layer):
        def __init__(self, heads=HEADS, head_conv=64):
            super().__init__()
            self.heads = heads
            self.conv1 = nn.Conv2D(3, 64, 3, padding=1, bias_attr=False)
            self.bn1, self.relu = nn.BatchNorm2D(64), nn.ReLU()
            self.deconv_layers = nn.Sequential(
                nn.Conv2DTranspose(64, 64, 4, stride=2, padding=1, bias_attr=False),
                nn.BatchNorm2D(64),
                nn.ReLU(),
                nn.Conv2DTranspose(64, 64, 4, stride=2, padding=1, bias_attr=False),
                nn.BatchNorm2D(64),
                nn.ReLU(),
            )
            for head, classes in heads.items():
                fc = nn.Sequential(
                    nn.Conv2D(64, head_conv, 3, padding=1),
                    nn.ReLU(),
                    nn.Conv2D(head_conv, classes, 1),
                )
                self.add_sublayer(head, fc)
            if init:
                for m in self.deconv_layers.sublayers():
                    if isinstance(m, nn.Conv2DTranspose):
                        nn.init.normal_(m.weight, std=0.001)
                    elif isinstance(m, nn.BatchNorm2D):
                        nn.init.constant_(m.weight, 1)
                        nn.init.constant_(m.bias, 0)
                for head in self.heads:
                    final = getattr(self, head)[-1]
                    if "hm" in head:
                        nn.init.constant_(final.bias, -2.19)
                    else:
                        nn.init.normal_(final.weight, std=0.001)
                        nn.init.constant_(final.bias, 0)

    return CenterNet()


def centernet_spec() -> Sequential:
    """The same structure as a spec. Heads run one after another here (a spec is a chain),
    so each keeps 64 channels; the laws under test do not depend on the channel counts."""

    def head():
        return Sequential(Conv(64, 64, 3, padding=1), ReLU(), Conv(64, 64, 1))

    deconv = Sequential(
        ConvTranspose(64, 64, 4, stride=2, padding=1, bias=False),
        BatchNorm(64),
        ReLU(),
        ConvTranspose(64, 64, 4, stride=2, padding=1, bias=False),
        BatchNorm(64),
        ReLU(),
    )
    return Sequential(
        ("conv1", Conv(3, 64, 3, padding=1, bias=False)),
        ("bn1", BatchNorm(64)),
        ("relu", ReLU()),
        ("deconv_layers", deconv),
        ("hm", head()),
        ("wh", head()),
        ("reg", head()),
    )


def paddle_resnet_small(init: bool):
    """A torchvision-style ResNet (stem, BasicBlocks with downsample, fc) in paddle.nn, with
    the torchvision loop written against ``paddle.nn.init``."""
    from paddle import nn

    class Block(nn.Layer):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2D(cin, planes, 3, stride, 1, bias_attr=False)
            self.bn1, self.relu = nn.BatchNorm2D(planes), nn.ReLU()
            self.conv2 = nn.Conv2D(planes, planes, 3, 1, 1, bias_attr=False)
            self.bn2 = nn.BatchNorm2D(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2D(cin, planes, 1, stride, bias_attr=False), nn.BatchNorm2D(planes)
                )

    class ResNet(nn.Layer):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2D(3, 64, 7, 2, 3, bias_attr=False)
            self.bn1, self.relu = nn.BatchNorm2D(64), nn.ReLU()
            self.maxpool = nn.MaxPool2D(3, 2, 1)
            self.layer1 = nn.Sequential(Block(64, 64, 1), Block(64, 64, 1))
            self.layer2 = nn.Sequential(Block(64, 128, 2), Block(128, 128, 1))
            self.avgpool = nn.AdaptiveAvgPool2D(1)
            self.fc = nn.Linear(128, 10)
            if init:
                for m in self.sublayers():
                    if isinstance(m, nn.Conv2D):
                        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                    elif isinstance(m, (nn.BatchNorm2D, nn.GroupNorm)):
                        nn.init.constant_(m.weight, 1)
                        nn.init.constant_(m.bias, 0)

    return ResNet()


def torch_resnet45_small(init: bool):
    """PaddleOCR's ResNet45 blocks ported to torch by hand, with the loop a port writes to
    keep Paddle's init: convs ``kaiming_normal_`` (fan_in), Linear Xavier uniform, bias 0."""
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(planes), nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or cin != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
                )

    class ResNet45(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 32, 3, 1, 1, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(32), nn.ReLU()
            self.layer1 = nn.Sequential(Block(32, 32, 2), Block(32, 32, 1))
            self.layer2 = nn.Sequential(Block(32, 64, 1), Block(64, 64, 1))
            self.fc = nn.Linear(64, 37)
            if init:
                for m in self.modules():
                    if isinstance(m, nn.Conv2d):
                        nn.init.kaiming_normal_(m.weight)  # fan_in; a=0 gives the relu gain
                    elif isinstance(m, nn.BatchNorm2d):
                        nn.init.constant_(m.weight, 1)
                        nn.init.constant_(m.bias, 0)
                    elif isinstance(m, nn.Linear):
                        nn.init.xavier_uniform_(m.weight)
                        nn.init.zeros_(m.bias)

    return ResNet45()


def _torch_resnet18(init: bool):
    from reference_models import torch_resnet18

    return torch_resnet18(num_classes=10)  # torchvision's loop runs in __init__


def _paddle_resnet45(init: bool):
    from reference_models import paddle_resnet45

    return paddle_resnet45(layers=(1, 2, 1, 1, 1))  # ParamAttr(initializer=KaimingNormal())


CASES = {
    "torchvision_resnet": lambda: (
        presets.torchvision_resnet(),
        xinit.models.resnet18(num_classes=10),
        {"torch": _torch_resnet18, "paddle": paddle_resnet_small},
    ),
    "paddleocr_resnet45": lambda: (
        presets.paddleocr_resnet45(),
        xinit.models.resnet45(layers=(1, 2, 1, 1, 1)),
        {"torch": torch_resnet45_small, "paddle": _paddle_resnet45},
    ),
    "xavier_bn_normal": lambda: (
        presets.xavier_bn_normal(),
        vgg_spec(),
        {"torch": torch_vgg, "paddle": paddle_vgg},
    ),
    "centernet_heads": lambda: (
        presets.centernet_heads(),
        centernet_spec(),
        {"torch": torch_centernet, "paddle": paddle_centernet},
    ),
}


@pytest.mark.parametrize("backend", ["torch", "paddle"])
@pytest.mark.parametrize("name", list(CASES))
def test_preset_matches_the_hand_written_loop(name, backend):
    report, common = run_case(name, backend)
    if name in ("torchvision_resnet", "xavier_bn_normal"):
        assert common, "the xinit build shares no parameter with the hand-written model"
    if name == "centernet_heads":  # the seed's init_weights
        assert report["hm.2.bias"].initializer == "Constant(-2.19)"
        assert report["hm.2.weight"].status == "unmatched"  # the seed keeps the default
        assert report["wh.2.bias"].initializer == "Zeros()"
        assert report["wh.2.weight"].initializer == "Normal(std=0.001)"
        assert report["hm.0.weight"].status == "unmatched"  # the first head conv: default
        assert report["conv1.weight"].status == "unmatched"
        assert report["bn1.weight"].status == "unmatched"  # only the deconvs' BNs are set
        assert report["deconv_layers.1.weight"].initializer == "Ones()"
    if name == "torchvision_resnet":
        assert report["fc.weight"].status == "unmatched"  # torchvision keeps the default


def test_bias_prior_is_centernets_constant():
    assert abs(xinit.init.BiasPrior(0.1).value - (-2.19)) < 0.01
    assert xinit.init.BiasPrior(0.1).value == pytest.approx(PRIOR, abs=1e-12)


# ---- zero_init_residual: exactly the last BN of each residual branch --------------------
@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_zero_init_residual_zeroes_exactly_the_last_bn_of_each_branch(block):
    torch = require_backend("torch") and __import__("torch")
    from reference_models import torch_resnet

    from xinit.models.resnet import _resnet

    layers = (2, 1, 1, 1)
    ref = torch_resnet(block, layers, num_classes=10, zero_init_residual=True)
    zero_ref = {n for n, p in ref.named_parameters() if n.endswith("weight") and not p.any()}
    last = "bn2" if block == "basic" else "bn3"
    assert zero_ref == {
        f"layer{i}.{j}.{last}.weight" for i, n in enumerate(layers, 1) for j in range(n)
    }
    policy = presets.torchvision_resnet(zero_init_residual=True)
    torch.manual_seed(0)
    model = torch_resnet(block, layers, num_classes=10)  # zero_init_residual=False
    report = xinit.apply(policy, model)
    zero = {n for n, p in model.named_parameters() if n.endswith("weight") and not p.any()}
    assert zero == zero_ref
    assert all(report[p].rule.startswith("#2 ") for p in zero)
    for backend in ("torch", "paddle", "flax"):
        require_backend(backend)
        built = neutral_values(
            xinit.build(_resnet(block, layers, 10), backend, policy=policy, rng="xinit")
        )
        assert {p for p, v in built.items() if p.endswith("weight") and not v.any()} == zero_ref
        assert np.all(built["layer2.0.downsample.1.weight"] == 1)


def test_presets_are_policies_by_name():
    for name in presets.PRESETS:
        policy = presets.get(name)
        assert isinstance(policy, Policy) and policy.name == name
        assert getattr(xinit.presets, name)().rules == policy.rules
    with pytest.raises(KeyError, match="unknown preset 'resnet'"):
        presets.get("resnet")
    # The zoo's torchvision spec already carries torchvision's init: the preset agrees.
    spec = xinit.models.resnet50()
    report = presets.torchvision_resnet().report(spec)
    for e in report:
        if e.kind == "conv":
            assert e.initializer == str(param_specs(spec)[e.path].init), e.path


def test_centernet_heads_match_nested_and_single_conv_heads():
    torch = require_backend("torch") and __import__("torch")
    nn = torch.nn
    net = nn.Module()
    net.heads = nn.ModuleDict(
        {
            "hm": nn.Sequential(nn.Conv2d(4, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1)),
            "wh": nn.Conv2d(4, 2, 1),  # head_conv = 0: the head is a single conv
        }
    )
    report = xinit.apply(presets.centernet_heads(heads=("hm", "wh")), net)
    assert report["heads.hm.2.bias"].initializer == "Constant(-2.19)"
    assert report["heads.hm.0.weight"].status == "unmatched"
    assert report["heads.hm.2.weight"].status == "unmatched"
    assert report["heads.wh.weight"].initializer == "Normal(std=0.001)"
    assert torch.all(net.heads.wh.bias == 0)
    assert torch.all(net.heads.hm[2].bias == torch.tensor(-2.19))
    prior = xinit.apply(presets.focal_prior(heads=("hm",)), net)
    assert prior["heads.hm.2.bias"].initializer == "BiasPrior(prob=0.1)"
    assert torch.allclose(net.heads.hm[2].bias, torch.tensor(PRIOR))
    assert prior["heads.wh.bias"].status == "unmatched"
