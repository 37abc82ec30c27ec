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
    module_list = "nn.ModuleList"
    modules_call = "self.modules()"
    parameters_call = "m.parameters()"

    def statement(self, row: InitRow, target: str, ctx: Context) -> str:
        raise NotImplementedError

    def native_leaf(self, row: InitRow) -> str:
        """The attribute holding the row's parameter in the framework's layer (the neutral
        leaf name unless the framework names it otherwise)."""
        return row.leaf

    def sequential(self, items: list[str], ctx: Context) -> str:
        return f"nn.Sequential({', '.join(items)})"

    def step(self, call: str, ctx: Context | None = None) -> str:
        """A parameter-free step of an ``nn.Sequential`` (a permute in ConvNeXt's block) as a
        ``Lambda`` module of the file: no parameters, so the state keys stay the build's."""
        if ctx is not None:
            ctx.helper("Lambda", _LAMBDA.replace("BASE", self.base))
        return f"Lambda(lambda x: {call})"

    def class_key(self, layer) -> str | None:
        """The class a layer's constructor names (``nn.Conv2d``), for ``isinstance``."""
        em = self.emitters.get(layer.kind)
        no_params = not any(p.trainable for p in layer.params())
        bare = getattr(layer, "needs_container", False)  # a learned parameter or tensor
        if em is None or not em.writes_module(layer) or no_params or bare:
            return None  # a bare parameter is no layer a loop over modules finds
        if layer.kind in _HOLDS_LINEARS:  # drawn after the loop, which reaches its Linears too
            return None
        try:
            return em.module(Fields(layer, {}, Context())).split("(")[0]
        except ExportError:  # raised again, with the layer's path, when the layer is written
            return None

    def init_weights(self, planner, writer) -> list[str]:
        rows = init_rows(writer.spec, writer.policy)
        if not rows:
            return []
        ctx = writer.ctx
        branches, rest = grouped(
            rows,
            lambda row, m: self.statement(row, _leaf(m, self.native_leaf(row)), ctx),
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
            target = _leaf(writer.access(row.item.layer), self.native_leaf(row))
            lines += statement(self.statement(row, target, ctx), 8)
        return lines


_LAMBDA = '''class Lambda(BASE):
    """A parameter-free step of a sequential container: ``fn(x)``."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)
'''

_PERMUTE = '''class Permute(BASE):
    """torchvision's Permute: ``x.permute(dims)`` as a step of a sequential container."""

    def __init__(self, dims: list[int]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return CALL
'''


def permute_step(base: str, call: str):
    """``Permute([0, 2, 3, 1])``, a class of the file on ``base`` computing ``call`` (on
    ``x`` and ``self.dims``): a permute step keeps the container's numbered state keys."""

    def write(f: Fields) -> str:
        f.ctx.helper("Permute", _PERMUTE.replace("BASE", base).replace("CALL", call))
        return f"Permute([{', '.join(map(str, f.spec.dims))}])"

    return write


# PyTorch's interpolate as one resize matrix per axis: the Paddle and Flax files' function
RESIZE_MATRIX = '''def resize_matrix(n: int, o: int, ratio: float, mode: str, align_corners: bool):
    """The (o, n) matrix of one axis of PyTorch's interpolate, out[i] = sum_j m[i, j] x[j]:
    nearest takes x[floor(i * ratio)]; bilinear samples at (i + 0.5) * ratio - 0.5 (at
    i * (n - 1) / (o - 1) with align_corners), between its two neighbours."""
    i = np.arange(o, dtype=np.float64)
    m = np.zeros((o, n), np.float64)
    if mode == "nearest":
        src = np.minimum(np.floor(i * np.float32(ratio)).astype(np.int64), n - 1)
        m[np.arange(o), src] = 1.0
        return m
    if align_corners:
        src = i * ((n - 1) / (o - 1)) if o > 1 else np.zeros(o)
    else:
        src = np.maximum((i + 0.5) * ratio - 0.5, 0.0)
    lo = np.minimum(np.floor(src).astype(np.int64), n - 1)
    hi = np.minimum(lo + 1, n - 1)
    np.add.at(m, (np.arange(o), lo), 1.0 - (src - lo))
    np.add.at(m, (np.arange(o), hi), src - lo)
    return m
'''


_SINUSOID = '''def sinusoid_table(num_positions: int, dim: int):
    """(1, num_positions, dim) float32, computed in float64: position p, feature j holds
    sin(p / 10000^(2 (j // 2) / dim)) for even j, its cos for odd j."""
    angle = np.arange(num_positions)[:, None] / np.power(10000, 2 * (np.arange(dim) // 2) / dim)
    table = np.where(np.arange(dim) % 2 == 0, np.sin(angle), np.cos(angle))
    return table.astype(np.float32)[None]


class SinusoidPositions(BASE):
    """x + the fixed sinusoid table ("Attention Is All You Need") over x's L positions, as
    VisionLAN's PositionalEncoding; a buffer kept out of the state dict."""

    def __init__(self, num_positions: int, dim: int):
        super().__init__()
        BUFFER

    def forward(self, x):
        return x + CAST
'''


def sinusoid_emitter(base: str, buffer: str, cast: str, import_line: str):
    """``SinusoidPositions(num_positions, dim)``, a class of the file on ``base`` holding the
    table as the buffer ``buffer`` makes, added to x as ``cast`` (of ``self.table``)."""

    def write(f: Fields) -> str:
        f.ctx.need("import numpy as np")
        f.ctx.need(import_line)
        source = _SINUSOID.replace("BASE", base).replace("BUFFER", buffer).replace("CAST", cast)
        f.ctx.helper("SinusoidPositions", source)
        return f"SinusoidPositions({f['num_positions']}, {f['dim']})"

    return write


_STOCHASTIC_DEPTH = '''class StochasticDepth(BASE):
    """torchvision's StochasticDepth(p, "row"): in training each sample is dropped with
    probability p, the kept ones scaled by 1 / (1 - p); identity at inference."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        keep = KEEP
        return x * keep / (1.0 - self.p)
'''


def stochastic_depth_emitter(base: str, keep: str, import_line: str):
    """``StochasticDepth(p)``, a class of the file on ``base`` whose training mask is
    ``keep`` (the framework's Bernoulli draw of one value per sample)."""

    def write(f: Fields) -> str:
        f.ctx.need(import_line)
        source = _STOCHASTIC_DEPTH.replace("BASE", base).replace("KEEP", keep)
        f.ctx.helper("StochasticDepth", source)
        return f"StochasticDepth({f['p']})"

    return write


_SCALAR_OPS = {"add": "{x} + {v}", "sub": "{x} - {v}", "rsub": "{v} - {x}", "mul": "{x} * {v}"}
_SCALAR_OPS |= {"div": "{x} / {v}", "rdiv": "{v} / {x}", "pow": "{x} ** {v}"}


_LAYER_SCALE = '''class LayerScale(BASE):
    """``x * gamma``, a learned multiplier per channel (timm's LayerScale); ``spatial`` axes
    of size 1 follow the channels in ``gamma`` (2 for an (N, C, H, W) image)."""

    def __init__(self, num_features: int, init_value: float = 1e-5, spatial: int = 0):
        super().__init__()
        GAMMA

    def forward(self, x):
        return x * self.gamma
'''


def layer_scale_emitter(base: str, gamma: str, import_line: str):
    """``LayerScale(num_features, ...)``, a class of the file on ``base`` whose ``gamma``
    parameter is made by the statement ``gamma``."""

    def write(f: Fields) -> str:
        f.ctx.need(import_line)
        f.ctx.helper("LayerScale", _LAYER_SCALE.replace("BASE", base).replace("GAMMA", gamma))
        kws = [*f.kw("init_value", 1e-5), *f.kw("spatial", 0)]
        return f"LayerScale({args_text(f['num_features'], kws)})"

    return write


def register_clip(table, bound_names: tuple[str, str], clamp: str, import_line: str = "") -> None:
    """``clip``: with both bounds the framework's ``nn.Hardtanh`` (its keywords
    ``bound_names``), with one the framework's clamp expression ``clamp`` on ``{x}`` and
    ``{bound}`` (``x.clamp(min=0.0)``)."""

    def module(f: Fields) -> str:
        lo, hi = bound_names
        return f"nn.Hardtanh({args_text(f.kw('min', -1.0, lo), f.kw('max', 1.0, hi))})"

    def call(f: Fields, args: list) -> str:
        if import_line:
            f.ctx.need(import_line)
        name = "min" if f.spec.max is None else "max"
        return clamp.format(x=args[0], bound=f"{name}={f[name]}")

    both = lambda spec: spec.min is not None and spec.max is not None  # noqa: E731
    table.register("clip", module=module, call=call, module_when=both)


def _scalar_op(f: Fields, args: list) -> str:
    """``x * 0.5``: the operator on the input and the number, as the spec applies it."""
    (x,) = args
    value = f.value("value")
    v = literal(float(value)) if value is not None else f["value"]
    if v.startswith("-"):
        v = f"({v})"
    return _SCALAR_OPS[f.spec.op].format(x=_operand(x), v=v)


def _operand(x: str) -> str:
    """An expression as an operand of a binary operator (bracketed unless a name, an
    attribute or a subscript: ``out``, ``self.gamma``, ``parts["0"]``)."""
    return x if re.fullmatch(r"[\w.]+(\[[^\]]*\])?", x) else f"({x})"


def _hardsigmoid(f: Fields) -> str:
    if not f.spec.is_default:
        raise ExportError(f"{f.where}: the export writes Hardsigmoid with its defaults only")
    return "nn.Hardsigmoid()"


def attention_inputs(f: Fields, args: list) -> list[str]:
    """query, key, value of a MultiheadAttention node (key defaults to query, value to key);
    masks and grouped heads are xinit's own computation, which the export does not write."""
    s = f.spec
    if s.attn_mask or s.key_padding_mask or s.is_causal or s.num_kv_heads is not None:
        raise ExportError(f"{f.where}: the export writes MultiheadAttention without masks only")
    q = args[0]
    k = args[1] if len(args) > 1 else q
    return [q, k, args[2] if len(args) > 2 else k]


def slice_call(f: Fields, args: list) -> str:
    """``x[:, 1:, ::2]``: the spec's slice of its dim (a negative dim counted from the end)."""
    s = f.spec
    part = ":".join(
        ["" if s.start is None else str(s.start), "" if s.stop is None else str(s.stop)]
    )
    part += f":{s.step}" if s.step != 1 else ""
    if s.dim >= 0:
        return f"{args[0]}[{', '.join([':'] * s.dim + [part])}]"
    return f"{args[0]}[{', '.join(['...', part] + [':'] * (-s.dim - 1))}]"


def named_after(f: Fields, op: str) -> bool:
    """Whether the node is named after ``op`` (``chunk``, ``chunk_1``): a tracer names a
    node after the call the model made, which the export then writes back."""
    return re.fullmatch(rf"{op}(_\d+)?", f.path.rpartition(".")[2]) is not None


def split_call(split: str, chunk: str, import_line: str = ""):
    """The parts of a Split as the dict its graph references take (``parts["0"]``);
    ``split``: the framework's call on ``{x}``, ``{sizes}`` and ``{dim}``; ``chunk`` (on
    ``{x}``, ``{n}``, ``{dim}``) for equal parts where the node is named ``chunk``."""

    def write(f: Fields, args: list) -> str:
        if import_line:
            f.ctx.need(import_line)
        sizes, dim = f.spec.sizes, f.spec.dim
        if named_after(f, "chunk") and len(set(sizes)) == 1:
            call = chunk.format(x=args[0], n=len(sizes), dim=dim)
        else:
            call = split.format(x=args[0], sizes="[" + ", ".join(map(str, sizes)) + "]", dim=dim)
        return f"{{str(i): part for i, part in enumerate({call})}}"

    return write


# Kinds whose framework layer holds nn.Linear sublayers (attention's projections): a loop over
# the modules would draw those by the Linear branch, so their laws are written per path after it.
_HOLDS_LINEARS = frozenset({"multihead_attention", "window_attention", "window_attention_v2"})


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


_DOWNSCALE_DROPOUT = '''class DownscaleDropout(nn.Dropout):
    """Paddle's Dropout(mode="downscale_in_infer"): kept values unscaled in training, the
    output x * (1 - p) at inference."""

    def forward(self, x):
        return super().forward(x) * (1.0 - self.p)
'''


def _dropout(modes: bool):
    """``nn.Dropout(p)``; Paddle's ``downscale_in_infer`` mode as its ``mode`` keyword
    (``modes``: Paddle) or as a ``DownscaleDropout`` class of the file (torch)."""

    def write(f: Fields) -> str:
        kws = f.kw("p", 0.5)
        if f.spec.mode == "upscale_in_train":
            return f"nn.Dropout({args_text(kws)})"
        if modes:
            return f"nn.Dropout({args_text(kws, f'mode={literal(f.spec.mode)}')})"
        f.ctx.helper("DownscaleDropout", _DOWNSCALE_DROPOUT)
        return f"DownscaleDropout({args_text(kws)})"

    return write


def register_common(
    table, silu_class: str, dropout_modes: bool = False, dim_keyword: str = "dim"
) -> None:
    """The emitters torch and Paddle write alike: ``nn.X()`` activations, dropout, and the
    sum and product of a graph's inputs (``silu_class``: ``SiLU`` in torch, ``Silu`` in Paddle;
    ``dropout_modes``: the framework's Dropout has Paddle's modes; ``dim_keyword``: ``dim``
    in torch, ``axis`` in Paddle)."""
    plain = {"relu": "ReLU", "silu": silu_class, "sigmoid": "Sigmoid", "tanh": "Tanh"}
    plain |= {"hardswish": "Hardswish", "identity": "Identity"}
    for kind, cls in plain.items():
        table.register(kind, module=lambda f, cls=cls: f"nn.{cls}()")
    table.register(
        "leaky_relu", module=lambda f: f"nn.LeakyReLU({args_text(f.kw('negative_slope', 0.01))})"
    )
    table.register("dropout", module=_dropout(dropout_modes))
    table.register("add", call=lambda f, args: " + ".join(args))
    table.register("mul", call=lambda f, args: " * ".join(map(_operand, args)))
    table.register("sub", call=lambda f, args: " - ".join(map(_operand, args)))
    table.register("div", call=lambda f, args: " / ".join(map(_operand, args)))
    table.register("scalar_op", call=_scalar_op)
    table.register("slice", call=slice_call)
    table.register("channel_shuffle", module=lambda f: f"nn.ChannelShuffle({f['groups']})")
    table.register("relu6", module=lambda f: "nn.ReLU6()")
    for kind, cls in (("softmax", "Softmax"), ("log_softmax", "LogSoftmax")):
        table.register(kind, module=lambda f, cls=cls: f"nn.{cls}({dim_keyword}={f['dim']})")
    table.register("hardsigmoid", module=_hardsigmoid)
    table.register("prelu", module=_prelu)


def _prelu(f: Fields) -> str:
    """``nn.PReLU(num_parameters, init=...)``: torch's and Paddle's take the same arguments."""
    num = [] if f.value("num_parameters") == 1 else [f["num_parameters"]]
    return f"nn.PReLU({args_text(num, f.kw('init', 0.25))})"


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
    """``owner.leaf``, a numbered child indexed (``m.cpb_mlp[0].weight``)."""
    if not leaf:
        return owner
    return f"{owner}." + re.sub(r"\.(\d+)(?=\.)", r"[\1]", leaf)


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
    "stochastic_depth_emitter",
    "layer_scale_emitter",
    "permute_step",
    "sinusoid_emitter",
    "register_clip",
    "attention_inputs",
    "slice_call",
    "RESIZE_MATRIX",
    "split_call",
    "named_after",
]
