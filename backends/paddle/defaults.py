"""PaddlePaddle's own default initialisation, as data, and the builder of its default layers.

:func:`rule` says which xinit initializer equals the default ``ParamAttr`` initializer of
one parameter of a ``paddle.nn`` layer (the defaults catalogue, :mod:`xinit.defaults`, reads
it); :func:`native_defaults` builds the real default layer so tests and plots can measure it.
Only :func:`native_defaults` imports paddle, when called. ``d`` is a
:class:`xinit.defaults.LayerDims` throughout (duck-typed: this module imports nothing of the
catalogue, which imports it).
"""

from __future__ import annotations

import math

import numpy as np

from xinit.fans import Fans
from xinit.initializers import Normal, Ones, Uniform, XavierUniform, Zeros

_NO_RMSNORM = (
    "paddle.nn has no RMSNorm layer, only the function rms_norm(x, shape, weight); xinit's "
    "own layer sets weight to ones"
)


def unsupported(d) -> tuple[str, str] | None:
    """(note, source) when Paddle has no default layer for ``d``: RMSNorm."""
    if d.kind == "rmsnorm":
        return _NO_RMSNORM, "python/paddle/nn/functional/norm.py rms_norm"
    return None


def rule(d, param: str):
    """(initializer, fans, rule in words, source) of ``param`` of Paddle's default layer."""
    kind = d.kind
    if kind in ("lstm", "gru"):
        bound = 1.0 / math.sqrt(d.out_features)
        cell = "LSTMCell" if kind == "lstm" else "GRUCell"
        src = f"python/paddle/nn/layer/rnn.py {cell} (default_initializer Uniform(-std, std))"
        text = "Uniform(-1/√H, 1/√H), H = hidden_size, on every weight and bias"
        return Uniform(-bound, bound), None, text, src
    if kind == "linear":
        src = "python/paddle/nn/layer/common.py Linear (ParamAttr default: XavierUniform)"
        if param == "weight":
            text = "XavierUniform on [in, out]: U(±√(6/(in+out)))"
            return XavierUniform(), Fans(d.in_features, d.out_features), text, src
        return Zeros(), None, "Constant(0)", src
    if kind == "conv":
        src = "python/paddle/nn/layer/conv.py _ConvNd._get_default_param_initializer"
        if param == "weight":
            n = d.in_features * d.receptive  # the FULL C_in: groups are ignored
            text = "Normal(0, √(2/(C_in·∏k))) with the full C_in (groups ignored)"
            fans = Fans(n, d.out_features * d.receptive)
            return Normal(0.0, math.sqrt(2.0 / n)), fans, text, src
        return Zeros(), None, "Constant(0)", src
    if kind == "conv_transpose":
        src = "python/paddle/nn/layer/conv.py (transposed: no default, so XavierUniform)"
        if param == "weight":
            text = "XavierUniform on [C_in, C_out/g, *k]: fan_in = (C_out/g)·∏k, fan_out = C_in·∏k"
            return XavierUniform(), d.weight_fans, text, src
        return Zeros(), None, "Constant(0)", src
    if kind == "embedding":
        src = "python/paddle/nn/layer/common.py Embedding (XavierUniform default)"
        text = "XavierUniform on [num, dim]: U(±√(6/(num+dim)))"
        return XavierUniform(), Fans(d.in_features, d.out_features), text, src
    if kind == "multihead_attention":
        return _attention(d, param)
    src = "python/paddle/nn/layer/norm.py"
    if param == "num_batches_tracked":
        raise KeyError(param)
    if param in ("weight", "running_var"):
        return Ones(), None, "Constant(1)", src
    return Zeros(), None, "Constant(0)", src


_MHA_SOURCE = (
    "python/paddle/nn/layer/transformer.py MultiHeadAttention: q/k/v/out_proj are Linear(E, E) "
    "(ParamAttr defaults: XavierUniform weight, zero bias)"
)


def _attention(d, param: str):
    """``nn.MultiHeadAttention``: four Linears, each with Linear's defaults, so Xavier sees
    each [in, E] projection (in = E, or kdim/vdim for k/v), not a packed matrix."""
    e = d.in_features
    if param in ("in_proj_weight", "out_proj.weight"):
        which = "each of q_proj/k_proj/v_proj" if param == "in_proj_weight" else "out_proj"
        text = f"XavierUniform on {which}.weight [E, E]: U(±√(6/2E))"
        return XavierUniform(), Fans(e, e), text, _MHA_SOURCE
    if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
        n = {"q": e, "k": d.key_features, "v": d.value_features}[param[0]]
        text = f"XavierUniform on {param[0]}_proj.weight [{n}, E]: U(±√(6/({n}+E)))"
        return XavierUniform(), Fans(n, e), text, _MHA_SOURCE
    return Zeros(), None, "Constant(0) (Linear's bias default)", _MHA_SOURCE


def native_defaults(d, seed: int) -> dict[str, np.ndarray]:
    """Paddle's own default layer for ``d``, built under ``paddle.seed(seed)``: its state dict
    (native names and layout) as numpy arrays."""
    import paddle

    nn = paddle.nn
    paddle.seed(seed)
    i, o, k, g = d.in_features, d.out_features, list(d.kernel), d.groups
    if d.kind == "linear":
        m = nn.Linear(i, o)
    elif d.kind == "conv":
        m = getattr(nn, f"Conv{d.spatial}D")(i, o, k, groups=g)
    elif d.kind == "conv_transpose":
        m = getattr(nn, f"Conv{d.spatial}DTranspose")(i, o, k, groups=g)
    elif d.kind == "embedding":
        m = nn.Embedding(i, o)
    elif d.kind == "batchnorm":
        m = nn.BatchNorm2D(i)
    elif d.kind == "groupnorm":
        m = nn.GroupNorm(g, i)
    elif d.kind in ("lstm", "gru"):
        m = getattr(nn, d.kind.upper())(i, o)
    elif d.kind == "rmsnorm":
        raise ValueError(_NO_RMSNORM)
    elif d.kind == "multihead_attention":
        m = nn.MultiHeadAttention(i, d.heads, kdim=d.key_features, vdim=d.value_features)
    else:
        m = nn.LayerNorm(i)
    return {name: np.array(t.numpy()) for name, t in m.state_dict().items()}
