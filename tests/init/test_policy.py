"""Init policies: rules, precedence, errors, xinit.apply on native models, the report, skip,
keyed native seeds, and the ``xinit init`` command. Real frameworks only, no mocks.

Statistical checks use ``stats_helpers`` (|z| <= 5 from n, KS p > 1e-4, fixed seeds); most
checks here are exact (constants, identical values, names).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import require_backend
from stats_helpers import assert_moments, case_seed

import xinit
from xinit import init as I
from xinit.blocks import Sequential, param_specs
from xinit.layers import BatchNorm, Conv, ConvTranspose, Embedding, Flatten, Linear, ReLU
from xinit.native import native_param_specs, neutral_values
from xinit.policy import KINDS, Policy, PolicyError, PolicyWarning, Rule
from xinit.report import Report


def small_net() -> Sequential:
    """conv/bn/convT/embedding-free net with named heads, channel-consistent."""
    head = Sequential(("0", Conv(8, 8, 3, padding=1)), ("1", ReLU()), ("2", Conv(8, 8, 1)))
    return Sequential(
        ("conv1", Conv(3, 8, 3, padding=1, bias=False)),
        ("bn1", BatchNorm(8)),
        ("relu", ReLU()),
        ("up", ConvTranspose(8, 8, 4, stride=2, padding=1)),
        ("heads", Sequential(("hm", head), ("wh", head))),
        ("flatten", Flatten()),
        ("fc", Linear(8 * 8 * 8, 10)),
    )


def trainable(spec) -> dict:
    return {p: s for p, s in param_specs(spec).items() if s.trainable}


# ---- rules: validation and error messages -----------------------------------------------
def test_unknown_kind_is_an_error_naming_the_rule_and_a_suggestion():
    with pytest.raises(PolicyError, match=r"unknown layer kind 'convv'.*did you mean 'conv'"):
        Rule(I.Ones(), kind="convv")
    with pytest.raises(PolicyError, match=r"Rule\(Ones\(\), kind=\('conv', 'batchnrm'\)\)"):
        Rule(I.Ones(), kind=("conv", "batchnrm"))


def test_rule_arguments_are_validated():
    with pytest.raises(PolicyError, match="initializer or a number"):
        Rule("kaiming", kind="conv")
    with pytest.raises(PolicyError, match="Rule.param"):
        Rule(I.Ones(), param="")
    with pytest.raises(PolicyError, match="Rule.path"):
        Rule(I.Ones(), path=[1])
    with pytest.raises(PolicyError, match="takes Rule objects"):
        Policy("conv")
    assert Rule(0.5, kind="linear").init == I.Constant(0.5)  # numbers are constants
    assert {"conv", "conv_transpose", "linear", "batchnorm", "embedding", "layernorm"} <= set(KINDS)


def test_later_rules_override_earlier_ones_and_bias_beats_param():
    spec = small_net()
    policy = Policy(
        Rule(I.Constant(1.0), kind="conv", param="*"),  # every conv leaf
        Rule(I.Constant(2.0), path="heads.*", param="*", bias=3.0),  # later: heads win
        Rule(I.Constant(4.0), kind="conv", path="heads.wh.2"),  # later still: one weight
    )
    plan = policy.plan(trainable(spec))
    got = {p: m.init.value for p, m in plan.matched.items()}
    assert got["conv1.weight"] == 1.0
    assert got["heads.hm.0.weight"] == 2.0 and got["heads.hm.0.bias"] == 3.0
    assert got["heads.wh.2.weight"] == 4.0 and got["heads.wh.2.bias"] == 3.0
    assert plan.matched["heads.wh.2.weight"].index == 2
    assert "fc.weight" in plan.unmatched and "bn1.weight" in plan.unmatched
    # The same policy drives build: values are exactly the constants.
    m = xinit.build(spec, "torch", policy=policy)
    assert float(m.heads.wh[2].weight.unique()) == 4.0
    assert float(m.heads.hm[0].bias.unique()) == 3.0
    assert float(m.conv1.weight.unique()) == 1.0


def test_last_selects_the_last_matching_layer_under_each_parent():
    spec = small_net()
    plan = Policy(Rule(0.0, kind="conv", path="heads.*", last=True, bias=1.0)).plan(trainable(spec))
    assert sorted(plan.matched) == [
        "heads.hm.2.bias",
        "heads.hm.2.weight",
        "heads.wh.2.bias",
        "heads.wh.2.weight",
    ]


def test_glob_matching_nothing_warns_and_strict_fails():
    params = trainable(small_net())
    policy = Policy(Rule(I.Ones(), path="backbone.*"))
    with pytest.warns(PolicyWarning, match=r"rule #0 .*'backbone\.\*' matches no layer"):
        plan = policy.plan(params)
    assert plan.unused_rules == (0,) and not plan.matched
    with pytest.raises(PolicyError, match=r"rule #0 .*'backbone\.\*' matches no layer"):
        policy.plan(params, strict=True)
    with pytest.raises(PolicyError, match="matches no layer"):
        Policy(Rule(I.Ones(), path="backbone.*"), strict=True).plan(params)
    # A parameter name that no selected layer has is reported the same way.
    with pytest.warns(PolicyWarning, match=r"param 'gamma' matches no parameter.*bias, weight"):
        Policy(Rule(I.Ones(), kind="batchnorm", param="gamma")).plan(params)
    # A glob that hits layers of another kind says so.
    with pytest.warns(PolicyWarning, match="kinds conv, not 'batchnorm'"):
        Policy(Rule(I.Ones(), kind="batchnorm", path="heads.*")).plan(params)
    # A kind-only rule with no such layer is silent (presets are generic).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Policy(Rule(I.Ones(), kind="embedding")).plan(params)


def test_initializer_that_cannot_apply_names_rule_and_path():
    spec = small_net()
    policy = Policy(Rule(I.Ones(), kind="batchnorm"), Rule(I.Dirac(), kind="linear"))
    with pytest.raises(PolicyError, match=r"rule #1 .*Dirac\(\) cannot initialise 'fc.weight'"):
        xinit.build(spec, "torch", policy=policy)
    torch = require_backend("torch") and __import__("torch")
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with pytest.raises(PolicyError, match=r"rule #1 .*cannot initialise '2.weight'.*Dirac"):
        xinit.apply(policy, net)
    # Kaiming on a bias works (PyTorch's default uses the weight's fans), on BN weight not.
    with pytest.raises(PolicyError, match=r"'bn1.weight'.*fans are undefined"):
        Policy(Rule(I.KaimingNormal(), kind="batchnorm")).plan(trainable(spec))
    ok = Policy(Rule(I.KaimingUniform(a=5**0.5), kind="linear", param="bias")).plan(trainable(spec))
    assert "fc.bias" in ok.matched


def test_policies_concatenate_and_print():
    a = Policy(Rule(I.Ones(), kind="conv"), name="a")
    b = a + Rule(I.Zeros(), kind="conv")
    assert len(b) == 2 and b.rules[1].init == I.Zeros()
    assert "#1 Rule(Zeros(), kind='conv')" in repr(b)


# ---- xinit.apply on native models --------------------------------------------------------
def native_names(backend: str, module) -> list[str]:
    """Each framework's own list of its parameters (running statistics excluded)."""
    if backend == "torch":
        return [n for n, _ in module.named_parameters()]
    if backend == "paddle":
        return [n for n, _ in module.named_parameters() if not n.endswith(("._mean", "._variance"))]
    from flax import nnx

    return [".".join(map(str, k)) for k, _ in nnx.state(module, nnx.Param).flat_state()]


def test_report_lists_every_parameter_exactly_once(backend):
    spec = small_net()
    rng = "xinit" if backend == "flax" else "native"  # flax's native draws compile per shape
    module = xinit.build(spec, backend, seed=1, rng="xinit")
    policy = xinit.presets.centernet_heads(heads=("hm", "wh"))
    report = xinit.apply(policy, module, seed=2, rng=rng)
    assert isinstance(report, Report)
    paths = [e.path for e in report]
    assert len(paths) == len(set(paths)) == len(trainable(spec))
    assert set(paths) == set(trainable(spec))
    natives = [e.native for e in report]
    assert sorted(natives) == sorted(native_names(backend, module))
    assert report.unmatched == (  # centernet_heads sets only deconv_layers and head ends
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "up.weight",
        "up.bias",
        "heads.hm.0.weight",
        "heads.hm.0.bias",
        "heads.hm.2.weight",
        "heads.wh.0.weight",
        "heads.wh.0.bias",
        "fc.weight",
        "fc.bias",
    )
    assert report["heads.hm.2.bias"].initializer == "Constant(-2.19)"
    assert report["heads.hm.0.weight"].status == "unmatched"
    values = neutral_values(module)
    assert np.all(values["heads.hm.2.bias"] == np.float32(-2.19))  # the seed's constant
    assert np.all(values["heads.wh.2.bias"] == 0) and np.all(values["bn1.weight"] == 1)
    with pytest.raises(PolicyError, match=r"12 parameter\(s\) matched by no rule: conv1.weight"):
        xinit.apply(policy, module, strict=True)


def test_apply_with_xinit_rng_equals_build_in_every_backend():
    """apply(rng='xinit') on a model writes what build(rng='xinit') gives each path, in the
    native layout of each framework (paddle (in, out), flax HWIO): one set of numbers."""
    spec = small_net()
    policy = Policy(
        Rule(I.KaimingNormal(mode="fan_out"), kind=("conv", "conv_transpose"), bias=I.Normal()),
        Rule(I.Uniform(-0.5, 0.5), kind="linear", param="*"),
        Rule(I.TruncatedNormal(1.0, 0.1, 0.8, 1.2), kind="batchnorm", bias=I.Normal(0, 0.1)),
    )
    ref = neutral_values(xinit.build(spec, "torch", seed=5, rng="xinit", policy=policy))
    for backend in ("torch", "paddle", "flax"):
        require_backend(backend)
        module = xinit.build(spec, backend, seed=0, rng="xinit")  # other values everywhere
        report = xinit.apply(policy, module, seed=5, rng="xinit")
        assert not report.unmatched
        got = neutral_values(module)
        for path, value in ref.items():
            np.testing.assert_array_equal(got[path], value, err_msg=f"{backend} {path}")


def test_torch_classes_map_to_kinds_and_neutral_shapes():
    torch = require_backend("torch") and __import__("torch")
    nn = torch.nn
    net = nn.ModuleDict(
        {
            "c1": nn.Conv1d(2, 4, 3),
            "c3": nn.Conv3d(2, 4, 3, bias=False),
            "t2": nn.ConvTranspose2d(4, 6, 3, groups=2),
            "fc": nn.Linear(3, 5),
            "bn": nn.BatchNorm1d(4),
            "emb": nn.Embedding(7, 3),
            "ln": nn.LayerNorm([4, 5]),
            "gn": nn.GroupNorm(2, 4),
            "prelu": nn.PReLU(3),
        }
    )
    net.register_parameter("token", nn.Parameter(torch.zeros(1, 1, 8)))
    table = {p: (s.kind, s.shape, s.role) for p, (s, _) in native_param_specs(net).items()}
    assert table["c1.weight"] == ("conv", (4, 2, 3), "conv")
    assert table["c3.weight"] == ("conv", (4, 2, 3, 3, 3), "conv")
    assert table["t2.weight"] == ("conv_transpose", (4, 3, 3, 3), "conv_transpose")
    assert table["fc.weight"] == ("linear", (5, 3), "linear")
    assert table["fc.bias"] == ("linear", (5,), "vector")
    assert table["bn.weight"] == ("batchnorm", (4,), "vector")
    assert table["emb.weight"] == ("embedding", (7, 3), "embedding")
    assert table["ln.weight"] == ("layernorm", (20,), "vector")  # flattened
    assert table["gn.bias"] == ("groupnorm", (4,), "vector")
    assert table["prelu.weight"] == ("prelu", (3,), "vector")  # read as its kind
    assert table["token"] == ("", (1, 1, 8), "conv")  # torch's fan reading of a 3-d tensor
    specs = native_param_specs(net)
    assert specs["fc.bias"][0].fans.fan_in == 3  # the weight's fans, as PyTorch's default
    # A path/param rule reaches parameters of unknown classes; kinds reach known ones.
    policy = Policy(
        Rule(I.Ones(), kind=("layernorm", "groupnorm"), bias=0.0),
        Rule(I.Constant(0.25), path="prelu"),
        Rule(I.TruncatedNormal(std=0.02), path="", param="token"),
    )
    report = xinit.apply(policy, net, seed=3)
    assert torch.all(net["ln"].weight == 1) and net["ln"].weight.shape == (4, 5)
    assert torch.all(net["prelu"].weight == 0.25)
    assert report["token"].status == "initialized" and net.token.abs().max() > 0
    assert report["prelu.weight"].module_type == "PReLU"


def test_paddle_classes_map_to_kinds_and_neutral_layouts():
    paddle = require_backend("paddle") and __import__("paddle")
    nn = paddle.nn
    from xinit.backends.paddle.modules import TORCH_BATCHNORM

    net = nn.LayerDict(
        {
            "c2": nn.Conv2D(2, 4, 3),
            "t1": nn.Conv1DTranspose(4, 6, 3),
            "fc": nn.Linear(3, 5),
            "bn": nn.BatchNorm2D(4),
            "bn_old": nn.BatchNorm(4),
            "xbn": TORCH_BATCHNORM[1](4),  # xinit's PyTorch-rule subclass
            "emb": nn.Embedding(7, 3),
            "ln": nn.LayerNorm([4, 5]),
        }
    )
    table = {p: (s.kind, s.shape) for p, (s, _) in native_param_specs(net).items()}
    assert table["c2.weight"] == ("conv", (4, 2, 3, 3))
    assert table["t1.weight"] == ("conv_transpose", (4, 6, 3))
    assert table["fc.weight"] == ("linear", (5, 3))  # Paddle stores (in, out)
    for bn in ("bn", "bn_old", "xbn"):
        assert table[f"{bn}.weight"] == ("batchnorm", (4,))
        assert f"{bn}._mean" not in table and f"{bn}._variance" not in table
    assert table["emb.weight"] == ("embedding", (7, 3))
    assert table["ln.weight"] == ("layernorm", (20,))
    # Values land in the native layout: fc.weight[i, j] (neutral) is paddle's [j, i].
    xinit.apply(Policy(Rule(I.Normal(), kind="linear")), net, seed=4, rng="xinit")
    from xinit.rng import keyed_sample

    expected = keyed_sample(I.Normal().resolve((5, 3), "linear"), (5, 3), 4, "fc.weight")
    np.testing.assert_array_equal(net["fc"].weight.numpy(), expected.T)


def test_flax_classes_map_to_kinds_and_neutral_layouts():
    require_backend("flax")
    from flax import nnx

    from xinit.backends.flax.modules import TorchBatchNorm
    from xinit.rng import keyed_sample

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(2, 4, (3, 3), rngs=rngs)
            self.up = nnx.ConvTranspose(4, 6, (3, 3), rngs=rngs)
            self.upt = nnx.ConvTranspose(4, 6, (3, 3), transpose_kernel=True, rngs=rngs)
            self.fc = nnx.Linear(3, 5, rngs=rngs)
            self.bn = nnx.BatchNorm(4, rngs=rngs)
            self.xbn = TorchBatchNorm(4, rngs=rngs)  # xinit's PyTorch-rule subclass
            self.emb = nnx.Embed(7, 3, rngs=rngs)
            self.ln = nnx.LayerNorm(4, rngs=rngs)
            self.blocks = nnx.List([nnx.Linear(3, 3, rngs=rngs)])
            self.alpha = nnx.Param(np.zeros((2,), np.float32))

    net = Net(nnx.Rngs(0))
    specs = native_param_specs(net)
    table = {p: (s.kind, s.shape) for p, (s, _) in specs.items()}
    assert table["conv.weight"] == ("conv", (4, 2, 3, 3))  # HWIO -> OIHW
    assert table["up.weight"] == ("conv_transpose", (4, 6, 3, 3))  # (*k, in, out) -> (in, out, *k)
    assert table["upt.weight"] == ("conv_transpose", (4, 6, 3, 3))  # (*k, out, in) too
    assert table["fc.weight"] == ("linear", (5, 3))
    assert table["bn.weight"] == ("batchnorm", (4,)) and table["xbn.weight"][0] == "batchnorm"
    assert table["emb.weight"] == ("embedding", (7, 3)) and table["ln.weight"][0] == "layernorm"
    assert table["blocks.0.weight"] == ("linear", (3, 3)) and table["alpha"] == ("", (2,))
    assert specs["conv.weight"][1].native == "conv.kernel"
    assert "bn.mean" not in table and "bn.running_mean" not in table
    xinit.apply(Policy(Rule(I.Normal(), kind=("conv", "conv_transpose"))), net, rng="xinit")
    for name, perm in (("conv", (2, 3, 1, 0)), ("up", (2, 3, 0, 1)), ("upt", (2, 3, 1, 0))):
        dist = I.Normal().resolve(specs[f"{name}.weight"][0].shape, "conv")
        whole = keyed_sample(dist, specs[f"{name}.weight"][0].shape, 0, f"{name}.weight")
        got = np.asarray(getattr(net, name).kernel.get_value())
        np.testing.assert_array_equal(got, whole.transpose(perm), err_msg=name)


# ---- skip: initialise only what is missing ----------------------------------------------
def test_skip_leaves_loaded_parameters_bit_identical_and_fills_the_missing():
    torch = require_backend("torch") and __import__("torch")
    from reference_models import torch_resnet18

    torch.manual_seed(0)
    trained = torch_resnet18(num_classes=10)
    checkpoint = {k: v for k, v in trained.state_dict().items() if not k.startswith("fc.")}
    torch.manual_seed(1)
    model = torch_resnet18(num_classes=10)
    result = model.load_state_dict(checkpoint, strict=False)
    assert sorted(result.missing_keys) == ["fc.bias", "fc.weight"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    policy = xinit.presets.xavier_bn_normal()
    report = xinit.apply(policy, model, seed=0, skip=checkpoint.keys())
    assert report.initialized == ("fc.weight", "fc.bias")
    assert len(report.skipped) == len(list(model.parameters())) - 2
    for k, v in model.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(v, before[k]), k  # nothing loaded was clobbered
    assert torch.all(model.fc.bias == 0)
    assert_moments(model.fc.weight.detach().numpy(), I.Normal(0, 0.01).resolve((10, 512)), "fc")
    # Globs work as skip entries too; strict ignores skipped parameters.
    report = xinit.apply(policy, model, skip=["layer*", "conv1.*", "bn1.*"], strict=True)
    assert report.initialized == ("fc.weight", "fc.bias")


# ---- keyed native seeds: order independence, adding a layer changes nothing else -------
def _chain(order: list[str], extra: bool = False) -> Sequential:
    layers = {
        "a": Conv(8, 8, 3, padding=1),
        "b": BatchNorm(8),
        "c": Conv(8, 8, 1, bias=False),
        "d": ConvTranspose(8, 8, 3, padding=1),
    }
    items = [(n, layers[n]) for n in order]
    if extra:
        items.insert(1, ("inserted", Conv(8, 8, 5, padding=2)))
    return Sequential(*items, ("head", Sequential(("fc", Linear(8, 8)), ("emb", Embedding(4, 8)))))


def test_native_rng_is_keyed_by_path(backend):
    policy = Policy(
        Rule(I.KaimingNormal(), kind=("conv", "conv_transpose"), bias=I.Uniform(-1, 1)),
        Rule(I.Normal(1.0, 0.1), kind="batchnorm", bias=I.Normal(0, 0.1)),
    )
    base = neutral_values(xinit.build(_chain(["a", "b", "c", "d"]), backend, policy=policy))
    other = neutral_values(xinit.build(_chain(["d", "c", "a", "b"]), backend, policy=policy))
    more = neutral_values(xinit.build(_chain(["a", "b", "c", "d"], True), backend, policy=policy))
    assert set(more) - set(base) == {"inserted.weight", "inserted.bias"}
    for path, value in base.items():
        np.testing.assert_array_equal(other[path], value, err_msg=f"order changed {path}")
        np.testing.assert_array_equal(more[path], value, err_msg=f"extra layer changed {path}")
    seeded = neutral_values(xinit.build(_chain(["a", "b", "c", "d"]), backend, seed=1))
    assert not np.array_equal(seeded["a.weight"], base["a.weight"])
    # apply on a module built in another order gives the same values as on the first one
    module = xinit.build(_chain(["c", "d", "b", "a"]), backend, seed=9)
    xinit.apply(policy, module, seed=0)
    applied = neutral_values(module)
    for path in ("a.weight", "a.bias", "b.weight", "d.weight"):
        np.testing.assert_array_equal(applied[path], base[path], err_msg=path)


def test_native_rng_apply_on_hand_written_torch_models_is_order_independent():
    torch = require_backend("torch") and __import__("torch")
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self, order, extra=False):
            super().__init__()
            make = {"conv": lambda: nn.Conv2d(3, 8, 3), "fc": lambda: nn.Linear(8, 4)}
            for name in order:
                setattr(self, name, make[name]())
            if extra:
                self.aux = nn.Linear(8, 8)

    policy = xinit.presets.xavier_bn_normal()
    values = []
    for order, extra in ((["conv", "fc"], False), (["fc", "conv"], False), (["fc", "conv"], True)):
        net = Net(order, extra)
        xinit.apply(policy, net, seed=case_seed("order"))
        values.append({k: v.detach().clone() for k, v in net.named_parameters()})
    for other in values[1:]:
        for k, v in values[0].items():
            assert torch.equal(other[k], v), k


# ---- report rendering and the CLI --------------------------------------------------------
def test_report_renders_as_log_lines_table_and_records():
    spec = xinit.models.lenet()
    report = Policy(Rule(I.Zeros(), kind="linear", param="bias")).report(spec)
    lines = str(report).splitlines()
    assert lines[0] == "conv1.weight - 6x3x5x5: KaimingUniform(a=2.236) [no rule: spec default]"
    assert "fc1.bias - 120: Zeros() [#0 Rule(Zeros(), kind='linear', param='bias')]" in lines
    assert lines[-1] == "10 parameters, 3 set by rules, 7 spec defaults"
    from io import StringIO

    from rich.console import Console

    buf = StringIO()
    Console(file=buf, width=160).print(report.table("lenet"), report.rules_table())
    assert "fc3.bias" in buf.getvalue() and "#0" in buf.getvalue()
    records = report.records()
    assert records[1]["path"] == "conv1.bias" and records[1]["shape"] == [6]


def test_cli_init_writes_neutral_safetensors(tmp_path, capsys):
    require_backend("torch")
    from safetensors.numpy import load_file

    from xinit.cli import main

    out = tmp_path / "tmp.safetensors"
    argv = ["init", "resnet18", "--policy", "torchvision_resnet", "--backend", "torch"]
    assert main([*argv, "--seed", "0", "--out", str(out), "--width", "200"]) == 0
    text = capsys.readouterr().out
    assert "layer4.1.conv2.weight" in text and "62 parameters, 60 set by rules" in text
    tensors = load_file(str(out))
    specs = param_specs(xinit.models.resnet18())
    assert set(tensors) == set(specs)
    for path, ps in specs.items():
        assert tensors[path].shape == ps.shape, path
        assert str(tensors[path].dtype) == ps.dtype, path
    assert np.all(tensors["layer1.0.bn1.weight"] == 1)
    w = tensors["layer1.0.conv1.weight"]
    assert_moments(w, I.KaimingNormal(mode="fan_out", nonlinearity="relu").resolve(w.shape, "conv"))
    assert not list(tmp_path.glob(".xinit-*"))  # the temporary file was renamed away
    # The same seed gives the same file contents; the report is also available as JSON.
    out2 = tmp_path / "again.safetensors"
    assert main([*argv, "--seed", "0", "--out", str(out2), "--format", "json"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert len(data["report"]) == 62 and data["meta"]["policy"] == "torchvision_resnet"
    again = load_file(str(out2))
    for k, v in tensors.items():
        np.testing.assert_array_equal(again[k], v)


def test_cli_init_errors(tmp_path, capsys):
    from xinit.cli import main

    assert main(["init", "resnet18", "--policy", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown preset 'nope'" in capsys.readouterr().err
    argv = ["init", "lenet", "--policy", "torchvision_resnet", "--strict"]
    assert main([*argv, "--out", str(tmp_path / "y.safetensors")]) == 2
    assert "8 parameter(s) matched by no rule: conv1.bias, conv2.bias" in capsys.readouterr().err
    assert not (tmp_path / "y.safetensors").exists()


def test_meta_and_lazy_torch_parameters_are_refused_by_name():
    torch = require_backend("torch") and __import__("torch")
    with torch.device("meta"):
        net = torch.nn.Sequential(torch.nn.Linear(2, 3))
    with pytest.raises(TypeError, match=r"0.weight is on the meta device"):
        xinit.apply(Policy(Rule(I.Ones(), kind="linear")), net)
    lazy = torch.nn.Sequential(torch.nn.LazyLinear(3))
    with pytest.raises(TypeError, match=r"0.weight is uninitialised \(lazy module\)"):
        xinit.apply(Policy(Rule(I.Ones(), kind="linear")), lazy)


def test_policy_argument_is_checked():
    torch = require_backend("torch") and __import__("torch")
    with pytest.raises(TypeError, match="takes a Policy first"):
        xinit.apply(torch.nn.Linear(2, 2), Policy())
    with pytest.raises(ValueError, match="rng must be one of"):
        xinit.apply(Policy(), torch.nn.Linear(2, 2), rng="numpy")
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        xinit.apply(Policy(), object())
