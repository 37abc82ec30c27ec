"""The transformer pieces the ViT and GPT-2 zoo is made of: the parameter-free attention core
(``sdpa``) between plain Linears, learned-parameter nodes whose parameter is the container's
own (``cls_token``, ``pos_embed``: timm's top-level keys), the class-token pick (``select``)
and GPT-2's position ids. Ground truth: PyTorch's own ``nn.MultiheadAttention`` (the same
packed q, k, v rows), numpy, and the native keys of each framework."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, assert_transfers_exact, installed, require_backend, require_backends

import xinit
from xinit.blocks import Sequential, infer, param_specs
from xinit.graph import Graph
from xinit.init import Constant
from xinit.layers import (
    Conv,
    Flatten,
    LayerNorm,
    LearnedParameter,
    Linear,
    Permute,
    PositionIds,
    ScaledDotProductAttention,
    Select,
    SpecError,
)
from xinit.policy import Policy, Rule
from xinit.state import load_state_dict, state_dict

# float32: q k^T and the value sum are E- and L-long sums of O(1) terms, each framework in
# its own order; outputs of size O(1) agree to a few ulps (rtol) with an atol for the ones
# near 0. A wrong head split or a misplaced q/k/v row is off by O(1).
RTOL, ATOL = 1e-5, 1e-6


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def attention(e: int, heads: int, causal: bool = False) -> Sequential:
    """timm's ``Attention`` / GPT-2's attn: {qkv: Linear(E, 3E), core, proj: Linear(E, E)}."""
    return Sequential(
        qkv=Linear(e, 3 * e), sdpa=ScaledDotProductAttention(heads, causal), proj=Linear(e, e)
    )


def tiny_vit(e: int = 8, heads: int = 2, tokens: int = 4, classes: int = 3) -> Graph:
    """A one-attention ViT: patch conv, flatten(2), transpose, class token, positions."""
    patch = Sequential(proj=Conv(3, e, 4, stride=4), flatten=Flatten(2), t=Permute((0, 2, 1)))
    return Graph(
        [
            ("cls_token", LearnedParameter((1, 1, e), "prepend"), "patch_embed"),
            ("pos_embed", LearnedParameter((1, tokens + 1, e), "add"), "cls_token"),
            ("patch_embed", patch, "x"),
            ("norm", LayerNorm(e), "pos_embed"),
            ("attn", attention(e, heads)),
            ("pool", Select(1, 0)),
            ("head", Linear(e, classes)),
        ]
    )


def _torch_mha(e, heads, state, prefix=""):
    import torch

    mha = torch.nn.MultiheadAttention(e, heads, batch_first=True)
    mha.load_state_dict(
        {
            "in_proj_weight": torch.from_numpy(state[f"{prefix}qkv.weight"]),
            "in_proj_bias": torch.from_numpy(state[f"{prefix}qkv.bias"]),
            "out_proj.weight": torch.from_numpy(state[f"{prefix}proj.weight"]),
            "out_proj.bias": torch.from_numpy(state[f"{prefix}proj.bias"]),
        }
    )
    return mha.eval()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_attention_core_is_pytorchs_multihead_attention(backend, causal):
    """qkv Linear + sdpa + proj Linear with PyTorch's packed rows gives what
    ``nn.MultiheadAttention`` gives with those rows as ``in_proj_weight`` (and a causal mask)."""
    require_backends("torch", backend)
    import torch

    e, heads = 12, 3
    spec = attention(e, heads, causal)
    built = xinit.build(spec, backend, seed=5, rng="xinit")
    mha = _torch_mha(e, heads, state_dict(built))
    x = rand(2, 7, e, seed=1)
    t = torch.from_numpy(x)
    mask = torch.triu(torch.ones(7, 7, dtype=torch.bool), 1) if causal else None
    with torch.no_grad():
        want = mha(t, t, t, need_weights=False, attn_mask=mask)[0].numpy()
    np.testing.assert_allclose(np.asarray(xinit.run(built, x)), want, rtol=RTOL, atol=ATOL)


def test_causal_core_sees_no_future_token():
    """Changing token j changes no causal output before j, in every framework."""
    spec = attention(8, 2, causal=True)
    x = rand(1, 6, 8, seed=2)
    y = x.copy()
    y[0, 4] += 1.0
    for backend in installed():
        m = xinit.build(spec, backend, seed=1, rng="xinit")
        a, b = np.asarray(xinit.run(m, x)), np.asarray(xinit.run(m, y))
        np.testing.assert_array_equal(a[0, :4], b[0, :4], err_msg=backend)
        assert np.abs(a[0, 4:] - b[0, 4:]).max() > 1e-3, backend


def _native_keys(backend, module) -> list[str]:
    if backend == "flax":
        from flax import nnx

        flat = nnx.to_flat_state(nnx.state(module, nnx.Param))
        return sorted(".".join(map(str, k)) for k, _ in flat)
    return list(module.state_dict())


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_learned_parameters_are_the_containers_own_keys(backend):
    """A node named ``cls_token`` is the state-dict key ``cls_token`` (no ``.weight``), held
    by the container itself; torch and paddle list it first, as timm's state_dict does."""
    require_backend(backend)
    spec = tiny_vit()
    built = xinit.build(spec, backend, seed=0)
    keys = _native_keys(backend, built)
    assert "cls_token" in keys and "pos_embed" in keys
    if backend == "torch":
        assert keys == list(param_specs(spec))  # timm's order: own parameters first
        assert dict(built.named_parameters(recurse=False)).keys() == {"cls_token", "pos_embed"}
    if backend == "paddle":
        assert keys == list(param_specs(spec))
        own = dict(built.named_parameters(include_sublayers=False))
        assert own.keys() == {"cls_token", "pos_embed"}
    assert {k: v.shape for k, v in state_dict(built).items()}["pos_embed"] == (1, 5, 8)


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_prepend_and_add_are_the_numpy_ops(backend):
    """prepend: the token broadcast over the batch before the sequence; add: positions added
    to every sample. Values loaded through the neutral state, checked against numpy."""
    require_backend(backend)
    spec = Sequential(
        cls_token=LearnedParameter((1, 2, 4), "prepend"), pos=LearnedParameter((1, 5, 4), "add")
    )
    built = xinit.build(spec, backend, seed=0)
    token, pos = rand(1, 2, 4, seed=3), rand(1, 5, 4, seed=4)
    load_state_dict(built, {"cls_token": token, "pos": pos})
    x = rand(3, 3, 4, seed=5)
    want = np.concatenate([np.broadcast_to(token, (3, 2, 4)), x], axis=1) + pos
    np.testing.assert_array_equal(np.asarray(xinit.run(built, x)), want)


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_select_and_position_ids(backend):
    require_backend(backend)
    pick = xinit.build(Sequential(pool=Select(1, -1)), backend)
    x = rand(2, 5, 3, seed=6)
    np.testing.assert_array_equal(np.asarray(xinit.run(pick, x)), x[:, -1])
    ids = np.array([[5, 1, 7], [0, 2, 2]], np.int64)
    positions = xinit.build(Sequential(pos=PositionIds(8)), backend)
    out = np.asarray(xinit.run(positions, ids))
    np.testing.assert_array_equal(out, [[0, 1, 2], [0, 1, 2]])


def test_state_transfer_port_and_parity_across_frameworks():
    """rng="xinit" gives every framework the same neutral state, learned parameters
    included; transfer is exact in every direction; the three agree layer by layer."""
    require_backends(*FRAMEWORKS)
    spec = tiny_vit()
    mods = {b: xinit.build(spec, b, seed=2, rng="xinit") for b in FRAMEWORKS}
    ref = state_dict(mods["torch"])
    assert list(ref) == list(param_specs(spec))
    for b in FRAMEWORKS[1:]:
        for k, v in state_dict(mods[b]).items():
            np.testing.assert_array_equal(v, ref[k], err_msg=f"{b} {k}")
    assert_transfers_exact(spec, mods, ref)
    report = xinit.parity(mods, rand(2, 3, 8, 8, seed=1))
    assert report.ok, str(report.first_divergent)
    assert "attn.sdpa" in {r.path for r in report.rows}
    for dst in ("paddle", "flax"):
        ported = xinit.port(ref, spec, src="torch", dst=dst)
        np.testing.assert_array_equal(ported["cls_token"], ref["cls_token"])
        np.testing.assert_array_equal(ported["pos_embed"], ref["pos_embed"])


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_policy_selects_a_learned_parameter_by_name_or_node_path(backend):
    """``param="cls_token"`` selects the node's parameter (its leaf name is empty: it answers
    to the node's name); ``path="pos_embed", param="*"`` selects the node by path."""
    require_backend(backend)
    policy = Policy(
        Rule(Constant(3.0), param="cls_token"),
        Rule(Constant(4.0), path="pos_embed", param="*"),
    )
    spec = tiny_vit()
    plan = policy.plan(param_specs(spec))
    assert set(plan.matched) == {"cls_token", "pos_embed"}
    built = xinit.build(spec, backend, seed=0, policy=policy)
    state = state_dict(built)
    assert np.all(state["cls_token"] == 3.0) and np.all(state["pos_embed"] == 4.0)
    other = xinit.build(spec, backend, seed=0)
    report = xinit.apply(policy, other)
    assert report["cls_token"].status == report["pos_embed"].status == "initialized"
    assert report["head.weight"].status == "unmatched"
    for k, v in state_dict(other).items():
        if k in ("cls_token", "pos_embed"):
            np.testing.assert_array_equal(v, state[k])


def test_the_same_rule_selects_a_native_models_top_level_parameter():
    """timm keeps ``cls_token`` as an ``nn.Parameter`` of the model itself: the rule that
    sets the built node sets it too, and with rng="xinit" to the same values."""
    torch = require_backend("torch") and __import__("torch")

    class Native(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.cls_token = torch.nn.Parameter(torch.zeros(1, 1, 8))
            self.head = torch.nn.Linear(8, 3)

    policy = Policy(Rule(xinit.init.Normal(0.0, 1e-6), param="cls_token"))
    native = Native()
    report = xinit.apply(policy, native, seed=4, rng="xinit")
    assert report["cls_token"].status == "initialized"
    assert report["head.weight"].status == "unmatched"
    built = xinit.build(tiny_vit(), "torch", seed=4, rng="xinit", policy=policy)
    np.testing.assert_array_equal(
        native.cls_token.detach().numpy(), built.cls_token.detach().numpy()
    )


def test_torch_forward_uses_the_parameter_the_module_holds_now():
    """``load_state_dict(assign=True)`` replaces the parameter object: the forward uses it."""
    torch = require_backend("torch") and __import__("torch")
    spec = Sequential(pos=LearnedParameter((1, 2, 3), "add"))
    m = xinit.build(spec, "torch", seed=0)
    m.load_state_dict({"pos": torch.ones(1, 2, 3)}, assign=True)
    x = rand(1, 2, 3)
    np.testing.assert_array_equal(xinit.run(m, x), x + 1)
    assert xinit.state_dict(m)["pos"].sum() == 6


def test_bad_sequences_name_the_path_and_shapes():
    spec = tiny_vit(tokens=5)  # 4 patches + the class token: 5 tokens, 6 positions
    want = r"pos_embed: .*\(1, 6, 8\).*\(2, 5, 8\).*6 positions for 5 tokens"
    with pytest.raises(SpecError, match=want):
        infer(spec, (2, 3, 8, 8))
    bad_core = Sequential(qkv=Linear(8, 24), sdpa=ScaledDotProductAttention(3))
    with pytest.raises(SpecError, match=r"sdpa: .*3E with E divisible by num_heads=3; got 24"):
        infer(bad_core, (2, 5, 8))
    for backend in installed():  # the build's channel check, before anything is made
        with pytest.raises(SpecError, match=r"sdpa: .*E divisible by num_heads=3; got 24"):
            xinit.build(bad_core, backend)
    with pytest.raises(SpecError, match=r"prepend.*\(1, 1, 4\).*\(2, 5, 8\)"):
        infer(Sequential(t=LearnedParameter((1, 1, 4), "prepend")), (2, 5, 8))
    with pytest.raises(SpecError, match=r"pool: Select: index 5 is out of range .*\(2, 5, 8\)"):
        infer(Sequential(pool=Select(1, 5)), (2, 5, 8))
    with pytest.raises(SpecError, match=r"pos: PositionIds: 9 tokens exceed the 8 positions"):
        infer(Sequential(pos=PositionIds(8)), (2, 9))
    with pytest.raises(SpecError, match=r"shape must be \(1, L, \*rest\)"):
        LearnedParameter((2, 1, 4))
    with pytest.raises(SpecError, match=r"op must be one of"):
        LearnedParameter((1, 1, 4), "concat")
    for backend in installed():
        with pytest.raises(TypeError, match=r"build it inside a Sequential or Graph"):
            xinit.build(LearnedParameter((1, 1, 4)), backend)


def test_default_init_and_summary():
    """N(0, 0.02) by default (torchvision's position init); an empty leaf prints as the node."""
    spec = tiny_vit()
    ps = param_specs(spec)["cls_token"]
    assert ps.name == "" and ps.owner("cls_token") == "cls_token" and ps.role == "vector"
    law = ps.init.resolve(ps.shape, ps.role)
    assert (law.mu, law.sigma) == (0.0, 0.02)
    rows = {r.path: r for r in xinit.summary(spec, (2, 3, 8, 8)).rows}
    assert rows["cls_token"].initializer == "Normal(std=0.02)"
    assert rows["pos_embed"].output_shape == (2, 5, 8) and rows["pos_embed"].params == 40
