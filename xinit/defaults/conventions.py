"""Conventions around initialisation, per framework: BatchNorm momentum/eps/running variance,
LayerNorm/GroupNorm/RMSNorm eps, weight layouts (attention's too), the fans of attention
projections, truncated-normal bounds, pooling defaults, RNG seeding, transformer stacks.

Each :class:`Convention` is a line of text per framework plus, where one exists, a
machine-readable value per framework that ``tests/defaults/test_defaults_conventions.py``
measures on the framework's own layers. Kept apart from the catalogue of default distributions
(:mod:`xinit.defaults.catalogue`) because it is a different kind of fact: not what a parameter
is drawn from, but what the surrounding machinery does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from xinit.backends import FRAMEWORKS


@dataclass(frozen=True)
class Convention:
    """One convention around initialisation, per framework: text plus, where one exists, a
    machine-readable value that ``tests/defaults/test_defaults_conventions.py`` measures."""

    key: str
    topic: str
    torch: str
    paddle: str
    flax: str
    note: str = ""
    values: tuple[tuple[str, Any], ...] = field(default=(), compare=False)

    def value(self, framework: str) -> Any:
        for fw, v in self.values:
            if fw == framework:
                return v
        raise KeyError(f"convention {self.key!r} has no value for {framework!r}")

    def text(self, framework: str) -> str:
        if framework not in FRAMEWORKS:
            raise ValueError(f"unknown framework {framework!r}; accepted: {FRAMEWORKS}")
        return getattr(self, framework)

    def record(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "topic": self.topic,
            "torch": self.torch,
            "paddle": self.paddle,
            "flax": self.flax,
            "note": self.note,
            "values": dict(self.values),
        }


def _v(torch, paddle, flax) -> tuple[tuple[str, Any], ...]:
    """One machine value per framework, in the order of ``FRAMEWORKS``."""
    return (("torch", torch), ("paddle", paddle), ("flax", flax))


CONVENTIONS: tuple[Convention, ...] = (
    Convention(
        "layout.linear",
        "Linear weight layout",
        "weight (out, in)",
        "weight [in, out]",
        "kernel (in, out)",
        "paddle and flax are transposed relative to torch",
    ),
    Convention(
        "layout.conv",
        "Conv weight layout",
        "weight (C_out, C_in/g, *k)",
        "weight [C_out, C_in/g, *k]",
        "kernel (*k, C_in/g, C_out) (HWIO)",
        "groups: torch/paddle `groups`, flax `feature_group_count`",
    ),
    Convention(
        "layout.conv_transpose",
        "ConvTranspose weight layout",
        "weight (C_in, C_out/g, *k)",
        "weight [C_in, C_out/g, *k]",
        "kernel (*k, C_in, C_out); no groups; (*k, C_out, C_in) if transpose_kernel=True",
    ),
    Convention(
        "layout.activations",
        "Activation layout",
        "NCHW images; (N, L, D) sequences (batch_first=True)",
        "NCHW (data_format='NCHW') images; (N, L, D) sequences (time_major=False)",
        "NHWC images, BatchNorm normalises axis=-1; (N, L, D) sequences",
    ),
    Convention(
        "names.batchnorm",
        "BatchNorm state names",
        "weight, bias; buffers running_mean, running_var, num_batches_tracked",
        "weight, bias, _mean, _variance (all Parameters; _mean/_variance stop_gradient)",
        "nnx: scale, bias (Param), mean, var (BatchStat); linen: params{scale, bias}, "
        "batch_stats{mean, var}",
    ),
    Convention(
        "bn.momentum_meaning",
        "BatchNorm momentum meaning",
        "new = (1-m)·old + m·batch",
        "new = m·old + (1-m)·batch",
        "new = m·old + (1-m)·batch",
        "torch m = 1 - paddle/flax m",
    ),
    Convention(
        "bn.momentum",
        "BatchNorm momentum default",
        "0.1",
        "0.9",
        "0.99",
        values=_v(0.1, 0.9, 0.99),
    ),
    Convention(
        "bn.new_batch_weight",
        "BatchNorm weight of a new batch in the running stats",
        "0.1",
        "0.1",
        "0.01",
        "torch and paddle defaults agree; flax is 10x slower",
        values=_v(0.1, 0.1, 0.01),
    ),
    Convention(
        "bn.eps",
        "BatchNorm eps",
        "1e-5",
        "1e-5 (epsilon)",
        "1e-5 (epsilon)",
        values=_v(1e-5, 1e-5, 1e-5),
    ),
    Convention(
        "bn.running_var",
        "BatchNorm running variance estimator",
        "unbiased (÷(n-1))",
        "biased (÷n)",
        "biased (÷n)",
        "normalisation in training uses the biased variance everywhere",
        values=_v("unbiased", "biased", "biased"),
    ),
    Convention(
        "bn.mode",
        "BatchNorm train/eval switch",
        "module.train() / .eval()",
        "layer.train() / .eval(); use_global_stats overrides",
        "nnx: use_running_average (default False), model.eval() sets True; linen: "
        "use_running_average must be given, batch_stats mutable",
    ),
    Convention(
        "ln.eps",
        "LayerNorm eps",
        "1e-5",
        "1e-5 (epsilon)",
        "1e-6 (epsilon)",
        values=_v(1e-5, 1e-5, 1e-6),
    ),
    Convention(
        "gn.eps",
        "GroupNorm eps",
        "1e-5",
        "1e-5 (epsilon)",
        "1e-6 (epsilon)",
        values=_v(1e-5, 1e-5, 1e-6),
    ),
    Convention(
        "rmsnorm.eps",
        "RMSNorm eps",
        "None: torch.finfo(input dtype).eps (1.19e-7 for float32)",
        "no RMSNorm layer; paddle.nn.functional.rms_norm(eps=1e-5)",
        "1e-6 (epsilon)",
        "xinit's RMSNorm keeps PyTorch's eps=None; set eps to match Flax",
        values=_v(None, 1e-5, 1e-6),
    ),
    Convention(
        "conv.padding",
        "Conv default padding",
        "0",
        "0",
        "'SAME'",
        values=_v(0, 0, "SAME"),
    ),
    Convention(
        "init.bias",
        "Default bias of Linear/Conv",
        "U(±1/√fan_in) with the weight's fan_in",
        "0",
        "0",
    ),
    Convention(
        "init.truncated_normal",
        "Truncated-normal bounds",
        "trunc_normal_(mean=0, std=1, a=-2, b=2): absolute [a, b], no variance correction",
        "TruncatedNormal(mean=0, std=1, a=-2, b=2): absolute [a, b], no correction",
        "truncated_normal(stddev=0.01, lower=-2, upper=2): bounds in stddevs, no correction; "
        "lecun/he/glorot_normal: ±2σ' with σ' = σ/0.8796 (variance-corrected)",
        "so torch/paddle trunc_normal(std=0.02) is effectively untruncated, jax's is cut at ±0.04",
        values=_v("absolute", "absolute", "stddevs"),
    ),
    Convention(
        "init.normal_meaning",
        "'normal' in He/Glorot/LeCun initializers",
        "untruncated (kaiming_normal_, xavier_normal_)",
        "untruncated (KaimingNormal, XavierNormal)",
        "truncated (he_normal, glorot_normal, lecun_normal); variance_scaling 'normal' is "
        "untruncated",
    ),
    Convention(
        "pool.stride",
        "Pooling stride default",
        "kernel_size",
        "kernel_size",
        "1 (strides=None)",
        values=_v("kernel", "kernel", 1),
    ),
    Convention(
        "pool.avg_count_include_pad",
        "Average pool counts padding",
        "yes (count_include_pad=True)",
        "no (exclusive=True)",
        "yes (count_include_pad=True)",
        "3x3/s2/p1 on ones: torch/flax corner 0.444, paddle 1.0",
        values=_v(True, False, True),
    ),
    Convention(
        "pool.ceil_mode",
        "ceil_mode and the edge window",
        "ceil_mode=True; a last window starting in the right padding is dropped; the divisor "
        "counts cells inside input+padding",
        "ceil_mode=True, but a last window starting in the right padding is KEPT: an extra "
        "output of 0 (avg, exclusive=False), NaN (avg, exclusive=True) or -FLT_MAX (max)",
        "no ceil_mode: emulate with explicit (low, high) padding",
        "5x5 input, k=2, s=2, padding=1, ceil_mode=True: torch 3x3, paddle 3.3.1 4x4",
        values=_v("drop", "keep", "none"),
    ),
    Convention(
        "rng.seeding",
        "RNG seeding",
        "torch.manual_seed(s): one global generator, drawn in build order",
        "paddle.seed(s): one global generator, drawn in build order",
        "nnx: nnx.Rngs(s), a counter per stream, drawn in build order; linen: init(key), keys "
        "folded with the module path (not sibling order)",
        "native draws differ bitwise between frameworks; use rng='xinit' for identical values",
    ),
    Convention(
        "rng.build_order",
        "Values depend on build order",
        "yes",
        "yes",
        "nnx yes; linen no (path-keyed)",
        values=_v(True, True, True),
    ),
    Convention(
        "rng.norm_consumes",
        "Norm layers consume RNG draws",
        "no",
        "no",
        "nnx BatchNorm, LayerNorm, GroupNorm and InstanceNorm advance rngs.params by 2 (scale "
        "and bias), RMSNorm by 1 (its scale), despite constant init; one draw fewer per "
        "use_scale/use_bias=False",
        values=_v(
            dict.fromkeys(("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm"), 0),
            dict.fromkeys(("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm"), 0),
            {"BatchNorm": 2, "LayerNorm": 2, "GroupNorm": 2, "InstanceNorm": 2, "RMSNorm": 1},
        ),
    ),
    Convention(
        "embedding.padding_idx",
        "Embedding padding_idx row",
        "zeroed at init",
        "zeroed at init",
        "no padding_idx",
    ),
    Convention(
        "fans.2d",
        "Fans of a 2-D tensor in the framework's init functions",
        "(fan_in, fan_out) = (shape[1], shape[0])",
        "(shape[0], shape[1])",
        "(shape[-2], shape[-1]); Embed uses out_axis=0 so fan_in = dim",
        "an embedding table gets fan_in = dim (torch, flax) or num (paddle)",
    ),
    Convention(
        "layout.attention",
        "Attention projection layout (embed dim E, H heads of D = E/H; key/value sizes kdim, vdim)",
        "in_proj_weight (3E, E): rows q, k, v packed; in_proj_bias (3E,); out_proj.weight "
        "(E, E); with kdim/vdim != E: q_proj_weight (E, E), k_proj_weight (E, kdim), "
        "v_proj_weight (E, vdim) instead of in_proj_weight",
        "q_proj/k_proj/v_proj/out_proj: Linear weights [in, out] ([E, E], [kdim, E], "
        "[vdim, E]), biases [E]",
        "query/key/value: LinearGeneral kernels (in, H, D), biases (H, D); out: kernel "
        "(H, D, E); one in_kv_features for key and value",
        "xinit's neutral layout is torch's; paddle's and flax's are slices of it, transposed; a "
        "kdim != vdim Flax layer is xinit's module (value kernel (vdim, H, D))",
    ),
    Convention(
        "attention.fans",
        "Fans an initializer sees on an attention projection (fan_in, fan_out), in units of E",
        "(E, 3E): xavier_uniform_ on the packed (3E, E) in_proj_weight, so U(±√(6/4E)); "
        "out_proj is a Linear: (E, E); with kdim/vdim, each q/k/v_proj_weight its own (in, E)",
        "(E, E): each q/k/v/out projection is its own Linear [E, E]; XavierUniform U(±√(6/2E)) "
        "(k/v with kdim/vdim: (in, E))",
        "(E, E): LinearGeneral hands the initializer the kernel flattened to (E, H·D) (out: "
        "(H·D, E)); lecun_normal uses fan_in E (key/value: kdim/vdim)",
        "neutral (xinit): torch's, an initializer on in_proj_weight gets fan_out 3E (Xavier std "
        "×1/√2 against paddle's); Default('paddle'/'flax') gives each projection its framework's",
        values=_v((1, 3), (1, 1), (1, 1)),
    ),
    Convention(
        "attention.bool_mask",
        "A True in a bool attention mask",
        "masks the position out (attn_mask, key_padding_mask); float masks are added",
        "keeps the position (one attn_mask broadcast to [N, H, L, S]; no key_padding_mask); "
        "float masks are added",
        "keeps the position (nnx mask [N, H, L, S]; no float mask in MultiHeadAttention, "
        "dot_product_attention takes bias=)",
        "xinit's masks mean what torch's do in every framework (attn_mask (L, S) or "
        "(N·H, L, S), key_padding_mask (N, S))",
        values=_v("masked", "keep", "keep"),
    ),
    Convention(
        "transformer.stack_copies",
        "Layers of a TransformerEncoder/TransformerDecoder stack at init",
        "copy.deepcopy of the layer passed (_get_clones): every layer starts with the same "
        "values; nn.Transformer then re-draws the >1-d ones with xavier_uniform_, the biases "
        "stay equal across layers",
        "layer 0 is the layer passed, the others are built again from its arguments "
        "(type(layer)(**layer._config)): independent draws",
        "no transformer stack in flax.nnx",
        "xinit's TransformerEncoder/TransformerDecoder draw each layer by its own path: "
        "independent, as Paddle's",
        values=_v("identical", "independent", "none"),
    ),
)


def conventions() -> list[Convention]:
    """Every convention, in table order."""
    return list(CONVENTIONS)


def convention_record(key: str) -> Convention:
    """The convention ``key`` (``"bn.momentum"``, ...); KeyError naming the known keys."""
    for c in CONVENTIONS:
        if c.key == key:
            return c
    raise KeyError(f"no convention {key!r}; known: {[c.key for c in CONVENTIONS]}")


__all__ = ["Convention", "CONVENTIONS", "conventions", "convention_record"]
