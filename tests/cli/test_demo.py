"""The README's front door: ``xinit demo`` runs the three uses end to end and passes."""

from __future__ import annotations

import pytest
from helpers import installed

from xinit.cli import main


def test_demo_shows_the_three_uses_and_passes(capsys):
    if "paddle" not in installed() or len(installed()) < 2:
        pytest.skip(
            "the demo's parity and Paddle rows need paddle and one more framework: "
            "pip install 'xinit[paddle]'"
        )
    code = main(["demo"])
    out = capsys.readouterr().out
    assert code == 0
    assert "KaimingNormal(mode='fan_out')" in out and "analytic law: N(0, 0.02946^2)" in out
    assert "resnet45 parity" in out and "PASS: every layer agrees" in out
    assert "conv2d" in out and "N(0, 0.05893²)" in out  # Paddle's conv default, measured elsewhere


def test_demo_runs_with_the_frameworks_installed(capsys):
    """With any set of frameworks (one included) the demo runs and says which it used."""
    code = main(["demo"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"backends installed: {', '.join(installed())}" in out
    assert "KaimingNormal(mode='fan_out')" in out and "analytic law: N(0, 0.02946^2)" in out
    assert ("resnet45 parity" in out) == (len(installed()) >= 2)
