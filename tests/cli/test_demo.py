"""The README's front door: ``xinit demo`` runs the three uses end to end and passes."""

from __future__ import annotations

import contextlib
import io

import pytest
from helpers import installed

from xinit.cli import main


@pytest.fixture(scope="module")
def demo() -> tuple[int, str]:
    """One ``xinit demo`` run (its exit code and stdout), read by both tests below."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo"])
    return code, out.getvalue()


def test_demo_shows_the_three_uses_and_passes(demo):
    if "paddle" not in installed() or len(installed()) < 2:
        pytest.skip(
            "the demo's parity and Paddle rows need paddle and one more framework: "
            "pip install 'xinit[paddle]'"
        )
    code, out = demo
    assert code == 0
    assert "KaimingNormal(mode='fan_out')" in out and "analytic law: N(0, 0.02946^2)" in out
    assert "resnet45 parity" in out and "PASS: every layer agrees" in out
    assert "conv2d" in out and "N(0, 0.05893²)" in out  # Paddle's conv default, measured elsewhere


def test_demo_runs_with_the_frameworks_installed(demo):
    """With any set of frameworks (one included) the demo runs and says which it used."""
    code, out = demo
    assert code == 0
    assert f"backends installed: {', '.join(installed())}" in out
    assert "KaimingNormal(mode='fan_out')" in out and "analytic law: N(0, 0.02946^2)" in out
    assert ("resnet45 parity" in out) == (len(installed()) >= 2)
