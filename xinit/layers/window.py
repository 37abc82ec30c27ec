"""Shifted-window attention: torchvision's Swin ``ShiftedWindowAttention`` (v1) and
``ShiftedWindowAttentionV2`` as one layer kind each.

The window partition merges the batch with the windows and the relative-position table is
gathered with an index, neither of which a graph of neutral ops can say with the batch left
free; so the whole attention is one node, its constants (the table's index, the shift mask)
computed here in numpy from the spec and the input's spatial size, the same for every
framework's module (``backends/common/window_attention.py`` holds the shared forward).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import kinds
from ..fans import compute_fans
from ..initializers import Constant, Initializer, TruncatedNormal, Zeros
from .base import _TORCH_DEFAULT, Layer, ParamSpec, SpecError, _positive_int, _set, _tuple

MASKED = -100.0  # torchvision's score for a key of another region (shift_mask writes it)


class _Windows(Layer):
    """What both Swin attentions share: the checks, the window geometry, the index, the
    shift mask and the input shape (fields ``dim``, ``window_size``, ``shift_size``,
    ``num_heads`` on each subclass)."""

    cosine: ClassVar[bool] = False  # v2: cosine scores, a learned logit scale, no q scaling

    def _check(self) -> None:
        name = type(self).__name__
        _positive_int(self, dim=self.dim, num_heads=self.num_heads)
        window = _tuple(self.window_size, 2, f"{name}.window_size")
        shift = _tuple(self.shift_size, 2, f"{name}.shift_size")
        _positive_int(self, window_h=window[0], window_w=window[1])
        if any(s < 0 for s in shift):
            raise SpecError(f"{name}.shift_size must be >= 0; got {shift}")
        if self.dim % self.num_heads:
            raise SpecError(
                f"{name}: dim {self.dim} is not divisible by num_heads {self.num_heads}"
            )
        _set(self, window_size=window, shift_size=shift)

    @property
    def tokens(self) -> int:
        """N, the tokens of one window."""
        return self.window_size[0] * self.window_size[1]

    @property
    def table_rows(self) -> int:
        """(2Wh - 1)(2Ww - 1): one relative offset a row."""
        return (2 * self.window_size[0] - 1) * (2 * self.window_size[1] - 1)

    def padded(self, h: int, w: int) -> tuple[int, int]:
        """The map's size once padded to whole windows."""
        wh, ww = self.window_size
        return h + (-h) % wh, w + (-w) % ww

    def shifts(self, pad_h: int, pad_w: int) -> tuple[int, int]:
        """``shift_size``, an axis's shift 0 where its window covers the padded map."""
        (wh, ww), (sh, sw) = self.window_size, self.shift_size
        return (0 if wh >= pad_h else sh), (0 if ww >= pad_w else sw)

    def relative_position_index(self) -> np.ndarray:
        """torchvision's ``relative_position_index``: int64 (N·N,), the table row of the
        offset (dh, dw) between query and key, (dh + Wh - 1)(2Ww - 1) + dw + Ww - 1."""
        return _relative_position_index(self.window_size)

    def shift_mask(self, pad_h: int, pad_w: int) -> np.ndarray | None:
        """The scores added to shifted windows, float32 (windows, N, N): :data:`MASKED`
        between tokens of the rolled map's different regions (the bands of the last window
        and of the shift on each axis), 0 within one; None when nothing is shifted."""
        return _shift_mask(self.window_size, self.shifts(pad_h, pad_w), pad_h, pad_w)

    def buffer_value(self, name: str):
        if name == "relative_position_index":
            return self.relative_position_index()
        return None

    def _linears(self) -> list[ParamSpec]:
        """``qkv`` and ``proj`` as ``nn.Linear`` makes them (U(±1/√C) weights and biases)."""
        c, k = self.dim, self.kind
        qkv, proj = compute_fans((3 * c, c), "linear"), compute_fans((c, c), "linear")
        out = [ParamSpec("qkv.weight", (3 * c, c), "linear", _TORCH_DEFAULT, k, qkv)]
        if self.qkv_bias:
            out.append(ParamSpec("qkv.bias", (3 * c,), "vector", _TORCH_DEFAULT, k, qkv))
        out.append(ParamSpec("proj.weight", (c, c), "linear", _TORCH_DEFAULT, k, proj))
        if self.proj_bias:
            out.append(ParamSpec("proj.bias", (c,), "vector", _TORCH_DEFAULT, k, proj))
        return out

    def _buffer(self, name: str, shape, dtype: str) -> ParamSpec:
        """A buffer torchvision keeps; its value is :meth:`buffer_value`'s."""
        return ParamSpec(name, shape, "vector", Zeros(), self.kind, None, False, dtype)

    def channels(self, c):
        return None  # (B, H, W, C): the checked size is the last, in output_shape

    def output_shape(self, shape):
        shape = tuple(shape)
        if len(shape) != 4 or shape[-1] != self.dim:
            raise SpecError(
                f"{type(self).__name__} expects channel-last features (B, H, W, C={self.dim}); "
                f"got shape {shape}"
            )
        return shape


LINEARS = ("qkv.weight", "qkv.bias", "proj.weight", "proj.bias")  # both versions' leaves


@kinds.layer(
    params=(*LINEARS, "relative_position_bias_table", "relative_position_index"),
    optional=("relative_position_index",),
    buffers=("relative_position_index",),
    example=lambda: kinds.Example(WindowAttention(8, (2, 2), (1, 1), 2), ((2, 5, 6, 8),)),
)
@dataclass(frozen=True)
class WindowAttention(_Windows):
    """torchvision's ``ShiftedWindowAttention`` (Swin v1) on channel-last (B, H, W, C)
    features, as torchvision's blocks hold them (the neutral dims are torch's here).

    The map is padded at the bottom and right to whole windows, rolled by ``-shift_size``
    (an axis is not shifted when its window covers the padded map), cut into
    ``window_size`` windows of N tokens, each attending within itself with ``num_heads``
    heads (q scaled by head_dim^-1/2) plus a learned relative-position bias
    ``relative_position_bias_table[relative_position_index]`` ((2Wh-1)(2Ww-1), heads);
    shifted windows add :data:`MASKED` between tokens of different regions
    (:meth:`shift_mask`); then ``proj``, the windows joined, rolled back and cropped.

    Parameters have torchvision's names. Defaults are torchvision's module's: ``qkv``/
    ``proj`` as ``nn.Linear`` (U(±1/√C) weights and biases), the table ``trunc_normal_(std=
    .02)`` (bounds ±2). ``relative_position_index`` is torchvision's persistent buffer, a
    constant of ``window_size`` (:meth:`relative_position_index`, its start value): torch
    keeps it as torchvision does, so the state keys are torchvision's; Paddle and Flax
    compute it and keep no tensor of it (an optional leaf, as their BatchNorms keep no
    ``num_batches_tracked``)."""

    kind: ClassVar[str] = "window_attention"
    dim: int
    window_size: tuple[int, int]
    shift_size: tuple[int, int] = (0, 0)
    num_heads: int = 1
    qkv_bias: bool = True
    proj_bias: bool = True
    table_init: Initializer | None = None

    def __post_init__(self):
        self._check()

    def _params(self):
        table = self.table_init or TruncatedNormal(0.0, 0.02, -2.0, 2.0)
        shape = (self.table_rows, self.num_heads)
        return (
            *self._linears(),
            ParamSpec("relative_position_bias_table", shape, "vector", table, self.kind),
            self._buffer("relative_position_index", (self.tokens * self.tokens,), "int64"),
        )


CPB_HIDDEN = 512  # torchvision's cpb_mlp: Linear(2, 512), ReLU, Linear(512, heads, no bias)


@kinds.layer(
    params=(
        *LINEARS,
        "logit_scale",
        "cpb_mlp.0.weight",
        "cpb_mlp.0.bias",
        "cpb_mlp.2.weight",
        "relative_coords_table",
        "relative_position_index",
    ),
    optional=("relative_position_index",),
    buffers=("relative_coords_table", "relative_position_index"),
    example=lambda: kinds.Example(WindowAttentionV2(8, (2, 3), (1, 1), 2), ((2, 5, 6, 8),)),
)
@dataclass(frozen=True)
class WindowAttentionV2(_Windows):
    """torchvision's ``ShiftedWindowAttentionV2`` (Swin v2): :class:`WindowAttention`'s
    windows, shift and mask, with cosine scores ``normalize(q) normalize(k)^T`` times
    ``exp(min(logit_scale, log 100))`` (one per head) and a position bias
    ``16 sigmoid(cpb_mlp(relative_coords_table))`` gathered by ``relative_position_index``;
    the k third of ``qkv.bias`` is left out on every call, as torchvision zeroes it.

    Defaults are torchvision's module's: Linear's for ``qkv``, ``proj`` and ``cpb_mlp``,
    ``logit_scale`` log 10. torchvision also zeroes the k third of ``qkv.bias`` when made;
    the forward never reads it, so xinit draws the whole bias as Linear's. Every framework
    keeps ``relative_coords_table`` (a float buffer: torch's log2 rounds a few entries
    otherwise than numpy's, so the model's own values travel with its state;
    :meth:`relative_coords_table` is the start value); the index as v1's."""

    kind: ClassVar[str] = "window_attention_v2"
    cosine: ClassVar[bool] = True
    dim: int
    window_size: tuple[int, int]
    shift_size: tuple[int, int] = (0, 0)
    num_heads: int = 1
    qkv_bias: bool = True
    proj_bias: bool = True

    def __post_init__(self):
        self._check()
        if min(self.window_size) < 2:
            raise SpecError(
                f"WindowAttentionV2 needs windows of 2 or more a side (its coordinates are "
                f"divided by window - 1); got {self.window_size}"
            )

    def relative_coords_table(self) -> np.ndarray:
        """torchvision's ``relative_coords_table``: float32 (1, 2Wh-1, 2Ww-1, 2), each offset
        scaled to [-8, 8] then sign(t) log2(|t| + 1) / 3."""
        return _relative_coords_table(self.window_size)

    def buffer_value(self, name: str):
        if name == "relative_coords_table":
            return self.relative_coords_table()
        return super().buffer_value(name)

    def _params(self):
        k, h = self.kind, self.num_heads
        hidden = compute_fans((CPB_HIDDEN, 2), "linear")
        out_fans = compute_fans((h, CPB_HIDDEN), "linear")
        wh, ww = self.window_size
        return (
            *self._linears(),
            ParamSpec("logit_scale", (h, 1, 1), "vector", Constant(math.log(10.0)), k),
            ParamSpec("cpb_mlp.0.weight", (CPB_HIDDEN, 2), "linear", _TORCH_DEFAULT, k, hidden),
            ParamSpec("cpb_mlp.0.bias", (CPB_HIDDEN,), "vector", _TORCH_DEFAULT, k, hidden),
            ParamSpec("cpb_mlp.2.weight", (h, CPB_HIDDEN), "linear", _TORCH_DEFAULT, k, out_fans),
            self._buffer("relative_coords_table", (1, 2 * wh - 1, 2 * ww - 1, 2), "float32"),
            self._buffer("relative_position_index", (self.tokens * self.tokens,), "int64"),
        )


@functools.cache
def _relative_position_index(window: tuple[int, int]) -> np.ndarray:
    return _frozen(relative_position_index(window))


@functools.cache
def _shift_mask(window, shift, pad_h: int, pad_w: int) -> np.ndarray | None:
    return _frozen(shift_mask(pad_h, pad_w, window, shift)) if any(shift) else None


@functools.cache
def _relative_coords_table(window: tuple[int, int]) -> np.ndarray:
    return _frozen(relative_coords_table(window))


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False  # cached: shared by every caller
    return array


# The constants as plain numpy functions of no xinit name: the code export writes their source
# into its files (backends/common/codegen_window.py), so a file computes them as xinit does.
def relative_position_index(window_size):
    """torchvision's relative_position_index: int64 (N * N,) over the N = Wh * Ww tokens of a
    window, the table row (dh + Wh - 1)(2 Ww - 1) + dw + Ww - 1 of each query-key offset."""
    wh, ww = window_size
    rows, cols = np.divmod(np.arange(wh * ww), ww)
    dh = rows[:, None] - rows[None, :] + wh - 1
    dw = cols[:, None] - cols[None, :] + ww - 1
    return (dh * (2 * ww - 1) + dw).reshape(-1).astype(np.int64)


def shift_mask(pad_h: int, pad_w: int, window_size, shifts):
    """torchvision's mask of shifted windows: float32 (windows, N, N), -100 between tokens
    from different regions of the rolled (pad_h, pad_w) map (the bands of the last window and
    of the shift on each axis), 0 within one."""
    (wh, ww), (sh, sw) = window_size, shifts
    regions = np.zeros((pad_h, pad_w), np.float32)
    # torchvision's slices, as Python reads them (an axis not shifted: -0 is 0, so its last
    # band is the whole axis and overwrites the others)
    bands_h = (slice(0, -wh), slice(-wh, -sh), slice(-sh, None))
    bands_w = (slice(0, -ww), slice(-ww, -sw), slice(-sw, None))
    for i, rows in enumerate(bands_h):
        for j, cols in enumerate(bands_w):
            regions[rows, cols] = 3 * i + j
    windows = regions.reshape(pad_h // wh, wh, pad_w // ww, ww).transpose(0, 2, 1, 3)
    windows = windows.reshape(-1, wh * ww)
    apart = windows[:, None, :] != windows[:, :, None]
    return np.where(apart, -100.0, 0.0).astype(np.float32)


def relative_coords_table(window_size):
    """torchvision's relative_coords_table (Swin v2): float32 (1, 2 Wh - 1, 2 Ww - 1, 2), each
    offset scaled to [-8, 8], then sign(t) log2(|t| + 1) / 3 (in float32 throughout)."""
    axes = [np.arange(1 - n, n, dtype=np.float32) / np.float32(n - 1) for n in window_size]
    table = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)[None] * np.float32(8)
    return np.sign(table) * np.log2(np.abs(table) + np.float32(1)) / np.float32(3)
