"""What the torch and Paddle code exports write alike (no framework import): the
``init_weights`` loop over the layers' classes, the sequential container, the header's
input line, and small pieces of emitters."""

from __future__ import annotations

import math
import re

from xinit.codegen.emitters import args_text
from xinit.codegen.fields import Context, Fields, literal
from xinit.codegen.inits import InitRow, grouped, init_rows, same_law
from xinit.codegen.layout import statement
from xinit.codegen.structure import ExportError
from xinit.codegen.writer import FrameworkCode
from xinit.fans import Fans


def neutral_fans(shape: tuple[int, ...]) -> Fans | None:
    """PyTorch's fans of a tensor of neutral ``shape`` (fan_in = dim 1 x receptive field,
    fan_out = dim 0 x receptive field): what ``nn.init`` computes on torch's tensor and
    ``paddle.nn.initializer`` on Paddle's (a Linear weight stored (in, out) gives the same)."""
    if len(shape) < 2:
        return None
    field = math.prod(shape[2:])
    return Fans(shape[1] * field, shape[0] * field)


def native_fans(item) -> bool:
    """Whether the framework's own fan-based initialiser draws the item's law."""
    return same_law(item, neutral_fans(item.param.shape))


def number(value: float, ctx: Context) -> str:
    """A float as code; √5 (PyTorch's default ``a``) as ``math.sqrt(5)``."""
    if value == math.sqrt(5.0):
        ctx.need("import math")
        return "math.sqrt(5)"
    return literal(float(value))


def one_int(f: Fields, name: str) -> str:
    """A one-element shape tuple as its int (``nn.LayerNorm(192)``)."""
    value = f.value(name)
    if isinstance(value, tuple) and len(value) == 1:
        return literal(value[0])
    return f[name]


def learned_shape(f: Fields, open_: str, close: str) -> str:
    """A learned parameter's shape as ``1, 1, 192`` inside the given brackets."""
    value = f.value("shape")
    if value is None:
        return f"{open_}*{f['shape']}{close}"
    return open_ + ", ".join(map(str, value)) + close


def channels_first(layout) -> str:
    """``(N, 3, H, W), channels first`` for an image model; words where it is not known."""
    channels, dims = layout
    if channels is None or dims not in (1, 2, 3):
        return "the layout its first layer takes"
    spatial = ("L", "H, W", "D, H, W")[dims - 1]
    return f"(N, {channels}, {spatial}), channels first"


class PytorchStyleCode(FrameworkCode):
    """torch and Paddle: the layers' classes are looped over in ``init_weights`` as
    torchvision does, each drawn by one statement (``statement``) on ``m.weight``."""

    call_name = "forward"
    modules_call = "self.modules()"
    parameters_call = "m.parameters()"

    def statement(self, row: InitRow, target: str, ctx: Context) -> str:
        raise NotImplementedError

    def sequential(self, items: list[str], ctx: Context) -> str:
        return f"nn.Sequential({', '.join(items)})"

    def class_key(self, layer) -> str | None:
        """The class a layer's constructor names (``nn.Conv2d``), for ``isinstance``."""
        em = self.emitters.get(layer.kind)
        no_params = not any(p.trainable for p in layer.params())
        if em is None or em.module is None or no_params or layer.kind == "learned_parameter":
            return None  # a learned parameter is no layer a loop over modules finds
        return em.module(Fields(layer, {}, Context())).split("(")[0]

    def init_weights(self, planner, writer) -> list[str]:
        rows = init_rows(writer.spec, writer.policy)
        if not rows:
            return []
        ctx = writer.ctx
        branches, rest = grouped(
            rows,
            lambda row, m: self.statement(row, _leaf(m, row.leaf), ctx),
            self.class_key,
            writer.layers(),
        )
        doc = f"Draw every parameter as the spec's initialisation says ({self.framework}'s own)."
        lines = ["    def init_weights(self) -> None:", f'        """{doc}"""']
        if branches:
            lines.append(f"        for m in {self.modules_call}:")
            for i, (classes, stmts) in enumerate(branches):
                word = "if" if i == 0 else "elif"
                cls = classes[0] if len(classes) == 1 else f"({', '.join(classes)})"
                lines.append(f"            {word} isinstance(m, {cls}):")
                lines += _branch_body(stmts, self.parameters_call)
        for row in rest:
            target = _leaf(writer.access(row.item.layer), row.leaf)
            lines += statement(self.statement(row, target, ctx), 8)
        return lines


def linear_emitter(bias_off: str, framework: str):
    """``nn.Linear(in, out)``, with ``bias_off`` (``bias=False``) for a Linear without bias;
    Hugging Face's Conv1D layout is no class of the framework."""

    def write(f: Fields) -> str:
        if f.spec.conv1d:
            why = f"a Conv1D-layout Linear (Hugging Face's) has no {framework} class"
            raise ExportError(f"{f.path}: {why}")
        bias = [] if f.spec.bias else [bias_off]
        return f"nn.Linear({args_text(f['in_features'], f['out_features'], bias)})"

    return write


def _dropout(modes: bool):
    """``nn.Dropout(p)``; with ``modes`` (Paddle) its ``downscale_in_infer`` mode too."""

    def write(f: Fields) -> str:
        kws = f.kw("p", 0.5)
        if f.spec.mode != "upscale_in_train":
            if not modes:
                raise ExportError(f"{f.where}: Dropout(mode={f.spec.mode!r}) is Paddle's only")
            kws.append(f"mode={literal(f.spec.mode)}")
        return f"nn.Dropout({args_text(kws)})"

    return write


def register_common(table, silu_class: str, dropout_modes: bool = False) -> None:
    """The emitters torch and Paddle write alike: ``nn.X()`` activations, dropout, and the
    sum and product of a graph's inputs (``silu_class``: ``SiLU`` in torch, ``Silu`` in Paddle;
    ``dropout_modes``: the framework's Dropout has Paddle's modes)."""
    plain = {"relu": "ReLU", "silu": silu_class, "sigmoid": "Sigmoid", "tanh": "Tanh"}
    plain |= {"hardswish": "Hardswish", "identity": "Identity"}
    for kind, cls in plain.items():
        table.register(kind, module=lambda f, cls=cls: f"nn.{cls}()")
    table.register(
        "leaky_relu", module=lambda f: f"nn.LeakyReLU({args_text(f.kw('negative_slope', 0.01))})"
    )
    table.register("dropout", module=_dropout(dropout_modes))
    table.register("add", call=lambda f, args: " + ".join(args))
    table.register("mul", call=lambda f, args: " * ".join(args))


def _branch_body(stmts: list[str], parameters_call: str) -> list[str]:
    """A loop branch's statements; three or more that differ only in the leaf they draw
    (an LSTM's sixteen tensors of one law) as one loop over the layer's parameters."""
    leaves = [re.search(r"\bm\.(\w+)\b", s) for s in stmts]
    if len(stmts) >= 3 and all(leaves):
        shapes = {s.replace(f"m.{m.group(1)}", "p", 1) for s, m in zip(stmts, leaves)}
        if len(shapes) == 1:
            return [f"                for p in {parameters_call}:", *statement(shapes.pop(), 20)]
    return [line for s in stmts for line in statement(s, 16)]


def _leaf(owner: str, leaf: str) -> str:
    return f"{owner}.{leaf}" if leaf else owner


__all__ = [
    "PytorchStyleCode",
    "register_common",
    "linear_emitter",
    "neutral_fans",
    "native_fans",
    "number",
    "one_int",
    "learned_shape",
    "channels_first",
]
