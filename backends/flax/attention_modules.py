"""xinit's Flax modules of the attention kinds, on the neutral (N, L, E) sequence:
``nnx.MultiHeadAttention`` with PyTorch's masks, scaled dot-product attention on packed
q, k, v rows, and Swin's shifted-window attention on (B, H, W, C)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from xinit import layers as L

from ..common.window_attention import window_attention
from .modules import _initial_or, initializer, zeros_init


class Attention(nnx.MultiHeadAttention):
    """``nnx.MultiHeadAttention`` (the same children ``query``/``key``/``value``/``out`` and
    kernels) on a node's inputs (``spec.split_inputs``) in the neutral (N, L, E) layout, with
    PyTorch's masks: bool True masks a position out, a float mask is added, as one additive
    bias (nnx's own ``mask`` keeps True and takes no float). ``nnx.MultiHeadAttention`` has one
    key/value input size; with vdim != kdim the ``value`` projection is made for vdim. Built
    with zero placeholders; xinit writes every parameter right after."""

    def __init__(self, spec: L.MultiheadAttention):
        rngs = nnx.Rngs(0)
        super().__init__(
            spec.num_heads,
            spec.embed_dim,
            num_kv_heads=spec.kv_heads,
            in_kv_features=spec.key_features,
            use_bias=spec.bias,
            kernel_init=zeros_init,
            bias_init=zeros_init,
            decode=False,
            rngs=rngs,
        )
        if spec.value_features != spec.key_features:
            self.value = nnx.LinearGeneral(
                spec.value_features,
                (spec.kv_heads, spec.head_dim),
                use_bias=spec.bias,
                kernel_init=zeros_init,
                bias_init=zeros_init,
                rngs=rngs,
            )
        self.spec = spec

    def __call__(self, *xs):
        q, k, v, attn_mask, pad = self.spec.split_inputs(xs)
        masks = (None if m is None else jnp.asarray(m) for m in (attn_mask, pad))
        bias = self.spec.score_bias(jnp, q, k, *masks)
        y = nnx.dot_product_attention(self.query(q), self.key(k), self.value(v), bias=bias)
        return self.out(y)


class ScaledDotProductAttention(nnx.Module):
    """Packed (N, L, 3E) q, k, v rows -> heads -> softmax(q k^T / sqrt(d)) v -> (N, L, E), on
    the neutral sequence; ``local_window``'s mask added to the scores as -inf, ``attn_mask``
    (the spec's second input) added as it is."""

    def __init__(self, spec):
        self.spec = spec

    def __call__(self, x, attn_mask=None):
        n, length, packed = x.shape
        h = self.spec.num_heads
        e = packed // 3
        qkv = x.reshape(n, length, 3, h, e // h)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # (N, L, H, D)
        scores = jnp.einsum("nqhd,nkhd->nhqk", q, k) / np.float32(np.sqrt(e // h))
        if self.spec.causal:
            keep = jnp.tril(jnp.ones((length, length), bool))
            scores = jnp.where(keep, scores, -jnp.inf)
        blocked = self.spec.window_mask()  # local_window: a constant, no state
        if blocked is not None:
            scores = scores + jnp.asarray(np.where(blocked, -np.inf, 0.0), scores.dtype)
        if attn_mask is not None:
            scores = scores + attn_mask
        y = jnp.einsum("nhqk,nkhd->nqhd", jax.nn.softmax(scores, axis=-1), v)
        return y.reshape(n, length, e)


class _WindowOps:
    """jax's spelling of the ops of ``common.window_attention``."""

    pad = staticmethod(lambda x, b, r: jnp.pad(x, ((0, 0), (0, b), (0, r), (0, 0))))
    roll = staticmethod(lambda x, shifts: jnp.roll(x, shifts, axis=(1, 2)))
    permute = staticmethod(jnp.transpose)
    take = staticmethod(lambda table, index: table[jnp.asarray(index)])
    constant = staticmethod(lambda array, like: jnp.asarray(array, like.dtype))
    softmax = staticmethod(lambda x: jax.nn.softmax(x, axis=-1))
    normalize = staticmethod(
        lambda x: x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    )
    logit_scale = staticmethod(lambda p: jnp.exp(jnp.minimum(p, np.log(100.0))))
    sigmoid = staticmethod(jax.nn.sigmoid)


def _linear(initial, name: str, n_in: int, n_out: int, bias: bool) -> nnx.Linear:
    return nnx.Linear(
        n_in,
        n_out,
        use_bias=bias,
        kernel_init=initializer(initial, f"{name}.kernel"),
        bias_init=initializer(initial, f"{name}.bias"),
        rngs=nnx.Rngs(0),
    )


class WindowAttention(nnx.Module):
    """torchvision's ``ShiftedWindowAttention`` (Swin v1) or ``ShiftedWindowAttentionV2`` on
    the neutral (B, H, W, C): ``nnx.Linear`` children ``qkv`` and ``proj``, the table (v1) or
    ``logit_scale``, an ``nnx.Sequential`` ``cpb_mlp`` and the ``relative_coords_table``
    (v2, a ``BatchStat``: state) as torchvision holds them; the index and the shift mask are
    the spec's constants."""

    def __init__(self, spec: L.WindowAttention, initial=None):
        c, heads = spec.dim, spec.num_heads
        self.qkv = _linear(initial, "qkv", c, 3 * c, spec.qkv_bias)
        self.proj = _linear(initial, "proj", c, c, spec.proj_bias)
        if spec.cosine:
            self.logit_scale = nnx.Param(_initial_or(initial, "logit_scale", (heads, 1, 1), 0.0))
            hidden = _linear(initial, "cpb_mlp.layers.0", 2, L.window.CPB_HIDDEN, True)
            out = _linear(initial, "cpb_mlp.layers.2", L.window.CPB_HIDDEN, heads, False)
            self.cpb_mlp = nnx.Sequential(hidden, jax.nn.relu, out)
            coords = jax.device_put(np.array(spec.relative_coords_table()))
            self.relative_coords_table = nnx.BatchStat(coords)  # state, as BatchNorm's stats
        else:
            shape = (spec.table_rows, heads)
            table = _initial_or(initial, "relative_position_bias_table", shape, 0.0)
            self.relative_position_bias_table = nnx.Param(table)
        self.spec = spec

    def _qkv_v2(self, x):
        """v2's qkv: the k third of the bias left out, as torchvision zeroes it each call."""
        y = x @ self.qkv.kernel[...]
        if self.qkv.bias is not None:
            c = self.spec.dim
            bias = self.qkv.bias[...]
            y = y + jnp.concatenate([bias[:c], jnp.zeros_like(bias[c : 2 * c]), bias[2 * c :]])
        return y

    def __call__(self, x):
        spec = self.spec
        index = spec.relative_position_index()
        if not spec.cosine:
            table = self.relative_position_bias_table[...]
            return window_attention(spec, x, self.qkv, self.proj, table, index, _WindowOps)
        coords = self.relative_coords_table[...].astype(x.dtype)
        table = self.cpb_mlp(coords).reshape(-1, spec.num_heads)
        return window_attention(
            spec, x, self._qkv_v2, self.proj, table, index, _WindowOps, self.logit_scale[...]
        )


class WindowAttentionV2(WindowAttention):
    """The module of ``WindowAttentionV2`` specs (its own class: one lowering reads it)."""
