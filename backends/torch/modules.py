"""The native torch containers xinit builds (steps that reuse a child, residual blocks,
graphs) and the graph merges."""

from __future__ import annotations

import torch

from ..base import GraphLogic, ResidualLogic, StepsLogic


class Steps(StepsLogic, torch.nn.Module):
    """A Sequential whose steps may reuse a parameter-free child (torchvision's shared relu)."""

    def __init__(self, children: dict, steps: list[str]):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self._xinit_steps = list(steps)

    def _child(self, name):
        return self._modules[name]

    def forward(self, x):
        return self._run_steps(x)


class Residual(ResidualLogic, torch.nn.Module):
    """activation(body(x) + shortcut(x)), children registered under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self._xinit_body, self._xinit_shortcut, self._xinit_activation = (
            list(body),
            shortcut,
            activation,
        )

    def _child(self, name):
        return self._modules[name]

    def forward(self, x):
        return self._run_residual(x)


class Graph(GraphLogic, torch.nn.Module):
    """Nodes run in topological order, children registered under their node names."""

    def __init__(self, children: dict, layout: dict):
        super().__init__()
        for name, child in children.items():
            self.add_module(name, child)
        self._xinit_nodes = list(layout["nodes"])
        self._xinit_inputs = layout["inputs"]
        self._xinit_outputs = layout["outputs"]
        self._xinit_returns = layout["returns"]

    def _child(self, name):
        return self._modules[name]

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
