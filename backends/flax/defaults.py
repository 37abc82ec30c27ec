"""Flax NNX's own default initialisation, as data, and the builder of its default layers.

:func:`rule` says which xinit initializer equals the default ``kernel_init``/``bias_init``/
``embedding_init`` of one parameter of a ``flax.nnx`` layer (Linen's are the same; the
defaults catalogue, :mod:`xinit.defaults`, reads it); :func:`native_defaults` builds the real
default layer so tests and plots can measure it. Only :func:`native_defaults` imports flax,
when called. ``d`` is a :class:`xinit.defaults.LayerDims` throughout (duck-typed: this module
imports nothing of the catalogue, which imports it).
"""

from __future__ import annotations

import numpy as np

from xinit.fans import Fans
from xinit.initializers import LecunNormal, Ones, Orthogonal, VarianceScaling, Zeros

_NO_GROUPS = "flax ConvTranspose has no groups (feature_group_count) argument"
_ONE_KV = "nnx.MultiHeadAttention has one in_kv_features for key and value (kdim != vdim)"


def unsupported(d) -> tuple[str, str] | None:
    """(note, source) when Flax has no default layer for ``d``: a grouped ConvTranspose, an
    attention whose key and value sizes differ."""
    if d.kind == "conv_transpose" and d.groups != 1:
        return _NO_GROUPS, "flax/nnx/nn/linear.py ConvTranspose"
    if d.kind == "multihead_attention" and d.key_features != d.value_features:
        return _ONE_KV, "flax/nnx/nn/attention.py MultiHeadAttention(in_kv_features=)"
    return None


_CELLS = {"lstm": "LSTMCell", "gru": "GRUCell"}  # Flax's own default recurrent layers


def own_layer(d):
    """The spec of Flax's own default layer for ``d`` where it is not the neutral one: a
    recurrent layer is ``nnx.LSTMCell``/``nnx.GRUCell``, one bias per gate, in its layout."""
    if d.kind not in _CELLS:
        return None
    from .lowerings import cell_spec

    return cell_spec(_CELLS[d.kind], d.in_features, d.out_features)


def rule(d, param: str):
    """(initializer, fans, rule in words, source) of ``param`` of Flax's default layer."""
    kind = d.kind
    if kind in _CELLS:
        src = f"flax/nnx/nn/recurrent.py {_CELLS[kind]} (linen: the same)"
        if param == "weight_ih_l0":
            text = "lecun_normal on each gate's kernel (in, H): fan_in = in"
            return LecunNormal(), Fans(d.in_features, d.out_features), text, src
        if param == "weight_hh_l0" and kind == "lstm":
            text = "orthogonal on each gate's kernel (H, H) (modified_orthogonal)"
            return Orthogonal(blocks=4), None, text, src
        if param == "weight_hh_l0":
            text = "orthogonal on the stacked (H, 3H) kernel: orthonormal rows"
            return Orthogonal(), None, text, src
        text = "zeros_init(): one bias per gate (PyTorch's other bias: none, zero in the math)"
        return Zeros(), None, text, src
    if kind in ("linear", "conv", "conv_transpose"):
        src = "flax/nnx/nn/linear.py default_kernel_init = lecun_normal() (linen: the same)"
        if param == "bias":
            return Zeros(), None, "zeros_init()", src
        if kind == "linear":
            fans, text = Fans(d.in_features, d.out_features), "fan_in = in"
        elif kind == "conv":
            fans, text = d.weight_fans, "fan_in = (C_in/g)·∏k (kernel (*k, C_in/g, C_out))"
        else:
            r = d.receptive
            fans = Fans(d.in_features * r, d.out_features * r)
            text = "fan_in = C_in·∏k (kernel (*k, C_in, C_out))"
        rule_text = f"lecun_normal: truncated ±2σ', variance-corrected to 1/fan_in, {text}"
        return LecunNormal(), fans, rule_text, src
    if kind == "embedding":
        src = "flax/nnx/nn/linear.py default_embed_init (linen: the same)"
        text = "variance_scaling(1, 'fan_in', 'normal', out_axis=0): N(0, 1/dim), untruncated"
        fans = Fans(d.out_features, d.out_features)
        return VarianceScaling(1.0, "fan_in", "normal"), fans, text, src
    if kind == "multihead_attention":
        return _attention(d, param)
    src = "flax/nnx/nn/normalization.py"
    if param == "num_batches_tracked":
        raise KeyError(param)
    if param in ("weight", "running_var"):
        return Ones(), None, "ones", src
    return Zeros(), None, "zeros", src


_MHA_SOURCE = (
    "flax/nnx/nn/attention.py MultiHeadAttention (kernel_init = default_kernel_init = "
    "lecun_normal(), bias_init = zeros_init()); flax/nnx/nn/linear.py LinearGeneral "
    "kernel_init_wrap (flattens the kernel to (prod in, prod out) for the initializer)"
)


def _attention(d, param: str):
    """``nnx.MultiHeadAttention``: ``LinearGeneral`` kernels, flattened to 2-d before
    ``lecun_normal`` sees them: (E, H·D) for query/key/value, (H·D, E) for out; fan_in E."""
    e = d.in_features
    if param == "in_proj_weight":
        text = "lecun_normal on each (E, H, D) query/key/value kernel, seen as (E, H·D): fan_in E"
        return LecunNormal(), Fans(e, e), text, _MHA_SOURCE
    if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
        n = {"q": e, "k": d.key_features, "v": d.value_features}[param[0]]
        text = f"lecun_normal on the ({n}, H, D) kernel, seen as ({n}, H·D): fan_in {n}"
        return LecunNormal(), Fans(n, e), text, _MHA_SOURCE
    if param == "out_proj.weight":
        text = "lecun_normal on the (H, D, E) out kernel, seen as (H·D, E): fan_in H·D = E"
        return LecunNormal(), Fans(e, e), text, _MHA_SOURCE
    return Zeros(), None, "zeros_init()", _MHA_SOURCE


def native_defaults(d, seed: int) -> dict[str, np.ndarray]:
    """Flax NNX's own default layer for ``d``, built with ``nnx.Rngs(seed)``: its flat state
    (native dotted names and layout) as numpy arrays."""
    from flax import nnx

    rngs = nnx.Rngs(seed)
    i, o, k, g = d.in_features, d.out_features, d.kernel, d.groups
    if d.kind == "linear":
        m = nnx.Linear(i, o, rngs=rngs)
    elif d.kind == "conv":
        m = nnx.Conv(i, o, k, feature_group_count=g, rngs=rngs)
    elif d.kind == "conv_transpose":
        if g != 1:
            raise ValueError(_NO_GROUPS)
        m = nnx.ConvTranspose(i, o, k, rngs=rngs)
    elif d.kind == "embedding":
        m = nnx.Embed(i, o, rngs=rngs)
    elif d.kind == "batchnorm":
        m = nnx.BatchNorm(i, rngs=rngs)
    elif d.kind == "groupnorm":
        m = nnx.GroupNorm(i, num_groups=g, rngs=rngs)
    elif d.kind in _CELLS:
        m = getattr(nnx, _CELLS[d.kind])(i, o, rngs=rngs)
    elif d.kind == "rmsnorm":
        m = nnx.RMSNorm(i, rngs=rngs)
    elif d.kind == "multihead_attention":
        if d.key_features != d.value_features:
            raise ValueError(_ONE_KV)
        m = nnx.MultiHeadAttention(d.heads, i, in_kv_features=d.key_features, rngs=rngs)
    else:
        m = nnx.LayerNorm(i, rngs=rngs)
    out = {}
    for path, leaf in nnx.to_flat_state(nnx.state(m)):
        value = leaf.get_value() if hasattr(leaf, "get_value") else leaf.value
        out[".".join(map(str, path))] = np.asarray(value)
    return out
