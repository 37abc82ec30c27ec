"""One lowering per layer kind for PaddlePaddle: the native ``paddle.nn`` layer and its map.

Paddle's Linear weight is stored ``(in, out)`` (the transpose of the neutral one); BatchNorm
is Paddle's own (names ``_mean``/``_variance``, no step counter, momentum 1 - neutral).
Weights are built with a zero fill (``modules._placeholder``) that xinit overwrites,
skipping Paddle's own random default init.
"""

from __future__ import annotations

import math
from itertools import accumulate

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import Constant, Normal, Ones, Uniform, XavierUniform, Zeros
from xinit.parammap import Extra, Leaf

from ..common.recurrent import recurrent_keywords, register_recurrent
from ..registry import (
    BARE_PARAMETER,
    NO_LAYER_SCALE,
    Lowering,
    Registry,
    param_of,
    register_builders,
)


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


def _seeded(seed: int):
    """``paddle.nn`` after ``paddle.seed(seed)``: a default layer made next is seeded."""
    paddle = _paddle()
    paddle.seed(seed)
    return paddle.nn


_ZERO = "Constant(0)"


class _Norm(Lowering):
    """Norm layers: weight (and running variance) Constant(1), the rest Constant(0)."""

    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/norm.py"
        if param == "num_batches_tracked":
            return None  # Paddle keeps no step counter
        if param in ("weight", "running_var"):
            return Ones(), None, "Constant(1)", src
        return Zeros(), None, _ZERO, src


@REGISTRY.register("conv")
class Conv(Lowering):
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/conv.py _ConvNd._get_default_param_initializer"
        if param != "weight":
            return Zeros(), None, _ZERO, src
        r = math.prod(spec.kernel_size)
        n = spec.in_channels * r  # the FULL C_in: groups are ignored
        text = "Normal(0, √(2/(C_in·∏k))) with the full C_in (groups ignored)"
        return Normal(0.0, math.sqrt(2.0 / n)), Fans(n, spec.out_channels * r), text, src

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), f"Conv{spec.dims}D")
        return cls(spec.in_channels, spec.out_channels, list(spec.kernel_size), groups=spec.groups)

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
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/conv.py (transposed: no default, so XavierUniform)"
        if param != "weight":
            return Zeros(), None, _ZERO, src
        text = "XavierUniform on [C_in, C_out/g, *k]: fan_in = (C_out/g)·∏k, fan_out = C_in·∏k"
        return XavierUniform(), param_of(spec, "weight").fans, text, src

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), f"Conv{spec.dims}DTranspose")
        return cls(spec.in_channels, spec.out_channels, list(spec.kernel_size), groups=spec.groups)

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
class BatchNorm(_Norm):
    """``paddle.nn.BatchNorm1D/2D/3D`` with Paddle's momentum (``spec.decay``, the weight of
    the running value) and its own training rule (biased running variance); with
    ``train_stats="torch"`` xinit's subclass of the same class (``modules.TORCH_BATCHNORM``)."""

    leaves = {"running_mean": "_mean", "running_var": "_variance", "num_batches_tracked": None}

    def native_default(self, spec, seed):
        return _seeded(seed).BatchNorm2D(spec.num_features)

    def build(self, spec, device):
        nn = _paddle().nn
        native = (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D)
        torch_rule = spec.train_stats == "torch"
        cls = (_modules().TORCH_BATCHNORM if torch_rule else native)[spec.dims - 1]
        affine = _affine(spec.affine)
        return cls(
            spec.num_features,
            momentum=spec.decay,
            epsilon=spec.eps,
            weight_attr=affine,
            bias_attr=affine,
        )

    def natives(self):
        from paddle.nn.layer.norm import _BatchNormBase

        return (_BatchNormBase, _paddle().nn.BatchNorm)

    def read(self, m):
        if (m.weight is None) != (m.bias is None):  # one of the two: no neutral BatchNorm
            return None
        nn = _paddle().nn
        dims = 1 if isinstance(m, nn.BatchNorm1D) else 3 if isinstance(m, nn.BatchNorm3D) else 2
        return L.BatchNorm(
            int(m._mean.shape[0]),
            m._epsilon,
            L.BatchNorm.momentum_from_decay(m._momentum),
            m.weight is not None,
            dims,
            train_stats="torch" if isinstance(m, _modules()._TorchStats) else "native",
        )


def fused_activation(m) -> str | None:
    """The activation a ``paddle.nn.BatchNorm(C, act=...)`` applies inside its forward (None
    for any other layer): neutrally a BatchNorm followed by that activation, so parity
    compares the layer's output before it, as every other framework's BatchNorm gives it."""
    act = getattr(m, "_act", None)
    return act if isinstance(act, str) and act else None


@REGISTRY.register("linear")
class Linear(Lowering):
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/common.py Linear (ParamAttr default: XavierUniform)"
        if param != "weight":
            return Zeros(), None, _ZERO, src
        text = "XavierUniform on [in, out]: U(±√(6/(in+out)))"
        return XavierUniform(), Fans(spec.in_features, spec.out_features), text, src

    def native_default(self, spec, seed):
        return _seeded(seed).Linear(spec.in_features, spec.out_features)

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
    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/common.py Embedding (XavierUniform default)"
        text = "XavierUniform on [num, dim]: U(±√(6/(num+dim)))"
        return XavierUniform(), Fans(spec.num_embeddings, spec.embedding_dim), text, src

    def native_default(self, spec, seed):
        return _seeded(seed).Embedding(spec.num_embeddings, spec.embedding_dim)

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
class LayerNorm(_Norm):
    """Paddle keeps LayerNorm's weight and bias flattened to ``(prod(normalized_shape),)``."""

    def params(self, spec):
        flat = (math.prod(spec.normalized_shape),)
        shape = flat if len(spec.normalized_shape) > 1 else None
        return {p.name: (Leaf(p.name, shape=shape),) for p in spec.params()}

    def native_default(self, spec, seed):
        return _seeded(seed).LayerNorm(math.prod(spec.normalized_shape))

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
    def default_missing(self, spec):
        note = (
            "paddle.nn has no RMSNorm layer, only the function rms_norm(x, shape, weight); "
            "xinit's own layer sets weight to ones"
        )
        return note, "python/paddle/nn/functional/norm.py rms_norm"

    def build(self, spec, device):
        return _modules().RMSNorm(spec)

    def natives(self):
        return (_modules().RMSNorm,)

    def read(self, m):
        return m.spec


@REGISTRY.register("groupnorm")
class GroupNorm(_Norm):
    def native_default(self, spec, seed):
        return _seeded(seed).GroupNorm(spec.num_groups, spec.num_channels)

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


# ---- per-sample norms and per-channel learned layers (InstanceNorm, LayerNorm2d, PReLU,
# LayerScale): one block, kept together
@REGISTRY.register("instancenorm")
class InstanceNorm(_Norm):
    """Paddle's ``nn.InstanceNorm{1,2,3}D``: ``scale``/``bias`` by default (both or none), no
    running statistics (its momentum is unused); PyTorch's running statistics get xinit's
    layer (``modules.InstanceNorm``), with BatchNorm's ``_mean``/``_variance``."""

    leaves = {"weight": "scale", **BatchNorm.leaves}

    def native_default(self, spec, seed):
        return getattr(_seeded(seed), f"InstanceNorm{spec.dims}D")(spec.num_features)

    def build(self, spec, device):
        if spec.track_running_stats:
            return _modules().InstanceNorm(spec)
        nn = _paddle().nn
        cls = (nn.InstanceNorm1D, nn.InstanceNorm2D, nn.InstanceNorm3D)[spec.dims - 1]
        weight = _modules()._placeholder() if spec.affine else False
        return cls(spec.num_features, spec.eps, spec.decay, weight, _affine(spec.affine))

    def natives(self):
        from paddle.nn.layer.norm import _InstanceNormBase

        return (_InstanceNormBase, _modules().InstanceNorm)

    def read(self, m):
        if isinstance(m, _modules().InstanceNorm):
            return m.spec
        dims = {"InstanceNorm1D": 1, "InstanceNorm3D": 3}.get(type(m).__name__, 2)
        affine = m.scale is not None
        momentum = L.InstanceNorm.momentum_from_decay(m._momentum)
        return L.InstanceNorm(m._num_features, m._epsilon, momentum, affine, dims=dims)


@REGISTRY.register("layernorm2d")
class LayerNorm2d(_Norm):
    """xinit's layer (Paddle has no channels-first LayerNorm); its default is
    ``nn.LayerNorm``'s (Constant(1) weight, Constant(0) bias)."""

    def native_default(self, spec, seed):
        return _seeded(seed).LayerNorm(spec.num_channels)

    def build(self, spec, device):
        return _modules().LayerNorm2d(spec)

    def natives(self):
        return (_modules().LayerNorm2d,)

    def read(self, m):
        return m.spec


@REGISTRY.register("prelu")
class PReLU(Lowering):
    leaves = {"weight": "_weight"}

    def default_rule(self, spec, param):
        src = "python/paddle/nn/layer/activation.py PReLU (init=0.25)"
        return Constant(0.25), None, "Constant(init=0.25)", src

    def native_default(self, spec, seed):
        return _seeded(seed).PReLU(spec.num_parameters)

    def build(self, spec, device):
        weight = _modules()._placeholder()
        return _paddle().nn.PReLU(spec.num_parameters, spec.init, weight_attr=weight)

    def natives(self):
        return (_paddle().nn.PReLU,)

    def read(self, m):
        if m._num_parameters > 1 and m._data_format not in ("NC", "NCL", "NCHW", "NCDHW"):
            return None  # slopes on the last axis: not PyTorch's channel axis
        return L.PReLU(m._num_parameters, float(m._init))


@REGISTRY.register("layer_scale")
class LayerScale(Lowering):
    def default_missing(self, spec):
        return NO_LAYER_SCALE

    def build(self, spec, device):
        return _modules().LayerScale(spec)

    def natives(self):
        return (_modules().LayerScale,)

    def read(self, m):
        return m.spec


def _qkv_leaves(spec, suffix: str, perm) -> tuple[Leaf, ...]:
    """The packed q/k/v rows of a neutral ``in_proj_*`` as Paddle's three projections (rows
    E, E, E; grouped-query attention's E, K·D, K·D)."""
    ends = [0, *accumulate(spec.proj_rows)]
    return tuple(
        Leaf(f"{name}_proj.{suffix}", perm, part=(0, ends[i], ends[i + 1]))
        for i, name in enumerate("qkv")
    )


_MHA_SOURCE = (
    "python/paddle/nn/layer/transformer.py MultiHeadAttention: q/k/v/out_proj are Linear(E, E) "
    "(ParamAttr defaults: XavierUniform weight, zero bias)"
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

    def default_rule(self, spec, param):
        """``nn.MultiHeadAttention``: four Linears, each with Linear's defaults, so Xavier
        sees each [in, E] projection (in = E, or kdim/vdim for k/v), not a packed matrix."""
        e = spec.embed_dim
        if param in ("in_proj_weight", "out_proj.weight"):
            which = "each of q_proj/k_proj/v_proj" if param == "in_proj_weight" else "out_proj"
            text = f"XavierUniform on {which}.weight [E, E]: U(±√(6/2E))"
            return XavierUniform(), Fans(e, e), text, _MHA_SOURCE
        if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
            n = param_of(spec, param).shape[1]
            text = f"XavierUniform on {param[0]}_proj.weight [{n}, E]: U(±√(6/({n}+E)))"
            return XavierUniform(), Fans(n, e), text, _MHA_SOURCE
        return Zeros(), None, "Constant(0) (Linear's bias default)", _MHA_SOURCE

    def native_default(self, spec, seed):
        e, kdim, vdim = spec.embed_dim, spec.kdim or spec.embed_dim, spec.vdim or spec.embed_dim
        return _seeded(seed).MultiHeadAttention(e, spec.num_heads, kdim=kdim, vdim=vdim)

    def default_missing(self, spec):
        if spec.num_kv_heads is not None:
            note = "paddle.nn has no grouped-query attention layer (num_kv_heads)"
            return note, "python/paddle/nn/layer/transformer.py MultiHeadAttention"
        return None

    def build(self, spec, device):
        if spec.num_kv_heads is not None:
            return _modules().GroupedQueryAttention(spec)
        return _modules().Attention(spec)

    def natives(self):
        return (_paddle().nn.MultiHeadAttention, _modules().GroupedQueryAttention)

    def read(self, m):
        if isinstance(m, (_modules().Attention, _modules().GroupedQueryAttention)):
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

    def default_missing(self, spec):
        return BARE_PARAMETER

    def build(self, spec, device):
        return _modules().learned_parameter(spec)


class _Recurrent(Lowering):
    """``paddle.nn.LSTM``/``GRU``/``SimpleRNN`` (batch first, ``direction="bidirect"`` for
    two), returning the output sequence alone. Paddle's gates, layouts and biases are
    PyTorch's (LSTM i, f, g, o; GRU r, z, c with b_hc inside r * (W_hc h + b_hc),
    h = (h_prev - c) * z + c: the same as PyTorch's (1 - z) * n + z * h_prev; SimpleRNN's
    tanh or relu), weights (G*H, in).

    Paddle saves every tensor twice: under the cell's structured name (``0.cell_fw.weight_ih``,
    ``0.cell.weight_ih`` one way), the leaves of this map, which are always right, and under
    PyTorch-style names the layer sets as attributes (``weight_ih_l0_reverse``), the extras
    (second names). A bias the spec lacks is a frozen zero tensor here: Paddle's own
    ``bias_*_attr=False`` leaves the attributes misnamed and its CPU kernel crashes (Paddle
    3.3), so xinit keeps all four tensors per cell and freezes the absent biases at zero."""

    native_name: str = ""

    @property
    def paddle_name(self) -> str:
        """Paddle's class of this kind: ``LSTM``, ``GRU``, ``SimpleRNN``."""
        return _PADDLE_RNN_NAMES.get(self.native_name, self.native_name)

    def default_rule(self, spec, param):
        bound = 1.0 / math.sqrt(spec.hidden_size)
        cell = f"{self.paddle_name}Cell"
        src = f"python/paddle/nn/layer/rnn.py {cell} (default_initializer Uniform(-std, std))"
        text = "Uniform(-1/√H, 1/√H), H = hidden_size, on every weight and bias"
        return Uniform(-bound, bound), None, text, src

    def native_default(self, spec, seed):
        cls = getattr(_seeded(seed), self.paddle_name)
        return cls(spec.input_size, spec.hidden_size, **recurrent_keywords(spec, "activation"))

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
            if f"weight_hr_{sfx}" in names:  # the LSTM's projection, stored (H, P), one name
                out[f"weight_hr_{sfx}"] = (Leaf(f"{cell}.weight_ho", (1, 0)),)
        return out

    def extras(self, spec):
        """The layer's PyTorch-style attribute names (second names of the cells' tensors,
        in Paddle's order) and the absent biases (frozen zeros). Paddle gives its tensors,
        in order, four such names per cell; an LSTM with ``proj_size`` has five tensors per
        cell (``weight_ho`` last), so its names shift onto other tensors (``weight_ih_l0_
        reverse`` is ``0.cell_fw.weight_ho``), as Paddle 3.3 saves them."""
        g = spec.gates * spec.hidden_size
        leaves = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        proj = ("weight_ho",) if getattr(spec, "proj_size", 0) else ()
        tensors = [f"{cell}.{leaf}" for _, cell in self._cells(spec) for leaf in leaves + proj]
        out = {}
        for i, (sfx, cell) in enumerate(self._cells(spec)):
            for side in ("ih", "hh"):
                if not spec.has_bias(side):
                    out[f"{cell}.bias_{side}"] = Extra(shape=(g,), fill=0.0)
            for j, leaf in enumerate(leaves):
                out[f"{leaf}_{sfx}"] = Extra(of=tensors[4 * i + j])
        return out

    def build(self, spec, device):
        m = _modules()
        frozen = _paddle().ParamAttr(
            initializer=_paddle().nn.initializer.Constant(0.0), trainable=False
        )
        bias = {side: m._placeholder() if spec.has_bias(side) else frozen for side in ("ih", "hh")}
        return getattr(m, self.paddle_name)(
            spec.input_size,
            spec.hidden_size,
            spec.num_layers,
            direction="bidirect" if spec.bidirectional else "forward",
            time_major=False,
            weight_ih_attr=m._placeholder(),
            weight_hh_attr=m._placeholder(),
            bias_ih_attr=bias["ih"],
            bias_hh_attr=bias["hh"],
            **recurrent_keywords(spec, "activation"),
        )

    def natives(self):
        return (getattr(_paddle().nn, self.paddle_name),)

    def read(self, m):
        first = m[0]
        cell = first.cell_fw if m.num_directions == 2 else first.cell

        def has(name):
            p = getattr(cell, name)
            return not (p.stop_gradient and not bool((p != 0).any()))  # a frozen zero: none

        ih, hh = has("bias_ih"), has("bias_hh")
        bias = True if ih and hh else "ih" if ih else "hh" if hh else False
        spec = getattr(L, self.native_name)
        extra = {"nonlinearity": m.activation} if spec.kind == "rnn" else {}
        if spec.kind == "lstm":
            extra = {"proj_size": m.proj_size}
        return spec(m.input_size, m.hidden_size, m.num_layers, bias, m.num_directions == 2, **extra)


_PADDLE_RNN_NAMES = {"RNN": "SimpleRNN"}  # Paddle's class where its name is not the spec's
LSTM, GRU, RNN = register_recurrent(REGISTRY, _Recurrent)


# The element-wise activations: kind -> the paddle.nn layer for a spec (one line a kind, as
# timm's create_act.py; a tracer reads the same table).
ACTIVATIONS = {
    "relu": lambda s: _paddle().nn.ReLU(),
    "leaky_relu": lambda s: _paddle().nn.LeakyReLU(s.negative_slope),
    "gelu": lambda s: _paddle().nn.GELU(approximate=s.approximate == "tanh"),
    "silu": lambda s: _paddle().nn.Silu(),
    "sigmoid": lambda s: _paddle().nn.Sigmoid(),
    "tanh": lambda s: _paddle().nn.Tanh(),
    "hardswish": lambda s: _paddle().nn.Hardswish(),
    "identity": lambda s: _paddle().nn.Identity(),
}

# Parameter-free layers: the native layer from the spec, nothing else.
register_builders(
    REGISTRY,
    {
        **ACTIVATIONS,
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
