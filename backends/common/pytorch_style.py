"""The modules that the two PyTorch-style APIs (``torch.nn``, ``paddle.nn``) build alike,
written once: the containers (which may hold learned-parameter nodes), merges, reshape,
permute and select. Each class here is the framework-neutral half; a framework's
``modules.py`` combines it with its own base class (``nn.Module``, ``nn.Layer``) and its
:class:`FrameworkOps`, the few calls whose names differ."""

from __future__ import annotations

import functools
from typing import Any

from .containers import GraphLogic, ResidualLogic, StepsLogic
from .functional import ARITHMETIC


class FrameworkOps:
    """What the shared modules need of a framework (its ``modules.py`` subclasses this)."""

    def _adopt_child(self, name: str, child: Any) -> None:
        """Register ``child`` as a submodule of this container under ``name``."""
        raise NotImplementedError

    def _adopt_param(self, name: str, param: Any) -> None:
        """Register ``param`` as a parameter of this container under ``name``."""
        raise NotImplementedError

    def _children_by_name(self) -> dict:
        """This container's submodules by name."""
        raise NotImplementedError

    @staticmethod
    def _concat(xs: list, dim: int) -> Any:
        raise NotImplementedError

    @staticmethod
    def _permute(x: Any, dims: tuple[int, ...]) -> Any:
        raise NotImplementedError

    @staticmethod
    def _bernoulli(shape: list[int], p: float, like: Any) -> Any:
        """An array of ``shape`` (``like``'s dtype and device): 1 with probability p, else 0."""
        raise NotImplementedError


def learned_op(concat, op: str, param, x):
    """A learned parameter (1, T, *rest) put before the sequence x (``prepend``, joined by
    the framework's ``concat``) or added to it (``add``), broadcast over the batch."""
    if op == "prepend":
        return concat([param.expand([x.shape[0], *param.shape[1:]]), x], 1)
    if op == "tensor":  # a learned tensor: the node's value is the tensor itself
        return param
    return x + param


class ParamNodes:
    """A container that may hold learned-parameter nodes: such a node's native layer is the
    parameter itself (it carries its op as ``_xinit_op``), registered on the container under
    the node's name (the state-dict key ``cls_token``, as timm's) and applied by its op."""

    def _adopt(self, children: dict) -> None:
        ops = {}
        for name, child in children.items():
            op = getattr(child, "_xinit_op", None)
            if op is not None:
                self._adopt_param(name, child)
                ops[name] = op
            else:
                self._adopt_child(name, child)
        self._xinit_param_ops = ops

    def _child(self, name):
        """The child ``name``, or a learned-parameter node as its op on the container's
        parameter of that name (looked up at each call, so the parameter that ``to_empty`` or
        ``load_state_dict(assign=True)`` put there is the one used)."""
        op = self._xinit_param_ops.get(name)
        if op is None:
            return self._children_by_name()[name]
        return functools.partial(learned_op, self._concat, op, self._parameters[name])


class Steps(ParamNodes, StepsLogic):
    """A Sequential whose steps may reuse a parameter-free child (torchvision's shared relu)
    or hold a learned-parameter node."""

    def __init__(self, children: dict, steps: list[str]):
        super().__init__()
        self._adopt(children)
        self._xinit_steps = list(steps)

    def forward(self, x):
        return self._run_steps(x)


class Residual(ParamNodes, ResidualLogic):
    """activation(body(x) + shortcut(x)), children registered under their spec names."""

    def __init__(self, children: dict, body: list[str], shortcut, activation):
        super().__init__()
        self._adopt(children)
        self._xinit_body = list(body)
        self._xinit_shortcut, self._xinit_activation = shortcut, activation

    def forward(self, x):
        return self._run_residual(x)


class Graph(ParamNodes, GraphLogic):
    """Nodes run in topological order, children registered under their node names."""

    def __init__(self, children: dict, layout: dict):
        super().__init__()
        self._adopt(children)
        self._xinit_nodes = list(layout["nodes"])
        self._xinit_inputs = layout["inputs"]
        self._xinit_outputs = layout["outputs"]
        self._xinit_returns = layout["returns"]

    def forward(self, *xs):
        return self._run_graph(*xs)


class Merge:
    """add, mul, sub, div (broadcast) or concat (along the neutral dim) of the inputs."""

    def __init__(self, spec):
        super().__init__()
        self.kind, self.dim = spec.kind, getattr(spec, "dim", 1)

    def forward(self, *xs):
        if self.kind == "concat":
            return self._concat(list(xs), self.dim)
        return functools.reduce(ARITHMETIC[self.kind], xs)


class Function:
    """A parameter-free op computed by ``function(spec, *inputs)``, a line of the framework's
    table of functional ops (its ``lowerings.py``): the glue a traced model calls as functions."""

    def __init__(self, spec, function):
        super().__init__()
        self.spec, self.function = spec, function

    def forward(self, *xs):
        return self.function(self.spec, *xs)


class StochasticDepth:
    """torchvision's ``StochasticDepth(p, "row")``: in training each sample is dropped with
    probability p, the kept ones scaled by 1/(1 - p); identity at inference."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = self._bernoulli([x.shape[0]] + [1] * (x.ndim - 1), 1.0 - self.p, x)
        return x * keep / (1.0 - self.p)

    def extra_repr(self):
        return f"p={self.p}"


class Reshape:
    """``x.reshape([N, *shape])``."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape([x.shape[0], *self.shape])


class Permute:
    """``x.permute(*dims)``."""

    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return self._permute(x, self.dims)


class Select:
    """``x.select(dim, index)`` (ViT's class-token pooling ``x[:, 0]``)."""

    def __init__(self, dim: int, index: int):
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x):
        index = [slice(None)] * x.ndim
        index[self.dim] = self.index
        return x[tuple(index)]


class SequenceOnly:
    """A framework's LSTM/GRU (batch first) called on one (N, L, D) sequence: returns the
    output sequence alone (no final states), as the graph node of a recurrent spec."""

    def forward(self, x):
        return super().forward(x)[0]
