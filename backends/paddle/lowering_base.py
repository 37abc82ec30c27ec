"""What the Paddle lowering modules share: lazy imports of paddle and xinit's modules, a
seeded ``paddle.nn``, the norms' default rule and their leaf names. It imports none of them,
so each can import it."""

from __future__ import annotations

from xinit.initializers import Ones, Zeros

from ..registry import Lowering


def _paddle():
    import paddle

    return paddle


def _modules():
    from . import modules

    return modules


def _seeded(seed: int):
    """``paddle.nn`` after ``paddle.seed(seed)``: a default layer made next is seeded."""
    paddle = _paddle()
    paddle.seed(seed)
    return paddle.nn


_ZERO = "Constant(0)"


class _Norm(Lowering):
    """Norm layers: weight (and running variance) Constant(1), the rest Constant(0)."""

    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/norm.py"
        if param == "num_batches_tracked":
            return None  # Paddle keeps no step counter
        if param in ("weight", "running_var"):
            return Ones(), None, "Constant(1)", src
        return Zeros(), None, _ZERO, src


def _affine(on: bool):
    return None if on else False  # None: Paddle's default (ones/zeros), False: none


# Paddle's BatchNorm names (no step counter); InstanceNorm's running statistics too
BATCHNORM_LEAVES = {
    "running_mean": "_mean",
    "running_var": "_variance",
    "num_batches_tracked": None,
}
