"""How the code export writes Paddle: one emitter per layer kind (``paddle.nn`` layers as
``paddle.vision`` writes them), the forward's parameter-free operations, and
``init_weights`` applying ``paddle.nn.initializer`` objects to the parameters, as PaddleClas
and PaddleDetection do (light: no paddle import; the generated file imports paddle)."""

from __future__ import annotations

from xinit.codegen.emitters import EmitterTable, args_text
from xinit.codegen.fields import Context, Fields, literal
from xinit.codegen.inits import InitRow
from xinit.codegen.structure import ExportError
from xinit.distributions import (
    ConstantDist,
    DiracDist,
    NormalDist,
    OrthogonalDist,
    TruncNormalDist,
    UniformDist,
)
from xinit.initializers import KaimingNormal, KaimingUniform, XavierNormal, XavierUniform

from ..common.codegen import (
    PytorchStyleCode,
    attention_inputs,
    channels_first,
    layer_scale_emitter,
    learned_shape,
    linear_emitter,
    named_after,
    native_fans,
    number,
    one_int,
    permute_step,
    register_clip,
    register_common,
    sinusoid_emitter,
    split_call,
    stochastic_depth_emitter,
)
from ..common.codegen_lengths import register_lengths
from ..common.codegen_window import window_attention_emitter
from ..common.recurrent import recurrent_keywords
from .codegen_classes import RMSNORM, RUNNING_INSTANCENORM, UPSAMPLE

EMITTERS = EmitterTable()


def _list(f: Fields, name: str) -> str:
    """A spatial field as Paddle takes it: an int, or a list."""
    code = f[name]
    return "[" + code[1:-1] + "]" if code.startswith("(") else code


def _conv(f: Fields) -> str:
    """``nn.Conv2D``, ``nn.Conv2DTranspose`` (Paddle's keywords in PyTorch's order)."""
    s = f.spec
    name = "Conv{}D"
    kws = [f"stride={_list(f, 'stride')}"] if f.value("stride") != 1 else []
    kws += [f"padding={_list(f, 'padding')}"] if f.value("padding") != 0 else []
    if s.kind == "conv_transpose":
        if any(op >= st for op, st in zip(s.output_padding, s.stride)):
            why = "an output_padding reaching the stride (PyTorch allows it, Paddle refuses)"
            raise ExportError(f"{f.where}: the paddle export writes no transposed conv with {why}")
        name = "Conv{}DTranspose"
        kws += [f"output_padding={_list(f, 'output_padding')}"] if f.value("output_padding") else []
    kws += f.kw("groups", 1)
    kws += [f"dilation={_list(f, 'dilation')}"] if f.value("dilation") != 1 else []
    bias = [] if s.bias else ["bias_attr=False"]
    kernel = _list(f, "kernel_size")
    shape = (f["in_channels"], f["out_channels"], kernel)
    return f"nn.{name.format(s.dims)}({args_text(*shape, kws, bias)})"


def _batchnorm(f: Fields) -> str:
    s = f.spec
    if s.train_stats != "native" or not s.affine:
        raise ExportError(f"{f.path}: the paddle export writes affine, native BatchNorm only")
    kws = [f"momentum={literal(s.decay)}"] if s.decay != 0.9 else []
    kws += [f"epsilon={literal(s.eps)}"] if s.eps != 1e-5 else []
    return f"nn.BatchNorm{s.dims}D({args_text(f['num_features'], kws)})"


def _pool(name: str):
    def write(f: Fields) -> str:
        s = f.spec
        if s.ceil_mode:
            raise ExportError(f"{f.path}: Paddle's pools keep a last window PyTorch drops")
        same = f.value("stride") == f.value("kernel_size") and f.value("stride") is not None
        kws = [] if same else [f"stride={_list(f, 'stride')}"]
        kws += [f"padding={_list(f, 'padding')}"] if f.value("padding") != 0 else []
        if s.kind == "avg_pool" and s.count_include_pad:
            kws.append("exclusive=False")
        return f"nn.{name}{s.dims}D({args_text(_list(f, 'kernel_size'), kws)})"

    return write


def _layernorm(f: Fields) -> str:
    s = f.spec
    if len(s.normalized_shape) != 1:
        raise ExportError(f"{f.path}: the paddle export writes a LayerNorm over one dim only")
    kws = [f"epsilon={literal(s.eps)}"] if s.eps != 1e-5 else []
    kws += [] if s.elementwise_affine else ["weight_attr=False", "bias_attr=False"]
    kws += [] if s.bias else ["bias_attr=False"]
    return f"nn.LayerNorm({args_text(one_int(f, 'normalized_shape'), kws)})"


def _learned_module(f: Fields) -> str:
    return f"self.create_parameter({learned_shape(f, '[', ']')})"


def _learned_apply(f: Fields, attr: str, args: list) -> str:
    (x,) = args
    if f.spec.op == "prepend":
        f.ctx.need("import paddle")
        rest = ", ".join(["-1"] * (len(f.spec.shape) - 1))
        return f"paddle.concat([{attr}.expand([{x}.shape[0], {rest}]), {x}], axis=1)"
    return f"{x} + {attr}"


_ATTENTION = '''def attention(x, num_heads: int, causal: bool = False, mask=None):
    """Packed (N, L, 3E) rows q, k, v -> heads -> softmax(q k^T / sqrt(d)) v -> (N, L, E);
    ``mask`` (L, L), bool: True where query i may see key j; or float, added to the scores."""
    n, length, packed = x.shape
    e = packed // 3
    d = e // num_heads
    qkv = x.reshape([n, length, 3, num_heads, d]).transpose([2, 0, 3, 1, 4])
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = paddle.matmul(q, k, transpose_y=True) * (1.0 / float(np.sqrt(d)))
    if causal:
        mask = paddle.tril(paddle.ones([length, length], dtype="bool"))
    if mask is not None and mask.dtype == paddle.bool:
        scores = paddle.where(mask, scores, paddle.full_like(scores, float("-inf")))
    elif mask is not None:
        scores = scores + mask
    y = paddle.matmul(nn.functional.softmax(scores, axis=-1), v)
    return y.transpose([0, 2, 1, 3]).reshape([n, length, e])
'''

_LOCAL_WINDOW = '''def local_window_mask(grid, window):
    """SVTR's local mixer: (L, L) bool over the L = H * W tokens of an (H, W) grid (row major),
    True where query (h, w) may see key (h', w'), a cell of its hk x wk window: h' - h in
    [-(hk // 2), hk - 1 - hk // 2], w' - w likewise."""
    (h, w), (hk, wk) = grid, window
    rows, cols = np.divmod(np.arange(h * w), w)
    dh, dw = rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]
    inside_h = (dh >= -(hk // 2)) & (dh <= hk - 1 - hk // 2)
    inside_w = (dw >= -(wk // 2)) & (dw <= wk - 1 - wk // 2)
    return paddle.to_tensor(inside_h & inside_w)
'''


def _sdpa(f: Fields, args: list) -> str:
    f.ctx.need("import paddle")
    f.ctx.need("import numpy as np")
    f.ctx.helper("attention", _ATTENTION)
    causal = ", causal=True" if f.spec.causal else ""
    if f.spec.attn_mask:
        return f"attention({args[0]}, {f['num_heads']}, mask={args[1]})"
    if f.spec.local_window is None:
        return f"attention({args[0]}, {f['num_heads']}{causal})"
    f.ctx.helper("local_window_mask", _LOCAL_WINDOW)
    mask = f"local_window_mask({f['grid']}, {f['local_window']})"
    return f"attention({args[0]}, {f['num_heads']}, mask={mask})"


def _select(f: Fields, args: list) -> str:
    dim, index = f.value("dim"), f.value("index")
    if not (isinstance(dim, int) and 0 <= dim <= 3 and index is not None):
        raise ExportError(f"{f.path}: the paddle export selects at a fixed dim and index only")
    return f"{args[0]}[{', '.join([':'] * dim + [str(index)])}]"


def _concat(f: Fields, args: list) -> str:
    f.ctx.need("import paddle")
    return f"paddle.concat([{', '.join(args)}], axis={f['dim']})"


def _gelu(f: Fields) -> str:
    return "nn.GELU(approximate=True)" if f.spec.approximate == "tanh" else "nn.GELU()"


EMITTERS.register("conv", module=_conv)
EMITTERS.register("conv_transpose", module=_conv)
EMITTERS.register("batchnorm", module=_batchnorm)
EMITTERS.register("linear", module=linear_emitter("bias_attr=False", "paddle"))
EMITTERS.register(
    "embedding", module=lambda f: f"nn.Embedding({f['num_embeddings']}, {f['embedding_dim']})"
)
EMITTERS.register("layernorm", module=_layernorm)
EMITTERS.register("max_pool", module=_pool("MaxPool"))
EMITTERS.register("avg_pool", module=_pool("AvgPool"))
EMITTERS.register(
    "adaptive_avg_pool",
    module=lambda f: f"nn.AdaptiveAvgPool{f.spec.dims}D({_list(f, 'output_size')})",
)
EMITTERS.register(
    "flatten",
    module=lambda f: (
        "nn.Flatten("
        + args_text(f.kw("start_dim", 1, "start_axis"), f.kw("end_dim", -1, "stop_axis"))
        + ")"
    ),
)
register_common(EMITTERS, "Silu", dropout_modes=True, dim_keyword="axis")
register_lengths(EMITTERS, "paddle")
EMITTERS.register("gelu", module=_gelu)
EMITTERS.register("learned_parameter", module=_learned_module, apply=_learned_apply)
EMITTERS.register("sdpa", call=_sdpa)
EMITTERS.register("concat", call=_concat)
EMITTERS.register("select", call=_select)


def _permute(f: Fields, args: list) -> str:
    """``x.transpose(perm)``; ``x.permute(perm)`` where two dims swap and the node is not
    named ``transpose`` (PyTorch's ``x.permute(0, 2, 1)``: Paddle's tracer names a swapping
    ``transpose`` as PyTorch's ``x.transpose(1, 2)``)."""
    dims = ", ".join(map(str, f.spec.dims))
    swap = sum(i != d for i, d in enumerate(f.spec.dims)) == 2
    call = "permute" if swap and not named_after(f, "transpose") else "transpose"
    return f"{args[0]}.{call}([{dims}])"


EMITTERS.register("permute", call=_permute, step=permute_step("nn.Layer", "x.transpose(self.dims)"))
EMITTERS.register(
    "reshape",
    call=lambda f, args: f"{args[0]}.reshape([{args[0]}.shape[0], *{f['shape']}])",
)


_LAYERNORM2D = '''class LayerNorm2d(nn.LayerNorm):
    """A LayerNorm over the channels (axis 1) of an (N, C, *) input, as torchvision's."""

    def forward(self, x):
        last = [0, *range(2, x.ndim), 1]
        back = [0, x.ndim - 1, *range(1, x.ndim - 1)]
        return super().forward(x.transpose(last)).transpose(back)
'''


def _layernorm2d(f: Fields) -> str:
    s = f.spec
    f.ctx.helper("LayerNorm2d", _LAYERNORM2D)
    kws = [f"epsilon={literal(s.eps)}"] if s.eps != 1e-5 else []
    kws += [] if s.elementwise_affine else ["weight_attr=False", "bias_attr=False"]
    kws += [] if s.bias or not s.elementwise_affine else ["bias_attr=False"]
    return f"LayerNorm2d({args_text(f['num_channels'], kws)})"


def _attention(f: Fields) -> str:
    s = f.spec
    kws = [*f.kw("kdim", None), *f.kw("vdim", None)]
    kws += [] if s.bias else ["bias_attr=False"]
    return f"nn.MultiHeadAttention({args_text(f['embed_dim'], f['num_heads'], kws)})"


def _reduce(f: Fields, args: list) -> str:
    s = f.spec
    f.ctx.need("import paddle")
    dims = [s.dims] if isinstance(s.dims, int) else list(s.dims)
    keep = ", keepdim=True" if s.keepdim else ""
    return f"paddle.{s.op}({args[0]}, axis={dims}{keep})"


def _recurrent(f: Fields) -> str:
    """``nn.LSTM``/``nn.GRU``/``nn.SimpleRNN``, batch first (Paddle's default), every bias."""
    s = f.spec
    if s.bias is not True:
        raise ExportError(f"{f.where}: the paddle export writes {s.kind} with both biases only")
    kws = [*f.kw("num_layers", 1)]
    kws += ['direction="bidirect"'] if s.bidirectional else []
    kws += [f"{k}={literal(v)}" for k, v in recurrent_keywords(s, "activation").items()]
    name = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}[s.kind]
    return f"nn.{name}({args_text(f['input_size'], f['hidden_size'], kws)})"


for _kind in ("lstm", "gru", "rnn"):  # the output sequence alone, as xinit's node gives it
    EMITTERS.register(_kind, module=_recurrent, apply=lambda f, attr, args: f"{attr}({args[0]})[0]")
_PAD = '''def torch_pad(x, pads, mode="constant", value=0.0):
    """PyTorch's F.pad (pads last dim first) in Paddle: in constant mode Paddle pads a list
    shorter than 2 * ndim last dim first too; the other modes on the spatial dims of
    NCL/NCHW/NCDHW, last dim first."""
    if mode == "constant":
        return nn.functional.pad(x, list(pads), value=value)
    spatial = list(pads) + [0] * (2 * (x.ndim - 2) - len(pads))
    layout = {3: "NCL", 4: "NCHW", 5: "NCDHW"}[x.ndim]
    return nn.functional.pad(x, spatial, mode=mode, data_format=layout)
'''


def _pad(f: Fields, args: list) -> str:
    s = f.spec
    f.ctx.helper("torch_pad", _PAD)
    pads = "[" + ", ".join(map(str, s.pads)) + "]"
    kws = [f"mode={literal(s.mode)}"] if s.mode != "constant" else []
    kws += [f"value={literal(float(s.value))}"] if s.mode == "constant" and s.value else []
    return f"torch_pad({args_text(args[0], pads, kws)})"


EMITTERS.register(
    "split",
    call=split_call(
        "paddle.split({x}, {sizes}, axis={dim})",
        "paddle.chunk({x}, {n}, axis={dim})",
        "import paddle",
    ),
)
EMITTERS.register("pad", call=_pad)
EMITTERS.register("layernorm2d", module=_layernorm2d)
EMITTERS.register(
    "multihead_attention",
    module=_attention,
    apply=lambda f, attr, args: f"{attr}({', '.join(attention_inputs(f, args))})",
)
EMITTERS.register("learned_tensor", module=_learned_module, apply=lambda f, attr, args: attr)
EMITTERS.register(
    "stochastic_depth",
    module=stochastic_depth_emitter(
        "nn.Layer",
        "paddle.bernoulli(paddle.full(shape, 1.0 - self.p, dtype=x.dtype))",
        "import paddle",
    ),
)
EMITTERS.register("reduce", call=_reduce)
EMITTERS.register(
    "position_ids",
    call=lambda f, args: (
        f.ctx.need("import paddle") or f"paddle.arange({args[0]}.shape[1]).expand({args[0]}.shape)"
    ),
)
EMITTERS.register(
    "matmul",
    call=lambda f, args: f.ctx.need("import paddle") or f"paddle.matmul({', '.join(args)})",
)


def _no_affine(f: Fields, affine: str) -> list[str]:
    """Paddle's norms make scale and bias unless told ``weight_attr=False``."""
    return [] if f.value(affine) is not False else ["weight_attr=False", "bias_attr=False"]


def _groupnorm(f: Fields) -> str:
    kws = [f"epsilon={f['eps']}"] if f.value("eps") != 1e-5 else []
    kws += _no_affine(f, "affine")
    return f"nn.GroupNorm({args_text(f['num_groups'], f['num_channels'], kws)})"


def _instancenorm(f: Fields) -> str:
    """``nn.InstanceNorm2D``; with running statistics (Paddle's keeps none) the file's
    ``RunningInstanceNorm``, PyTorch's rule."""
    s = f.spec
    if s.track_running_stats:
        f.ctx.need("import paddle")
        f.ctx.need("import numpy as np")
        f.ctx.helper("RunningInstanceNorm", RUNNING_INSTANCENORM)
        kws = [*f.kw("eps", 1e-5), *f.kw("momentum", 0.1), *f.kw("affine", False)]
        return f"RunningInstanceNorm({args_text(f['num_features'], kws)})"
    kws = [f"epsilon={f['eps']}"] if f.value("eps") != 1e-5 else []
    kws += _no_affine(f, "affine")
    return f"nn.InstanceNorm{s.dims}D({args_text(f['num_features'], kws)})"


def _rmsnorm(f: Fields) -> str:
    f.ctx.need("import paddle")
    f.ctx.need("import numpy as np")
    f.ctx.helper("RMSNorm", RMSNORM)
    kws = [*f.kw("eps", None), *f.kw("elementwise_affine", True)]
    return f"RMSNorm({args_text(one_int(f, 'normalized_shape'), kws)})"


def _upsample(f: Fields) -> str:
    s = f.spec
    for line in ("import math", "import numpy as np", "import paddle"):
        f.ctx.need(line)
    f.ctx.helper("Upsample", UPSAMPLE)
    kws = [*f.kw("size", None), *f.kw("scale_factor", None), f"mode={literal(s.mode)}"]
    kws += f.kw("align_corners", False)
    return f"Upsample({args_text(kws)})"


EMITTERS.register(
    "adaptive_max_pool",
    module=lambda f: f"nn.AdaptiveMaxPool{f.spec.dims}D({_list(f, 'output_size')})",
)
register_clip(EMITTERS, ("min", "max"), "paddle.clip({x}, {bound})", "import paddle")
EMITTERS.register("groupnorm", module=_groupnorm)
EMITTERS.register("instancenorm", module=_instancenorm)
EMITTERS.register("rmsnorm", module=_rmsnorm)
EMITTERS.register("upsample", module=_upsample)
EMITTERS.register(
    "layer_scale",
    module=layer_scale_emitter(
        "nn.Layer",
        "value = nn.initializer.Constant(init_value)\n"
        "        self.gamma = self.create_parameter(\n"
        "            [num_features] + [1] * spatial, default_initializer=value\n"
        "        )",
        "from paddle import nn",
    ),
)


EMITTERS.register(
    "sinusoid_positions",
    module=sinusoid_emitter(
        "nn.Layer",
        "table = paddle.to_tensor(sinusoid_table(num_positions, dim))\n"
        '        self.register_buffer("table", table, persistable=False)',
        "self.table[:, : x.shape[1]].astype(x.dtype)",
        "import paddle",
    ),
)

for _kind in ("window_attention", "window_attention_v2"):
    EMITTERS.register(_kind, module=window_attention_emitter("paddle"))


# ---- init_weights ---------------------------------------------------------------------------
def _init(name: str, *args) -> str:
    return f"nn.initializer.{name}({args_text(*args)})"


def initializer(row: InitRow, ctx: Context, native: bool = True) -> str:
    """The ``paddle.nn.initializer`` object drawing the row's law: the initializer's own
    where Paddle computes the same fans (its layouts' fans are PyTorch's; ``native`` False:
    the tensor drawn is not the neutral one), else the law's."""
    item, init = row.item, row.item.init
    if native and native_fans(item):
        if isinstance(init, (KaimingNormal, KaimingUniform)):
            kws = [f'mode="{init.mode}"'] if init.mode != "fan_in" else []
            if init.nonlinearity == "leaky_relu":
                kws += ['nonlinearity="leaky_relu"']
                kws += [f"negative_slope={number(init.a, ctx)}"] if init.a else []
            elif init.nonlinearity != "relu":
                kws.append(f'nonlinearity="{init.nonlinearity}"')
            return _init(type(init).__name__, kws)
        if isinstance(init, (XavierUniform, XavierNormal)):
            gain = [f"gain={number(init.gain, ctx)}"] if init.gain != 1.0 else []
            return _init(type(init).__name__, gain)
    dist = item.dist
    if isinstance(dist, ConstantDist):
        return _init("Constant", literal(float(dist.value)))
    if isinstance(dist, NormalDist):
        return _init("Normal", literal(dist.mu), literal(dist.sigma))
    if isinstance(dist, UniformDist):
        return _init("Uniform", literal(dist.low), literal(dist.high))
    if isinstance(dist, TruncNormalDist):
        bounds = (literal(dist.low), literal(dist.high))
        return _init("TruncatedNormal", literal(dist.mu), literal(dist.sigma), *bounds)
    if isinstance(dist, OrthogonalDist) and dist.blocks == 1:
        return _init("Orthogonal", [f"gain={literal(dist.gain)}"] if dist.gain != 1.0 else [])
    if isinstance(dist, DiracDist):
        return _init("Dirac", [f"groups={dist.groups}"] if dist.groups != 1 else [])
    raise ExportError(
        f"{item.path}: the paddle export has no initializer for the law {dist.describe()}"
    )


_PACKED = {"in_proj_weight": "weight", "in_proj_bias": "bias"}
_INIT_EACH = '''def init_each(initializer, *params):
    """Draw each of ``params`` with ``initializer`` (one law on several tensors)."""
    for p in params:
        initializer(p)
'''


class PaddleCode(PytorchStyleCode):
    framework = "paddle"
    base = "nn.Layer"
    emitters = EMITTERS
    modules_call = "self.sublayers()"
    module_list = "nn.LayerList"

    def imports(self, ctx: Context) -> None:
        ctx.need("from paddle import nn")

    def native_leaf(self, row: InitRow) -> str:
        """Paddle's name of the parameter where its layer names it otherwise (InstanceNorm's
        ``scale``, PReLU's ``_weight``), as the lowering's parameter map says."""
        from .lowerings import REGISTRY

        kind = row.item.param.kind
        name = REGISTRY[kind].leaves.get(row.leaf, row.leaf) if kind in REGISTRY else row.leaf
        return name if isinstance(name, str) else row.leaf

    def statement(self, row: InitRow, target: str, ctx: Context) -> str:
        packed = _PACKED.get(row.leaf) if row.item.param.kind == "multihead_attention" else None
        if packed is None:
            return f"{initializer(row, ctx)}({target})"
        # the neutral packed q, k, v rows are Paddle's three projections: the law on each
        owner = target.removesuffix(f".{row.leaf}")
        ctx.helper("init_each", _INIT_EACH)
        parts = ", ".join(f"{owner}.{p}_proj.{packed}" for p in "qkv")
        return f"init_each({initializer(row, ctx, native=False)}, {parts})"

    def header(self, class_name: str, source: str, layout) -> list[str]:
        return [
            f"{class_name} for Paddle, generated by xinit export-code from {source}.",
            "",
            f"Input: {channels_first(layout)}. Needs only paddle. Weights xinit built or ported:",
            f"    model = {class_name}()",
            '    model.set_state_dict(paddle.load("weights.pdparams"))',
            "init_weights() draws every parameter again as the spec's initialisation says.",
        ]


CODEGEN = PaddleCode()
