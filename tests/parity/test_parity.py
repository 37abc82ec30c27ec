"""Layer-by-layer parity across backends: the zoo meets the targets after a transfer, the
first divergent layer is found, BatchNorm's training step agrees (momentum translated)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend

import xinit
from xinit import bn_parity, models, parity, randomize_batchnorm
from xinit.blocks import Sequential
from xinit.layers import BatchNorm, Conv, ReLU
from xinit.state import load_state_dict, state_dict, transfer

TARGET = {"torch vs paddle": 1e-5, "paddle vs torch": 1e-5}  # else 1e-4 (a pair with flax)

# (model, input, the backend whose weights are transferred to the other two)
ZOO = [
    ("lenet", (2, 3, 32, 32), "paddle"),
    ("resnet18", (1, 3, 64, 64), "torch"),
    ("resnet45", (1, 3, 32, 128), "paddle"),
    ("resnet50", (1, 3, 64, 64), "torch"),
    ("resnext50_32x4d", (1, 3, 64, 64), "flax"),
]


def build_all(spec, source: str, seed: int = 0) -> dict:
    for name in FRAMEWORKS:
        require_backend(name)
    mods = {source: xinit.build(spec, source, seed=seed, rng="xinit")}
    randomize_batchnorm(mods[source], seed=seed + 1)
    for name in FRAMEWORKS:
        if name != source:
            mods[name] = xinit.build(spec, name, seed=seed + 2, rng="xinit")
            transfer(mods[source], mods[name])
    return mods


@pytest.mark.parametrize("model,shape,source", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_transfer_meets_the_targets(model, shape, source):
    spec = models.get(model)
    mods = build_all(spec, source)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    report = parity(mods, x)
    print(f"\n{model} (from {source}): " + report.summary().replace("\n", "; "))
    assert report.ok, str(report.first_divergent)
    for pair in report.rtol:
        assert report.worst(pair) <= TARGET.get(pair, 1e-4), pair
    # and the whole forward through xinit.run
    ys = {name: xinit.run(m, x) for name, m in mods.items()}
    for a, b in [("torch", "paddle"), ("torch", "flax"), ("paddle", "flax")]:
        rel = np.abs(ys[a] - ys[b]).max() / np.abs(ys[a]).max()
        assert rel <= TARGET.get(f"{a} vs {b}", 1e-4), (a, b, rel)


def small_spec(momentum: float = 0.3, train_stats: str = "native") -> Sequential:
    return Sequential(
        {
            "conv": Conv(3, 8, 3, padding=1),
            "bn": BatchNorm(8, momentum=momentum, train_stats=train_stats),
            "relu": ReLU(),
            "conv2": Conv(8, 4, 3),
            "bn2": BatchNorm(4, train_stats=train_stats),
        }
    )


def test_first_divergent_layer_is_reported():
    require_backend("torch")
    require_backend("paddle")
    spec = models.lenet()
    a = xinit.build(spec, "torch", rng="xinit")
    b = xinit.build(spec, "paddle", seed=3, rng="xinit")
    transfer(a, b)
    state = state_dict(b)
    state["conv2.weight"][0, 0, 0, 0] += 1e-2  # a porting slip in one layer
    load_state_dict(b, state)
    report = parity([a, b], np.random.default_rng(1).standard_normal((2, 3, 32, 32)))
    first = report.first_divergent
    assert not report.ok and first is not None and first.path == "conv2"
    paths = [r.path for r in report.rows]
    assert all(r.passed for r in report.rows[: paths.index("conv2")])  # conv1, pool's last call
    text = str(report)
    line = next(ln for ln in text.splitlines() if "HERE" in ln)
    assert line.startswith("conv2 ")
    assert "first divergent layer: conv2" in report.summary()
    assert "HERE" in report.to_markdown()
    json.dumps(report.to_dict())  # serialisable


def test_bn_training_step_matches_numpy_and_agrees():
    """With ``train_stats="torch"`` every framework keeps PyTorch's rule: all rows agree."""
    spec = small_spec(momentum=0.3, train_stats="torch")
    mods = build_all(spec, "torch", seed=4)
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    old = state_dict(mods["torch"])
    report = bn_parity(mods, x)
    assert report.ok, report.summary()
    assert report.worst("torch vs paddle", bn=True) <= 1e-5
    # states restored
    for name, m in mods.items():
        now = state_dict(m)
        for k in now:
            assert np.array_equal(now[k], old[k]), (name, k)
    # against numpy: the first BN's input is the first conv's output
    from xinit.backends import get_backend

    h = get_backend("torch").trace(mods["torch"], x)["conv"].astype(np.float64)
    mean, var = h.mean(axis=(0, 2, 3)), h.var(axis=(0, 2, 3), ddof=1)
    for name in FRAMEWORKS:
        stats = report.bn_stats[name]
        np.testing.assert_allclose(stats["bn|momentum"], 0.3, rtol=1e-5)
        np.testing.assert_allclose(stats["bn2|momentum"], 0.1, rtol=1e-5)
        np.testing.assert_allclose(stats["bn|batch_mean"], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stats["bn|batch_var"], var, rtol=1e-5)
        np.testing.assert_allclose(
            stats["bn|running_mean"],
            0.7 * old["bn.running_mean"] + 0.3 * mean,
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            stats["bn|running_var"], 0.7 * old["bn.running_var"] + 0.3 * var, rtol=1e-5
        )


def test_native_bn_rule_shows_as_the_biased_batch_variance():
    """The frameworks' own BatchNorms (the default) differ from PyTorch's in one training
    step exactly as documented: the same momentum and batch mean, and a batch variance
    stored biased, (n - 1) / n of PyTorch's unbiased one (n values per channel)."""
    spec = small_spec(momentum=0.3)
    mods = build_all(spec, "torch", seed=4)
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    report = bn_parity(mods, x)
    n = {"bn": 4 * 8 * 8, "bn2": 4 * 6 * 6}
    torch_stats = report.bn_stats["torch"]
    for name in ("paddle", "flax"):
        stats = report.bn_stats[name]
        for path, count in n.items():
            for stat in ("momentum", "batch_mean"):
                key = f"{path}|{stat}"
                np.testing.assert_allclose(stats[key], torch_stats[key], rtol=1e-5, atol=1e-6)
            key = f"{path}|batch_var"
            np.testing.assert_allclose(
                stats[key], torch_stats[key] * (count - 1) / count, rtol=1e-5
            )
    assert not report.ok  # 1/256 and 1/144 of the batch variance: far above float32 rounding
    assert report.first_divergent_bn.kind == "batch_var"


def test_bn_momentum_convention_slip_is_caught():
    """The neutral momentum (0.1 = weight of the batch) given where Paddle's own convention
    (0.9 = weight of the running value) belongs: the momentum row diverges first."""
    require_backend("torch")
    require_backend("paddle")
    spec = small_spec(momentum=0.1, train_stats="torch")
    a = xinit.build(spec, "torch", rng="xinit")
    b = xinit.build(spec, "paddle", rng="xinit")
    randomize_batchnorm(a, seed=1)
    transfer(a, b)
    assert b._sub_layers["bn"]._momentum == pytest.approx(0.9)  # translated by the build
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    assert parity([a, b], x, train=True).ok
    b._sub_layers["bn"]._momentum = 0.1  # left untranslated
    eval_report = parity([a, b], x)
    assert eval_report.ok  # eval mode cannot see it
    report = parity([a, b], x, train=True)
    assert not report.ok
    first = report.first_divergent_bn
    assert (first.path, first.kind) == ("bn", "momentum")
    np.testing.assert_allclose(report.bn_stats["paddle"]["bn|momentum"], 0.9, rtol=1e-5)
    assert "HERE" in report.to_markdown(bn=True)


def test_parity_needs_two_modules_of_one_spec():
    require_backend("torch")
    a = xinit.build(models.lenet(), "torch", rng="xinit")
    b = xinit.build(models.lenet(num_classes=3), "torch", rng="xinit")
    with pytest.raises(ValueError, match="two or more"):
        parity([a], np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="different specs"):
        parity([a, b], np.zeros((1, 3, 32, 32), np.float32))
    report = parity({"left": a, "right": a}, np.ones((1, 3, 32, 32), np.float32))
    assert report.ok and report.worst() == 0.0 and list(report.rtol) == ["left vs right"]


def test_report_renders_with_rich():
    require_backend("torch")
    require_backend("paddle")
    from rich.console import Console

    a = xinit.build(small_spec(), "torch", rng="xinit")
    b = xinit.build(small_spec(), "paddle", rng="xinit")
    transfer(a, b)
    report = parity([a, b], np.ones((2, 3, 8, 8), np.float32), train=True)
    console = Console(record=True, width=160)
    console.print(report.table())
    console.print(report.table(bn=True, max_rows=6))
    text = console.export_text()
    assert "torch vs paddle" in text and "bn2" in text and "momentum" in text
    md = report.to_markdown(max_rows=4)
    assert len(md.splitlines()) == 2 + 5  # header, rule, 2 first, "...", 2 last


# ---- the command line --------------------------------------------------------------------
def test_cli_parity(capsys):
    require_backend("torch")
    require_backend("paddle")
    from xinit.cli import main

    rc = main(["parity", "lenet", "--backends", "torch,paddle", "--format", "md", "--train"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| conv1 | conv |" in out and "PASS" in out


def test_cli_port_paddle_to_torch(tmp_path, capsys):
    require_backend("torch")
    require_backend("paddle")
    import paddle
    import torch

    from xinit.cli import main

    src = xinit.build(models.lenet(), "paddle", rng="xinit")
    inp, out = tmp_path / "lenet.pdparams", tmp_path / "lenet.pt"
    paddle.save(src.state_dict(), str(inp))
    rc = main(["port", "--model", "lenet", "--from", "paddle", "--to", "torch", str(inp), str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "10 tensors moved paddle -> torch (0 renamed, 3 transposed)" in text
    assert "PASS" in text
    dst = xinit.build(models.lenet(), "torch", seed=5, rng="xinit")
    dst.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert np.array_equal(dst.fc1.weight.detach().numpy(), src.fc1.weight.numpy().T)
    rc = main(["port", "--model", "lenet", "--to", "torch", str(inp), str(tmp_path / "x.msgpack")])
    assert rc == 2
    assert "--to torch writes" in capsys.readouterr().err
