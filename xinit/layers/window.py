"""Shifted-window attention: torchvision's Swin ``ShiftedWindowAttention`` as one layer kind.

The window partition merges the batch with the windows and the relative-position table is
gathered with an index, neither of which a graph of neutral ops can say with the batch left
free; so the whole attention is one node, its constants (the table's index, the shift mask)
computed here in numpy from the spec and the input's spatial size, the same for every
framework's module (``backends/common/window_attention.py`` holds the shared forward).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .. import kinds
from ..fans import compute_fans
from ..initializers import Initializer, TruncatedNormal, Zeros
from .base import _TORCH_DEFAULT, Layer, ParamSpec, SpecError, _positive_int, _set, _tuple

MASKED = -100.0  # torchvision's score for a key of another region of a shifted window


@kinds.layer(
    params=(
        "qkv.weight",
        "qkv.bias",
        "proj.weight",
        "proj.bias",
        "relative_position_bias_table",
        "relative_position_index",
    ),
    optional=("relative_position_index",),
    buffers=("relative_position_index",),
    example=lambda: kinds.Example(WindowAttention(8, (2, 2), (1, 1), 2), ((2, 5, 6, 8),)),
)
@dataclass(frozen=True)
class WindowAttention(Layer):
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
        _positive_int(self, dim=self.dim, num_heads=self.num_heads)
        window = _tuple(self.window_size, 2, "WindowAttention.window_size")
        shift = _tuple(self.shift_size, 2, "WindowAttention.shift_size")
        _positive_int(self, window_h=window[0], window_w=window[1])
        if any(s < 0 for s in shift):
            raise SpecError(f"WindowAttention.shift_size must be >= 0; got {shift}")
        if self.dim % self.num_heads:
            raise SpecError(
                f"WindowAttention: dim {self.dim} is not divisible by num_heads {self.num_heads}"
            )
        _set(self, window_size=window, shift_size=shift)

    @property
    def tokens(self) -> int:
        """N, the tokens of one window."""
        return self.window_size[0] * self.window_size[1]

    @property
    def table_rows(self) -> int:
        """(2Wh - 1)(2Ww - 1): one row of the table per relative offset."""
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

    def buffer_value(self, name: str):
        return self.relative_position_index() if name == "relative_position_index" else None

    def shift_mask(self, pad_h: int, pad_w: int) -> np.ndarray | None:
        """The scores added to shifted windows, float32 (windows, N, N): :data:`MASKED`
        between tokens of the rolled map's different regions (the bands of the last window
        and of the shift on each axis), 0 within one; None when nothing is shifted."""
        return _shift_mask(self.window_size, self.shifts(pad_h, pad_w), pad_h, pad_w)

    def channels(self, c):
        return None  # (B, H, W, C): the checked size is the last, in output_shape

    def _params(self):
        c, k = self.dim, self.kind
        qkv, proj = compute_fans((3 * c, c), "linear"), compute_fans((c, c), "linear")
        out = [ParamSpec("qkv.weight", (3 * c, c), "linear", _TORCH_DEFAULT, k, qkv)]
        if self.qkv_bias:
            out.append(ParamSpec("qkv.bias", (3 * c,), "vector", _TORCH_DEFAULT, k, qkv))
        out.append(ParamSpec("proj.weight", (c, c), "linear", _TORCH_DEFAULT, k, proj))
        if self.proj_bias:
            out.append(ParamSpec("proj.bias", (c,), "vector", _TORCH_DEFAULT, k, proj))
        table = self.table_init or TruncatedNormal(0.0, 0.02, -2.0, 2.0)
        shape = (self.table_rows, self.num_heads)
        out.append(ParamSpec("relative_position_bias_table", shape, "vector", table, k))
        index = (self.tokens * self.tokens,)  # a buffer: its value is buffer_value's
        out.append(
            ParamSpec("relative_position_index", index, "vector", Zeros(), k, None, False, "int64")
        )
        return tuple(out)

    def output_shape(self, shape):
        shape = tuple(shape)
        if len(shape) != 4 or shape[-1] != self.dim:
            raise SpecError(
                f"WindowAttention expects channel-last features (B, H, W, C={self.dim}); got "
                f"shape {shape}"
            )
        return shape


@functools.cache
def _relative_position_index(window: tuple[int, int]) -> np.ndarray:
    wh, ww = window
    rows, cols = np.divmod(np.arange(wh * ww), ww)
    dh = rows[:, None] - rows[None, :] + wh - 1
    dw = cols[:, None] - cols[None, :] + ww - 1
    index = (dh * (2 * ww - 1) + dw).reshape(-1).astype(np.int64)
    index.flags.writeable = False
    return index


@functools.cache
def _shift_mask(window, shift, pad_h: int, pad_w: int) -> np.ndarray | None:
    if not any(shift):
        return None
    (wh, ww), (sh, sw) = window, shift
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
    mask = np.where(windows[:, None, :] != windows[:, :, None], MASKED, 0.0).astype(np.float32)
    mask.flags.writeable = False
    return mask
