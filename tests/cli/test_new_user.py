"""What a new user met: a strict kind-only rule that matches
nothing, parameter counts that disagree, Default sampled from role and shape, a zero bias
printed as Constant(), reST markup in the CLI's help, tables cut at 80 columns in a pipe."""

from __future__ import annotations

import math

import pytest
from helpers import require_backend, require_backends
from stats_helpers import assert_moments

import xinit
from xinit import init
from xinit.blocks import num_params, num_state_values, param_specs
from xinit.cli import main
from xinit.distributions import NormalDist, UniformDist
from xinit.models import lenet, resnet18
from xinit.policy import Policy, PolicyError, Rule


def test_strict_kind_only_rule_that_matches_nothing_raises():
    policy = Policy(Rule(init.Ones(), kind="layernorm"), Rule(init.Zeros()), strict=True)
    with pytest.raises(PolicyError, match=r"rule #0 .*no layer has kind 'layernorm'.*conv"):
        policy.report(lenet())
    # not strict: a preset may name kinds a model lacks, silently
    Policy(Rule(init.Ones(), kind="layernorm"), Rule(init.Zeros())).report(lenet())


def test_num_params_agrees_with_summary_and_torch():
    spec = resnet18()
    count = num_params(spec)
    assert count == xinit.summary(spec, (1, 3, 64, 64)).total_params == 11_689_512
    running = sum(p.numel for p in param_specs(spec).values() if p.name.startswith("running_"))
    assert num_state_values(spec) == count + running
    require_backend("torch")
    module = xinit.build(spec, "torch", rng="xinit")
    assert count == sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("backend", ["torch", "paddle"])
def test_default_is_sampled_from_role_and_shape(backend):
    require_backend(backend)
    shape = (128, 64, 3, 3)
    bound = 1 / math.sqrt(64 * 9)  # torch's default conv weight: U(+-1/sqrt(fan_in))
    w = xinit.sample(init.Default("torch"), shape, role="conv", framework=backend, seed=1)
    assert w.shape == shape and abs(w).max() <= bound
    assert_moments(w, UniformDist(-bound, bound), f"Default('torch') drawn by {backend}")
    w = xinit.sample(init.Default("paddle"), shape, role="conv", framework=backend, seed=2)
    assert_moments(w, NormalDist(0.0, math.sqrt(2 / (64 * 9))), "Default('paddle')")


def test_default_from_a_shape_it_cannot_place_says_so():
    with pytest.raises(ValueError, match="cannot tell a layer from role 'vector'"):
        init.Default("torch").resolve((64,), "vector")


def test_a_zero_bias_reads_zeros():
    assert str(init.Constant()) == str(init.Constant(0.0)) == "Zeros()"
    assert str(init.Constant(0.5)) == "Constant(0.5)"
    report = Policy(Rule(init.Constant(0.0), param="bias"), Rule(init.Ones())).report(lenet())
    bias = next(r for r in report.records() if r["path"] == "conv1.bias")
    assert bias["initializer"] == "Zeros()"


def test_cli_help_has_no_rest_markup(capsys):
    for argv in ([], ["init"], ["port"], ["stats"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        out = capsys.readouterr().out
        assert "usage: xinit" in out
        assert "``" not in out and ":func:" not in out, argv


def test_tables_keep_their_width_in_a_pipe(capsys):
    """capsys is not a terminal: rows must not be wrapped or cut at 80 columns."""
    assert main(["summary", "resnet18"]) == 0
    out = capsys.readouterr().out
    assert "weight: KaimingNormal(mode='fan_out', nonlinearity='relu')" in out
    assert "…" not in out
    require_backends("torch", "paddle")
    assert main(["parity", "lenet", "--backends", "paddle,torch", "--rows", "4"]) == 0
    assert "…" not in capsys.readouterr().out
