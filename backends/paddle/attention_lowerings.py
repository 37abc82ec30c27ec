"""Paddle's lowering of the attention kinds (``multihead_attention``, ``sdpa``,
``window_attention``; registered by ``lowerings.py``): ``nn.MultiHeadAttention``'s separate
projections, and xinit's modules for what it cannot compute. Nothing here imports
``lowerings.py``, which imports it."""

from __future__ import annotations

from itertools import accumulate

from xinit import layers as L
from xinit.fans import Fans
from xinit.initializers import XavierUniform, Zeros
from xinit.parammap import Leaf

from ..common.window_attention import NO_WINDOW_ATTENTION
from ..registry import Lowering, param_of
from .lowering_base import _modules, _paddle, _seeded


def _qkv_leaves(spec, suffix: str, perm) -> tuple[Leaf, ...]:
    """The packed q/k/v rows of a neutral ``in_proj_*`` as Paddle's three projections (rows
    E, E, E; grouped-query attention's E, K·D, K·D)."""
    ends = [0, *accumulate(spec.proj_rows)]
    return tuple(
        Leaf(f"{name}_proj.{suffix}", perm, part=(0, ends[i], ends[i + 1]))
        for i, name in enumerate("qkv")
    )


_MHA_SOURCE = (
    "python/paddle/nn/layer/transformer.py MultiHeadAttention: q/k/v/out_proj are Linear(E, E) "
    "(ParamAttr defaults: XavierUniform weight, zero bias)"
)


class MultiheadAttention(Lowering):
    """Paddle's ``nn.MultiHeadAttention``: separate ``q_proj``/``k_proj``/``v_proj``/``out_proj``
    Linears, weights stored (in, out): the neutral packed rows (or PyTorch's separate
    ``q/k/v_proj_weight`` with kdim/vdim), each transposed. Masks are turned into the one
    additive float mask Paddle takes (``modules.Attention``)."""

    def params(self, spec):
        if spec.packed:
            out = {"in_proj_weight": _qkv_leaves(spec, "weight", (1, 0))}
        else:
            out = {f"{n}_proj_weight": (Leaf(f"{n}_proj.weight", (1, 0)),) for n in "qkv"}
        out["out_proj.weight"] = (Leaf("out_proj.weight", (1, 0)),)
        if spec.bias:
            out["in_proj_bias"] = _qkv_leaves(spec, "bias", None)
            out["out_proj.bias"] = (Leaf("out_proj.bias"),)
        return out

    def default_rule(self, spec, param):
        """``nn.MultiHeadAttention``: four Linears, each with Linear's defaults, so Xavier
        sees each [in, E] projection (in = E, or kdim/vdim for k/v), not a packed matrix."""
        e = spec.embed_dim
        if param in ("in_proj_weight", "out_proj.weight"):
            which = "each of q_proj/k_proj/v_proj" if param == "in_proj_weight" else "out_proj"
            text = f"XavierUniform on {which}.weight [E, E]: U(±√(6/2E))"
            return XavierUniform(), Fans(e, e), text, _MHA_SOURCE
        if param in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):  # kdim/vdim != E
            n = param_of(spec, param).shape[1]
            text = f"XavierUniform on {param[0]}_proj.weight [{n}, E]: U(±√(6/({n}+E)))"
            return XavierUniform(), Fans(n, e), text, _MHA_SOURCE
        return Zeros(), None, "Constant(0) (Linear's bias default)", _MHA_SOURCE

    def native_default(self, spec, seed):
        e, kdim, vdim = spec.embed_dim, spec.kdim or spec.embed_dim, spec.vdim or spec.embed_dim
        return _seeded(seed).MultiHeadAttention(e, spec.num_heads, kdim=kdim, vdim=vdim)

    def default_missing(self, spec):
        if spec.num_kv_heads is not None:
            note = "paddle.nn has no grouped-query attention layer (num_kv_heads)"
            return note, "python/paddle/nn/layer/transformer.py MultiHeadAttention"
        return None

    def build(self, spec, device):
        if spec.num_kv_heads is not None:
            return _modules().GroupedQueryAttention(spec)
        return _modules().Attention(spec)

    def natives(self):
        return (_paddle().nn.MultiHeadAttention, _modules().GroupedQueryAttention)

    def read(self, m):
        if isinstance(m, (_modules().Attention, _modules().GroupedQueryAttention)):
            return m.spec
        biases = {p.bias is None for p in (m.q_proj, m.k_proj, m.v_proj, m.out_proj)}
        if len(biases) > 1:  # some projections without bias: no neutral spec
            return None
        bias = m.q_proj.bias is not None
        return L.MultiheadAttention(m.embed_dim, m.num_heads, bias, kdim=m.kdim, vdim=m.vdim)


class ScaledDotProductAttention(Lowering):
    def build(self, spec, device):
        return _modules().ScaledDotProductAttention(spec.num_heads, spec.causal, spec.window_mask())


class WindowAttention(Lowering):
    """xinit's layer of torchvision's ``ShiftedWindowAttention``: Linears stored (in, out),
    the table as torchvision's; the index buffer is no tensor of it."""

    leaves = {"relative_position_index": None}
    module = "WindowAttention"

    def default_missing(self, spec):
        return NO_WINDOW_ATTENTION

    def build(self, spec, device):
        return getattr(_modules(), self.module)(spec)

    def natives(self):
        return (getattr(_modules(), self.module),)

    def read(self, m):
        return m.spec


class WindowAttentionV2(WindowAttention):
    """``ShiftedWindowAttentionV2``'s: ``logit_scale``, ``cpb_mlp``, the coordinates buffer."""

    module = "WindowAttentionV2"
