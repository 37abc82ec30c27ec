"""Flax's lowering of the attention kinds (``multihead_attention``, ``sdpa``,
``window_attention``; registered by ``lowerings.py``): ``nnx.MultiHeadAttention``'s kernels
split by head, and xinit's modules (``attention_modules.py``). Nothing here imports
``lowerings.py``, which imports it."""

from __future__ import annotations

from itertools import accumulate

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import LecunNormal, Zeros
from xinit.parammap import Leaf

from ..common.window_attention import NO_WINDOW_ATTENTION
from ..registry import Lowering, param_of
from .lowering_base import _nnx


def _attention_modules():
    from . import attention_modules

    return attention_modules


def _heads(spec, name: str, rows: int, part: tuple[int, int, int] | None, heads=None) -> Leaf:
    """One (in, H, D) ``LinearGeneral`` kernel: a neutral (E, in) block, transposed, heads split
    (``heads``: the key/value heads of grouped-query attention)."""
    return Leaf(name, (1, 0), part=part, shape=(rows, heads or spec.num_heads, spec.head_dim))


_MHA_SOURCE = (
    "flax/nnx/nn/attention.py MultiHeadAttention (kernel_init = default_kernel_init = "
    "lecun_normal(), bias_init = zeros_init()); flax/nnx/nn/linear.py LinearGeneral "
    "kernel_init_wrap (flattens the kernel to (prod in, prod out) for the initializer)"
)


class MultiheadAttention(Lowering):
    """``nnx.MultiHeadAttention``: ``query``/``key``/``value`` kernels (in, H, D) and ``out``
    kernel (H, D, E), the neutral packed rows (or PyTorch's separate ``q/k/v_proj_weight``
    with kdim/vdim) transposed and split by head. Takes and returns the neutral (N, L, E)."""

    layout = "sequence"

    def default_rule(self, spec, param):
        """``nnx.MultiHeadAttention``: ``LinearGeneral`` kernels, flattened to 2-d before
        ``lecun_normal`` sees them: (E, H·D) for query/key/value, (H·D, E) for out."""
        e = spec.embed_dim
        if param == "in_proj_weight":
            text = (
                "lecun_normal on each (E, H, D) query/key/value kernel, seen as (E, H·D): fan_in E"
            )
            return LecunNormal(), Fans(e, e), text, _MHA_SOURCE
        if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
            n = param_of(spec, param).shape[1]
            text = f"lecun_normal on the ({n}, H, D) kernel, seen as ({n}, H·D): fan_in {n}"
            return LecunNormal(), Fans(n, e), text, _MHA_SOURCE
        if param == "out_proj.weight":
            text = "lecun_normal on the (H, D, E) out kernel, seen as (H·D, E): fan_in H·D = E"
            return LecunNormal(), Fans(e, e), text, _MHA_SOURCE
        return Zeros(), None, "zeros_init()", _MHA_SOURCE

    def default_missing(self, spec):
        if (spec.kdim or spec.embed_dim) != (spec.vdim or spec.embed_dim):
            note = "nnx.MultiHeadAttention has one in_kv_features for key and value (kdim != vdim)"
            return note, "flax/nnx/nn/attention.py MultiHeadAttention(in_kv_features=)"
        return None

    def native_default(self, spec, seed):
        if self.default_missing(spec):
            raise ValueError(self.default_missing(spec)[0])
        e, kv = spec.embed_dim, spec.kdim or spec.embed_dim
        return _nnx().MultiHeadAttention(
            spec.num_heads, e, num_kv_heads=spec.kv_heads, in_kv_features=kv, rngs=_nnx().Rngs(seed)
        )

    def params(self, spec):
        e, h, d = spec.embed_dim, spec.num_heads, spec.head_dim
        names = ("query", "key", "value")
        if spec.packed:
            out = {
                "in_proj_weight": tuple(
                    _heads(spec, f"{n}.kernel", e, (0, i * e, (i + 1) * e))
                    for i, n in enumerate(names)
                )
            }
        else:
            rows = (e, spec.key_features, spec.value_features)
            heads = (h, spec.kv_heads, spec.kv_heads)
            out = {
                f"{p}_proj_weight": (_heads(spec, f"{n}.kernel", r, None, k),)
                for p, n, r, k in zip("qkv", names, rows, heads)
            }
        out["out_proj.weight"] = (Leaf("out.kernel", (1, 0), shape=(h, d, e)),)
        if spec.bias:
            ends = [0, *accumulate(spec.proj_rows)]
            out["in_proj_bias"] = tuple(
                Leaf(f"{n}.bias", part=(0, ends[i], ends[i + 1]), shape=(rows // d, d))
                for i, (n, rows) in enumerate(zip(names, spec.proj_rows))
            )
            out["out_proj.bias"] = (Leaf("out.bias"),)
        return out

    def build(self, spec, device):
        return _attention_modules().Attention(spec)

    def natives(self):
        return (_nnx().MultiHeadAttention,)

    def read(self, m):
        if isinstance(m, _attention_modules().Attention):
            return m.spec
        e = m.in_features
        if m.qkv_features != e or m.out_features != e or m.normalize_qk:
            return None
        kv = m.in_kv_features
        return L.MultiheadAttention(
            e, m.num_heads, m.use_bias, kdim=kv, vdim=kv, num_kv_heads=m.num_kv_heads
        )


class ScaledDotProductAttention(Lowering):
    layout = "sequence"

    def build(self, spec, device):
        return _attention_modules().ScaledDotProductAttention(spec)


class WindowAttention(Lowering):
    """xinit's module of torchvision's ``ShiftedWindowAttention`` on the neutral (B, H, W, C):
    ``nnx.Linear`` kernels (in, out), the table as torchvision's; the index buffer is no
    tensor of it."""

    layout = "neutral"
    takes_initial = True
    leaves = {
        "qkv.weight": "qkv.kernel",
        "proj.weight": "proj.kernel",
        "relative_position_index": None,
    }
    module = "WindowAttention"

    def default_missing(self, spec):
        return NO_WINDOW_ATTENTION

    def build(self, spec, device, initial=None):
        return getattr(_attention_modules(), self.module)(spec, initial)

    def natives(self):
        return (getattr(_attention_modules(), self.module),)

    def read(self, m):
        return m.spec


class WindowAttentionV2(WindowAttention):
    """``ShiftedWindowAttentionV2``'s: ``logit_scale``, ``nnx.Sequential``'s ``cpb_mlp``
    kernels, the coordinates buffer."""

    leaves = {
        **WindowAttention.leaves,
        "cpb_mlp.0.weight": "cpb_mlp.layers.0.kernel",
        "cpb_mlp.0.bias": "cpb_mlp.layers.0.bias",
        "cpb_mlp.2.weight": "cpb_mlp.layers.2.kernel",
    }
    module = "WindowAttentionV2"
