"""``xinit.stats``: one initializer drawn in each framework and measured against its analytic
law, as a result object (the ``xinit stats`` command only renders it)."""

from __future__ import annotations

import json
import math

import pytest
from helpers import installed, require_backends
from stats_helpers import N_MIN, P_MIN, Z_MAX

import xinit
from xinit.errors import ArgumentError, FrameworkError, InitializerError

SHAPE = (112, 64, 3, 3)  # 64,512 values: above the suite's N_MIN


def test_rows_match_the_analytic_law_within_their_standard_errors():
    result = xinit.stats("KaimingNormal(mode='fan_out')", SHAPE, role="conv", seed=3)
    n = math.prod(SHAPE)
    assert n >= N_MIN
    assert [r.framework for r in result.rows] == list(installed())
    std = math.sqrt(2 / (112 * 9))  # gain sqrt(2) over fan_out = 112 * 3 * 3
    assert result.analytic_std == pytest.approx(std, rel=1e-12) and result.analytic_mean == 0
    for r in result.rows:
        assert r.n == n and r.ks_p > P_MIN
        assert abs(r.mean) <= Z_MAX * std / math.sqrt(n)
        assert abs(r.std - std) <= Z_MAX * std / math.sqrt(2 * n)  # normal: se of s
        assert r.std_ratio == pytest.approx(r.std / std)
    assert result.fans == "fan_in=576, fan_out=1008"


def test_a_planted_wrong_law_is_rejected():
    """The same checks on a draw whose std is 3% off fail: they have the power to catch it."""
    result = xinit.stats("Normal(0, 0.0103)", SHAPE, role="conv", frameworks=installed()[:1])
    (row,) = result.rows
    std = 0.01  # what the test claims the law is
    assert abs(row.std - std) > Z_MAX * std / math.sqrt(2 * row.n)


def test_the_keyed_generator_gives_every_framework_the_same_numbers():
    require_backends("torch", "flax")
    pair = ["torch", "flax"]
    result = xinit.stats("Uniform(-0.5, 1.5)", (300, 200), frameworks=pair, rng="xinit")
    torch_row, flax_row = result.rows
    assert (torch_row.mean, torch_row.std, torch_row.ks_p) == (
        flax_row.mean,
        flax_row.std,
        flax_row.ks_p,
    )


def test_renderings_carry_the_same_rows():
    result = xinit.stats("Dirac(groups=2)", (8, 4, 3, 3), role="conv", frameworks=installed())
    data = json.loads(result.to_json())
    assert [r["backend"] for r in data["rows"]] == [r.framework for r in result.rows]
    assert data["rows"][0]["ks_p"] is None  # a fixed construction has no CDF to test
    assert data["analytic"]["std"] == pytest.approx(result.analytic_std)
    md = result.to_markdown()
    assert md.startswith(f"**{result.title}**") and md.count("\n| ") == 1 + len(result.rows)
    assert result.table().row_count == len(result.rows)


def test_bad_requests_fail_before_any_draw():
    with pytest.raises(FrameworkError, match="'mxnet'"):
        xinit.stats("Zeros", (4, 4), frameworks=["torch", "mxnet"])
    with pytest.raises(ArgumentError, match="'tpu'"):
        xinit.stats("Zeros", (4, 4), devices=["tpu"])
    with pytest.raises(InitializerError, match="role 'linear' needs a 2-d shape"):
        xinit.stats("Normal(0, 0.02)", (70000,), role="linear")
    with pytest.raises(InitializerError, match="expected one of"):
        xinit.stats("eval('1')", (4, 4))
    with pytest.raises(xinit.InsufficientMemoryError):
        xinit.stats("Zeros", (10**6, 10**6))
