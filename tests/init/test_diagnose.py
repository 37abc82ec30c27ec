"""xinit.diagnose and xinit.lsuv against theory, across frameworks, and on bad input.

Theory (zero-mean symmetric pre-activations z, ReLU): E[relu(z)^2] = E[z^2] / 2, so a layer
with weight variance v and fan-in n multiplies the second moment by n v / 2 and adds the
bias variance. Tolerances come from the sizes: one layer's second moment is an average over
``d`` output units (rows) of terms whose relative variance is at most ``2 rho`` (a weighted
chi-square; ``rho = tr(S^2)/tr(S)^2`` of the input's second-moment matrix, at most
``1/pi^2`` from the ReLU mean plus ``1/B`` from a batch of ``B``), so its relative standard
error is ``sqrt(2 rho / d)``; independent layers add in quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import installed, require_backend, require_backends

import xinit
from xinit import layers as L
from xinit._diagnose import DiagnoseError
from xinit._lsuv import LSUVError, lsuv, lsuv_build
from xinit.layers import SpecError
from xinit.policy import Policy, Rule

Z = 5.0
WIDTH, BATCH, DEPTH = 1024, 256, 6


def _rel_se(d: int, batch: int, relu_input: bool = True) -> float:
    rho = (1 / math.pi**2 if relu_input else 0.0) + 1 / batch + 1 / d
    return math.sqrt(2 * rho / d)


def _mlp(width=WIDTH, depth=DEPTH, bias=True):
    steps = []
    for _ in range(depth):
        steps += [L.Linear(width, width, bias=bias), L.ReLU()]
    return xinit.Sequential(*steps)


def _linear_rows(result, backend, policy):
    return [r for r in result.run(backend, policy) if r.kind == "linear"]


def test_kaiming_relu_mlp_keeps_second_moment():
    """Kaiming normal fan_in (Var w = 2/n): E[z_1^2] = 2 E[x^2] = 2, then constant."""
    require_backend("torch")
    res = xinit.diagnose(
        _mlp(bias=False), (BATCH, WIDTH), frameworks=["torch"], policies=["kaiming"], seed=1
    )
    q = [r.second_moment for r in _linear_rows(res, "torch", "kaiming")]
    assert abs(q[0] / 2 - 1) <= Z * _rel_se(WIDTH, BATCH, relu_input=False)
    step = _rel_se(WIDTH, BATCH)
    for layer in range(1, DEPTH):
        assert abs(q[layer] / q[layer - 1] - 1) <= Z * step, (layer, q)
        assert abs(q[layer] / 2 - 1) <= Z * step * math.sqrt(layer + 1), (layer, q)
    relu = [r for r in res.run("torch", "kaiming") if r.kind == "relu"]
    for r, pre in zip(relu, q):  # E[relu(z)^2] = E[z^2]/2, over BATCH*WIDTH values
        assert abs(r.second_moment / (pre / 2) - 1) <= Z * math.sqrt(5 / (BATCH * WIDTH)) + Z * step


def test_torch_default_shrinks_by_one_sixth_plus_bias_floor():
    """PyTorch's Linear default: Var w = Var b = 1/(3n), so q_l = q_{l-1}/6 + 1/(3n) (the
    first layer sees x: q_1 = 1/3 + 1/(3n)); the fixed point is 2/(5n)."""
    require_backend("torch")
    res = xinit.diagnose(
        _mlp(), (BATCH, WIDTH), frameworks=["torch"], policies=["default-torch"], seed=2
    )
    q = [r.second_moment for r in _linear_rows(res, "torch", "default-torch")]
    n = WIDTH
    expect = [1 / 3 + 1 / (3 * n)]
    for _ in range(1, DEPTH):
        expect.append(expect[-1] / 6 + 1 / (3 * n))
    bias_rel = math.sqrt(0.8 / n)  # uniform b: Var(b^2)/E[b^2]^2 = 9/5 - 1, over n channels
    for layer, (got, want) in enumerate(zip(q, expect)):
        tol = Z * math.sqrt((layer + 1) * _rel_se(n, BATCH) ** 2 + bias_rel**2)
        assert abs(got / want - 1) <= tol, (layer, got, want)
    # the bias floor dominates by then: without it q_6 would be (1/3) / 6^5, ten times less
    assert q[-1] > 5 * (1 / 3) / 6 ** (DEPTH - 1)


def test_paddle_conv_default_keeps_variance():
    """Paddle's conv default N(0, 2/fan_in) with zero bias: the ReLU stack's second moment is
    constant (valid convolutions: no zero border to thin the fan-in)."""
    require_backend("torch")
    c, depth = 128, 4
    steps = [L.Conv2d(3, c, 3)] + [s for _ in range(depth) for s in (L.ReLU(), L.Conv2d(c, c, 3))]
    spec = xinit.Sequential(*steps)
    res = xinit.diagnose(
        spec,
        (16, 3, 20, 20),
        frameworks=["torch"],
        policies=["default-paddle", "default-torch"],
        seed=3,
    )
    q = [r.second_moment for r in res.run("torch", "default-paddle") if r.kind == "conv"]
    assert abs(q[0] / 2 - 1) <= Z * _rel_se(c, 16 * 18 * 18, relu_input=False)
    for layer in range(1, depth + 1):
        assert abs(q[layer] / q[layer - 1] - 1) <= Z * _rel_se(c, 16) * 1.5, (layer, q)
    # the same net under torch's default loses a factor ~6 per layer
    t = [r.second_moment for r in res.run("torch", "default-torch") if r.kind == "conv"]
    assert t[-1] / t[0] < 0.01


def _small_resnet():
    block = xinit.Residual(
        xinit.Sequential(
            {
                "conv1": L.Conv2d(8, 8, 3, padding=1),
                "bn1": L.BatchNorm(8),
                "relu": L.ReLU(),
                "conv2": L.Conv2d(8, 8, 3, padding=1),
                "bn2": L.BatchNorm(8),
            }
        )
    )
    return xinit.Sequential(
        {
            "stem": L.Conv2d(3, 8, 3, padding=1),
            "act": L.ReLU(),
            "block": block,
            "flat": L.Flatten(),
            "fc": L.Linear(8 * 8 * 8, 4),
        }
    )


def test_frameworks_agree_on_every_statistic():
    names = installed()
    if len(names) < 2:
        pytest.skip("needs two frameworks")
    res = xinit.diagnose(
        _small_resnet(),
        (4, 3, 8, 8),
        frameworks=names,
        policies=["default-torch", "default-flax"],
        seed=4,
    )
    for policy in ("default-torch", "default-flax"):
        ref = res.run(names[0], policy)
        assert [r.path for r in ref][-1] == ""
        block = next(r for r in ref if r.path == "block")
        assert block.residual_var is not None and block.residual_var > 0
        for other in names[1:]:
            rows = res.run(other, policy)
            assert [r.path for r in rows] == [r.path for r in ref]
            for a, b in zip(ref, rows):
                for f in (
                    "mean",
                    "std",
                    "second_moment",
                    "channel_sq_mean",
                    "channel_var",
                    "grad_std",
                ):
                    np.testing.assert_allclose(
                        getattr(b, f),
                        getattr(a, f),
                        rtol=2e-4,
                        atol=1e-6,
                        err_msg=f"{other} {a.path} {f}",
                    )
                assert [k for k, _ in a.param_grad_std] == [k for k, _ in b.param_grad_std]
                want = [v for _, v in a.param_grad_std]
                # a bias before BatchNorm has gradient 0 up to float noise: absolute floor
                floor = 1e-5 * max(want, default=0.0)
                np.testing.assert_allclose(
                    [v for _, v in b.param_grad_std],
                    want,
                    rtol=2e-4,
                    atol=floor,
                    err_msg=f"{other} {a.path}",
                )


def test_grad_of_output_is_twice_the_output_and_model_is_left_alone():
    torch = pytest.importorskip("torch")
    spec = _small_resnet()
    module = xinit.build(spec, "torch", seed=0)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    res = xinit.diagnose(module, (4, 3, 8, 8))
    out = res.run("torch", "as-is")[-1]
    assert out.path == "" and out.grad_std == pytest.approx(2 * out.std, rel=1e-5)
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in module.parameters())


def test_results_render(tmp_path):
    require_backend("torch")
    res = xinit.diagnose(
        _small_resnet(),
        (2, 3, 8, 8),
        frameworks=["torch"],
        policies=["kaiming", Policy(Rule(xinit.init.Zeros(), kind="linear"), name="zero-fc")],
    )
    md = res.to_markdown()
    assert "std torch/kaiming" in md and "std torch/zero-fc" in md and "block" in md
    import json

    rows = json.loads(res.to_json())["rows"]
    assert len(rows) == len(res.rows) and rows[0]["backend"] == "torch"
    res.plot(str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_input():
    require_backend("torch")
    with pytest.raises(DiagnoseError, match="unknown policy 'default-keras'.*default-torch"):
        xinit.diagnose(_mlp(8, 1), (2, 8), policies=["default-keras"])
    with pytest.raises(SpecError, match="0"):
        xinit.diagnose(_mlp(8, 1), (2, 9), frameworks=["torch"])
    with pytest.raises(DiagnoseError, match="unknown framework"):
        xinit.diagnose(_mlp(8, 1), (2, 8), frameworks=["keras"])


@pytest.mark.parametrize("tol", [0.05, 0.01])
def test_lsuv_reaches_unit_std_and_frameworks_agree(tol):
    names = installed()
    spec = xinit.Sequential(
        *[s for i in range(4) for s in (L.Conv2d(3 if i == 0 else 16, 16, 3, padding=1), L.ReLU())],
        L.Flatten(),
        L.Linear(16 * 8 * 8, 10),
    )
    x = np.random.default_rng(5).standard_normal((16, 3, 8, 8)).astype(np.float32)
    states = {}
    for name in names:
        module, report = lsuv_build(spec, name, x, rng="xinit", tol=tol)
        assert report.ok and [s.path for s in report.steps] == ["0", "2", "4", "6", "9"]
        out = xinit.backends.get_backend(name).trace(module, x)
        for step in report.steps:
            assert abs(np.asarray(out[step.path], np.float64).std() - 1) <= tol
        states[name] = xinit.state_dict(module)
    for name in names[1:]:
        for key, value in states[names[0]].items():
            np.testing.assert_allclose(
                states[name][key], value, rtol=1e-4, atol=1e-6, err_msg=f"{name} {key}"
            )


def test_lsuv_errors():
    require_backend("torch")
    spec = xinit.Sequential(L.Linear(8, 8), L.ReLU(), L.Linear(8, 8))
    module = xinit.build(spec, "torch")
    x = np.random.default_rng(0).standard_normal((32, 8)).astype(np.float32)
    with pytest.raises(LSUVError, match="layer '1' is not a layer with parameters"):
        lsuv(module, x, layers=["1"])
    bn = xinit.build(xinit.Sequential(L.Linear(8, 8), L.BatchNorm(8)), "torch")
    with pytest.raises(LSUVError, match="'1'.*no weight|'1'"):
        lsuv(bn, x, layers=["1"])
    with pytest.raises(LSUVError, match=r"0 \(std") as err:
        lsuv(module, x, max_iter=1, tol=1e-9)
    assert err.value.report is not None and not err.value.report.steps[0].converged
    with pytest.warns(RuntimeWarning, match="did not reach"):
        report = lsuv(module, x, max_iter=1, tol=1e-9, strict=False)
    assert not report.ok


def test_cli_diagnose(tmp_path, capsys):
    require_backends("torch")
    from xinit.cli import main

    plot = tmp_path / "d.png"
    code = main(
        [
            "diagnose",
            "lenet",
            "--backends",
            "torch",
            "--policies",
            "default-torch,default-paddle",
            "--format",
            "md",
            "--input",
            "2,3,32,32",
            "--plot",
            str(plot),
        ]
    )
    assert code == 0 and plot.exists()
    assert "std torch/default-paddle" in capsys.readouterr().out
    assert (
        main(
            [
                "diagnose",
                "lenet",
                "--backends",
                "torch",
                "--policies",
                "nope",
                "--input",
                "2,3,32,32",
            ]
        )
        == 2
    )
    assert "unknown policy 'nope'" in capsys.readouterr().err
