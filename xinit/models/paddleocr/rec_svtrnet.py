"""SVTR's building blocks (``ppocr/modeling/backbones/rec_svtrnet.py``) as the SVTR neck uses
them: ``ConvBNLayer`` (``conv`` without bias, KaimingUniform; ``norm``; an activation) and
the global-mixer ``Block`` (``norm1``, ``mixer`` = ``Attention`` with ``qkv`` and ``proj``,
``norm2``, ``mlp`` = ``Mlp`` with ``fc1``/``fc2``). Linears are ``trunc_normal_(std=.02)``
(cut at the absolute ±2, as Paddle 3's TruncatedNormal) with zero biases, LayerNorms 1/0, as SVTR's
``_init_weights``. The attention core is the parameter-free ``sdpa`` (packed q, k, v rows of
one Linear, softmax(q kᵀ/√d) v); its attention-matrix dropout is not in the spec (eval)."""

from __future__ import annotations

from dataclasses import replace

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Zeros
from ...layers import (
    GELU,
    AdaptiveAvgPool,
    Add,
    BatchNorm,
    Conv,
    Dropout,
    Flatten,
    Hardswish,
    LayerNorm,
    LearnedParameter,
    Linear,
    Permute,
    Reshape,
    ScaledDotProductAttention,
    SiLU,
    SpecError,
)
from .._arguments import zoo_model
from ._common import KAIMING_NORMAL, KAIMING_UNIFORM, TRUNC_NORMAL, paddle_conv_default

ACTIVATIONS = {"gelu": GELU, "swish": SiLU}


def svtr_linear(cin: int, cout: int, bias: bool = True) -> Linear:
    """A Linear as SVTR's ``_init_weights`` leaves it: trunc_normal_(std=.02), bias 0."""
    return Linear(cin, cout, bias, weight_init=TRUNC_NORMAL, bias_init=Zeros())


def conv_bn_layer(
    cin: int, cout: int, kernel=3, stride=1, padding=0, act: str = "gelu", bias: bool = False
):
    """SVTR's ``ConvBNLayer``: ``conv`` (KaimingUniform; ``bias``: Paddle's zero bias, as
    ``bias_attr=None`` gives), ``norm`` (BatchNorm2D), ``act``."""
    zero = Zeros() if bias else None
    conv = Conv(cin, cout, kernel, stride, padding, bias=bias, weight_init=KAIMING_UNIFORM)
    return Sequential(
        conv=replace(conv, bias_init=zero),
        norm=BatchNorm(cout),
        act=ACTIVATIONS[act](),
    )


def block(
    dim: int,
    num_heads: int,
    mlp_ratio: float = 4.0,
    qkv_bias: bool = False,
    drop: float = 0.0,
    act: str = "gelu",
    epsilon: float = 1e-6,
    prenorm: bool = True,
    local_window: tuple[int, int] | None = None,
    grid: tuple[int, int] | None = None,
) -> Graph:
    """SVTR's ``Block``: post-norm (``prenorm``) ``norm1(x + mixer(x))``, ``norm2(x +
    mlp(x))``, or pre-norm ``x + mixer(norm1(x))``, ``x + mlp(norm2(x))``. The mixer is
    ``Global`` attention, or ``Local`` with ``local_window`` on the token ``grid`` (H, W)."""
    mixer = Sequential(
        qkv=svtr_linear(dim, 3 * dim, qkv_bias),
        sdpa=ScaledDotProductAttention(num_heads, local_window=local_window, grid=grid),
        proj=svtr_linear(dim, dim),
        proj_drop=Dropout(drop),
    )
    hidden = int(dim * mlp_ratio)
    mlp = Sequential(
        ("fc1", svtr_linear(dim, hidden)),
        ("act", ACTIVATIONS[act]()),
        ("drop", Dropout(drop)),
        ("fc2", svtr_linear(hidden, dim)),
        ("drop", Dropout(drop)),
    )
    norm = LayerNorm(dim, eps=epsilon)
    if prenorm:
        nodes = [
            ("mixer", mixer, "x"),
            ("residual1", Add(), ("x", "mixer")),
            ("norm1", norm, "residual1"),
            ("mlp", mlp, "norm1"),
            ("residual2", Add(), ("norm1", "mlp")),
            ("norm2", norm, "residual2"),
        ]
        # PaddleOCR registers norm1, mixer, norm2, mlp: its state-dict order
        order = ("norm1", "mixer", "norm2", "mlp", "residual1", "residual2")
        nodes.sort(key=lambda n: order.index(n[0]))
    else:
        nodes = [
            ("norm1", norm, "x"),
            ("mixer", mixer, "norm1"),
            ("residual1", Add(), ("x", "mixer")),
            ("norm2", norm, "residual1"),
            ("mlp", mlp, "norm2"),
            ("residual2", Add(), ("residual1", "mlp")),
        ]
    return Graph(nodes, outputs="residual2" if not prenorm else "norm2")


ACT_NAMES = {"nn.GELU": "gelu", "nn.Swish": "swish"}


def _to_map(channels: int, grid: tuple[int, int]) -> Sequential:
    """Tokens (N, H·W, C) -> a map (N, C, H, W), as SVTRNet's ``transpose``/``reshape``."""
    return Sequential(transpose=Permute((0, 2, 1)), reshape=Reshape((channels, *grid)))


def _sub_sample(cin: int, cout: int) -> Sequential:
    """``SubSample`` (types ``Conv``): ``conv`` (3x3, stride (2, 1), KaimingNormal, Paddle's
    zero bias) on the map, back to tokens, ``norm`` (LayerNorm, eps 1e-5)."""
    conv = Conv(cin, cout, 3, (2, 1), 1, weight_init=KAIMING_NORMAL, bias_init=Zeros())
    return Sequential(
        conv=conv, flatten=Flatten(start_dim=2), transpose=Permute((0, 2, 1)), norm=LayerNorm(cout)
    )


def _refuse_unsupported(**given) -> None:
    """SVTRNet's options this spec has no structure for, refused by name."""
    allowed = {
        "patch_merging": ("Conv", None, "None"),
        "qk_scale": (None,),
        "sub_num": (2,),
        "use_lenhead": (False,),
        "block_unit": ("Block",),
        "norm_layer": ("nn.LayerNorm",),
        "sub_norm": ("nn.LayerNorm",),
        "act": tuple(ACT_NAMES),
    }
    for name, value in given.items():
        if value not in allowed[name]:
            raise SpecError(f"SVTRNet: {name}={value!r} is not supported")


@zoo_model
def svtrnet(
    img_size=(32, 100),
    in_channels: int = 3,
    embed_dim=(64, 128, 256),
    depth=(3, 6, 3),
    num_heads=(2, 4, 8),
    mixer=("Local",) * 6 + ("Global",) * 6,
    local_mixer=((7, 11), (7, 11), (7, 11)),
    patch_merging="Conv",
    mlp_ratio: float = 4,
    qkv_bias: bool = True,
    qk_scale=None,
    drop_rate: float = 0.0,
    last_drop: float = 0.1,
    attn_drop_rate: float = 0.0,
    drop_path_rate: float = 0.1,
    norm_layer: str = "nn.LayerNorm",
    sub_norm: str = "nn.LayerNorm",
    epsilon: float = 1e-6,
    out_channels: int = 192,
    out_char_num: int = 25,
    block_unit: str = "Block",
    act: str = "nn.GELU",
    last_stage: bool = True,
    sub_num: int = 2,
    prenorm: bool = True,
    use_lenhead: bool = False,
) -> Graph:
    """``SVTRNet``: ``patch_embed`` (two stride-2 ConvBNLayers with bias, GELU), ``pos_embed``
    (trunc-normal), three stages ``blocks1..3`` of Blocks (``Local``: a window of
    ``local_mixer`` on the (H/4, W/4) grid, else ``Global``), ``sub_sample1/2`` between them
    (``patch_merging`` Conv: height halved), ``norm`` when not ``prenorm``; ``last_stage``:
    ``avg_pool`` to (1, ``out_char_num``), ``last_conv`` (1x1, no bias, Paddle's default),
    hard-swish, Paddle's ``downscale_in_infer`` dropout (x·(1 - p) at inference). Drop-path
    and attention dropout are identities at inference and not in the spec."""
    _refuse_unsupported(
        patch_merging=patch_merging,
        qk_scale=qk_scale,
        sub_num=sub_num,
        use_lenhead=use_lenhead,
        block_unit=block_unit,
        norm_layer=norm_layer,
        sub_norm=sub_norm,
        act=act,
    )
    del attn_drop_rate, drop_path_rate  # identities at inference, no parameters
    merging = patch_merging == "Conv"
    if any(m not in ("Local", "Global") for m in mixer) or len(mixer) != sum(depth):
        raise SpecError(
            f"SVTRNet: mixer must list 'Local' or 'Global' for each of {sum(depth)} blocks; "
            f"got {list(mixer)!r}"
        )
    d0, d1, d2 = embed_dim
    h, w = img_size[0] // 4, img_size[1] // 4
    grids = [(h, w), (h // 2, w), (h // 4, w)] if merging else [(h, w)] * 3
    patch = Sequential(
        *[
            conv_bn_layer(cin, cout, 3, 2, 1, "gelu", bias=True)
            for cin, cout in ((in_channels, d0 // 2), (d0 // 2, d0))
        ]
    )
    to_tokens = {"flatten": Flatten(start_dim=2), "transpose": Permute((0, 2, 1))}
    nodes = [
        ("pos_embed", LearnedParameter((1, h * w, d0), "add", TRUNC_NORMAL), "patch_embed"),
        ("patch_embed", Sequential(proj=patch, **to_tokens), "x"),
    ]
    previous, first = "pos_embed", 0
    for stage in range(3):
        dim, grid = embed_dim[stage], grids[stage]
        blocks = []
        for kind in mixer[first : first + depth[stage]]:
            window = tuple(local_mixer[stage]) if kind == "Local" else None
            blocks.append(
                block(
                    dim,
                    num_heads[stage],
                    mlp_ratio,
                    qkv_bias,
                    drop_rate,
                    ACT_NAMES[act],
                    epsilon,
                    prenorm,
                    local_window=window,
                    grid=grid if window else None,
                )
            )
        first += depth[stage]
        nodes.append((f"blocks{stage + 1}", Sequential(*blocks), previous))
        previous = f"blocks{stage + 1}"
        if merging and stage < 2:
            nodes.append((f"map{stage + 1}", _to_map(dim, grid), previous))
            nodes.append((f"sub_sample{stage + 1}", _sub_sample(dim, embed_dim[stage + 1])))
            previous = f"sub_sample{stage + 1}"
    if not prenorm:
        nodes.append(("norm", LayerNorm(d2, eps=epsilon), previous))
    if last_stage:
        last_conv = Conv(d2, out_channels, 1, bias=False, weight_init=paddle_conv_default(d2, 1))
        nodes += [
            ("last_map", _to_map(d2, grids[2])),
            ("avg_pool", AdaptiveAvgPool((1, out_char_num))),
            ("last_conv", last_conv),
            ("hardswish", Hardswish()),
            ("dropout", Dropout(last_drop, mode="downscale_in_infer")),
        ]
    return Graph(nodes)


def out_channels(out_channels: int = 192, embed_dim=(64, 128, 256), last_stage=True, **_) -> int:
    """SVTRNet's output channels: ``out_channels`` after the last stage, else the last
    ``embed_dim`` (tokens)."""
    return out_channels if last_stage else embed_dim[-1]
