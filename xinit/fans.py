"""Fans from a parameter's role and neutral (PyTorch) layout, with PyTorch's convention.

Neutral layouts: linear ``(out, in)``, conv ``(out, in/groups, *k)``, conv_transpose
``(in, out/groups, *k)``, embedding ``(num, dim)``, vector ``(n,)``, and a recurrent layer's
gate-stacked ``rnn_input`` ``(gates*hidden, in)`` and ``rnn_recurrent`` ``(gates*hidden,
hidden)`` kernels (PyTorch's ``weight_ih_l{k}``/``weight_hh_l{k}``). PyTorch's rule on these
shapes (fan_in = size(1) * prod(k), fan_out = size(0) * prod(k)) is the neutral meaning, so
``KaimingNormal(mode="fan_out")`` means what ``nn.init.kaiming_normal_(w, mode="fan_out")`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InitializerError

ROLES = ("linear", "conv", "conv_transpose", "embedding", "vector", "rnn_input", "rnn_recurrent")
MATRIX_ROLES = ("linear", "embedding", "rnn_input", "rnn_recurrent")  # 2-d weights


@dataclass(frozen=True)
class Fans:
    fan_in: int
    fan_out: int

    @property
    def fan_avg(self) -> float:
        return 0.5 * (self.fan_in + self.fan_out)

    def get(self, mode: str) -> float:
        if mode == "fan_in":
            return float(self.fan_in)
        if mode == "fan_out":
            return float(self.fan_out)
        if mode == "fan_avg":
            return self.fan_avg
        raise InitializerError(f"mode must be one of 'fan_in', 'fan_out', 'fan_avg'; got {mode!r}")


def check_role(role: str, shape: tuple[int, ...]) -> None:
    """Validate that ``shape`` is a legal neutral shape for ``role``."""
    if role not in ROLES:
        raise InitializerError(f"role must be one of {ROLES}; got {role!r}")
    if any((not isinstance(s, int)) or s < 0 for s in shape):
        raise InitializerError(f"shape must be a tuple of non-negative ints; got {shape!r}")
    if role in MATRIX_ROLES and len(shape) != 2:
        raise InitializerError(f"role {role!r} needs a 2-d shape; got {shape!r}")
    if role == "vector" and not shape:  # per-feature: (C,), or LayerNorm's normalized_shape
        raise InitializerError(f"role 'vector' needs a shape of 1 or more dims; got {shape!r}")
    if role in ("conv", "conv_transpose") and not 3 <= len(shape) <= 5:
        raise InitializerError(
            f"role {role!r} needs shape (C, C', *kernel) with 1 to 3 spatial dims; got {shape!r}"
        )


def compute_fans(shape: tuple[int, ...], role: str) -> Fans:
    """PyTorch's ``_calculate_fan_in_and_fan_out`` applied to the neutral shape."""
    check_role(role, shape)
    if len(shape) < 2 or role == "vector":
        raise InitializerError(
            f"fans are undefined for a {len(shape)}-d tensor of shape {shape!r} (role {role!r}): "
            "use a non-fan initializer (Constant, Normal, Uniform, ...) or give the layer's fans"
        )
    receptive = math.prod(shape[2:])
    return Fans(fan_in=shape[1] * receptive, fan_out=shape[0] * receptive)
