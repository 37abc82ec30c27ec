"""One lowering per layer kind for Flax NNX: the native module and its parameter map.

Flax holds kernels channel-last: Linear ``(in, out)``, Conv ``(*k, in/groups, out)``,
ConvTranspose ``(*k, in, out/groups)``; the leaves are ``kernel``, ``scale`` (norms),
``embedding``, and BatchNorm's ``mean``/``var`` (no step counter). Layers with parameters
take ``initial`` and create each parameter with the value xinit drew for it
(``modules.initializer``); a parameter it has no value for gets a zero placeholder.
"""

from __future__ import annotations

from xinit import layers as L
from xinit.parammap import Leaf

from ..registry import Lowering, Registry, register_builders


def layout(role: str, ndim: int) -> tuple[int, ...] | None:
    """Flax's layout of each fan role, as a permutation of the neutral (PyTorch) axes."""
    if role == "linear":
        return (1, 0)
    if role == "conv":  # (out, in/g, *k) -> (*k, in/g, out)
        return (*range(2, ndim), 1, 0)
    if role == "conv_transpose":  # (in, out/g, *k) -> (*k, in, out/g)
        return (*range(2, ndim), 0, 1)
    return None


REGISTRY = Registry("flax", layout)


def _nnx():
    from flax import nnx

    return nnx


def _ints(value, n: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (int(value),) * n


def _padding(m, n: int) -> tuple[int, ...] | int:
    """An nnx conv's symmetric explicit padding as PyTorch's, else 0 ('SAME', 'VALID' and
    asymmetric paddings have no PyTorch equivalent; they decide no parameter)."""
    pad = m.padding
    if isinstance(pad, int):
        return pad
    if isinstance(pad, (tuple, list)) and len(pad) == n:
        pairs = [p if isinstance(p, (tuple, list)) else (p, p) for p in pad]
        if all(len(p) == 2 and p[0] == p[1] for p in pairs):
            return tuple(int(p[0]) for p in pairs)
    return 0


def _modules():
    from . import modules

    return modules


_KERNEL = {"weight": "kernel"}


@REGISTRY.register("conv")
class Conv(Lowering):
    layout = "channels"
    leaves = _KERNEL
    takes_initial = True

    def build(self, spec, device, initial=None):
        nnx, init = _nnx(), _modules().initializer
        return nnx.Conv(
            spec.in_channels,
            spec.out_channels,
            spec.kernel_size,
            strides=spec.stride,
            padding=[(p, p) for p in spec.padding],
            kernel_dilation=spec.dilation,
            feature_group_count=spec.groups,
            use_bias=spec.bias,
            kernel_init=init(initial, "kernel"),
            bias_init=init(initial, "bias"),
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Conv,)

    def read(self, m):
        k = tuple(m.kernel_size)
        return L.Conv(
            m.in_features,
            m.out_features,
            k,
            _ints(m.strides or 1, len(k)),
            _padding(m, len(k)),
            _ints(m.kernel_dilation or 1, len(k)),
            m.feature_group_count,
            m.use_bias,
        )


@REGISTRY.register("conv_transpose")
class ConvTranspose(Lowering):
    layout = "channels"
    leaves = _KERNEL
    takes_initial = True

    def build(self, spec, device, initial=None):
        return _modules().ConvTranspose(spec, initial)

    def natives(self):
        return (_nnx().ConvTranspose, _modules().ConvTranspose)

    def read(self, m):
        if isinstance(m, _modules().ConvTranspose):
            return m.spec
        if m.transpose_kernel:  # kernel (*k, out, in): not the layout this map describes
            return None
        k = tuple(m.kernel_size)  # nnx's own padding and strides differ from PyTorch's
        return L.ConvTranspose(m.in_features, m.out_features, k, bias=m.use_bias)


@REGISTRY.register("batchnorm")
class BatchNorm(Lowering):
    """``nnx.BatchNorm`` over the channel-last axis with nnx's momentum (``spec.decay``, the
    weight of the running value) and its own training rule (biased running variance); with
    ``train_stats="torch"`` xinit's subclass (``modules.TorchBatchNorm``)."""

    layout = "channels"
    leaves = {
        "weight": "scale",
        "running_mean": "mean",
        "running_var": "var",
        "num_batches_tracked": None,
    }
    takes_initial = True

    def build(self, spec, device, initial=None):
        cls = _modules().TorchBatchNorm if spec.train_stats == "torch" else _nnx().BatchNorm
        return _modules().norm_layer(
            cls,
            spec.num_features,
            initial,
            spec.affine,
            spec.affine,
            momentum=spec.decay,
            epsilon=spec.eps,
        )

    def natives(self):
        return (_nnx().BatchNorm,)

    def read(self, m):
        if m.axis not in (-1,) or m.use_scale != m.use_bias:  # not the map described here
            return None
        return L.BatchNorm(
            m.num_features,
            m.epsilon,
            L.BatchNorm.momentum_from_decay(m.momentum),
            m.use_scale,
            train_stats="torch" if isinstance(m, _modules().TorchBatchNorm) else "native",
        )


@REGISTRY.register("linear")
class Linear(Lowering):
    layout = "sequence"
    leaves = _KERNEL
    takes_initial = True

    def build(self, spec, device, initial=None):
        nnx, init = _nnx(), _modules().initializer
        return nnx.Linear(
            spec.in_features,
            spec.out_features,
            use_bias=spec.bias,
            kernel_init=init(initial, "kernel"),
            bias_init=init(initial, "bias"),
            rngs=nnx.Rngs(0),
        )

    def natives(self):
        return (_nnx().Linear,)

    def read(self, m):
        return L.Linear(m.in_features, m.out_features, m.use_bias)


@REGISTRY.register("embedding")
class Embedding(Lowering):
    layout = "sequence"
    leaves = {"weight": "embedding"}
    takes_initial = True

    def build(self, spec, device, initial=None):
        m = _modules()
        init = m.initializer(initial, "embedding")
        rngs = _nnx().Rngs(0)
        return _nnx().Embed(spec.num_embeddings, spec.embedding_dim, embedding_init=init, rngs=rngs)

    def natives(self):
        return (_nnx().Embed,)

    def read(self, m):
        return L.Embedding(m.num_embeddings, m.features)


_SCALE = {"weight": "scale"}


@REGISTRY.register("layernorm")
class LayerNorm(Lowering):
    """``nnx.LayerNorm`` over the last dim. Over several dims, xinit's module: nnx keeps its
    scale and bias 1-D, where the neutral map has them in ``normalized_shape``."""

    layout = "sequence"
    leaves = _SCALE
    takes_initial = True

    def build(self, spec, device, initial=None):
        if len(spec.normalized_shape) > 1:
            return _modules().LayerNorm(spec, initial)
        affine = spec.elementwise_affine
        (features,) = spec.normalized_shape
        return _modules().norm_layer(
            _nnx().LayerNorm, features, initial, affine, affine and spec.bias, epsilon=spec.eps
        )

    def natives(self):
        return (_nnx().LayerNorm, _modules().LayerNorm)

    def read(self, m):
        if isinstance(m, _modules().FeatureNorm):
            return m.spec
        if not m.use_scale and m.use_bias:  # a bias alone: no neutral LayerNorm
            return None
        bias = m.use_bias if m.use_scale else True
        return L.LayerNorm(m.num_features, m.epsilon, m.use_scale, bias)


@REGISTRY.register("rmsnorm")
class RMSNorm(Lowering):
    """``nnx.RMSNorm`` over the last dim with the spec's eps. xinit's module over several
    dims (nnx's scale is 1-D) and for ``eps=None``, PyTorch's machine epsilon of the input's
    dtype, which a fixed ``epsilon`` cannot follow."""

    layout = "sequence"
    leaves = _SCALE
    takes_initial = True

    def build(self, spec, device, initial=None):
        if len(spec.normalized_shape) > 1 or spec.eps is None:
            return _modules().RMSNorm(spec, initial)
        (features,) = spec.normalized_shape
        return _modules().norm_layer(
            _nnx().RMSNorm, features, initial, spec.elementwise_affine, None, epsilon=spec.eps
        )

    def natives(self):
        return (_nnx().RMSNorm, _modules().RMSNorm)

    def read(self, m):
        if isinstance(m, _modules().FeatureNorm):
            return m.spec
        return L.RMSNorm(m.num_features, m.epsilon, m.use_scale)


@REGISTRY.register("groupnorm")
class GroupNorm(Lowering):
    """``nnx.GroupNorm``: contiguous channel groups on the channel-last axis, statistics over
    every position of a sample, as PyTorch's."""

    layout = "channels"
    leaves = _SCALE
    takes_initial = True

    def build(self, spec, device, initial=None):
        return _modules().norm_layer(
            _nnx().GroupNorm,
            spec.num_channels,
            initial,
            spec.affine,
            spec.affine,
            num_groups=spec.num_groups,
            epsilon=spec.eps,
        )

    def natives(self):
        return (_nnx().GroupNorm,)

    def read(self, m):
        if m.use_scale != m.use_bias:  # one of the two: no neutral GroupNorm
            return None
        return L.GroupNorm(m.num_groups, m.num_groups * m.group_size, m.epsilon, m.use_scale)


def _heads(spec, name: str, rows: int, part: tuple[int, int, int] | None) -> Leaf:
    """One (in, H, D) ``LinearGeneral`` kernel: a neutral (E, in) block, transposed, heads split."""
    return Leaf(name, (1, 0), part=part, shape=(rows, spec.num_heads, spec.head_dim))


@REGISTRY.register("multihead_attention")
class MultiheadAttention(Lowering):
    """``nnx.MultiHeadAttention``: ``query``/``key``/``value`` kernels (in, H, D) and ``out``
    kernel (H, D, E), the neutral packed rows (or PyTorch's separate ``q/k/v_proj_weight``
    with kdim/vdim) transposed and split by head. Takes and returns the neutral (N, L, E)."""

    layout = "sequence"

    def params(self, spec):
        e, h, d = spec.embed_dim, spec.num_heads, spec.head_dim
        names = ("query", "key", "value")
        if spec.packed:
            out = {
                "in_proj_weight": tuple(
                    _heads(spec, f"{n}.kernel", e, (0, i * e, (i + 1) * e))
                    for i, n in enumerate(names)
                )
            }
        else:
            rows = (e, spec.key_features, spec.value_features)
            out = {
                f"{p}_proj_weight": (_heads(spec, f"{n}.kernel", r, None),)
                for p, n, r in zip("qkv", names, rows)
            }
        out["out_proj.weight"] = (Leaf("out.kernel", (1, 0), shape=(h, d, e)),)
        if spec.bias:
            out["in_proj_bias"] = tuple(
                Leaf(f"{n}.bias", part=(0, i * e, (i + 1) * e), shape=(h, d))
                for i, n in enumerate(names)
            )
            out["out_proj.bias"] = (Leaf("out.bias"),)
        return out

    def build(self, spec, device):
        return _modules().Attention(spec)

    def natives(self):
        return (_nnx().MultiHeadAttention,)

    def read(self, m):
        if isinstance(m, _modules().Attention):
            return m.spec
        e = m.in_features
        plain = m.num_kv_heads == m.num_heads and not m.normalize_qk
        if m.qkv_features != e or m.out_features != e or not plain:
            return None
        kv = m.in_kv_features
        return L.MultiheadAttention(e, m.num_heads, m.use_bias, kdim=kv, vdim=kv)


@REGISTRY.register("sdpa")
class ScaledDotProductAttention(Lowering):
    layout = "sequence"

    def build(self, spec, device):
        return _modules().ScaledDotProductAttention(spec)


@REGISTRY.register("learned_parameter")
class LearnedParameter(Lowering):
    """The native layer is the ``nnx.Param`` itself (its op in the metadata): the enclosing
    container holds it as the attribute named as the node (``cls_token``) and applies it."""

    layout = "sequence"
    takes_initial = True

    def build(self, spec, device, initial=None):
        return _modules().learned_parameter(spec, initial)


@REGISTRY.register("select")
class Select(Lowering):
    layout = "neutral"

    def build(self, spec, device):
        return _modules().Select(spec)


@REGISTRY.register("position_ids")
class PositionIds(Lowering):
    layout = "neutral"

    def build(self, spec, device):
        return _modules().PositionIds()


# Per-gate names of xinit's cells, input side then hidden side, in PyTorch's gate order:
# nnx.LSTMCell's own names (``if_``: ``if`` is a keyword), and a GRU's in the same style.
GATES = {
    "lstm": (("ii", "if_", "ig", "io"), ("hi", "hf", "hg", "ho")),
    "gru": (("ir", "iz", "in_"), ("hr", "hz", "hn")),
}
_FLAX_CELL = "_xinit_flax_cell"  # on a spec read from one of Flax's own cells: its class name


FLAX_CELLS = {  # Flax's own cells: (spec, the one bias they keep)
    "LSTMCell": (L.LSTM, "hh"),
    "OptimizedLSTMCell": (L.LSTM, "hh"),
    "GRUCell": (L.GRU, "ih"),  # dense_i's bias; no b_hn
}


def cell_spec(cell: str, n_in: int, hidden: int):
    """The one-bias spec of Flax's own cell class ``cell`` (its math is PyTorch's with the
    other bias zero), marked so that its map is that cell's own layout."""
    spec_cls, bias = FLAX_CELLS[cell]
    spec = spec_cls(n_in, hidden, bias=bias)
    object.__setattr__(spec, _FLAX_CELL, cell)
    return spec


def _per_gate(prefix: str, names, leaf: str, h: int, perm) -> tuple[Leaf, ...]:
    """A neutral gate-stacked tensor as one native tensor per gate (rows j*H:(j+1)*H)."""
    return tuple(
        Leaf(f"{prefix}{name}.{leaf}", perm, part=(0, j * h, (j + 1) * h))
        for j, name in enumerate(names)
    )


class _Recurrent(Lowering):
    """xinit's :class:`modules.Recurrent` (PyTorch's math, both biases; cells ``l{k}`` and
    ``l{k}_reverse`` with per-gate kernels (in, H)), which takes and returns the neutral
    (N, L, D) sequence. Flax's own cells are read too, as one-bias specs (their math is
    PyTorch's with the other bias zero), through their own layouts: ``nnx.LSTMCell``
    (per-gate ``ii.kernel`` ... ``ho.bias``), ``nnx.OptimizedLSTMCell`` (``dense_i``/
    ``dense_h`` kernels (in, 4H)) and ``nnx.GRUCell`` (``dense_i`` with the bias,
    ``dense_h`` (H, 3H)); ``xinit.apply`` then sets their input and recurrent kernels by
    role, and state/port move them (a torch/paddle module needs both biases: see
    ``docs/architecture.md``)."""

    layout = "sequence"
    native_name = ""

    def params(self, spec):
        cell = getattr(spec, _FLAX_CELL, None)
        if cell is not None:
            return self._native_cell_params(spec, cell)
        names = {p.name for p in spec.params()}
        h = spec.hidden_size
        inputs, hidden = GATES[spec.kind]
        out = {}
        for k, sfx in spec.cells():
            prefix, tail = f"l{k}{sfx}.", f"l{k}{sfx}"
            out[f"weight_ih_{tail}"] = _per_gate(prefix, inputs, "kernel", h, (1, 0))
            out[f"weight_hh_{tail}"] = _per_gate(prefix, hidden, "kernel", h, (1, 0))
            if f"bias_ih_{tail}" in names:
                out[f"bias_ih_{tail}"] = _per_gate(prefix, inputs, "bias", h, None)
            if f"bias_hh_{tail}" in names:
                out[f"bias_hh_{tail}"] = _per_gate(prefix, hidden, "bias", h, None)
        return out

    def _native_cell_params(self, spec, cell: str):
        h = spec.hidden_size
        if cell == "LSTMCell":
            inputs, hidden = GATES["lstm"]
            return {
                "weight_ih_l0": _per_gate("", inputs, "kernel", h, (1, 0)),
                "weight_hh_l0": _per_gate("", hidden, "kernel", h, (1, 0)),
                "bias_hh_l0": _per_gate("", hidden, "bias", h, None),
            }
        bias = "bias_hh_l0" if cell == "OptimizedLSTMCell" else "bias_ih_l0"
        dense = "dense_h" if cell == "OptimizedLSTMCell" else "dense_i"
        return {
            "weight_ih_l0": (Leaf("dense_i.kernel", (1, 0)),),
            "weight_hh_l0": (Leaf("dense_h.kernel", (1, 0)),),
            bias: (Leaf(f"{dense}.bias"),),
        }

    def build(self, spec, device):
        if getattr(spec, _FLAX_CELL, None) is not None:
            raise TypeError(
                f"{spec!r} was read from Flax's own {getattr(spec, _FLAX_CELL)}; xinit builds "
                f"its own module: build {type(spec).__name__}(...) made anew"
            )
        return getattr(_modules(), self.native_name)(spec, GATES[spec.kind])


@REGISTRY.register("lstm")
class LSTM(_Recurrent):
    native_name = "LSTM"

    def natives(self):
        nnx = _nnx()
        return (_modules().LSTM, nnx.LSTMCell, nnx.OptimizedLSTMCell)

    def read(self, m):
        if isinstance(m, _modules().Recurrent):
            return m.spec
        return cell_spec(type(m).__name__, m.in_features, m.hidden_features)


@REGISTRY.register("gru")
class GRU(_Recurrent):
    native_name = "GRU"

    def natives(self):
        return (_modules().GRU, _nnx().GRUCell)

    def read(self, m):
        if isinstance(m, _modules().Recurrent):
            return m.spec
        return cell_spec(type(m).__name__, m.in_features, m.hidden_features)


@REGISTRY.register("flatten")
class Flatten(Lowering):
    """Flattening all but the batch dim reads a channel-last image in channel-first order
    (so a following Linear's weights are PyTorch's); any other flatten is a neutral reshape."""

    def build(self, spec, device):
        whole = (spec.start_dim, spec.end_dim) == (1, -1)
        return _modules().Flatten() if whole else _modules().Neutral(spec)

    def layout_for(self, spec):
        return "channels" if (spec.start_dim, spec.end_dim) == (1, -1) else "neutral"


# Parameter-free layers: the native module from the spec, nothing else. Element-wise
# activations share one module type, which applies the function the spec's kind names.
register_builders(
    REGISTRY,
    {
        "max_pool": lambda s: _modules().Pool(s),
        "avg_pool": lambda s: _modules().Pool(s),
        "adaptive_avg_pool": lambda s: _modules().AdaptiveAvgPool(s),
        "reshape": lambda s: _modules().Neutral(s),
        "permute": lambda s: _modules().Neutral(s),
        "dropout": lambda s: _nnx().Dropout(s.p, rngs=_nnx().Rngs(dropout=0)),
        "add": lambda s: _modules().Merge(s),
        "mul": lambda s: _modules().Merge(s),
        "concat": lambda s: _modules().Merge(s),
        "upsample": lambda s: _modules().Upsample(s),
        **{
            kind: lambda s: _modules().Activation(s)
            for kind in ("relu", "leaky_relu", "gelu", "silu", "sigmoid", "tanh", "identity")
        },
    },
)

# How the parameter-free modules hold activations (see Lowering.layout); the rest are "any".
for _kind, _layout in {
    "max_pool": "channels",
    "avg_pool": "channels",
    "adaptive_avg_pool": "channels",
    "upsample": "channels",
    "reshape": "neutral",
    "permute": "neutral",
}.items():
    REGISTRY[_kind].layout = _layout
