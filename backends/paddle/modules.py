"""The native Paddle layers xinit builds: BatchNorm with PyTorch's training statistics (on
request), ceil-mode pools with PyTorch's window rule, transposed convs with PyTorch's
output_padding, and containers."""

from __future__ import annotations

import math

import numpy as np
import paddle

from xinit import layers as L
from xinit.layers.window import CPB_HIDDEN

from ..common import pytorch_style as shared
from ..common.resample import upsample_matrix
from ..common.window_attention import window_attention

nn = paddle.nn
F = paddle.nn.functional


class PaddleOps(shared.FrameworkOps):
    """Paddle's side of the shared PyTorch-style modules (``backends/common/pytorch_style.py``)."""

    def _adopt_child(self, name, child):
        self.add_sublayer(name, child)

    def _adopt_param(self, name, param):
        self.add_parameter(name, param)

    def _children_by_name(self):
        return self._sub_layers

    @staticmethod
    def _concat(xs, dim):
        return paddle.concat(xs, axis=dim)

    @staticmethod
    def _permute(x, dims):
        return x.transpose(list(dims))

    @staticmethod
    def _bernoulli(shape, p, like):
        return paddle.bernoulli(paddle.full(shape, p, dtype=like.dtype))


def learned_parameter(spec):
    """The parameter of a learned-parameter node (a zero fill xinit overwrites), carrying its
    op for the container that adopts it."""
    zero = nn.initializer.Constant(0.0)
    param = paddle.create_parameter(list(spec.shape), "float32", default_initializer=zero)
    param._xinit_op = spec.op
    return param


def _placeholder() -> paddle.ParamAttr:
    """A zero fill for weights xinit draws right after: skips Paddle's random default init."""
    return paddle.ParamAttr(initializer=nn.initializer.Constant(0.0))


class RMSNorm(nn.Layer):
    """PyTorch's ``nn.RMSNorm`` (Paddle 3.3 has none): x / sqrt(mean(x**2) + eps) over the
    last dims of ``spec.normalized_shape``, times ``weight``."""

    def __init__(self, spec: L.RMSNorm):
        super().__init__()
        self.spec = spec
        if spec.elementwise_affine:
            one = nn.initializer.Constant(1.0)
            self.weight = self.create_parameter(
                list(spec.normalized_shape), default_initializer=one
            )
        else:
            self.weight = None

    def forward(self, x):
        axes = list(range(x.ndim - len(self.spec.normalized_shape), x.ndim))
        eps = self.spec.eps_for(str(x.dtype).split(".")[-1])
        y = x * paddle.rsqrt((x * x).mean(axis=axes, keepdim=True) + eps)
        return y * self.weight if self.weight is not None else y


class _TorchStats:
    """Paddle's BatchNorm with PyTorch's training statistics (``BatchNorm(train_stats="torch")``).

    Paddle's own layer stores the biased batch variance; PyTorch stores the unbiased one, so
    training-mode updates are computed here. ``_momentum`` keeps Paddle's convention (the
    weight of the running value, 0.9 for PyTorch's 0.1), so Paddle's tools read it right.
    Eval mode is Paddle's own forward.
    """

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        # Mean over the spatial axes first, then the batch: Paddle's one-pass fp32 reduction
        # over (N, *spatial) is ~30x less accurate than PyTorch's and would show in parity.
        spatial = list(range(2, x.ndim))

        def batch_mean(t):
            return (t.mean(axis=spatial) if spatial else t).mean(axis=0)

        shape = [1, -1] + [1] * (x.ndim - 2)
        mean = batch_mean(x)
        var = batch_mean((x - mean.reshape(shape)) ** 2)
        n = int(np.prod(x.shape)) // x.shape[1]  # x.numel() is a Tensor, not an int
        with paddle.no_grad():
            m = 1.0 - self._momentum  # PyTorch's momentum: the weight of the batch
            unbiased = var * (float(n) / max(float(n) - 1.0, 1.0))
            paddle.assign((1 - m) * self._mean + m * mean, self._mean)
            paddle.assign((1 - m) * self._variance + m * unbiased, self._variance)
        y = (x - mean.reshape(shape)) / paddle.sqrt(var.reshape(shape) + self._epsilon)
        if self.weight is not None:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


TORCH_BATCHNORM = tuple(
    type(f"Torch{cls.__name__}", (_TorchStats, cls), {"__doc__": _TorchStats.__doc__})
    for cls in (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D)
)


class Steps(shared.Steps, PaddleOps, nn.Layer):
    """Steps that may reuse a child or hold a learned-parameter node (``shared.Steps``)."""


class Residual(shared.Residual, PaddleOps, nn.Layer):
    """activation(body(x) + shortcut(x)) (``shared.Residual``)."""


class CeilPool(nn.Layer):
    """Max or average pooling in ceil mode with PyTorch's rule (the neutral one).

    In ceil mode Paddle keeps a last window that starts inside the right padding; PyTorch
    drops it. The windows both keep are computed alike, so Paddle's extra one is cut off.
    """

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def forward(self, x):
        s = self.spec
        kw = {
            "kernel_size": list(s.kernel_size),
            "stride": list(s.stride),
            "padding": list(s.padding),
            "ceil_mode": True,
        }
        if s.kind == "max_pool":
            y = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[s.dims - 1](x, **kw)
        else:
            pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[s.dims - 1]
            y = pool(x, exclusive=not s.count_include_pad, **kw)
        sizes = [
            L.pool_out(n, k, st, p, True)
            for n, k, st, p in zip(x.shape[2:], s.kernel_size, s.stride, s.padding)
        ]
        if list(y.shape[2:]) == sizes:
            return y
        return y[(slice(None), slice(None), *(slice(0, o) for o in sizes))]


class _PaddedTranspose:
    """A transposed convolution whose output_padding reaches its stride (PyTorch allows it up
    to the dilation, Paddle refuses): computed with no padding, then cut to PyTorch's window,
    zero-filled (plus bias) where output_padding reaches past the full output."""

    spec: L.ConvTranspose

    def forward(self, x):
        s = self.spec
        fn = (F.conv1d_transpose, F.conv2d_transpose, F.conv3d_transpose)[s.dims - 1]
        y = fn(
            x,
            self.weight,
            None,
            stride=list(s.stride),
            padding=0,
            groups=s.groups,
            dilation=list(s.dilation),
        )
        for axis, (p, op) in enumerate(zip(s.padding, s.output_padding), start=2):
            full = y.shape[axis]
            end = full - p + op
            y = paddle.slice(y, [axis], [p], [min(end, full)])
            if end > full:
                shape = list(y.shape)
                shape[axis] = end - full
                y = paddle.concat([y, paddle.zeros(shape, y.dtype)], axis=axis)
        if self.bias is not None:
            y = y + self.bias.reshape([1, -1] + [1] * s.dims)
        return y


PADDED_TRANSPOSE = tuple(
    type(f"Padded{cls.__name__}", (_PaddedTranspose, cls), {})
    for cls in (nn.Conv1DTranspose, nn.Conv2DTranspose, nn.Conv3DTranspose)
)


class Graph(shared.Graph, PaddleOps, nn.Layer):
    """A graph's nodes in topological order (``shared.Graph``)."""


class Merge(shared.Merge, PaddleOps, nn.Layer):
    """add, mul, sub, div (broadcast) or concat (along the neutral dim) of the inputs."""


class Function(shared.Function, PaddleOps, nn.Layer):
    """A parameter-free op of the functional table (``lowerings.FUNCTIONS``) on the inputs."""

    def extra_repr(self):
        return repr(self.spec)


class StochasticDepth(shared.StochasticDepth, PaddleOps, nn.Layer):
    """torchvision's ``StochasticDepth(p, "row")`` (``shared.StochasticDepth``)."""


class Upsample(nn.Layer):
    """PyTorch's interpolate, one spatial axis at a time as a product with the axis's
    resize matrix (``backends/common/resample.py``): Paddle's own interpolate has other
    defaults (align_mode) and rounding of the source index."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec

    def forward(self, x):
        sizes = tuple(int(n) for n in x.shape[2:])
        outs = self.spec.out_sizes(sizes)
        factors = self.spec.factors(len(sizes)) or (None,) * len(sizes)
        for axis, (n, o, f) in enumerate(zip(sizes, outs, factors), start=2):
            m = paddle.to_tensor(_matrix(self.spec, n, o, f).T, dtype=x.dtype)
            perm = [i for i in range(x.ndim) if i != axis] + [axis]
            back = list(np.argsort(perm))
            x = paddle.matmul(x.transpose(perm), m).transpose(back)
        return x


def _matrix(spec, n, o, f) -> np.ndarray:
    return upsample_matrix(spec, n, o, f).astype(np.float32)


class Reshape(shared.Reshape, PaddleOps, nn.Layer):
    """``x.reshape([N, *shape])``."""


class Permute(shared.Permute, PaddleOps, nn.Layer):
    """``x.transpose(dims)`` (PyTorch's permute)."""


class Attention(nn.MultiHeadAttention):
    """Paddle's ``nn.MultiHeadAttention`` (the same parameters and names) on a node's inputs
    (``spec.split_inputs``), with PyTorch's mask meaning: Paddle takes one mask in which a bool
    True KEEPS a position, so the masks are combined here into the float mask both agree on
    (-inf where PyTorch's bool mask is True, float masks added), (N|1, H|1, L, S)."""

    def __init__(self, spec: L.MultiheadAttention):
        super().__init__(
            spec.embed_dim,
            spec.num_heads,
            kdim=spec.kdim,
            vdim=spec.vdim,
            weight_attr=_placeholder(),
            bias_attr=None if spec.bias else False,
        )
        self.spec = spec

    def forward(self, *xs):
        q, k, v, attn_mask, pad = self.spec.split_inputs(xs)
        mask = self.spec.score_bias(
            paddle, q, k, attn_mask, pad, constant=lambda a: paddle.to_tensor(a, place=q.place)
        )
        return super().forward(q, k, v, attn_mask=mask)


class GroupedQueryAttention(nn.Layer):
    """Grouped-query attention (``spec.num_kv_heads`` < num_heads), which Paddle's
    ``nn.MultiHeadAttention`` cannot compute: its ``q_proj``/``k_proj``/``v_proj``/``out_proj``
    names, ``k_proj``/``v_proj`` with K·D outputs, each key/value head shared by H/K query
    heads (query head i uses i // (H/K)), the node's masks as one additive float mask."""

    def __init__(self, spec: L.MultiheadAttention):
        super().__init__()
        self.spec = spec
        bias = None if spec.bias else False
        ins = (spec.embed_dim, spec.key_features, spec.value_features)
        for name, n_in, rows in zip("qkv", ins, spec.proj_rows):
            layer = nn.Linear(n_in, rows, weight_attr=_placeholder(), bias_attr=bias)
            setattr(self, f"{name}_proj", layer)
        e = spec.embed_dim
        self.out_proj = nn.Linear(e, e, weight_attr=_placeholder(), bias_attr=bias)

    def forward(self, *xs):
        s = self.spec
        q, k, v, attn_mask, pad = s.split_inputs(xs)
        mask = s.score_bias(
            paddle, q, k, attn_mask, pad, constant=lambda a: paddle.to_tensor(a, place=q.place)
        )
        group = s.num_heads // s.kv_heads
        heads = []
        for x, proj, n in (
            (q, self.q_proj, s.num_heads),
            (k, self.k_proj, s.kv_heads),
            (v, self.v_proj, s.kv_heads),
        ):
            y = proj(x).reshape([x.shape[0], x.shape[1], n, s.head_dim]).transpose([0, 2, 1, 3])
            heads.append(y if n == s.num_heads else paddle.repeat_interleave(y, group, axis=1))
        qh, kh, vh = heads
        scores = paddle.matmul(qh, kh, transpose_y=True) / math.sqrt(s.head_dim)
        if mask is not None:
            scores = scores + mask
        y = paddle.matmul(nn.functional.softmax(scores, axis=-1), vh)
        return self.out_proj(y.transpose([0, 2, 1, 3]).reshape([q.shape[0], q.shape[1], -1]))


class ScaledDotProductAttention(nn.Layer):
    """Packed (N, L, 3E) q, k, v rows -> heads -> softmax(q k^T / sqrt(d)) v -> (N, L, E), in
    plain ops (Paddle's fused kernel wants a GPU and its own (N, L, H, D) layout).
    ``blocked`` (L, L), bool, True where a key is masked out (``local_window``): added to the
    scores as -inf before the softmax, as SVTR's ``Local`` mixer; a plain attribute, no state
    key. ``attn_mask``: a float mask added to the scores (the spec's second input)."""

    def __init__(self, num_heads: int, causal: bool = False, blocked=None):
        super().__init__()
        self.num_heads, self.causal = num_heads, causal
        self.blocked = blocked  # numpy: made a tensor on the input's place in forward

    def forward(self, x, attn_mask=None):
        n, length, packed = x.shape
        e = packed // 3
        d = e // self.num_heads
        qkv = x.reshape([n, length, 3, self.num_heads, d]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = paddle.matmul(q, k, transpose_y=True) * (1.0 / float(np.sqrt(d)))
        if self.causal:
            keep = paddle.tril(paddle.ones([length, length], dtype="bool"))
            scores = paddle.where(keep, scores, paddle.full_like(scores, float("-inf")))
        if self.blocked is not None:
            bias = np.where(self.blocked, -np.inf, 0.0).astype(np.float32)
            scores = scores + paddle.to_tensor(bias, dtype=scores.dtype, place=x.place)
        if attn_mask is not None:
            scores = scores + attn_mask
        y = paddle.matmul(F.softmax(scores, axis=-1), v)
        return y.transpose([0, 2, 1, 3]).reshape([n, length, e])


class Select(shared.Select, PaddleOps, nn.Layer):
    """``x.select(dim, index)`` (ViT's class-token pooling ``x[:, 0]``)."""


class PositionIds(nn.Layer):
    """Token ids (N, L) -> their positions ``arange(L)`` per sample (N, L), int64."""

    def forward(self, x):
        n, length = x.shape
        return paddle.arange(length, dtype="int64").unsqueeze(0).expand([n, length])


class LSTM(shared.SequenceOnly, nn.LSTM):
    """``paddle.nn.LSTM`` returning the output sequence (see ``shared.SequenceOnly``)."""


class GRU(shared.SequenceOnly, nn.GRU):
    """``paddle.nn.GRU`` returning the output sequence (see ``shared.SequenceOnly``)."""


class LayerNorm2d(nn.Layer):
    """A LayerNorm over the channels (axis 1) of an (N, C, *) input, as timm's and
    torchvision's ``LayerNorm2d``: moved last, ``F.layer_norm``, moved back."""

    def __init__(self, spec: L.LayerNorm2d):
        super().__init__()
        self.spec = spec
        c, affine = [spec.num_channels], spec.elementwise_affine
        one = nn.initializer.Constant(1.0)
        self.weight = self.create_parameter(c, default_initializer=one) if affine else None
        has_bias = affine and spec.bias
        self.bias = self.create_parameter(c, is_bias=True) if has_bias else None

    def forward(self, x):
        last = [0, *range(2, x.ndim), 1]
        back = [0, x.ndim - 1, *range(1, x.ndim - 1)]
        c = self.spec.num_channels
        y = F.layer_norm(x.transpose(last), [c], self.weight, self.bias, self.spec.eps)
        return y.transpose(back)


class LayerScale(nn.Layer):
    """``x * gamma``: a learned per-channel multiplier (timm's ``LayerScale``, key ``gamma``)."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        value = nn.initializer.Constant(float(spec.init_value))
        self.gamma = self.create_parameter(list(spec.shape), default_initializer=value)

    def forward(self, x):
        return x * self.gamma


class InstanceNorm(nn.Layer):
    """PyTorch's InstanceNorm with running statistics (Paddle's own keeps none): ``scale``/
    ``bias`` named as Paddle's, ``_mean``/``_variance`` as BatchNorm's. Training: each
    sample's statistics, the running ones moved by their batch average (unbiased variance);
    eval: the running ones, as PyTorch's."""

    def __init__(self, spec: L.InstanceNorm):
        super().__init__()
        self.spec = spec
        c = [spec.num_features]
        if spec.affine:
            one = nn.initializer.Constant(1.0)
            self.scale = self.create_parameter(c, default_initializer=one)
            self.bias = self.create_parameter(c, is_bias=True)
        else:
            self.scale = self.bias = None
        keep = paddle.ParamAttr(trainable=False)
        zero, one = nn.initializer.Constant(0.0), nn.initializer.Constant(1.0)
        self._mean = self.create_parameter(c, attr=keep, default_initializer=zero)
        self._variance = self.create_parameter(c, attr=keep, default_initializer=one)
        self._mean.stop_gradient = self._variance.stop_gradient = True

    def forward(self, x):
        shape = [1, -1] + [1] * (x.ndim - 2)
        if self.training:
            axes = list(range(2, x.ndim))
            mean = x.mean(axis=axes, keepdim=True)
            var = ((x - mean) ** 2).mean(axis=axes, keepdim=True)
            n = float(np.prod(x.shape[2:]))
            with paddle.no_grad():
                m = self.spec.momentum
                unbiased = var * (n / max(n - 1.0, 1.0))
                new_mean = (1 - m) * self._mean + m * mean.mean(axis=0).reshape([-1])
                new_var = (1 - m) * self._variance + m * unbiased.mean(axis=0).reshape([-1])
                paddle.assign(new_mean, self._mean)
                paddle.assign(new_var, self._variance)
        else:
            mean, var = self._mean.reshape(shape), self._variance.reshape(shape)
        y = (x - mean) / paddle.sqrt(var + self.spec.eps)
        if self.scale is not None:
            y = y * self.scale.reshape(shape) + self.bias.reshape(shape)
        return y


class SimpleRNN(shared.SequenceOnly, nn.SimpleRNN):
    """``paddle.nn.SimpleRNN`` returning the output sequence (see ``shared.SequenceOnly``)."""


class _WindowOps:
    """Paddle's spelling of the ops of ``common.window_attention``."""

    pad = staticmethod(lambda x, bottom, right: F.pad(x, [0, 0, 0, bottom, 0, right, 0, 0]))
    roll = staticmethod(lambda x, shifts: paddle.roll(x, shifts=shifts, axis=(1, 2)))
    permute = staticmethod(lambda x, dims: x.transpose(list(dims)))
    take = staticmethod(lambda table, index: table[paddle.to_tensor(index)])
    constant = staticmethod(lambda array, like: paddle.to_tensor(array, dtype=like.dtype))
    softmax = staticmethod(lambda x: F.softmax(x, axis=-1))
    normalize = staticmethod(lambda x: F.normalize(x, axis=-1))
    logit_scale = staticmethod(lambda p: paddle.clip(p, max=math.log(100.0)).exp())
    sigmoid = staticmethod(F.sigmoid)


class WindowAttention(nn.Layer):
    """torchvision's ``ShiftedWindowAttention`` (Swin v1) or ``ShiftedWindowAttentionV2`` on
    (B, H, W, C): ``qkv``/``proj`` Linears, the table (v1) or ``logit_scale``, ``cpb_mlp``
    and the ``relative_coords_table`` buffer (v2) under torchvision's names; the index and
    the shift mask are the spec's constants (see ``xinit.layers.WindowAttention``)."""

    def __init__(self, spec: L.WindowAttention):
        super().__init__()
        self.spec = spec
        c, heads, zero = spec.dim, spec.num_heads, nn.initializer.Constant(0.0)
        self.qkv = nn.Linear(c, 3 * c, bias_attr=None if spec.qkv_bias else False)
        self.proj = nn.Linear(c, c, bias_attr=None if spec.proj_bias else False)
        if spec.cosine:
            self.logit_scale = self.create_parameter([heads, 1, 1], default_initializer=zero)
            self.cpb_mlp = nn.Sequential(
                nn.Linear(2, CPB_HIDDEN), nn.ReLU(), nn.Linear(CPB_HIDDEN, heads, bias_attr=False)
            )
            coords = paddle.to_tensor(spec.relative_coords_table())
            self.register_buffer("relative_coords_table", coords, persistable=True)
        else:
            self.relative_position_bias_table = self.create_parameter(
                [spec.table_rows, heads], default_initializer=zero
            )

    def _qkv_v2(self, x):
        """v2's qkv: the k third of the bias left out, as torchvision zeroes it each call."""
        bias = self.qkv.bias
        if bias is not None:
            c = self.spec.dim
            bias = paddle.concat([bias[:c], paddle.zeros_like(bias[c : 2 * c]), bias[2 * c :]])
        return F.linear(x, self.qkv.weight, bias)

    def forward(self, x):
        spec = self.spec
        index = spec.relative_position_index()
        if not spec.cosine:
            table = self.relative_position_bias_table
            return window_attention(spec, x, self.qkv, self.proj, table, index, _WindowOps)
        coords = self.relative_coords_table.astype(x.dtype)
        table = self.cpb_mlp(coords).reshape([-1, spec.num_heads])
        return window_attention(
            spec, x, self._qkv_v2, self.proj, table, index, _WindowOps, self.logit_scale
        )


class WindowAttentionV2(WindowAttention):
    """The layer of ``WindowAttentionV2`` specs (its own class: one lowering reads it)."""
