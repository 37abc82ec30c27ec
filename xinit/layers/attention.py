"""Attention: PyTorch's ``MultiheadAttention``, parameter-free scaled dot-product attention."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from .. import kinds
from ..fans import compute_fans
from ..initializers import (
    XavierUniform,
    Zeros,
)
from .base import (
    _TORCH_DEFAULT,
    Layer,
    ParamSpec,
    SpecError,
    _positive_int,
    _set,
    _tuple,
    inputs_text,
)

# ---- attention -----------------------------------------------------------------------------
ATTENTION_MASKS = ("attn_mask", "key_padding_mask")  # the extra inputs, in this order


@kinds.layer(
    weight_role="linear",
    params=(
        "in_proj_weight",
        "q_proj_weight",
        "k_proj_weight",
        "v_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ),
    aliases=("mha", "attention"),
    example=lambda: kinds.Example(MultiheadAttention(8, 2), ((2, 3, 8),)),
)
@dataclass(frozen=True)
class MultiheadAttention(Layer):
    """PyTorch's ``nn.MultiheadAttention`` (batch first) on (N, L, E) queries.

    Parameters as PyTorch names them: with ``kdim``/``vdim`` equal to ``embed_dim`` (or None)
    the packed (3E, E) ``in_proj_weight`` (rows q, k, v); otherwise ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim), ``v_proj_weight`` (E, vdim); then ``in_proj_bias`` (3E,)
    and ``out_proj``. Defaults as PyTorch: Xavier-uniform on the packed matrix (fan_out 3E)
    or on each separate projection, zero biases, ``out_proj.weight`` U(±1/√E).

    A graph node takes (query) for self-attention, (query, key_value) or (query, key, value),
    followed by the masks the spec asks for, in the order of :data:`ATTENTION_MASKS`:
    ``attn_mask`` (L, S) or (N·num_heads, L, S), ``key_padding_mask`` (N, S). As PyTorch:
    a bool mask is True where attention is NOT allowed, a float mask is added to the scores.
    ``is_causal`` masks key j > query i itself (no mask input needed; combined with an
    ``attn_mask`` when both are given).

    ``num_kv_heads`` K < num_heads (grouped-query attention; None: num_heads): keys and values
    have K heads of head_dim, query head i attends with key/value head i // (H/K), as torch's
    ``scaled_dot_product_attention(enable_gqa=True)`` and Flax's ``nnx.MultiHeadAttention(
    num_kv_heads=K)`` do. Its parameters are the separate ones, ``k_proj_weight`` and
    ``v_proj_weight`` (K·D, kdim/vdim), and ``in_proj_bias`` (E + 2·K·D,) (rows q, k, v):
    PyTorch's names for unequal projections; PyTorch has no such module, so torch and
    Paddle build xinit's own."""

    kind: ClassVar[str] = "multihead_attention"
    embed_dim: int
    num_heads: int
    bias: bool = True
    kdim: int | None = None
    vdim: int | None = None
    attn_mask: bool = False
    key_padding_mask: bool = False
    is_causal: bool = False
    num_kv_heads: int | None = None

    def __post_init__(self):
        _positive_int(self, embed_dim=self.embed_dim, num_heads=self.num_heads)
        if self.num_kv_heads is not None:
            _positive_int(self, num_kv_heads=self.num_kv_heads)
            if self.num_heads % self.num_kv_heads:
                raise SpecError(
                    f"MultiheadAttention: num_kv_heads {self.num_kv_heads} does not divide "
                    f"num_heads {self.num_heads}"
                )
            if self.num_kv_heads == self.num_heads:  # one spelling of the same layer
                _set(self, num_kv_heads=None)
        for name in ("kdim", "vdim"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(self, **{name: value})
                if value == self.embed_dim:  # one spelling of the same layer (equal specs)
                    _set(self, **{name: None})
        if self.embed_dim % self.num_heads:
            raise SpecError(
                f"MultiheadAttention: embed_dim {self.embed_dim} is not divisible by num_heads "
                f"{self.num_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def kv_heads(self) -> int:
        """Key/value heads: ``num_kv_heads``, else ``num_heads``."""
        return self.num_kv_heads or self.num_heads

    @property
    def proj_rows(self) -> tuple[int, int, int]:
        """Rows of the q, k, v projections (E, K·D, K·D): their blocks of ``in_proj_bias``."""
        kv = self.kv_heads * self.head_dim
        return (self.embed_dim, kv, kv)

    @property
    def key_features(self) -> int:
        """The key input's feature count (``kdim``, else ``embed_dim``)."""
        return self.kdim or self.embed_dim

    @property
    def value_features(self) -> int:
        """The value input's feature count (``vdim``, else ``embed_dim``)."""
        return self.vdim or self.embed_dim

    @property
    def packed(self) -> bool:
        """Whether q, k, v are one packed ``in_proj_weight`` (PyTorch's _qkv_same_embed_dim)."""
        return self.kdim is None and self.vdim is None and self.num_kv_heads is None

    @property
    def masks(self) -> tuple[str, ...]:
        """The mask inputs this node takes, in input order."""
        return tuple(m for m in ATTENTION_MASKS if getattr(self, m))

    def inputs_taken(self):
        n = len(self.masks)
        return (1 + n, 3 + n)

    def split_inputs(self, xs) -> tuple:
        """``(query, key, value, attn_mask, key_padding_mask)`` from a node's inputs (arrays or
        shapes): 1 to 3 sequences, then the masks; key defaults to query, value to key, an
        absent mask is None."""
        xs = list(xs)
        n = len(xs) - len(self.masks)
        if not 1 <= n <= 3:
            what = inputs_text(*self.inputs_taken())
            masks = "".join(", " + m for m in self.masks)
            raise SpecError(
                f"MultiheadAttention takes {what} (query[, key[, value]]{masks}); got {len(xs)}"
            )
        q = xs[0]
        k = xs[1] if n > 1 else q
        v = xs[2] if n > 2 else k
        given = dict(zip(self.masks, xs[n:]))
        return q, k, v, given.get("attn_mask"), given.get("key_padding_mask")

    def score_shape(self, mask: str, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The shape mask ``mask`` (of ``shape``) takes to broadcast against the attention
        scores (N, H, L, S), as PyTorch reads it: (L, S) -> (1, 1, L, S), (N·H, L, S) ->
        (N, H, L, S) (batch-major), key_padding_mask (N, S) -> (N, 1, 1, S)."""
        shape = tuple(int(d) for d in shape)
        if mask == "key_padding_mask":
            return (shape[0], 1, 1, shape[1])
        if len(shape) == 2:
            return (1, 1, *shape)
        return (shape[0] // self.num_heads, self.num_heads, shape[1], shape[2])

    @staticmethod
    def causal_mask(length: int, s_len: int):
        """``is_causal``'s mask in PyTorch's meaning: a bool numpy (L, S), True (masked out)
        where key j > query i."""
        import numpy as np

        return np.triu(np.ones((length, s_len), dtype=bool), 1)

    @staticmethod
    def additive_mask(mask, xp, dtype):
        """A mask in PyTorch's meaning as the float mask added to the scores, of ``dtype``: a
        bool mask's True (masked out) is -inf, its False 0; a float mask is added as it is.
        ``xp`` is the mask's array namespace (numpy, jax.numpy, paddle, torch)."""
        if str(mask.dtype).lower().endswith("bool"):  # numpy, jax, torch, paddle alike
            mask = xp.where(mask, -math.inf, 0.0)
        return mask.astype(dtype) if hasattr(mask, "astype") else mask.to(dtype)  # torch: to

    def score_bias(self, xp, q, k, attn_mask=None, key_padding_mask=None, constant=None):
        """The node's masks (PyTorch's meaning, see :meth:`score_shape`) and ``is_causal``'s
        as one float mask added to the scores (N|1, H|1, L, S); None without any. For the
        frameworks that take one additive mask (Paddle, Flax): ``xp`` is the array namespace
        of ``q`` (N, L, E) and ``k`` (N, S, ·), ``constant`` makes one of its arrays of a
        numpy array (default: the numpy array itself)."""
        bias = None
        for name, m in (("attn_mask", attn_mask), ("key_padding_mask", key_padding_mask)):
            if m is not None:
                add = self.additive_mask(m, xp, q.dtype).reshape(self.score_shape(name, m.shape))
                bias = add if bias is None else bias + add
        if self.is_causal:
            import numpy as np

            length, s_len = q.shape[1], k.shape[1]
            causal = self.additive_mask(self.causal_mask(length, s_len), np, np.float32)
            causal = causal.reshape(1, 1, length, s_len)
            causal = causal if constant is None else constant(causal)
            bias = causal if bias is None else bias + causal
        return bias

    def channels(self, c):
        return None  # (N, L, E): the checked size is the last, in output_shape

    def _params(self):
        e, k = self.embed_dim, self.kind
        packed = compute_fans((3 * e, e), "linear")
        if self.packed:
            out = [ParamSpec("in_proj_weight", (3 * e, e), "linear", XavierUniform(), k, packed)]
        else:  # torch: xavier_uniform_ on each projection, its own fans
            ins = (e, self.key_features, self.value_features)
            out = [
                ParamSpec(
                    f"{n}_proj_weight",
                    (rows, d),
                    "linear",
                    XavierUniform(),
                    k,
                    compute_fans((rows, d), "linear"),
                )
                for n, rows, d in zip("qkv", self.proj_rows, ins)
            ]
        if self.bias:  # one (3E,) vector either way (GQA: E + 2·K·D): the packed matrix's fans
            rows = sum(self.proj_rows)
            out.append(ParamSpec("in_proj_bias", (rows,), "vector", Zeros(), k, packed))
        fans = compute_fans((e, e), "linear")
        out.append(ParamSpec("out_proj.weight", (e, e), "linear", _TORCH_DEFAULT, k, fans))
        if self.bias:
            out.append(ParamSpec("out_proj.bias", (e,), "vector", Zeros(), k, fans))
        return tuple(out)

    def output_shape(self, shape):
        """(N, L, E) out; checks the query, key, value and mask shapes of the node's inputs."""
        multi = bool(shape) and all(isinstance(s, (tuple, list)) for s in shape)
        shapes = [tuple(s) for s in shape] if multi else [tuple(shape)]
        q, k, v, attn, pad = self.split_inputs(shapes)
        n_seq = len(shapes) - len(self.masks)
        names = (("query",), ("query", "key_value"), ("query", "key", "value"))[n_seq - 1]
        listed = ", ".join(f"{name} {s}" for name, s in zip((*names, *self.masks), shapes))
        e = self.embed_dim
        if len(q) != 3 or q[-1] != e:
            raise SpecError(
                f"MultiheadAttention expects an (N, L, E={e}) query; got shape {q}"
                + (f" (inputs: {listed})" if multi else "")
            )
        for what, s, d in (("key", k, self.key_features), ("value", v, self.value_features)):
            if len(s) != 3 or s[-1] != d:
                flag = "kdim" if what == "key" else "vdim"
                raise SpecError(
                    f"MultiheadAttention expects an (N, S, {flag}={d}) {what}; got shape {s} "
                    f"(inputs: {listed})"
                )
        if k[0] != q[0] or v[0] != q[0] or v[1] != k[1]:
            raise SpecError(
                f"MultiheadAttention: query, key and value need one batch size and key/value "
                f"one length; got {listed}"
            )
        n, length, s_len, h = q[0], q[1], k[1], self.num_heads
        if attn is not None and attn not in ((length, s_len), (n * h, length, s_len)):
            raise SpecError(
                f"MultiheadAttention: attn_mask must be (L, S) = {(length, s_len)} or "
                f"(N*num_heads, L, S) = {(n * h, length, s_len)}; got {attn} (inputs: {listed})"
            )
        if pad is not None and pad != (n, s_len):
            raise SpecError(
                f"MultiheadAttention: key_padding_mask must be (N, S) = {(n, s_len)}; got {pad} "
                f"(inputs: {listed})"
            )
        return q


# ---- transformer pieces: attention core, learned tokens and positions, token picks ---------
@kinds.layer(
    example=lambda: kinds.Example(
        ScaledDotProductAttention(2, local_window=(3, 3), grid=(2, 3)), ((2, 6, 12),)
    ),
)
@dataclass(frozen=True)
class ScaledDotProductAttention(Layer):
    """The parameter-free core of self-attention on a packed (N, L, 3E) input, as timm's
    ``Attention`` and GPT-2's ``c_attn`` produce it (rows q, k, v of one Linear): split into
    ``num_heads`` heads of E/num_heads, softmax(q k^T / sqrt(head_dim)) v (``causal``: each
    position sees itself and the ones before), heads joined again: (N, L, E). With a qkv
    Linear before it and an output Linear after it, its parameters are plain ``linear``.

    ``local_window`` (hk, wk) with ``grid`` (H, W), L = H·W tokens in row-major order: each
    token attends only to the tokens of an hk x wk window around it on the grid, as SVTR's
    ``Local`` mixer (see :meth:`window_mask`); a constant mask, no parameter or state key.

    ``attn_mask``: the node takes a second input, a float mask added to the scaled scores
    before the softmax, of a shape that broadcasts to (N, num_heads, L, L) (a
    :class:`~xinit.layers.LengthMask`'s (N, 1, L, L)), as PaddleOCR's ``MultiheadAttention``
    adds its ``attn_mask``."""

    kind: ClassVar[str] = "sdpa"
    num_heads: int
    causal: bool = False
    local_window: tuple[int, int] | None = None
    grid: tuple[int, int] | None = None
    attn_mask: bool = False

    def __post_init__(self):
        _positive_int(self, num_heads=self.num_heads)
        if not isinstance(self.attn_mask, bool):
            raise SpecError(
                f"ScaledDotProductAttention.attn_mask must be True or False; got {self.attn_mask!r}"
            )
        if self.attn_mask and (self.causal or self.local_window is not None):
            raise SpecError("ScaledDotProductAttention: attn_mask excludes causal and local_window")
        if (self.local_window is None) != (self.grid is None):
            raise SpecError(
                f"ScaledDotProductAttention: local_window and grid go together; got "
                f"local_window={self.local_window!r}, grid={self.grid!r}"
            )
        if self.local_window is not None:
            window = _tuple(self.local_window, 2, "ScaledDotProductAttention.local_window")
            grid = _tuple(self.grid, 2, "ScaledDotProductAttention.grid")
            _positive_int(self, local_window_h=window[0], local_window_w=window[1])
            _positive_int(self, grid_h=grid[0], grid_w=grid[1])
            if self.causal:
                raise SpecError("ScaledDotProductAttention: causal and local_window exclude")
            _set(self, local_window=window, grid=grid)

    def window_mask(self):
        """``local_window``'s mask, a bool numpy (L, L), True where key j may NOT be seen by
        query i; None without a window. Query (h, w) sees (h', w') with h' - h in
        [-(hk // 2), hk - 1 - hk // 2] and likewise for w: SVTR's window of (H + hk - 1,
        W + wk - 1) zeros at [h : h + hk, w : w + wk], cropped by (hk // 2, wk // 2)."""
        if self.local_window is None:
            return None
        import numpy as np

        (hk, wk), (h, w) = self.local_window, self.grid
        rows, cols = np.divmod(np.arange(h * w), w)
        dh = rows[None, :] - rows[:, None]
        dw = cols[None, :] - cols[:, None]
        inside_h = (dh >= -(hk // 2)) & (dh <= hk - 1 - hk // 2)
        inside_w = (dw >= -(wk // 2)) & (dw <= wk - 1 - wk // 2)
        return ~(inside_h & inside_w)

    def embed_dim(self, packed: int) -> int:
        """E from the packed width 3E; SpecError when 3E cannot be split into heads."""
        if packed % 3 or (packed // 3) % self.num_heads:
            raise SpecError(
                f"ScaledDotProductAttention expects a packed q, k, v width 3E with E divisible "
                f"by num_heads={self.num_heads}; got {packed}"
            )
        return packed // 3

    def inputs_taken(self):
        return (2, 2) if self.attn_mask else (1, 1)

    def channels(self, c):
        return None if c is None else self.embed_dim(c)

    def output_shape(self, shape):
        if self.attn_mask:
            shape, mask = shape
            out = self._packed_shape(shape)
            want = (shape[0], self.num_heads, shape[1], shape[1])
            if len(mask) > 4 or any(m not in (1, w) for m, w in zip(mask[::-1], want[::-1])):
                raise SpecError(
                    f"ScaledDotProductAttention: attn_mask {tuple(mask)} does not broadcast to "
                    f"the scores (N, heads, L, L) = {want}"
                )
            return out
        return self._packed_shape(shape)

    def _packed_shape(self, shape):
        """The output shape for the packed input's ``shape``."""
        if len(shape) != 3:
            raise SpecError(
                f"ScaledDotProductAttention expects a packed (N, L, 3E) sequence; got shape "
                f"{tuple(shape)}"
            )
        if self.grid is not None and shape[1] != self.grid[0] * self.grid[1]:
            raise SpecError(
                f"ScaledDotProductAttention: local_window on a grid {self.grid} needs "
                f"L = {self.grid[0] * self.grid[1]} tokens; got shape {tuple(shape)}"
            )
        return (shape[0], shape[1], self.embed_dim(shape[-1]))
