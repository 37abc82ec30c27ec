"""The README's front door: ``xinit demo`` runs the three uses end to end and passes."""

from __future__ import annotations

from xinit.cli import main


def test_demo_shows_the_three_uses_and_passes(capsys):
    code = main(["demo"])
    out = capsys.readouterr().out
    assert code == 0
    assert "KaimingNormal(mode='fan_out')" in out and "analytic law: N(0, 0.02946^2)" in out
    assert "resnet45 parity" in out and "PASS: every layer agrees" in out
    assert "conv2d" in out and "N(0, 0.05893²)" in out  # Paddle's conv default, measured elsewhere
