"""PyTorch's own default initialisation, as data, and the builder of its default layers.

:func:`rule` says which xinit initializer equals what ``torch.nn`` does in
``reset_parameters`` for one parameter (the defaults catalogue, :mod:`xinit.defaults`, reads
it); :func:`native_defaults` builds the real default layer so tests and plots can measure it.
Only :func:`native_defaults` imports torch, when called. ``d`` is a
:class:`xinit.defaults.LayerDims` throughout (duck-typed: this module imports nothing of the
catalogue, which imports it).
"""

from __future__ import annotations

import math

import numpy as np

from xinit.fans import Fans
from xinit.initializers import KaimingUniform, Normal, Ones, Uniform, XavierUniform, Zeros

_SQRT5 = math.sqrt(5.0)
_FAN_TEXT = {
    "linear": "fan_in = in",
    "conv": "fan_in = (C_in/g)·∏k",
    "conv_transpose": "fan_in = (C_out/g)·∏k",
}
_SOURCE = {
    "linear": "torch/nn/modules/linear.py Linear.reset_parameters",
    "conv": "torch/nn/modules/conv.py _ConvNd.reset_parameters",
    "conv_transpose": "torch/nn/modules/conv.py _ConvNd.reset_parameters",
    "batchnorm": "torch/nn/modules/batchnorm.py",
    "layernorm": "torch/nn/modules/normalization.py",
    "groupnorm": "torch/nn/modules/normalization.py",
    "rmsnorm": "torch/nn/modules/normalization.py RMSNorm.reset_parameters",
}


def unsupported(d) -> tuple[str, str] | None:
    """(note, source) when PyTorch has no default layer for ``d``: never."""
    return None


def rule(d, param: str):
    """(initializer, fans, rule in words, source) of ``param`` of PyTorch's default layer."""
    kind = d.kind
    if kind in ("lstm", "gru"):
        bound = 1.0 / math.sqrt(d.out_features)
        text = "uniform_(-1/√H, 1/√H), H = hidden_size, on every weight and bias"
        return (
            Uniform(-bound, bound),
            None,
            text,
            "torch/nn/modules/rnn.py RNNBase.reset_parameters",
        )
    if kind in ("linear", "conv", "conv_transpose"):
        fans, src = d.weight_fans, _SOURCE[kind]
        if param == "weight":
            text = f"kaiming_uniform_(a=√5) = U(±1/√fan_in), {_FAN_TEXT[kind]}"
            return KaimingUniform(a=_SQRT5), fans, text, src
        bound = 1.0 / math.sqrt(fans.fan_in)
        text = f"U(±1/√fan_in) with the weight's {_FAN_TEXT[kind]}"
        return Uniform(-bound, bound), fans, text, src
    if kind == "embedding":
        return Normal(0.0, 1.0), None, "normal_(0, 1)", "torch/nn/modules/sparse.py"
    if kind == "multihead_attention":
        return _attention(d, param)
    if param in ("weight", "running_var"):
        return Ones(), None, "ones", _SOURCE[kind]
    return Zeros(), None, "zeros", _SOURCE[kind]


_MHA_SOURCE = "torch/nn/modules/activation.py MultiheadAttention._reset_parameters"


def _attention(d, param: str):
    """``nn.MultiheadAttention``: Xavier on the packed (3E, E) matrix, so fan_out is 3E (with
    kdim/vdim != E: on each separate (E, in) projection); ``out_proj`` is a ``Linear``
    (NonDynamicallyQuantizableLinear) whose bias ``_reset_parameters`` then zeroes."""
    e = d.in_features
    if param == "in_proj_weight":
        text = "xavier_uniform_ on the packed (3E, E): fan_in E, fan_out 3E: U(±√(6/4E))"
        return XavierUniform(), Fans(e, 3 * e), text, _MHA_SOURCE
    if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
        n = {"q": e, "k": d.key_features, "v": d.value_features}[param[0]]
        text = f"xavier_uniform_ on the separate (E, {n}) {param}: U(±√(6/(E+{n})))"
        return XavierUniform(), Fans(n, e), text, _MHA_SOURCE
    if param == "out_proj.weight":
        text = "kaiming_uniform_(a=√5) = U(±1/√E) (out_proj: Linear(E, E).reset_parameters)"
        return KaimingUniform(a=_SQRT5), Fans(e, e), text, "torch/nn/modules/linear.py Linear"
    if param == "out_proj.bias":
        return Zeros(), None, "constant_(0), replacing Linear's U(±1/√E)", _MHA_SOURCE
    return Zeros(), None, "constant_(0)", _MHA_SOURCE


def native_defaults(d, seed: int) -> dict[str, np.ndarray]:
    """PyTorch's own default layer for ``d``, built under ``torch.manual_seed(seed)``: its
    state dict (native names and layout) as numpy arrays."""
    import torch

    nn = torch.nn
    torch.manual_seed(seed)
    i, o, k, g = d.in_features, d.out_features, d.kernel, d.groups
    if d.kind == "linear":
        m = nn.Linear(i, o)
    elif d.kind == "conv":
        m = getattr(nn, f"Conv{d.spatial}d")(i, o, k, groups=g)
    elif d.kind == "conv_transpose":
        m = getattr(nn, f"ConvTranspose{d.spatial}d")(i, o, k, groups=g)
    elif d.kind == "embedding":
        m = nn.Embedding(i, o)
    elif d.kind == "batchnorm":
        m = nn.BatchNorm2d(i)
    elif d.kind == "groupnorm":
        m = nn.GroupNorm(g, i)
    elif d.kind in ("lstm", "gru"):
        m = getattr(nn, d.kind.upper())(i, o)
    elif d.kind == "rmsnorm":
        m = nn.RMSNorm(i)
    elif d.kind == "multihead_attention":
        m = nn.MultiheadAttention(i, d.heads, kdim=d.key_features, vdim=d.value_features)
    else:
        m = nn.LayerNorm(i)
    return {name: t.detach().cpu().numpy() for name, t in m.state_dict().items()}
