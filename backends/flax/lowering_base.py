"""What the Flax lowering modules share: lazy imports of nnx and xinit's modules, the norms'
default rule and their leaf names. It imports none of them, so each can import it."""

from __future__ import annotations

from xinit.initializers import Ones, Zeros

from ..registry import Lowering


def _nnx():
    from flax import nnx

    return nnx


def _modules():
    from . import modules

    return modules


class _Norm(Lowering):
    """Norm layers: scale (and running variance) ones, the rest zeros."""

    def default_rule(self, spec, param):
        if param == "num_batches_tracked":
            return None  # Flax keeps no step counter
        src = "flax/nnx/nn/normalization.py"
        if param in ("weight", "running_var"):
            return Ones(), None, "ones", src
        return Zeros(), None, "zeros", src


_SCALE = {"weight": "scale"}
BATCHNORM_LEAVES = {  # nnx.BatchNorm's names (no step counter); InstanceNorm's too
    "weight": "scale",
    "running_mean": "mean",
    "running_var": "var",
    "num_batches_tracked": None,
}
