"""The Flax code export's emitters for the zoo's dense and OCR models (light: no flax
import): PyTorch's transposed convolution (CenterNet's deconvolutions, U-Net's up steps), its
``F.interpolate`` (the FPN necks) and VisionLAN's sinusoid positions. Each is a small class
or function of the file computing what xinit's Flax build computes
(``backends/flax/modules.py``), its parameters at the build's paths."""

from __future__ import annotations

from xinit.codegen.emitters import args_text
from xinit.codegen.fields import Fields, literal

from ..common.codegen import RESIZE_MATRIX, _operand, _scalar_op, slice_call
from .codegen_sequence import init_keywords

# the file's function for a field some instances give as an int, others as a tuple
SPATIAL = '''def spatial(value, dims: int) -> tuple:
    """An int (the same along every spatial dim, as PyTorch takes it) as one entry per dim."""
    return (value,) * dims if isinstance(value, int) else tuple(value)
'''

_CONV_TRANSPOSE = '''class ConvTranspose(nnx.Module):
    """PyTorch's ConvTranspose: kernel (*k, in, out // groups) and bias as the state holds
    them, computed as a convolution of the stride-dilated input with the spatially flipped
    kernel, padded d * (k - 1) - p before and that + output_padding after (nnx.ConvTranspose
    flips no kernel and pads as lax.conv_transpose does)."""

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        output_padding=0,
        dilation=1,
        groups=1,
        use_bias=True,
        *,
        kernel_init,
        bias_init=nnx.initializers.zeros,
        rngs,
    ):
        self.kernel_size = tuple(kernel_size)
        dims = len(self.kernel_size)
        self.stride, self.padding = spatial(stride, dims), spatial(padding, dims)
        self.output_padding = spatial(output_padding, dims)
        self.dilation, self.groups = spatial(dilation, dims), groups
        shape = (*self.kernel_size, in_channels, out_channels // groups)
        self.kernel = nnx.Param(kernel_init(rngs.params(), shape))
        self.bias = nnx.data(None)  # a data attribute, though empty (else nnx makes it static)
        if use_bias:
            self.bias = nnx.Param(bias_init(rngs.params(), (out_channels,)))

    def __call__(self, x):
        dims, g, k = len(self.kernel_size), self.groups, self.kernel_size
        w = jnp.flip(self.kernel[...], axis=tuple(range(dims)))
        cin, cout = w.shape[-2], w.shape[-1]
        w = jnp.moveaxis(w.reshape(*k, g, cin // g, cout), dims, dims + 1)
        w = w.reshape(*k, cin // g, g * cout)
        sizes = zip(k, self.padding, self.dilation, self.output_padding)
        pads = [(d * (n - 1) - p, d * (n - 1) - p + op) for n, p, d, op in sizes]
        axes = "DHW"[3 - dims :]
        y = jax.lax.conv_general_dilated(
            x,
            w,
            (1,) * dims,
            pads,
            lhs_dilation=self.stride,
            rhs_dilation=self.dilation,
            dimension_numbers=(f"N{axes}C", f"{axes}IO", f"N{axes}C"),
            feature_group_count=g,
        )
        return y if self.bias is None else y + self.bias[...]
'''


def _conv_transpose(f: Fields) -> str:
    s = f.spec
    for name in ("jax", "jax.numpy as jnp"):
        f.ctx.need(f"import {name}")
    f.ctx.helper("spatial", SPATIAL)
    f.ctx.helper("ConvTranspose", _CONV_TRANSPOSE)
    kernel = f["kernel_size"] if f.value("kernel_size") is None else literal(s.kernel_size)
    kws = [*f.kw("stride", 1), *f.kw("padding", 0), *f.kw("output_padding", 0)]
    kws += [*f.kw("dilation", 1), *f.kw("groups", 1)]
    kws += [] if s.bias else ["use_bias=False"]
    kws += init_keywords(f, {"weight": "kernel_init", "bias": "bias_init"})
    if not any(k.startswith("kernel_init=") for k in kws):
        kws.append("kernel_init=nnx.initializers.zeros")  # the spec leaves it undrawn
    ins = f"{f['in_channels']}, {f['out_channels']}, {kernel}"
    return f"ConvTranspose({args_text(ins, kws, 'rngs=rngs')})"


_UPSAMPLE = (
    RESIZE_MATRIX
    + '''

def upsample(x, size=None, scale_factor=None, mode="nearest", align_corners=False):
    """PyTorch's F.interpolate on a channel-last x: one resize matrix per spatial axis."""
    sizes = x.shape[1:-1]
    if size is not None:
        outs = spatial(size, len(sizes))
        ratios = [n / o for n, o in zip(sizes, outs)]
    else:
        many = isinstance(scale_factor, (tuple, list))
        factors = [float(f) for f in (scale_factor if many else [scale_factor] * len(sizes))]
        outs = [int(np.floor(n * f)) for n, f in zip(sizes, factors)]
        ratios = [1.0 / f for f in factors]
    mats = [
        jnp.asarray(resize_matrix(n, o, r, mode, align_corners).astype(np.float32))
        for n, o, r in zip(sizes, outs, ratios)
    ]
    src, dst = "hwd"[: len(sizes)], "HWD"[: len(sizes)]
    pairs = ",".join(f"{b}{a}" for a, b in zip(src, dst))
    return jnp.einsum(f"n{src}c,{pairs}->n{dst}c", x, *mats, precision="highest")
'''
)


def _upsample(f: Fields, args: list) -> str:
    s = f.spec
    f.ctx.need("import numpy as np")
    f.ctx.need("import jax.numpy as jnp")
    f.ctx.helper("spatial", SPATIAL)
    f.ctx.helper("upsample", _UPSAMPLE)
    kws = [*f.kw("size", None), *f.kw("scale_factor", None), *f.kw("mode", "nearest")]
    kws += ["align_corners=True"] if s.align_corners else []
    return f"upsample({args_text(args[0], kws)})"


_SINUSOID = '''def sinusoid_table(num_positions: int, dim: int):
    """(1, num_positions, dim) float32, computed in float64: position p, feature j holds
    sin(p / 10000^(2 (j // 2) / dim)) for even j, its cos for odd j."""
    angle = np.arange(num_positions)[:, None] / np.power(10000, 2 * (np.arange(dim) // 2) / dim)
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return table.astype(np.float32)[None]
'''


def _sinusoid(f: Fields, args: list) -> str:
    """x + the fixed table over x's positions (no state: a constant of the forward)."""
    f.ctx.need("import numpy as np")
    f.ctx.need("import jax.numpy as jnp")
    f.ctx.helper("sinusoid_table", _SINUSOID)
    x = args[0]
    return f"{x} + jnp.asarray(sinusoid_table({x}.shape[1], {f['dim']}), {x}.dtype)"


def _matmul(f: Fields, args: list) -> str:
    f.ctx.need("import jax.numpy as jnp")
    return f'jnp.matmul({args[0]}, {args[1]}, precision="highest")'


def register_zoo(table) -> None:
    """Add these kinds' emitters to the Flax ``table`` (after the sequence kinds')."""
    table.register("conv_transpose", module=_conv_transpose)
    table.register("upsample", call=_upsample)
    table.register("sinusoid_positions", call=_sinusoid)
    table.register("scalar_op", call=_scalar_op)  # on any layout: written as torch's
    table.register("slice", call=slice_call)  # on PyTorch's layout (the value is turned)
    table.register("matmul", call=_matmul)
    table.register("sub", call=lambda f, args: " - ".join(map(_operand, args)))
    table.register("div", call=lambda f, args: " / ".join(map(_operand, args)))


__all__ = ["SPATIAL", "register_zoo"]
