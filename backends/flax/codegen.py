"""How the code export writes Flax NNX: one emitter per layer kind (``nnx.Conv``,
``nnx.BatchNorm``, ``nnx.Linear``; pools and activations as functions), the spec's
initialisation as each layer's ``kernel_init=``/``bias_init=`` (``scale_init=`` for norms),
and images held channel-last, as Flax holds them (light: no flax import here).

Images stay NHWC, sequences (N, L, D) as they are; where a layer takes the other layout (a
flatten of an image, ViT's patch tokens, CRNN's permute) the value is turned there, as
xinit's Flax build does (``codegen_layout.py``). The sequence kinds (attention, LSTM/GRU/RNN,
embeddings, learned tokens) are written by ``codegen_sequence.py``."""

from __future__ import annotations

import re

from xinit.codegen.emitters import Emitter, EmitterTable, args_text
from xinit.codegen.fields import Context, Fields, literal
from xinit.codegen.inits import init_rows
from xinit.codegen.structure import ExportError
from xinit.codegen.writer import FrameworkCode
from xinit.distributions import ConstantDist, NormalDist, TruncNormalDist, UniformDist
from xinit.initializers import KaimingNormal, KaimingUniform, XavierNormal, XavierUniform, gain

from ..common.codegen import native_fans, neutral_fans
from ..common.codegen_lengths import register_lengths
from ..common.codegen_window import flax_window_attention
from .codegen_channelwise import ADAPTIVE_POOL, register_channelwise
from .codegen_layout import CHANNELS, LayoutPlan, turned_steps
from .codegen_sequence import (
    converted,
    init_keywords,
    layout_at,
    register_sequence,
    turn_function,
)
from .codegen_zoo import SPATIAL, register_zoo


class FlaxEmitters(EmitterTable):
    """The emitter table, each form turning its inputs into the layout the layer takes first
    (``converts=False``: the emitter reads the layouts itself)."""

    def register(self, kind: str, converts: bool = True, **forms) -> None:
        super().register(kind, **forms)
        if not converts:
            return
        em = self[kind]
        call = em.call and _converting(em.call)
        apply = None
        if em.module is not None:
            inner = em.apply or (lambda f, attr, args: f"{attr}({', '.join(args)})")
            apply = _converting_apply(inner)
        self[kind] = Emitter(module=em.module, call=call, apply=apply)


def _converting(call):
    def write(f: Fields, args: list) -> str:
        return call(f, _converted_args(f, args))

    return write


def _converting_apply(apply):
    def write(f: Fields, attr: str, args: list) -> str:
        return apply(f, attr, _converted_args(f, args))

    return write


def _converted_args(f: Fields, args: list) -> list:
    rec = layout_at(f)
    if rec is None:
        return args
    out = []
    for a, t, held in zip(args, rec.to, rec.held):
        placed = t == CHANNELS and not held.batched
        out.append(_placed(f, a, held.rank, rec.out.rank) if placed else converted(f, a, t))
    return out


def _placed(f: Fields, x: str, rank: int, image_rank: int) -> str:
    """A learned tensor in PyTorch's layout (no batch axis: a (C, 1, 1) scale) placed to
    broadcast onto a channel-last image as it does onto PyTorch's: its channel axis (the
    image's axis 1, after leading 1s) moved last."""
    if rank == image_rank:  # a batch axis of 1: the value is an image
        return converted(f, x, CHANNELS)
    f.ctx.need("import jax.numpy as jnp")
    lead = image_rank - 1 - rank  # the leading 1s up to the channel axis
    x = f"{x}[{', '.join(['None'] * lead)}]" if lead else x
    return f"jnp.moveaxis({x}, 0, -1)"


EMITTERS = FlaxEmitters()

_SEQUENTIAL = '''class Sequential(nnx.Module):
    """Layers applied in order, held as attributes "0", "1", ... (the state's paths)."""

    def __init__(self, *layers):
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        self.size = len(layers)

    def __call__(self, x):
        for i in range(self.size):
            x = getattr(self, str(i))(x)
        return x
'''

# The file's Sequential where some step takes its input in the other layout (ConvNeXt's
# LayerNorm2d after a block that ends in PyTorch's): ``turn={2: channels_last}``.
_TURNING_SEQUENTIAL = '''class Sequential(nnx.Module):
    """Layers applied in order, held as attributes "0", "1", ... (the state's paths); a step
    numbered in ``turn`` has its input turned first by the function given (the layout it takes:
    channel-last or PyTorch's)."""

    def __init__(self, *layers, turn=None):
        for i, layer in enumerate(layers):
            setattr(self, str(i), layer)
        self.size = len(layers)
        turn = turn or {}
        self.turn = tuple(turn.get(i) for i in range(len(layers)))  # static: hashable

    def __call__(self, x):
        for i in range(self.size):
            if self.turn[i] is not None:
                x = self.turn[i](x)
            x = getattr(self, str(i))(x)
        return x
'''

_LAYERS = '''class NumberedLayers(nnx.Module):
    """Numbered layers held as attributes "0", "1", ... (the state's paths), read as self[i];
    a step without parameters (a function in the forward) is None, keeping the numbers."""

    def __init__(self, layers):
        for i, layer in enumerate(layers):
            if layer is not None:
                setattr(self, str(i), layer)

    def __getitem__(self, i):
        return getattr(self, str(i))
'''

_UNIFORM = '''def uniform(low: float, high: float):
    """U(low, high): jax.nn.initializers.uniform draws U(0, scale) only."""

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, low, high)

    return init
'''


def _pair(f: Fields, name: str) -> str:
    """A spatial field as a tuple of one entry per dim: ``(3, 3)`` or ``(stride, stride)``;
    an argument some instances give as a tuple through a small function of the file."""
    value, dims = f.value(name), f.spec.dims
    if value is None:
        if f[name] in getattr(f.ctx, "tuple_args", ()):
            f.ctx.helper("spatial", SPATIAL)
            return f"spatial({f[name]}, {dims})"
        return "(" + ", ".join([f[name]] * dims) + ")"
    if isinstance(value, int):
        value = (value,) * dims
    return literal(tuple(value))


def _conv(f: Fields) -> str:
    s = f.spec
    kws = [f"kernel_size={_pair(f, 'kernel_size')}"]
    kws += [] if f.value("stride") == 1 else [f"strides={_pair(f, 'stride')}"]
    pad = f.value("padding")
    if pad == 0:
        kws.append('padding="VALID"')
    elif pad is None and f["padding"] in getattr(f.ctx, "tuple_args", ()):
        kws.append(f"padding={f['padding']}")  # nnx.Conv takes an int or one per dim
    else:
        pads = [f["padding"]] * s.dims if pad is None or isinstance(pad, int) else map(str, pad)
        kws.append("padding=(" + ", ".join(f"({p}, {p})" for p in pads) + ")")
    kws += [] if f.value("dilation") == 1 else [f"kernel_dilation={_pair(f, 'dilation')}"]
    kws += [] if f.value("groups") == 1 else [f"feature_group_count={f['groups']}"]
    kws += [] if s.bias else ["use_bias=False"]
    kws += init_keywords(f, {"weight": "kernel_init", "bias": "bias_init"})
    return f"nnx.Conv({args_text(f['in_channels'], f['out_channels'], kws, 'rngs=rngs')})"


def _batchnorm(f: Fields) -> str:
    s = f.spec
    if s.train_stats != "native" or not s.affine:
        raise ExportError(f"{f.where}: the flax export writes affine, native BatchNorm only")
    kws = [f"momentum={literal(s.decay)}"]
    kws += [f"epsilon={literal(s.eps)}"] if s.eps != 1e-5 else []
    kws += ["use_fast_variance=False"]
    kws += init_keywords(f, {"weight": "scale_init", "bias": "bias_init"})
    return f"nnx.BatchNorm({args_text(f['num_features'], kws, 'rngs=rngs')})"


def _linear(f: Fields) -> str:
    if f.spec.conv1d:
        raise ExportError(f"{f.where}: a Conv1D-layout Linear (Hugging Face's) has no nnx class")
    kws = [] if f.spec.bias else ["use_bias=False"]
    kws += init_keywords(f, {"weight": "kernel_init", "bias": "bias_init"})
    return f"nnx.Linear({args_text(f['in_features'], f['out_features'], kws, 'rngs=rngs')})"


def _pool(f: Fields, args: list) -> str:
    """``nnx.max_pool``/``nnx.avg_pool`` with PyTorch's padding (an average counting the
    padded zeros, or not: ``count_include_pad``), floor mode."""
    s = f.spec
    if s.ceil_mode:
        raise ExportError(f"{f.where}: the flax export writes floor-mode pools only")
    pad = f.value("padding")
    pads = [f["padding"]] * s.dims if pad is None or isinstance(pad, int) else map(str, pad)
    padding = "(" + ", ".join(f"({p}, {p})" for p in pads) + ")"
    kws = [f"strides={_pair(f, 'stride')}", f"padding={padding}"]
    if s.kind == "avg_pool" and not s.count_include_pad and pad not in (0, (0,) * s.dims):
        kws.append("count_include_pad=False")
    name = "max_pool" if s.kind == "max_pool" else "avg_pool"
    return f"nnx.{name}({args_text(args[0], _pair(f, 'kernel_size'), kws)})"


def _adaptive_avg_pool(f: Fields, args: list) -> str:
    value = f.value("output_size")
    if value not in (1, (1,) * f.spec.dims):  # a global average is a mean; else the helper
        f.ctx.need("import jax")
        f.ctx.need("import jax.numpy as jnp")
        f.ctx.helper("adaptive_pool", ADAPTIVE_POOL)
        return f"adaptive_pool({args[0]}, {literal(tuple(f.spec.output_size))})"
    x = args[0]
    for axis in range(1, f.spec.dims + 1):
        x = f"{x}.mean(axis={axis}, keepdims=True)"
    return x


def _activation(name: str):
    return lambda f, args: f"nnx.{name}({args[0]})"


EMITTERS.register("conv", module=_conv)
EMITTERS.register("batchnorm", module=_batchnorm)
EMITTERS.register("linear", module=_linear)
EMITTERS.register("max_pool", call=_pool)
EMITTERS.register("avg_pool", call=_pool)
EMITTERS.register("adaptive_avg_pool", call=_adaptive_avg_pool)
register_sequence(EMITTERS)
register_zoo(EMITTERS)
register_channelwise(EMITTERS)
register_lengths(EMITTERS, "flax")


_DOWNSCALE_DROPOUT = '''class DownscaleDropout(nnx.Dropout):
    """Paddle's Dropout(mode="downscale_in_infer"): nnx.Dropout times (1 - p), so kept values
    are as they are in training and the output is x * (1 - p) at inference."""

    def __call__(self, x, **kw):
        return super().__call__(x, **kw) * (1.0 - self.rate)
'''


def _dropout(f: Fields) -> str:
    """``nnx.Dropout(p)``; Paddle's ``downscale_in_infer`` mode as a class of the file."""
    if f.spec.mode == "upscale_in_train":
        return f"nnx.Dropout({literal(f.spec.p)}, rngs=rngs)"
    f.ctx.helper("DownscaleDropout", _DOWNSCALE_DROPOUT)
    return f"DownscaleDropout({literal(f.spec.p)}, rngs=rngs)"


EMITTERS.register("dropout", module=_dropout)
for _kind, _name in {"relu": "relu", "silu": "silu", "sigmoid": "sigmoid", "tanh": "tanh"}.items():
    EMITTERS.register(_kind, call=_activation(_name))
EMITTERS.register("hardswish", call=_activation("hard_swish"))  # x * relu6(x + 3) / 6
EMITTERS.register("relu6", call=_activation("relu6"))
EMITTERS.register(
    "leaky_relu",
    call=lambda f, args: f"nnx.leaky_relu({args[0]}, {literal(f.spec.negative_slope)})",
)
for _kind in ("softmax", "log_softmax"):  # on PyTorch's layout (the value is turned there)
    EMITTERS.register(_kind, call=lambda f, args, k=_kind: f"nnx.{k}({args[0]}, axis={f['dim']})")


def _hardsigmoid(f: Fields, args: list) -> str:
    if not f.spec.is_default:
        raise ExportError(f"{f.where}: the export writes Hardsigmoid with its defaults only")
    return f"nnx.hard_sigmoid({args[0]})"  # relu6(x + 3) / 6, PyTorch's default


EMITTERS.register("hardsigmoid", call=_hardsigmoid)
EMITTERS.register("identity", call=lambda f, args: args[0])
EMITTERS.register("add", call=lambda f, args: " + ".join(args))
EMITTERS.register("mul", call=lambda f, args: " * ".join(args))
for _kind in ("window_attention", "window_attention_v2"):  # (B, H, W, C) as PyTorch's
    EMITTERS.register(_kind, module=flax_window_attention)


# ---- the spec's initialisation as constructor arguments -------------------------------------
_KERNEL_FANS = frozenset({"conv", "linear"})  # kinds whose Flax kernel has PyTorch's fans
# A truncation this many stds out cuts nothing a float32 normal draw reaches (those stop short
# of 6 std), so it is written as the normal: jax's truncated_normal at such bounds returns the
# bound itself about twice in 10^7 draws (measured: its uniform reaches erf's rounded ±1).
_UNCUT = 6.0


def init_code(row, ctx: Context) -> str:
    """The JAX initializer drawing the row's law: ``variance_scaling`` where Flax computes
    PyTorch's fans (a conv's or Linear's kernel), else the law's own, or a small function
    (attention's and the cells' kernels are split, so their fans are not the neutral's)."""
    item, init = row.item, row.item.init
    if row.layer.kind in _KERNEL_FANS and native_fans(item):
        if isinstance(init, (KaimingNormal, KaimingUniform)):
            scale = float(f"{gain(init.nonlinearity, init.a) ** 2:.12g}")
            kind = "normal" if isinstance(init, KaimingNormal) else "uniform"
            return f'nnx.initializers.variance_scaling({literal(scale)}, "{init.mode}", "{kind}")'
        if isinstance(init, (XavierNormal, XavierUniform)):
            kind = "normal" if isinstance(init, XavierNormal) else "uniform"
            scale = literal(float(init.gain) ** 2)
            return f'nnx.initializers.variance_scaling({scale}, "fan_avg", "{kind}")'
    dist = item.dist
    if isinstance(dist, ConstantDist):
        if dist.value in (0.0, 1.0):
            return "nnx.initializers." + ("zeros" if dist.value == 0.0 else "ones")
        return f"nnx.initializers.constant({literal(float(dist.value))})"
    if isinstance(dist, NormalDist) and dist.mu == 0.0:
        return f"nnx.initializers.normal({literal(dist.sigma)})"
    if isinstance(dist, TruncNormalDist) and dist.mu == 0.0:
        if min(-dist.low, dist.high) >= _UNCUT * dist.sigma:  # ViT's a=-2, b=2 at std 0.02
            return f"nnx.initializers.normal({literal(dist.sigma)})"
        low, high = literal(dist.low / dist.sigma), literal(dist.high / dist.sigma)
        return (
            f"nnx.initializers.truncated_normal({literal(dist.sigma)}, lower={low}, upper={high})"
        )
    if isinstance(dist, UniformDist):
        ctx.need("import jax")
        ctx.need("import jax.numpy as jnp")
        ctx.helper("uniform", _UNIFORM)
        return f"uniform({literal(dist.low)}, {literal(dist.high)})"
    raise ExportError(f"{item.path}: the flax export has no initializer for {dist.describe()}")


class FlaxCode(FrameworkCode):
    framework = "flax"
    base = "nnx.Module"
    call_name = "__call__"
    emitters = EMITTERS
    calls_init_weights = False  # the constructors' kernel_init= draw the spec's laws
    no_child = "nnx.data(None)"  # a child attribute, though empty (else nnx makes it static)
    module_list = "NumberedLayers"  # a helper class of the file (``_LAYERS``)
    list_gap = "None"

    def imports(self, ctx: Context) -> None:
        ctx.need("from flax import nnx")

    def init_args(self, args, flag, hints, root: bool, keywords=()) -> str:
        text = super().init_args(args, flag, hints, root)
        if root:
            return _join_args(text, "rngs: nnx.Rngs | None = None")
        return _join_args(text, "*", *keywords, "rngs: nnx.Rngs")

    def init_preamble(self, root: bool) -> list[str]:
        return ["        rngs = nnx.Rngs(0) if rngs is None else rngs"] if root else []

    def class_call(self, name, values, flag, flag_name) -> str:
        extra = [f"{flag_name}=True"] if flag else []
        return f"{name}({', '.join([*values, *extra, 'rngs=rngs'])})"

    def step(self, call: str, ctx: Context | None = None) -> str:
        plain = re.fullmatch(r"([\w.]+)\(x\)", call)  # nnx.relu(x): the function itself
        return plain.group(1) if plain else f"lambda x: {call}"

    def sequential(self, items: list[str], ctx: Context) -> str:
        ctx.helper("Sequential", _TURNING_SEQUENTIAL if getattr(ctx, "turned", {}) else _SEQUENTIAL)
        return f"Sequential({', '.join(items)})"

    def step_keywords(self, wheres: list[str], ctx: Context) -> list[str]:
        """``turn={i: channels_last}`` for the steps whose input the file's Sequential turns."""
        turned = getattr(ctx, "turned", {})
        found = [(i, turned[w]) for i, w in enumerate(wheres) if w in turned]
        if not found:
            return []
        pairs = ", ".join(f"{i}: {turn_function(ctx, to)}" for i, to in found)
        return [f"turn={{{pairs}}}"]

    def init_weights(self, planner, writer) -> list[str]:
        """No method body of statements: each constructor's ``*_init=`` draws its law; the
        codes are collected here (every instance of a class must draw alike), and where
        each value is held (channel-last or PyTorch's layout), before any class is written."""
        rows = init_rows(writer.spec, writer.policy)
        writer.planner, writer.ctx.inits = _planned(writer, rows)
        planner = writer.planner
        writer.ctx.layouts = LayoutPlan(writer.spec)  # read by the emitters
        writer.ctx.layouts.check_shared(planner)
        writer.ctx.turned = turned_steps(writer.spec, writer.ctx.layouts, self.has_module)
        writer.ctx.tuple_args = _tuple_args(planner)
        if any(writer._is_list(plan.template) for plan in planner.order):
            writer.ctx.helper("NumberedLayers", _LAYERS)  # the base of the numbered lists' classes
        doc = "Draw every parameter again from the constructors' initializers."
        return [
            "    def init_weights(self, rngs: nnx.Rngs) -> None:",
            f'        """{doc}"""',
            "        nnx.update(self, nnx.state(type(self)(rngs=rngs)))",
        ]

    def header(self, class_name: str, source: str, layout) -> list[str]:
        channels, dims = layout
        if channels and dims in (1, 2, 3):
            spatial = ("L", "H, W", "D, H, W")[dims - 1]
            taken = f"(N, {spatial}, {channels}), channels last (Flax's layout)"
        else:  # a sequence model: token ids (N, L) or a sequence (N, L, D), as PyTorch's
            taken = "as its first layer takes it (PyTorch's layout)"
        return [
            f"{class_name} for Flax NNX, generated by xinit export-code from {source}.",
            "",
            f"Input: {taken}. Needs only flax. The state's paths are those",
            "of xinit.build(spec, 'flax'): nnx.update(model, state) loads weights xinit built.",
        ]


def _join_args(*parts: str) -> str:
    return ", ".join(p for p in parts if p)


def _tuple_args(planner) -> set[str]:
    """Constructor arguments some instance gives as a tuple (CRNN's kernel_size 3 or (2, 3))."""
    out = set()
    for plan in planner.order:
        for values in plan.values:
            tuples = (p for p, v in values.items() if isinstance(v, tuple))
            out.update(plan.arg_of[p] for p in tuples if p in plan.arg_of)
    return out


# The constructor keyword of each neutral leaf, for the kinds whose emitter writes the laws
# with ``init_keywords`` (those a class can take as its own ``kernel_init=`` argument).
_KERNEL = {"weight": "kernel_init", "bias": "bias_init"}
_SCALE = {"weight": "scale_init", "bias": "bias_init"}
_INIT_KEYWORDS = {
    **dict.fromkeys(("conv", "linear", "conv_transpose"), _KERNEL),
    **dict.fromkeys(("batchnorm", "layernorm", "layernorm2d", "groupnorm"), _SCALE),
    "embedding": {"weight": "embedding_init"},
}
_INITIALIZER = "nnx.Initializer"  # the annotation of a class's init argument


def _planned(writer, rows):
    """The classes and each layer's init codes (:func:`_shared_codes`). Where instances of a
    class still draw a layer differently (PP-OCR's blocks whose depthwise convs draw other
    laws), the law is an argument of the class, given where each instance is made
    (``Block(16, 72, kernel_init=nnx.initializers.normal(0.5), rngs=rngs)``), as Flax users
    write; a layer whose emitter takes no such argument, or whose instances hold its values in
    other layouts (SVTR's encoder convs, on an image or on tokens), makes the classes planned
    again with its codes and layouts as part of their structure: each its own class
    (``Conv``, ``Conv2``), until every class is written once for all its instances."""
    from xinit.codegen.structure import Code, Planner

    planner, marked = writer.planner, {}
    passed: dict[int, dict[str, Code]] = {}  # layer id -> keyword -> its law, as arguments
    layers = dict(writer.layers())
    layouts = LayoutPlan(writer.spec)
    own: dict[str, dict[str, str]] = {}  # each layer's codes (a fan-scaled law as scaled)
    plain: dict[str, dict[str, str]] = {}  # each layer's codes, the law as the spec gives it
    for row in rows:
        code = init_code(row, writer.ctx)
        plain.setdefault(row.item.layer, {})[row.leaf] = code
        own.setdefault(row.item.layer, {})[row.leaf] = _fan_scaled(row) or code
    while True:
        codes, conflicts = _shared_codes(planner, rows, writer.ctx)
        conflicts = [c for c in conflicts if id(layers[c[0]]) not in passed]
        now = {
            id(layers[p]): _law_arguments(layers[p], plain.get(p, {}))
            for c in conflicts
            for p in c[3]
            if layers[p].kind in _INIT_KEYWORDS
        }
        found = {
            (p, "init", tuple(sorted(own.get(p, {}).items())))
            for c in conflicts
            for p in c[3]
            if id(layers[p]) not in now
        }
        found |= {(p, "layout", layouts.at[p].signature) for p in layouts.differing(planner)}
        new = {(id(layers[p]), what): value for p, what, value in found if p in layers}
        new = {k: v for k, v in new.items() if k not in marked}
        if not new and not now:
            if conflicts:
                where, first, name, _ = conflicts[0]
                raise ExportError(
                    f"{where}: draws {codes[where]} where {first} of the same class {name} "
                    f"draws {codes[first]}; the flax export writes one init per class layer"
                )
            return planner, codes
        marked |= new
        passed |= now

        def key(layer, marked=marked):
            mine = sorted((what, v) for (i, what), v in marked.items() if i == id(layer))
            return tuple(mine) or None

        def holes(layer, passed=passed):
            return passed.get(id(layer), {})

        planner = Planner(writer.spec, writer.class_name, writer._numbered_ok, key, holes)


def _law_arguments(layer, codes: dict[str, str]) -> dict:
    """``{"kernel_init": Code(...)}``: the layer's laws as the arguments of its constructor."""
    from xinit.codegen.structure import Code

    names = _INIT_KEYWORDS[layer.kind]
    return {names[leaf]: Code(code, _INITIALIZER) for leaf, code in codes.items() if leaf in names}


def _shared_codes(planner, rows, ctx):
    """(layer path -> leaf -> init code, the conflicts left). Every instance of a shared class
    must draw each layer alike (its code is written once): where instances differ, a conv or
    Linear kernel whose law scales with its fans (PaddleOCR's N(0, 2 / fan_in) blocks) is
    written as the ``variance_scaling`` all of them share."""
    codes: dict[str, dict[str, str]] = {}
    for row in rows:
        codes.setdefault(row.item.layer, {})[row.leaf] = init_code(row, ctx)
    scaled: set[str] = set()
    while True:
        conflicts = _conflicts(planner, codes)
        layers = {path for found in conflicts for path in found[:2]} - scaled
        if not layers:
            break
        for row in rows:
            if row.item.layer in layers and (code := _fan_scaled(row)) is not None:
                codes[row.item.layer][row.leaf] = code
        scaled |= layers
    return codes, conflicts


def _fan_scaled(row) -> str | None:
    """``variance_scaling(var x fan, mode, "normal" | "uniform")`` for a conv or Linear
    kernel's centred normal or uniform law (Flax computes those kernels' fans as PyTorch)."""
    item, dist = row.item, row.item.dist
    if row.layer.kind not in _KERNEL_FANS or row.leaf != "weight":
        return None
    if isinstance(dist, NormalDist) and dist.mu == 0.0:
        var, kind = dist.sigma**2, "normal"
    elif isinstance(dist, UniformDist) and dist.low == -dist.high:
        var, kind = dist.high**2 / 3.0, "uniform"
    else:
        return None
    mode = getattr(item.init, "mode", "fan_in")
    fans = neutral_fans(item.param.shape)
    fan = {"fan_in": fans.fan_in, "fan_out": fans.fan_out}.get(mode)
    if fan is None:
        return None
    scale = literal(float(f"{var * fan:.12g}"))
    return f'nnx.initializers.variance_scaling({scale}, "{mode}", "{kind}")'


def _conflicts(planner, codes) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(layer path, the first instance's layer path, class name, that layer's path in every
    instance) where their codes differ."""
    from xinit.blocks import walk
    from xinit.layers import Layer

    out = []
    for plan in planner.order:
        if len(plan.instances) < 2:
            continue
        first = planner.path_of[id(plan.instances[0])]
        for inst in plan.instances[1:]:
            where = planner.path_of[id(inst)]
            for rel, node in walk(inst):
                if not isinstance(node, Layer) or not rel:
                    continue
                a_path, b_path = (f"{p}.{rel}" if p else rel for p in (first, where))
                a, b = codes.get(a_path), codes.get(b_path)
                if a is not None and b is not None and a != b:
                    roots = (planner.path_of[id(i)] for i in plan.instances)
                    every = tuple(f"{p}.{rel}" if p else rel for p in roots)
                    out.append((b_path, a_path, plan.name, every))
    return out


CODEGEN = FlaxCode()
