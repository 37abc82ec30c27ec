"""The parity verdict judged against float32 rounding, on realistic numbers: BatchNorm
statistics calibrated on a training-mode pass, correct ports PASS between every pair of
frameworks, each planted fault FAILs at its layer, and the verdict's boundary sits where
the docs say (a difference of 3x what it allows fails, 0.5x passes; also with rtol/atol)."""

from __future__ import annotations

import itertools
import os

import numpy as np
import parity_cases as pc
import pytest
from helpers import require_backends

import xinit
from xinit.backends import FRAMEWORKS, get_backend
from xinit.state import load_state_dict, state_dict

DOCUMENTED_THRESHOLD = 4.0  # docs/porting.md: a layer passes up to 4x the float32 rounding
FAST = ["crnn", "gpt2", "encoder", "segmenter"]  # and resnet45 torch/paddle below
SLOW = ["resnet45", "resnet152", "vit_base", "gpt2_12"]  # ~4 min together on 2 cores
slow = pytest.mark.skipif(not os.environ.get("XINIT_SLOW"), reason="slow: set XINIT_SLOW=1")


def check_correct_port(name: str) -> None:
    require_backends(*FRAMEWORKS)
    case = pc.CASES[name]
    mods = pc.ported(case, FRAMEWORKS)
    report = xinit.parity(mods, case.inputs(7))
    print(f"\n{name}: " + report.summary().replace("\n", "; "))
    assert report.ok, report.summary()  # every pair, every layer: measured <= 1.7
    for a, b in itertools.combinations(FRAMEWORKS, 2):
        assert 0 < report.worst_ratio(f"{a} vs {b}") <= DOCUMENTED_THRESHOLD, (a, b)


@pytest.mark.parametrize("name", FAST)
def test_correct_ports_pass_between_every_pair(name):
    check_correct_port(name)


@pytest.mark.slow
@slow
@pytest.mark.parametrize("name", SLOW)
def test_correct_ports_of_deep_models_pass(name):
    check_correct_port(name)


def test_calibrated_statistics_break_the_old_fixed_rtol():
    """Why the verdict changed: with statistics from a training pass a correct ResNet45 port
    differs by more than the old fixed rtol 1e-5, which float32 alone exceeds."""
    require_backends("torch", "paddle")
    case = pc.CASES["resnet45"]
    mods = pc.ported(case, ("torch", "paddle"))
    x = case.inputs(7)
    assert not xinit.parity(mods, x, rtol=1e-5).ok
    report = xinit.parity(mods, x)
    assert report.ok and report.worst() > 1e-5, report.summary()


@pytest.mark.parametrize(
    "name,fault,path,where",
    [
        pytest.param(*f, marks=[pytest.mark.slow, slow])
        if f[:2] == ("resnet45", pc.conv_channel)  # crnn has the same fault, fast
        else f
        for f in pc.FAULTS
    ],
    ids=[f"{case}-{fault.__name__}-{where}" for case, fault, _, where in pc.FAULTS],
)
def test_planted_fault_fails_at_its_layer(name, fault, path, where):
    other = "torch" if where != "torch" else "paddle"
    require_backends(other, where)
    case = pc.CASES[name]
    mods = pc.ported(case, (other, where))
    fault(mods[where], path)
    report = xinit.parity(mods, case.inputs(7))
    first = report.first_divergent
    assert first is not None and first.path == path, report.summary()
    (diff,) = first.diffs.values()
    assert diff.ratio > DOCUMENTED_THRESHOLD  # judged by the ratio: measured >= 27
    assert f"first divergent layer: {path} " in report.summary()


def test_calibration_gives_the_training_pass_statistics():
    """After calibrating, eval mode normalises with the batch's own statistics: the eval
    output equals the training-mode output on that batch (up to n/(n-1) in the variance)."""
    require_backends("torch")
    case = pc.CASES["segmenter"]
    model = xinit.build(case.spec(), "torch", rng="xinit")
    xinit.randomize_batchnorm(model, seed=3)
    x = case.inputs(1)
    adapter = get_backend("torch")
    before = state_dict(model)
    xinit.calibrate_batchnorm(model, x)
    after = state_dict(model)
    assert not np.allclose(after["bn2.running_var"], before["bn2.running_var"])
    assert all(np.array_equal(after[k], before[k]) for k in before if "running" not in k)
    train = adapter.run_train(model, x)
    np.testing.assert_allclose(xinit.run(model, x), train, rtol=0, atol=2e-3 * np.abs(train).max())


# ---- the boundary --------------------------------------------------------------------------
TOLERANCES = {"rounding": {}, "rtol": {"rtol": 1e-3}, "atol": {"atol": 1e-3}}


def rounding_of(mods: dict, x: np.ndarray) -> float:
    """The float32 rounding both sides make at the output, measured here on its own: each
    model's float32 output against its float64 run, summed, floored at one float32 ulp."""
    total = 0.0
    for name, model in mods.items():
        adapter = get_backend(name)
        y32 = adapter.run(model, x)
        with adapter.float64(model):
            y64 = adapter.run(model, x.astype(np.float64))
        total += float(np.abs(y32.astype(np.float64) - y64).max())
    scale = float(np.abs(xinit.run(mods["torch"], x)).max())
    return max(total, float(np.finfo(np.float32).eps) * scale)


def shifted(k: float, verdict: str) -> xinit.ParityReport:
    """Parity after the paddle side's last layer bias is shifted by ``k`` times what the
    verdict allows there: the documented threshold x the measured rounding, rtol x max
    |reference output|, or atol."""
    require_backends("torch", "paddle")
    case = pc.CASES["segmenter"]
    mods = pc.ported(case, ("torch", "paddle"))
    x = case.inputs(7)
    if verdict == "rounding":
        allowed = DOCUMENTED_THRESHOLD * rounding_of(mods, x)
    elif verdict == "rtol":
        allowed = 1e-3 * np.abs(xinit.run(mods["torch"], x)).max()
    else:
        allowed = 1e-3
    state = state_dict(mods["paddle"])
    state["head.bias"] = state["head.bias"] + np.float32(k * allowed)
    load_state_dict(mods["paddle"], state)
    return xinit.parity(mods, x, **TOLERANCES[verdict])


@pytest.mark.parametrize("verdict", list(TOLERANCES))
def test_the_verdict_boundary(verdict):
    """A difference of 3x what the verdict allows fails at that layer, 0.5x passes: a
    threshold (or tolerance) off by 10x either way is caught."""
    report = shifted(3.0, verdict)
    assert report.first_divergent is not None and report.first_divergent.path == "head"
    assert shifted(0.5, verdict).ok
