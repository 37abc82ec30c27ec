"""Parity judged at exactly the rtol the caller gives (a tolerance applied x10 went unnoticed
while every parity failure in the tests was far beyond it). The boundary of the verdict
against float32 rounding is in ``test_parity_verdict.py``; this is the explicit ``rtol=``."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit.blocks import Sequential
from xinit.layers import Linear

RTOL = 1e-3  # float32 rounding of a 4-term dot product is ~1e-7 of it: far below 0.5 x RTOL


@pytest.mark.parametrize("k, passes", [(0.5, True), (3.0, False)])
def test_an_explicit_rtol_is_the_boundary(k, passes):
    """Outputs k x rtol apart (the weight scaled by 1 + k·rtol, no bias): 0.5 x passes,
    3 x fails."""
    require_backend("torch")
    spec = Sequential(("fc", Linear(4, 3, bias=False)))
    a = xinit.build(spec, "torch", seed=1, rng="xinit")
    b = xinit.build(spec, "torch", seed=1, rng="xinit")
    state = xinit.state_dict(a)
    xinit.load_state_dict(b, {"fc.weight": state["fc.weight"] * np.float32(1 + k * RTOL)})
    x = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    report = xinit.parity({"a": a, "b": b}, x, rtol=RTOL)
    assert report.rtol == {"a vs b": RTOL}
    assert report.ok is passes
    assert report.worst() == pytest.approx(k * RTOL, rel=1e-3)
