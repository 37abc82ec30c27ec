"""One lowering per layer kind for PaddlePaddle: the native ``paddle.nn`` layer and its map.

Paddle's Linear weight is stored ``(in, out)`` (the transpose of the neutral one); BatchNorm
uses PaddleOCR's names ``_mean``/``_variance`` and keeps no step counter. Weights are built
with a zero fill (``modules._placeholder``) that xinit overwrites, skipping Paddle's own
random default init.
"""

from __future__ import annotations

import math

from xinit import layers as L
from xinit.parammap import Extra, Leaf

from ..registry import Lowering, Registry, register_builders


def layout(role: str, ndim: int) -> tuple[int, ...] | None:
    """Paddle's layout of each fan role: Linear ``(in, out)``; everything else as PyTorch."""
    return (1, 0) if role == "linear" else None


REGISTRY = Registry("paddle", layout)


def _paddle():
    import paddle

    return paddle


def _modules():
    from . import modules

    return modules


def _padding(m) -> tuple[int, ...] | int:
    """A Paddle conv's symmetric explicit padding as PyTorch's, else 0 (SAME/VALID and
    asymmetric paddings have no PyTorch equivalent; they do not decide any parameter)."""
    pad = getattr(m, "_updated_padding", None)
    if getattr(m, "_padding_algorithm", "EXPLICIT") != "EXPLICIT" or not isinstance(pad, list):
        return 0
    n = len(m._kernel_size)
    if len(pad) == n and all(isinstance(p, int) for p in pad):
        return tuple(pad)
    return 0


def _bias(spec):
    return None if spec.bias else False  # None: Paddle's default bias (zeros), False: none


@REGISTRY.register("conv")
class Conv(Lowering):
    def build(self, spec, device):
        nn, m = _paddle().nn, _modules()
        cls = (nn.Conv1D, nn.Conv2D, nn.Conv3D)[spec.dims - 1]
        return cls(
            spec.in_channels,
            spec.out_channels,
            list(spec.kernel_size),
            list(spec.stride),
            list(spec.padding),
            list(spec.dilation),
            spec.groups,
            weight_attr=m._placeholder(),
            bias_attr=_bias(spec),
        )

    def natives(self):
        from paddle.nn.layer.conv import _ConvNd

        return (_ConvNd,)

    def read(self, m):
        return L.Conv(
            m._in_channels,
            m._out_channels,
            tuple(m._kernel_size),
            tuple(m._stride),
            _padding(m),
            tuple(m._dilation),
            m._groups,
            m.bias is not None,
        )


@REGISTRY.register("conv_transpose")
class ConvTranspose(Lowering):
    def build(self, spec, device):
        nn, m = _paddle().nn, _modules()
        cls = (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)[spec.dims - 1]
        padded = any(op >= s for op, s in zip(spec.output_padding, spec.stride))
        if padded:  # PyTorch allows output_padding < max(stride, dilation); Paddle < stride
            cls = m.PADDED_TRANSPOSE[spec.dims - 1]
        module = cls(
            spec.in_channels,
            spec.out_channels,
            list(spec.kernel_size),
            list(spec.stride),
            list(spec.padding),
            [0] * spec.dims if padded else list(spec.output_padding),
            groups=spec.groups,  # keywords: 1-D takes (groups, dilation), 2-D/3-D swap them
            dilation=list(spec.dilation),
            weight_attr=m._placeholder(),
            bias_attr=_bias(spec),
        )
        if padded:
            module.spec = spec
        return module

    def natives(self):
        nn = _paddle().nn
        return (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)

    def read(self, m):
        return L.ConvTranspose(
            m._in_channels,
            m._out_channels,
            tuple(m._kernel_size),
            tuple(m._stride),
            _padding(m),
            tuple(m._dilation),
            m._groups,
            m.bias is not None,
        )


@REGISTRY.register("batchnorm")
class BatchNorm(Lowering):
    leaves = {"running_mean": "_mean", "running_var": "_variance", "num_batches_tracked": None}

    def build(self, spec, device):
        return _modules().BatchNorm(spec.num_features, spec.eps, spec.momentum, spec.affine)

    def natives(self):
        from paddle.nn.layer.norm import _BatchNormBase

        return (_BatchNormBase, _paddle().nn.BatchNorm, _modules().BatchNorm)

    def read(self, m):
        c = int(m._mean.shape[0])
        if isinstance(m, _modules().BatchNorm):  # xinit's: the neutral momentum already
            return L.BatchNorm(c, m._epsilon, m._momentum, m.weight is not None)
        dims = {"BatchNorm1D": 1, "BatchNorm3D": 3}.get(type(m).__name__, 2)
        return L.BatchNorm(c, m._epsilon, 1.0 - m._momentum, m.weight is not None, dims)


def fused_activation(m) -> str | None:
    """The activation a ``paddle.nn.BatchNorm(C, act=...)`` applies inside its forward (None
    for any other layer): neutrally a BatchNorm followed by that activation, so parity
    compares the layer's output before it, as every other framework's BatchNorm gives it."""
    act = getattr(m, "_act", None)
    return act if isinstance(act, str) and act else None


@REGISTRY.register("linear")
class Linear(Lowering):
    def build(self, spec, device):
        weight = _modules()._placeholder()
        return _paddle().nn.Linear(
            spec.in_features, spec.out_features, weight_attr=weight, bias_attr=_bias(spec)
        )

    def natives(self):
        return (_paddle().nn.Linear,)

    def read(self, m):
        n_in, n_out = (int(d) for d in m.weight.shape)  # stored (in, out)
        return L.Linear(n_in, n_out, m.bias is not None)


@REGISTRY.register("embedding")
class Embedding(Lowering):
    def build(self, spec, device):
        weight = _modules()._placeholder()
        return _paddle().nn.Embedding(spec.num_embeddings, spec.embedding_dim, weight_attr=weight)

    def natives(self):
        return (_paddle().nn.Embedding,)

    def read(self, m):
        return L.Embedding(m._num_embeddings, m._embedding_dim)


@REGISTRY.register("max_pool")
class MaxPool(Lowering):
    def build(self, spec, device):
        if spec.ceil_mode:
            return _modules().CeilPool(spec)
        nn = _paddle().nn
        cls = (nn.MaxPool1D, nn.MaxPool2D, nn.MaxPool3D)[spec.dims - 1]
        return cls(list(spec.kernel_size), list(spec.stride), list(spec.padding))


@REGISTRY.register("avg_pool")
class AvgPool(Lowering):
    def build(self, spec, device):
        if spec.ceil_mode:
            return _modules().CeilPool(spec)
        nn = _paddle().nn
        cls = (nn.AvgPool1D, nn.AvgPool2D, nn.AvgPool3D)[spec.dims - 1]
        return cls(
            list(spec.kernel_size),
            list(spec.stride),
            list(spec.padding),
            exclusive=not spec.count_include_pad,
        )


@REGISTRY.register("adaptive_avg_pool")
class AdaptiveAvgPool(Lowering):
    def build(self, spec, device):
        nn = _paddle().nn
        cls = (nn.AdaptiveAvgPool1D, nn.AdaptiveAvgPool2D, nn.AdaptiveAvgPool3D)[spec.dims - 1]
        return cls(spec.output_size[0] if spec.dims == 1 else list(spec.output_size))


def _affine(on: bool):
    return None if on else False  # None: Paddle's default (ones/zeros), False: none


@REGISTRY.register("layernorm")
class LayerNorm(Lowering):
    """Paddle keeps LayerNorm's weight and bias flattened to ``(prod(normalized_shape),)``."""

    def params(self, spec):
        flat = (math.prod(spec.normalized_shape),)
        shape = flat if len(spec.normalized_shape) > 1 else None
        return {p.name: (Leaf(p.name, shape=shape),) for p in spec.params()}

    def build(self, spec, device):
        return _paddle().nn.LayerNorm(
            list(spec.normalized_shape),
            spec.eps,
            weight_attr=_affine(spec.elementwise_affine),
            bias_attr=_affine(spec.elementwise_affine and spec.bias),
        )

    def natives(self):
        return (_paddle().nn.LayerNorm,)

    def read(self, m):
        if m.weight is None and m.bias is not None:  # a bias alone: no neutral LayerNorm
            return None
        affine = m.weight is not None
        bias = m.bias is not None if affine else True
        return L.LayerNorm(tuple(m._normalized_shape), m._epsilon, affine, bias)


@REGISTRY.register("rmsnorm")
class RMSNorm(Lowering):
    def build(self, spec, device):
        return _modules().RMSNorm(spec)

    def natives(self):
        return (_modules().RMSNorm,)

    def read(self, m):
        return m.spec


@REGISTRY.register("groupnorm")
class GroupNorm(Lowering):
    def build(self, spec, device):
        return _paddle().nn.GroupNorm(
            spec.num_groups,
            spec.num_channels,
            spec.eps,
            weight_attr=_affine(spec.affine),
            bias_attr=_affine(spec.affine),
        )

    def natives(self):
        return (_paddle().nn.GroupNorm,)

    def read(self, m):
        if (m.weight is None) != (m.bias is None):  # one of the two: no neutral GroupNorm
            return None
        return L.GroupNorm(m._num_groups, m._num_channels, m._epsilon, m.weight is not None)


def _qkv_leaves(spec, suffix: str, perm) -> tuple[Leaf, ...]:
    """The packed q/k/v rows of a neutral ``in_proj_*`` as Paddle's three projections."""
    e = spec.embed_dim
    return tuple(
        Leaf(f"{name}_proj.{suffix}", perm, part=(0, i * e, (i + 1) * e))
        for i, name in enumerate("qkv")
    )


@REGISTRY.register("multihead_attention")
class MultiheadAttention(Lowering):
    """Paddle's ``nn.MultiHeadAttention``: separate ``q_proj``/``k_proj``/``v_proj``/``out_proj``
    Linears, weights stored (in, out): the neutral packed rows (or PyTorch's separate
    ``q/k/v_proj_weight`` with kdim/vdim), each transposed. Masks are turned into the one
    additive float mask Paddle takes (``modules.Attention``)."""

    def params(self, spec):
        if spec.packed:
            out = {"in_proj_weight": _qkv_leaves(spec, "weight", (1, 0))}
        else:
            out = {f"{n}_proj_weight": (Leaf(f"{n}_proj.weight", (1, 0)),) for n in "qkv"}
        out["out_proj.weight"] = (Leaf("out_proj.weight", (1, 0)),)
        if spec.bias:
            out["in_proj_bias"] = _qkv_leaves(spec, "bias", None)
            out["out_proj.bias"] = (Leaf("out_proj.bias"),)
        return out

    def build(self, spec, device):
        return _modules().Attention(spec)

    def natives(self):
        return (_paddle().nn.MultiHeadAttention,)

    def read(self, m):
        if isinstance(m, _modules().Attention):
            return m.spec
        biases = {p.bias is None for p in (m.q_proj, m.k_proj, m.v_proj, m.out_proj)}
        if len(biases) > 1:  # some projections without bias: no neutral spec
            return None
        bias = m.q_proj.bias is not None
        return L.MultiheadAttention(m.embed_dim, m.num_heads, bias, kdim=m.kdim, vdim=m.vdim)


@REGISTRY.register("sdpa")
class ScaledDotProductAttention(Lowering):
    def build(self, spec, device):
        return _modules().ScaledDotProductAttention(spec.num_heads, spec.causal)


@REGISTRY.register("learned_parameter")
class LearnedParameter(Lowering):
    """The native layer is the Paddle parameter itself: the enclosing container adds it
    under the node's name (the state-dict key ``cls_token``) and applies ``op``."""

    def build(self, spec, device):
        return _modules().learned_parameter(spec)


class _Recurrent(Lowering):
    """``paddle.nn.LSTM``/``GRU`` (batch first, ``direction="bidirect"`` for two), returning
    the output sequence alone. Paddle's gates, layouts and biases are PyTorch's (LSTM i, f,
    g, o; GRU r, z, c with b_hc inside r * (W_hc h + b_hc), h = (h_prev - c) * z + c: the
    same as PyTorch's (1 - z) * n + z * h_prev), weights (G*H, in).

    Paddle saves every tensor twice: under the cell's structured name (``0.cell_fw.weight_ih``,
    ``0.cell.weight_ih`` one way), the leaves of this map, which are always right, and under
    PyTorch-style names the layer sets as attributes (``weight_ih_l0_reverse``), the extras
    (second names). A bias the spec lacks is a frozen zero tensor here: Paddle's own
    ``bias_*_attr=False`` leaves the attributes misnamed and its CPU kernel crashes (Paddle
    3.3), so xinit keeps all four tensors per cell and freezes the absent biases at zero."""

    native_name: str = ""

    def _cells(self, spec):
        """``(neutral suffix "l{k}[_reverse]", native cell path)`` in Paddle's order."""
        out = []
        for k, sfx in spec.cells():
            cell = ("cell_bw" if sfx else "cell_fw") if spec.bidirectional else "cell"
            out.append((f"l{k}{sfx}", f"{k}.{cell}"))
        return out

    def params(self, spec):
        names = {p.name for p in spec.params()}
        out = {}
        for sfx, cell in self._cells(spec):
            for leaf in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if f"{leaf}_{sfx}" in names:
                    out[f"{leaf}_{sfx}"] = (Leaf(f"{cell}.{leaf}"),)
        return out

    def extras(self, spec):
        """The layer's PyTorch-style attribute names (second names of the cells' tensors,
        in Paddle's order) and the absent biases (frozen zeros)."""
        g = spec.gates * spec.hidden_size
        out = {}
        for sfx, cell in self._cells(spec):
            for side in ("ih", "hh"):
                if not spec.has_bias(side):
                    out[f"{cell}.bias_{side}"] = Extra(shape=(g,), fill=0.0)
            for leaf in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                out[f"{leaf}_{sfx}"] = Extra(of=f"{cell}.{leaf}")
        return out

    def build(self, spec, device):
        m = _modules()
        frozen = _paddle().ParamAttr(
            initializer=_paddle().nn.initializer.Constant(0.0), trainable=False
        )
        bias = {side: m._placeholder() if spec.has_bias(side) else frozen for side in ("ih", "hh")}
        return getattr(m, self.native_name)(
            spec.input_size,
            spec.hidden_size,
            spec.num_layers,
            direction="bidirect" if spec.bidirectional else "forward",
            time_major=False,
            weight_ih_attr=m._placeholder(),
            weight_hh_attr=m._placeholder(),
            bias_ih_attr=bias["ih"],
            bias_hh_attr=bias["hh"],
        )

    def natives(self):
        return (getattr(_paddle().nn, self.native_name),)

    def read(self, m):
        if getattr(m, "proj_size", 0):  # LSTM projections (weight_ho): not this map
            return None
        first = m[0]
        cell = first.cell_fw if m.num_directions == 2 else first.cell

        def has(name):
            p = getattr(cell, name)
            return not (p.stop_gradient and not bool((p != 0).any()))  # a frozen zero: none

        ih, hh = has("bias_ih"), has("bias_hh")
        bias = True if ih and hh else "ih" if ih else "hh" if hh else False
        spec = getattr(L, self.native_name)
        return spec(m.input_size, m.hidden_size, m.num_layers, bias, m.num_directions == 2)


@REGISTRY.register("lstm")
class LSTM(_Recurrent):
    native_name = "LSTM"


@REGISTRY.register("gru")
class GRU(_Recurrent):
    native_name = "GRU"


# Parameter-free layers: the native layer from the spec, nothing else.
register_builders(
    REGISTRY,
    {
        "relu": lambda s: _paddle().nn.ReLU(),
        "leaky_relu": lambda s: _paddle().nn.LeakyReLU(s.negative_slope),
        "gelu": lambda s: _paddle().nn.GELU(approximate=s.approximate == "tanh"),
        "silu": lambda s: _paddle().nn.Silu(),
        "sigmoid": lambda s: _paddle().nn.Sigmoid(),
        "tanh": lambda s: _paddle().nn.Tanh(),
        "identity": lambda s: _paddle().nn.Identity(),
        "flatten": lambda s: _paddle().nn.Flatten(s.start_dim, s.end_dim),
        "reshape": lambda s: _modules().Reshape(s.shape),
        "permute": lambda s: _modules().Permute(s.dims),
        "dropout": lambda s: _paddle().nn.Dropout(s.p),
        "add": lambda s: _modules().Merge(s),
        "mul": lambda s: _modules().Merge(s),
        "concat": lambda s: _modules().Merge(s),
        "upsample": lambda s: _modules().Upsample(s),
        "select": lambda s: _modules().Select(s.dim, s.index),
        "position_ids": lambda s: _modules().PositionIds(),
    },
)
