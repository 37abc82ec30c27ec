"""The forward of shifted-window attention (``xinit.layers.WindowAttention`` and
``WindowAttentionV2``), written once for every framework: each module passes its own linear
layers, position-bias table and a few array ops (:class:`WindowOps`); the constants come from
the spec, in numpy. The steps and their order are torchvision's ``shifted_window_attention``,
so torch's module gives its bits."""

from __future__ import annotations

from typing import Any, Protocol

NO_WINDOW_ATTENTION = (
    "no shifted-window attention layer of the framework's own (torchvision's "
    "ShiftedWindowAttention is the model's code, which initialises it)",
    "(none: torchvision/models/swin_transformer.py ShiftedWindowAttention sets it)",
)


class WindowOps(Protocol):
    """The array ops the forward needs that the frameworks spell differently."""

    def pad(self, x: Any, bottom: int, right: int) -> Any: ...  # (B, H, W, C), zeros
    def roll(self, x: Any, shifts: tuple[int, int]) -> Any: ...  # over axes 1, 2
    def permute(self, x: Any, dims: tuple[int, ...]) -> Any: ...
    def take(self, table: Any, index: Any) -> Any: ...  # the rows of table at index
    def constant(self, array: Any, like: Any) -> Any: ...  # numpy -> like's dtype
    def softmax(self, x: Any) -> Any: ...  # over the last axis
    def normalize(self, x: Any) -> Any: ...  # x / max(|x|, 1e-12) over the last axis (v2)
    def logit_scale(self, p: Any) -> Any: ...  # exp(min(p, log 100)) (v2)
    def sigmoid(self, x: Any) -> Any: ...  # (v2)


def window_attention(spec, x, qkv, proj, table, index, ops: WindowOps, logit_scale=None):
    """``spec``'s attention on (B, H, W, C) ``x``; ``qkv``/``proj`` are callables (the
    module's linear layers; v2's qkv leaves the k bias out), ``table`` the position bias
    of each relative offset (rows, heads), ``index`` its row for each (query, key) pair (the
    module's buffer, or the spec's numpy array); ``logit_scale``: v2's (heads, 1, 1), whose
    table is its ``cpb_mlp``'s output, squashed to 16 sigmoid once gathered, as
    torchvision's order (vectorised kernels round a short tensor's tail otherwise)."""
    b, h, w, c = x.shape
    (wh, ww), heads = spec.window_size, spec.num_heads
    pad_h, pad_w = spec.padded(h, w)
    if (pad_h, pad_w) != (h, w):
        x = ops.pad(x, pad_h - h, pad_w - w)
    sh, sw = spec.shifts(pad_h, pad_w)
    if sh or sw:
        x = ops.roll(x, (-sh, -sw))
    nh, nw, n = pad_h // wh, pad_w // ww, wh * ww
    windows = b * nh * nw
    x = ops.permute(x.reshape((b, nh, wh, nw, ww, c)), (0, 1, 3, 2, 4, 5))
    x = x.reshape((windows, n, c))
    qkv_rows = ops.permute(qkv(x).reshape((windows, n, 3, heads, c // heads)), (2, 0, 3, 1, 4))
    q, k, v = qkv_rows[0], qkv_rows[1], qkv_rows[2]
    if spec.cosine:
        attn = ops.normalize(q) @ ops.permute(ops.normalize(k), (0, 1, 3, 2))
        attn = attn * ops.logit_scale(logit_scale)
    else:
        q = q * (c // heads) ** -0.5
        attn = q @ ops.permute(k, (0, 1, 3, 2))
    bias = ops.take(table, index).reshape((n, n, heads))
    bias = ops.permute(bias, (2, 0, 1)).reshape((1, heads, n, n))
    attn = attn + (16 * ops.sigmoid(bias) if spec.cosine else bias)
    mask = spec.shift_mask(pad_h, pad_w)
    if mask is not None:
        attn = attn.reshape((b, nh * nw, heads, n, n))
        attn = attn + ops.constant(mask, attn).reshape((1, nh * nw, 1, n, n))
        attn = attn.reshape((windows, heads, n, n))
    x = ops.permute(ops.softmax(attn) @ v, (0, 2, 1, 3)).reshape((windows, n, c))
    x = proj(x)
    x = ops.permute(x.reshape((b, nh, nw, wh, ww, c)), (0, 1, 3, 2, 4, 5))
    x = x.reshape((b, pad_h, pad_w, c))
    if sh or sw:
        x = ops.roll(x, (sh, sw))
    return x[:, :h, :w, :]
