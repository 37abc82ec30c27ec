"""How the code export writes PyTorch: one emitter per layer kind (``torch.nn`` classes as
torchvision writes them), the forward's parameter-free operations, and ``init_weights``
with ``nn.init`` (light: no torch import; the generated file imports torch)."""

from __future__ import annotations

from xinit.codegen.emitters import EmitterTable, args_text
from xinit.codegen.fields import Context, Fields, literal
from xinit.codegen.inits import InitRow
from xinit.codegen.structure import ExportError
from xinit.distributions import (
    ConstantDist,
    DiracDist,
    EyeDist,
    NormalDist,
    OrthogonalDist,
    TruncNormalDist,
    UniformDist,
)
from xinit.initializers import (
    KaimingNormal,
    KaimingUniform,
    Orthogonal,
    XavierNormal,
    XavierUniform,
)

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

EMITTERS = EmitterTable()


def _conv(f: Fields) -> str:
    s = f.spec
    kws = [*f.kw("stride", 1), *f.kw("padding", 0), *f.kw("dilation", 1), *f.kw("groups", 1)]
    if s.kind == "conv_transpose":
        kws += f.kw("output_padding", 0)
    name = "ConvTranspose" if s.kind == "conv_transpose" else "Conv"
    bias = [] if s.bias else ["bias=False"]
    shape = (f["in_channels"], f["out_channels"], f["kernel_size"])
    return f"nn.{name}{s.dims}d({args_text(*shape, kws, bias)})"


def _batchnorm(f: Fields) -> str:
    s = f.spec
    if s.train_stats != "native":
        raise ExportError(f"{f.path}: BatchNorm(train_stats={s.train_stats!r}) is xinit's only")
    kws = [*f.kw("eps", 1e-5), *f.kw("momentum", 0.1), *f.kw("affine", True)]
    return f"nn.BatchNorm{s.dims}d({args_text(f['num_features'], kws)})"


def _pool(name: str):
    def write(f: Fields) -> str:
        s = f.spec
        same = s.stride is None or f.value("stride") == f.value("kernel_size") is not None
        kws = [] if same else [f"stride={f['stride']}"]
        kws += [*f.kw("padding", 0), *f.kw("ceil_mode", False)]
        if s.kind == "avg_pool":
            kws += f.kw("count_include_pad", True)
        return f"nn.{name}{s.dims}d({args_text(f['kernel_size'], kws)})"

    return write


def _learned_apply(f: Fields, attr: str, args: list) -> str:
    (x,) = args
    if f.spec.op == "prepend":
        rest = ", ".join(["-1"] * (len(f.spec.shape) - 1))
        f.ctx.need("import torch")
        return f"torch.cat([{attr}.expand({x}.shape[0], {rest}), {x}], dim=1)"
    return f"{x} + {attr}"


def _learned_module(f: Fields) -> str:
    f.ctx.need("import torch")
    return f"nn.Parameter(torch.zeros({learned_shape(f, '', '')}))"


_ATTENTION = '''def attention(x, num_heads: int, causal: bool = False, mask=None):
    """Packed (N, L, 3E) rows q, k, v -> heads -> scaled dot-product attention -> (N, L, E);
    ``mask`` (L, L), bool: True where query i may see key j; or float, added to the scores."""
    n, length, packed = x.shape
    e = packed // 3
    qkv = x.reshape(n, length, 3, num_heads, e // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)
    y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
    return y.transpose(1, 2).reshape(n, length, e)
'''

_LOCAL_WINDOW = '''def local_window_mask(grid, window, device=None):
    """SVTR's local mixer: (L, L) bool over the L = H * W tokens of an (H, W) grid (row major),
    True where query (h, w) may see key (h', w'), a cell of its hk x wk window: h' - h in
    [-(hk // 2), hk - 1 - hk // 2], w' - w likewise."""
    (h, w), (hk, wk) = grid, window
    cells = torch.arange(h * w, device=device)
    rows, cols = cells // w, cells % w
    dh, dw = rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]
    inside_h = (dh >= -(hk // 2)) & (dh <= hk - 1 - hk // 2)
    inside_w = (dw >= -(wk // 2)) & (dw <= wk - 1 - wk // 2)
    return inside_h & inside_w
'''


def _sdpa(f: Fields, args: list) -> str:
    f.ctx.helper("attention", _ATTENTION)
    causal = ", causal=True" if f.spec.causal else ""
    if f.spec.attn_mask:
        return f"attention({args[0]}, {f['num_heads']}, mask={args[1]})"
    if f.spec.local_window is None:
        return f"attention({args[0]}, {f['num_heads']}{causal})"
    f.ctx.need("import torch")
    f.ctx.helper("local_window_mask", _LOCAL_WINDOW)
    mask = f"local_window_mask({f['grid']}, {f['local_window']}, {args[0]}.device)"
    return f"attention({args[0]}, {f['num_heads']}, mask={mask})"


def _select(f: Fields, args: list) -> str:
    dim, index = f.value("dim"), f.value("index")
    if isinstance(dim, int) and 0 <= dim <= 3 and index is not None:
        return f"{args[0]}[{', '.join([':'] * dim + [str(index)])}]"
    return f"{args[0]}.select({f['dim']}, {f['index']})"


def _concat(f: Fields, args: list) -> str:
    f.ctx.need("import torch")
    return f"torch.cat([{', '.join(args)}], dim={f['dim']})"


def _upsample(f: Fields) -> str:
    s = f.spec
    kws = [*f.kw("size", None), *f.kw("scale_factor", None), f"mode={literal(s.mode)}"]
    if s.mode == "bilinear":
        kws.append(f"align_corners={s.align_corners}")
    return f"nn.Upsample({args_text(kws)})"


def _recurrent(f: Fields) -> str:
    """``nn.LSTM``/``nn.GRU``/``nn.RNN``, batch first (the node yields the output sequence)."""
    s = f.spec
    if isinstance(s.bias, str):
        raise ExportError(f"{f.where}: torch's {s.kind} keeps both biases or none")
    kws = [*f.kw("num_layers", 1), *f.kw("bias", True), "batch_first=True"]
    kws += [f"{k}={literal(v)}" for k, v in recurrent_keywords(s).items()]
    kws += f.kw("bidirectional", False)
    name = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[s.kind]
    return f"nn.{name}({args_text(f['input_size'], f['hidden_size'], kws)})"


EMITTERS.register("conv", module=_conv)
EMITTERS.register("conv_transpose", module=_conv)
EMITTERS.register("batchnorm", module=_batchnorm)
EMITTERS.register("linear", module=linear_emitter("bias=False", "torch"))
EMITTERS.register(
    "embedding", module=lambda f: f"nn.Embedding({f['num_embeddings']}, {f['embedding_dim']})"
)
EMITTERS.register(
    "layernorm",
    module=lambda f: (
        "nn.LayerNorm("
        + args_text(
            one_int(f, "normalized_shape"),
            f.kw("eps", 1e-5),
            f.kw("elementwise_affine", True),
            f.kw("bias", True),
        )
        + ")"
    ),
)
EMITTERS.register(
    "groupnorm",
    module=lambda f: (
        "nn.GroupNorm("
        + args_text(f["num_groups"], f["num_channels"], f.kw("eps", 1e-5), f.kw("affine", True))
        + ")"
    ),
)
EMITTERS.register("max_pool", module=_pool("MaxPool"))
EMITTERS.register("avg_pool", module=_pool("AvgPool"))
EMITTERS.register(
    "adaptive_avg_pool", module=lambda f: f"nn.AdaptiveAvgPool{f.spec.dims}d({f['output_size']})"
)
EMITTERS.register(
    "flatten",
    module=lambda f: f"nn.Flatten({args_text(f.kw('start_dim', 1), f.kw('end_dim', -1))})",
)
EMITTERS.register("upsample", module=_upsample)
register_common(EMITTERS, "SiLU")
register_lengths(EMITTERS, "torch")
EMITTERS.register("gelu", module=lambda f: f"nn.GELU({args_text(f.kw('approximate', 'none'))})")
EMITTERS.register("learned_parameter", module=_learned_module, apply=_learned_apply)
EMITTERS.register("sdpa", call=_sdpa)
for _kind in ("lstm", "gru", "rnn"):  # the output sequence alone, as xinit's node gives it
    EMITTERS.register(_kind, module=_recurrent, apply=lambda f, attr, args: f"{attr}({args[0]})[0]")
EMITTERS.register("concat", call=_concat)
EMITTERS.register("select", call=_select)


def _permute(f: Fields, args: list) -> str:
    """``x.permute(0, 2, 1)``; ``x.transpose(1, 2)`` where the node is named ``transpose``
    and two dims swap (the call the traced model made)."""
    dims = f.spec.dims
    moved = [i for i, d in enumerate(dims) if i != d]
    if named_after(f, "transpose") and len(moved) == 2:
        return f"{args[0]}.transpose({moved[0]}, {moved[1]})"
    return f"{args[0]}.permute({', '.join(map(str, dims))})"


EMITTERS.register("permute", call=_permute, step=permute_step("nn.Module", "x.permute(self.dims)"))
EMITTERS.register(
    "reshape", call=lambda f, args: f"{args[0]}.reshape({args[0]}.shape[0], *{f['shape']})"
)


_LAYERNORM2D = '''class LayerNorm2d(nn.LayerNorm):
    """A LayerNorm over the channels (axis 1) of an (N, C, *) input, as torchvision's."""

    def forward(self, x):
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)
'''


def _layernorm2d(f: Fields) -> str:
    f.ctx.helper("LayerNorm2d", _LAYERNORM2D)
    kws = [*f.kw("eps", 1e-5), *f.kw("elementwise_affine", True), *f.kw("bias", True)]
    return f"LayerNorm2d({args_text(f['num_channels'], kws)})"


def _attention(f: Fields) -> str:
    s = f.spec
    kws = [] if s.bias else ["bias=False"]
    kws += [*f.kw("kdim", None), *f.kw("vdim", None), "batch_first=True"]
    return f"nn.MultiheadAttention({args_text(f['embed_dim'], f['num_heads'], kws)})"


def _pad(f: Fields, args: list) -> str:
    """``F.pad`` as the build calls it (pads last dim first)."""
    s = f.spec
    pads = "[" + ", ".join(map(str, s.pads)) + "]"
    kws = [f"mode={literal(s.mode)}"] if s.mode != "constant" else []
    kws += [f"value={literal(float(s.value))}"] if s.mode == "constant" and s.value else []
    return f"nn.functional.pad({args_text(args[0], pads, kws)})"


def _position_ids(f: Fields, args: list) -> str:
    """Token ids (N, L) -> their positions ``arange(L)`` per sample."""
    f.ctx.need("import torch")
    x = args[0]
    return f"torch.arange({x}.shape[1], device={x}.device).expand({x}.shape[0], -1)"


def _reduce(f: Fields, args: list) -> str:
    s = f.spec
    dims = literal(s.dims if isinstance(s.dims, int) else tuple(s.dims))
    keep = ", keepdim=True" if s.keepdim else ""
    op = "amax" if s.op == "max" else s.op
    return f"{args[0]}.{op}({dims}{keep})"


EMITTERS.register("layernorm2d", module=_layernorm2d)
EMITTERS.register(
    "multihead_attention",
    module=_attention,
    apply=lambda f, attr, args: (
        f"{attr}({', '.join(attention_inputs(f, args))}, need_weights=False)[0]"
    ),
)
EMITTERS.register("learned_tensor", module=_learned_module, apply=lambda f, attr, args: attr)
EMITTERS.register(
    "stochastic_depth",
    module=stochastic_depth_emitter(
        "nn.Module",
        "torch.empty(shape, dtype=x.dtype).bernoulli_(1.0 - self.p)",
        "import torch",
    ),
)
EMITTERS.register("reduce", call=_reduce)
EMITTERS.register("position_ids", call=_position_ids)
EMITTERS.register(
    "split", call=split_call("{x}.split({sizes}, dim={dim})", "{x}.chunk({n}, dim={dim})")
)
EMITTERS.register("pad", call=_pad)
EMITTERS.register(
    "matmul", call=lambda f, args: f.ctx.need("import torch") or f"torch.matmul({', '.join(args)})"
)


def _instancenorm(f: Fields) -> str:
    kws = [*f.kw("eps", 1e-5), *f.kw("momentum", 0.1), *f.kw("affine", False)]
    kws += f.kw("track_running_stats", False)
    return f"nn.InstanceNorm{f.spec.dims}d({args_text(f['num_features'], kws)})"


def _rmsnorm(f: Fields) -> str:
    kws = [*f.kw("eps", None), *f.kw("elementwise_affine", True)]
    return f"nn.RMSNorm({args_text(one_int(f, 'normalized_shape'), kws)})"


EMITTERS.register(
    "adaptive_max_pool", module=lambda f: f"nn.AdaptiveMaxPool{f.spec.dims}d({f['output_size']})"
)
register_clip(EMITTERS, ("min_val", "max_val"), "{x}.clamp({bound})")
EMITTERS.register("instancenorm", module=_instancenorm)
EMITTERS.register("rmsnorm", module=_rmsnorm)
EMITTERS.register(
    "layer_scale",
    module=layer_scale_emitter(
        "nn.Module",
        "self.gamma = nn.Parameter(torch.full((num_features,) + (1,) * spatial, init_value))",
        "import torch",
    ),
)


EMITTERS.register(
    "sinusoid_positions",
    module=sinusoid_emitter(
        "nn.Module",
        "table = torch.from_numpy(sinusoid_table(num_positions, dim))\n"
        '        self.register_buffer("table", table, persistent=False)',
        "self.table[:, : x.shape[1]].to(x.dtype)",
        "import torch",
    ),
)

for _kind in ("window_attention", "window_attention_v2"):
    EMITTERS.register(_kind, module=window_attention_emitter("torch"))


# ---- init_weights ---------------------------------------------------------------------------
def native_call(row: InitRow, target: str, ctx: Context) -> str:
    """The ``nn.init`` statement drawing the row's law on ``target``: the initializer's own
    call where torch computes the same fans, else the law's (normal_, uniform_, ...)."""
    item, init = row.item, row.item.init
    if native_fans(item):
        if isinstance(init, (KaimingNormal, KaimingUniform)):
            name = "kaiming_normal_" if isinstance(init, KaimingNormal) else "kaiming_uniform_"
            kws = [f"a={number(init.a, ctx)}"] if init.a else []
            kws += [f'mode="{init.mode}"'] if init.mode != "fan_in" else []
            if init.nonlinearity != "leaky_relu":
                kws.append(f'nonlinearity="{init.nonlinearity}"')
            return f"nn.init.{name}({args_text(target, kws)})"
        if isinstance(init, (XavierUniform, XavierNormal)):
            name = "xavier_uniform_" if isinstance(init, XavierUniform) else "xavier_normal_"
            gain = [f"gain={number(init.gain, ctx)}"] if init.gain != 1.0 else []
            return f"nn.init.{name}({args_text(target, gain)})"
        if isinstance(init, Orthogonal) and init.blocks == 1:
            gain = [f"gain={number(init.gain, ctx)}"] if init.gain != 1.0 else []
            return f"nn.init.orthogonal_({args_text(target, gain)})"
    return law_call(item.dist, target, row)


def law_call(dist, target: str, row: InitRow) -> str:
    """The ``nn.init`` call of a resolved law."""
    if isinstance(dist, ConstantDist):
        if dist.value == 0.0:
            return f"nn.init.zeros_({target})"
        if dist.value == 1.0:
            return f"nn.init.ones_({target})"
        return f"nn.init.constant_({target}, {literal(float(dist.value))})"
    if isinstance(dist, NormalDist):
        mean = [f"mean={literal(dist.mu)}"] if dist.mu else []
        return f"nn.init.normal_({args_text(target, mean, f'std={literal(dist.sigma)}')})"
    if isinstance(dist, UniformDist):
        return f"nn.init.uniform_({target}, {literal(dist.low)}, {literal(dist.high)})"
    if isinstance(dist, TruncNormalDist):
        mean = [f"mean={literal(dist.mu)}"] if dist.mu else []
        std = f"std={literal(dist.sigma)}"
        bounds = f"a={literal(dist.low)}, b={literal(dist.high)}"
        return f"nn.init.trunc_normal_({args_text(target, mean, std, bounds)})"
    if isinstance(dist, OrthogonalDist) and dist.blocks == 1:
        gain = [f"gain={literal(dist.gain)}"] if dist.gain != 1.0 else []
        return f"nn.init.orthogonal_({args_text(target, gain)})"
    if isinstance(dist, DiracDist):
        groups = [f"groups={dist.groups}"] if dist.groups != 1 else []
        return f"nn.init.dirac_({args_text(target, groups)})"
    if isinstance(dist, EyeDist):
        return f"nn.init.eye_({target})"
    raise ExportError(
        f"{row.item.path}: the torch export has no initialiser for the law {dist.describe()}"
    )


class TorchCode(PytorchStyleCode):
    framework = "torch"
    base = "nn.Module"
    emitters = EMITTERS

    def imports(self, ctx: Context) -> None:
        ctx.need("from torch import nn")

    def statement(self, row: InitRow, target: str, ctx: Context) -> str:
        return native_call(row, target, ctx)

    def header(self, class_name: str, source: str, layout) -> list[str]:
        return [
            f"{class_name} for PyTorch, generated by xinit export-code from {source}.",
            "",
            f"Input: {channels_first(layout)}. Needs only torch. Weights xinit built or ported:",
            f"    model = {class_name}()",
            '    model.load_state_dict(torch.load("weights.pt"), strict=True)',
            "init_weights() draws every parameter again as the spec's initialisation says.",
        ]


CODEGEN = TorchCode()
