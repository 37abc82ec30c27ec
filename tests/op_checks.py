"""Checks of op kinds against each framework's own op (shared by tests/layers/test_ops.py and
test_ops_shapes.py): a spec built and run in a framework, and its output compared with the
native op computed in float64 within 4x that op's own float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import require_backend

import xinit

RNG = np.random.default_rng(23)


def x_of(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def assert_native(got, native, *inputs, what: str = "") -> None:
    """``got`` equals ``native(*inputs)`` (a function of float arrays of one framework) in
    float64, within 4x that function's own float32 rounding, floored at 4 ulps of the scale."""
    want = np.asarray(native(*(a.astype(np.float64) for a in inputs)), np.float64)
    f32 = np.asarray(native(*inputs), np.float64)
    ulp = float(np.spacing(np.float32(max(1.0, np.max(np.abs(want))))))
    tol = max(4 * float(np.max(np.abs(f32 - want))), 4 * ulp)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=tol, err_msg=what)


def torch_fn(fn):
    """``fn`` of torch tensors as a function of numpy arrays (dtype kept)."""
    torch = pytest.importorskip("torch")
    return lambda *a: fn(*(torch.from_numpy(np.ascontiguousarray(v)) for v in a)).numpy()


def paddle_fn(fn):
    require_backend("paddle")
    import paddle

    return lambda *a: fn(*(paddle.to_tensor(v) for v in a)).numpy()


def built(spec, fw: str, state: dict | None = None):
    require_backend(fw)
    module = xinit.build(spec, fw, seed=0, rng="xinit")
    if state is not None:
        xinit.load_state_dict(module, state)
    return module


def run(spec, fw: str, *xs, state: dict | None = None):
    return xinit.run(built(spec, fw, state), xs[0] if len(xs) == 1 else xs)
