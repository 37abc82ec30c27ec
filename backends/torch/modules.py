"""The native torch containers xinit builds (steps that reuse a child, residual blocks,
graphs) and the graph merges."""

from __future__ import annotations

import functools

import torch

from ..common.containers import GraphLogic, ResidualLogic, StepsLogic


def adopt(module: torch.nn.Module, children: dict) -> None:
    """Register ``children`` on container ``module``: modules as submodules, a learned-parameter
    node's ``nn.Parameter`` as a parameter of ``module`` itself under the node's name (so the
    state-dict key is ``cls_token``, as timm's), its op kept by name for the forward."""
    ops = {}
    for name, child in children.items():
        if isinstance(child, torch.nn.Parameter):
            module.register_parameter(name, child)
            ops[name] = child._xinit_op
        else:
            module.add_module(name, child)
    module._xinit_param_ops = ops


class ParamNodes:
    """``_child`` of a container that may hold learned-parameter nodes: such a node is the
    container's parameter of that name applied by its op (looked up at each call, so the
    parameter ``to_empty`` or ``load_state_dict(assign=True)`` put there is the one used)."""

    def _child(self, name):
        op = self._xinit_param_ops.get(name)
        if op is None:
            return self._modules[name]
        return functools.partial(learned_op, op, self._parameters[name])


def learned_op(op: str, param: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A learned parameter (1, T, *rest) put before the sequence x (``prepend``) or added to it
    (``add``), broadcast over the batch."""
    if op == "prepend":
        return torch.cat([param.expand(x.shape[0], *param.shape[1:]), x], dim=1)
    return x + param


def learned_parameter(spec) -> torch.nn.Parameter:
    """The parameter of a learned-parameter node (on the current default device: meta in a
    build), carrying its op for the container that adopts it."""
    param = torch.nn.Parameter(torch.empty(spec.shape))
    param._xinit_op = spec.op
    return param


class Steps(ParamNodes, StepsLogic, torch.nn.Module):
    """A Sequential whose steps may reuse a parameter-free child (torchvision's shared relu)
    or hold a learned-parameter node."""

    def __init__(self, children: dict, steps: list[str]):
        super().__init__()
        adopt(self, children)
        self._xinit_steps = list(steps)

    def forward(self, x):
        return self._run_steps(x)


class Residual(ParamNodes, ResidualLogic, torch.nn.Module):
    """activation(body(x) + shortcut(x)), children registered under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        super().__init__()
        adopt(self, children)
        self._xinit_body, self._xinit_shortcut, self._xinit_activation = (
            list(body),
            shortcut,
            activation,
        )

    def forward(self, x):
        return self._run_residual(x)


class Graph(ParamNodes, GraphLogic, torch.nn.Module):
    """Nodes run in topological order, children registered under their node names."""

    def __init__(self, children: dict, layout: dict):
        super().__init__()
        adopt(self, children)
        self._xinit_nodes = list(layout["nodes"])
        self._xinit_inputs = layout["inputs"]
        self._xinit_outputs = layout["outputs"]
        self._xinit_returns = layout["returns"]

    def forward(self, *xs):
        return self._run_graph(*xs)


class Merge(torch.nn.Module):
    """add, mul or concat (along the neutral dim) of the inputs."""

    def __init__(self, spec):
        super().__init__()
        self.kind, self.dim = spec.kind, getattr(spec, "dim", 1)

    def forward(self, *xs):
        if self.kind == "concat":
            return torch.cat(xs, dim=self.dim)
        out = xs[0]
        for x in xs[1:]:
            out = out + x if self.kind == "add" else out * x
        return out

    def extra_repr(self):
        return f"{self.kind}" + (f", dim={self.dim}" if self.kind == "concat" else "")


class Reshape(torch.nn.Module):
    """``x.reshape(N, *shape)``."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape(x.shape[0], *self.shape)


class Permute(torch.nn.Module):
    """``x.permute(*dims)``."""

    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(*self.dims)


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
        q, k, v, attn_mask, pad = self.spec.split_inputs(xs)
        if self.spec.is_causal:
            attn_mask = _with_causal(attn_mask, q.shape[1], k.shape[1], q.device)
        if attn_mask is not None and pad is not None and attn_mask.dtype != pad.dtype:
            attn_mask, pad = _additive(attn_mask, q.dtype), _additive(pad, q.dtype)
        out = super().forward(
            q, k, v, key_padding_mask=pad, attn_mask=attn_mask, need_weights=False
        )
        return out[0]


def _additive(mask, dtype):
    """A bool mask (True: masked) as PyTorch's equivalent float mask (-inf there, else 0)."""
    if mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask, -torch.inf)


def _with_causal(attn_mask, length: int, s_len: int, device):
    """``attn_mask`` with key j > query i masked too (a bool mask stays bool)."""
    causal = torch.ones(length, s_len, dtype=torch.bool, device=device).triu(1)
    if attn_mask is None:
        return causal
    if attn_mask.dtype == torch.bool:
        return attn_mask | causal
    return attn_mask.masked_fill(causal, -torch.inf)


class ScaledDotProductAttention(torch.nn.Module):
    """Packed (N, L, 3E) q, k, v rows -> heads -> ``F.scaled_dot_product_attention`` ->
    (N, L, E), as timm's ``Attention`` and GPT-2's attention compute between their Linears."""

    def __init__(self, num_heads: int, causal: bool = False):
        super().__init__()
        self.num_heads, self.causal = num_heads, causal

    def forward(self, x):
        n, length, packed = x.shape
        e = packed // 3
        qkv = x.reshape(n, length, 3, self.num_heads, e // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        y = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return y.transpose(1, 2).reshape(n, length, e)

    def extra_repr(self):
        return f"num_heads={self.num_heads}, causal={self.causal}"


class Select(torch.nn.Module):
    """``x.select(dim, index)`` (ViT's class-token pooling ``x[:, 0]``)."""

    def __init__(self, dim: int, index: int):
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x):
        return x.select(self.dim, self.index)


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


class _SequenceOnly:
    """``nn.LSTM``/``nn.GRU`` built batch first (the same parameters and state-dict keys),
    called on one (N, L, D) sequence; returns the output sequence alone (no final states)."""

    def __init__(self, input_size, hidden_size, num_layers, bias, bidirectional):
        super().__init__(
            input_size,
            hidden_size,
            num_layers,
            bias=bias,
            batch_first=True,
            bidirectional=bidirectional,
        )

    def forward(self, x):
        return super().forward(x)[0]


class LSTM(_SequenceOnly, torch.nn.LSTM):
    """``nn.LSTM(batch_first=True)`` returning the output sequence (see ``_SequenceOnly``)."""


class GRU(_SequenceOnly, torch.nn.GRU):
    """``nn.GRU(batch_first=True)`` returning the output sequence (see ``_SequenceOnly``)."""
