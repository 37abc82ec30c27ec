"""The native torch modules xinit builds: the containers (steps that reuse a child, residual
blocks, graphs) and the merges and layout ops, from the halves shared with Paddle
(``backends/common/pytorch_style.py``); attention and recurrent layers on a node's inputs."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from xinit.layers.window import CPB_HIDDEN

from ..common import pytorch_style as shared
from ..common.window_attention import window_attention


class TorchOps(shared.FrameworkOps):
    """torch's side of the shared PyTorch-style modules (``backends/common/pytorch_style.py``)."""

    def _adopt_child(self, name, child):
        self.add_module(name, child)

    def _adopt_param(self, name, param):
        self.register_parameter(name, param)

    def _children_by_name(self):
        return self._modules

    @staticmethod
    def _concat(xs, dim):
        return torch.cat(xs, dim=dim)

    @staticmethod
    def _permute(x, dims):
        return x.permute(*dims)

    @staticmethod
    def _bernoulli(shape, p, like):
        return torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(p)


def learned_parameter(spec) -> torch.nn.Parameter:
    """The parameter of a learned-parameter node (on the current default device: meta in a
    build), carrying its op for the container that adopts it."""
    param = torch.nn.Parameter(torch.empty(spec.shape))
    param._xinit_op = spec.op
    return param


class Steps(shared.Steps, TorchOps, torch.nn.Module):
    """Steps that may reuse a child or hold a learned-parameter node (``shared.Steps``)."""


class Residual(shared.Residual, TorchOps, torch.nn.Module):
    """activation(body(x) + shortcut(x)) (``shared.Residual``)."""


class Graph(shared.Graph, TorchOps, torch.nn.Module):
    """A graph's nodes in topological order (``shared.Graph``)."""


class Merge(shared.Merge, TorchOps, torch.nn.Module):
    """add, mul, sub, div (broadcast) or concat (along the neutral dim) of the inputs."""

    def extra_repr(self):
        return f"{self.kind}" + (f", dim={self.dim}" if self.kind == "concat" else "")


class Function(shared.Function, TorchOps, torch.nn.Module):
    """A parameter-free op of the functional table (``lowerings.FUNCTIONS``) on the inputs."""

    def extra_repr(self):
        return repr(self.spec)


class DownscaleDropout(torch.nn.Dropout):
    """Paddle's ``Dropout(mode="downscale_in_infer")``: ``nn.Dropout`` times (1 - p), so kept
    values are as they are in training and the output is x · (1 - p) at inference."""

    def forward(self, x):
        return super().forward(x) * (1.0 - self.p)


class StochasticDepth(shared.StochasticDepth, TorchOps, torch.nn.Module):
    """torchvision's ``StochasticDepth(p, "row")`` (``shared.StochasticDepth``)."""


class Reshape(shared.Reshape, TorchOps, torch.nn.Module):
    """``x.reshape(N, *shape)``."""


class Permute(shared.Permute, TorchOps, torch.nn.Module):
    """``x.permute(*dims)``."""


class Attention(torch.nn.MultiheadAttention):
    """``nn.MultiheadAttention`` (batch first, the same parameters and state-dict keys) called
    on a node's inputs (``spec.split_inputs``: query[, key[, value]], then the masks, given to
    PyTorch as they are); returns the attention output alone."""

    def __init__(self, spec):
        super().__init__(
            spec.embed_dim,
            spec.num_heads,
            bias=spec.bias,
            kdim=spec.kdim,
            vdim=spec.vdim,
            batch_first=True,
        )
        self.spec = spec

    def forward(self, *xs):
        s = self.spec
        q, k, v, attn_mask, pad = s.split_inputs(xs)
        if s.is_causal:
            causal = torch.as_tensor(s.causal_mask(q.shape[1], k.shape[1]), device=q.device)
            attn_mask = _with_causal(attn_mask, causal)
        if attn_mask is not None and pad is not None and attn_mask.dtype != pad.dtype:
            attn_mask, pad = (s.additive_mask(m, torch, q.dtype) for m in (attn_mask, pad))
        out = super().forward(
            q, k, v, key_padding_mask=pad, attn_mask=attn_mask, need_weights=False
        )
        return out[0]


class GroupedQueryAttention(torch.nn.Module):
    """Grouped-query attention (``spec.num_kv_heads`` < num_heads), which PyTorch has no
    module for: ``nn.MultiheadAttention``'s separate-projection names (``q_proj_weight``,
    ``k_proj_weight`` and ``v_proj_weight`` of K·D rows, ``in_proj_bias``, ``out_proj``),
    computed by ``scaled_dot_product_attention(enable_gqa=True)`` with the node's masks as
    one additive float mask (``spec.score_bias``)."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        for p in spec.params():
            if not p.name.startswith("out_proj"):
                self.register_parameter(p.name, torch.nn.Parameter(torch.empty(p.shape)))
        self.out_proj = torch.nn.Linear(spec.embed_dim, spec.embed_dim, bias=spec.bias)

    def forward(self, *xs):
        s = self.spec
        q, k, v, attn_mask, pad = s.split_inputs(xs)
        biases = torch.split(self.in_proj_bias, s.proj_rows) if s.bias else (None, None, None)
        heads = []
        for x, w, b, n in zip(
            (q, k, v),
            (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight),
            biases,
            (s.num_heads, s.kv_heads, s.kv_heads),
        ):
            y = torch.nn.functional.linear(x, w, b)
            heads.append(y.unflatten(-1, (n, s.head_dim)).transpose(1, 2))  # (N, heads, L, D)
        mask = s.score_bias(torch, q, k, attn_mask, pad, constant=torch.as_tensor)
        y = torch.nn.functional.scaled_dot_product_attention(*heads, mask, enable_gqa=True)
        return self.out_proj(y.transpose(1, 2).flatten(2))


def _with_causal(attn_mask, causal):
    """``attn_mask`` with the bool ``causal`` mask's positions masked too (a bool mask stays
    bool, a float one gets -inf there)."""
    if attn_mask is None:
        return causal
    if attn_mask.dtype == torch.bool:
        return attn_mask | causal
    return attn_mask.masked_fill(causal, -torch.inf)


class ScaledDotProductAttention(torch.nn.Module):
    """Packed (N, L, 3E) q, k, v rows -> heads -> ``F.scaled_dot_product_attention`` ->
    (N, L, E), as timm's ``Attention`` and GPT-2's attention compute between their Linears.
    ``blocked`` (L, L), bool, True where a key is masked out (``local_window``): a plain
    attribute, as SVTR keeps its mask, so no state key. ``attn_mask``: a float mask added to
    the scores (the spec's second input)."""

    def __init__(self, num_heads: int, causal: bool = False, blocked=None):
        super().__init__()
        self.num_heads, self.causal = num_heads, causal
        self.allowed = None if blocked is None else torch.from_numpy(~blocked)

    def forward(self, x, attn_mask=None):
        n, length, packed = x.shape
        e = packed // 3
        qkv = x.reshape(n, length, 3, self.num_heads, e // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mask = attn_mask if self.allowed is None else self.allowed.to(x.device)
        y = torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=self.causal
        )
        return y.transpose(1, 2).reshape(n, length, e)

    def extra_repr(self):
        window = "" if self.allowed is None else ", local_window=True"
        return f"num_heads={self.num_heads}, causal={self.causal}{window}"


class Select(shared.Select, TorchOps, torch.nn.Module):
    """``x.select(dim, index)`` (ViT's class-token pooling ``x[:, 0]``)."""


class PositionIds(torch.nn.Module):
    """Token ids (N, L) -> their positions ``arange(L)`` per sample (N, L), int64."""

    def forward(self, x):
        return torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)


class Conv1D(torch.nn.Module):
    """Hugging Face's ``Conv1D`` (GPT-2's projections): a Linear whose ``weight`` is stored
    (in, out), ``y = x @ weight + bias``; the same keys and shapes as GPT-2's checkpoints."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(in_features, out_features))
        self.bias = torch.nn.Parameter(torch.empty(out_features)) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y

    def extra_repr(self):
        n_in, n_out = self.weight.shape
        return f"in={n_in}, out={n_out}, bias={self.bias is not None}"


class _SequenceOnly(shared.SequenceOnly):
    """``nn.LSTM``/``nn.GRU``/``nn.RNN`` built batch first (the same parameters and keys),
    called on one (N, L, D) sequence; returns the output sequence alone (no final states)."""

    def __init__(self, input_size, hidden_size, num_layers, bias, bidirectional, **extra):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias=bias,
            batch_first=True,
            bidirectional=bidirectional,
            **extra,  # nn.LSTM's proj_size, nn.RNN's nonlinearity
        )


class LSTM(_SequenceOnly, torch.nn.LSTM):
    """``nn.LSTM(batch_first=True)`` returning the output sequence (see ``_SequenceOnly``)."""


class GRU(_SequenceOnly, torch.nn.GRU):
    """``nn.GRU(batch_first=True)`` returning the output sequence (see ``_SequenceOnly``)."""


class LayerNorm2d(torch.nn.LayerNorm):
    """A LayerNorm over the channels (axis 1) of an (N, C, *) input, as timm's and
    torchvision's ``LayerNorm2d`` (the same state-dict keys): moved last, normalised, back."""

    def __init__(self, spec):
        super().__init__(spec.num_channels, spec.eps, spec.elementwise_affine, bias=spec.bias)

    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


class LayerScale(torch.nn.Module):
    """``x * gamma``: a learned per-channel multiplier (timm's ``LayerScale``, key ``gamma``)."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.gamma = torch.nn.Parameter(torch.full(spec.shape, float(spec.init_value)))

    def forward(self, x):
        return x * self.gamma


class RNN(_SequenceOnly, torch.nn.RNN):
    """``nn.RNN(batch_first=True)`` (tanh or relu) returning the output sequence."""


class _WindowOps:
    """torch's spelling of the ops of ``common.window_attention`` (torchvision's own calls)."""

    pad = staticmethod(lambda x, bottom, right: F.pad(x, (0, 0, 0, right, 0, bottom)))
    roll = staticmethod(lambda x, shifts: torch.roll(x, shifts=shifts, dims=(1, 2)))
    permute = staticmethod(lambda x, dims: x.permute(*dims))
    take = staticmethod(lambda table, index: table[index])  # index: the module's buffer
    constant = staticmethod(
        lambda array, like: torch.tensor(array, dtype=like.dtype, device=like.device)
    )
    softmax = staticmethod(lambda x: F.softmax(x, dim=-1))
    normalize = staticmethod(lambda x: F.normalize(x, dim=-1))
    logit_scale = staticmethod(lambda p: torch.clamp(p, max=math.log(100.0)).exp())
    sigmoid = staticmethod(torch.sigmoid)


class WindowAttention(torch.nn.Module):
    """torchvision's ``ShiftedWindowAttention`` (Swin v1) or ``ShiftedWindowAttentionV2`` on
    (B, H, W, C), with its children, parameters and buffers under torchvision's names (its
    state keys); the shift mask is the spec's constant."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        c, heads = spec.dim, spec.num_heads
        self.qkv = torch.nn.Linear(c, 3 * c, bias=spec.qkv_bias)
        self.proj = torch.nn.Linear(c, c, bias=spec.proj_bias)
        if spec.cosine:
            self.logit_scale = torch.nn.Parameter(torch.zeros(heads, 1, 1))
            hidden = torch.nn.Linear(2, CPB_HIDDEN)
            out = torch.nn.Linear(CPB_HIDDEN, heads, bias=False)
            self.cpb_mlp = torch.nn.Sequential(hidden, torch.nn.ReLU(inplace=True), out)
            coords = torch.tensor(spec.relative_coords_table())  # meta in a build: then filled
            self.register_buffer("relative_coords_table", coords)
        else:
            table = torch.zeros(spec.table_rows, heads)
            self.relative_position_bias_table = torch.nn.Parameter(table)
        index = torch.tensor(spec.relative_position_index())
        self.register_buffer("relative_position_index", index)

    def _qkv_v2(self, x):
        """v2's qkv: the k third of the bias left out, as torchvision zeroes it each call."""
        bias = self.qkv.bias
        if bias is not None:
            bias = bias.clone()
            bias[self.spec.dim : 2 * self.spec.dim] = 0.0
        return F.linear(x, self.qkv.weight, bias)

    def forward(self, x):
        spec, index = self.spec, self.relative_position_index
        if not spec.cosine:
            table = self.relative_position_bias_table
            return window_attention(spec, x, self.qkv, self.proj, table, index, _WindowOps)
        table = self.cpb_mlp(self.relative_coords_table).view(-1, spec.num_heads)
        return window_attention(
            spec, x, self._qkv_v2, self.proj, table, index, _WindowOps, self.logit_scale
        )


class WindowAttentionV2(WindowAttention):
    """The module of ``WindowAttentionV2`` specs (its own class: one lowering reads it)."""
