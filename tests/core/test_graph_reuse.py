"""Reuse: a graph node that runs an earlier node's layer (or sub-graph) again on the same
weights (ABINet's language model, run once per iteration). Checked in every framework against
hand-unrolled code calling the same native module twice, bit for bit; through spec JSON,
summary, surgery and parity (a fault in the second call is caught at the reused layer's row)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends
from reuse_specs import abinet_like, conv_twice

import xinit
from xinit.blocks import infer, num_params, param_specs
from xinit.graph import Graph, Reuse, truncate
from xinit.layers import Add, Conv, Linear, SpecError
from xinit.spec_json import SpecFormatError, spec_from_json, spec_to_json


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- the spec ---------------------------------------------------------------------------------
def test_reuse_adds_no_child_and_no_state_key():
    spec = abinet_like()
    assert [n for n, _ in spec.children] == ["embed", "language", "act", "head"]
    assert list(param_specs(spec)) == [
        "embed.weight",
        "embed.bias",
        "language.proj.weight",
        "language.proj.bias",
        "language.norm.weight",
        "language.norm.bias",
        "language.out.weight",
        "language.out.bias",
        "head.weight",
        "head.bias",
    ]
    assert spec.called("language_3") == ("language", spec["language"])
    assert spec.called("head") == ("head", spec["head"])


def test_shapes_run_through_each_call():
    rows = infer(abinet_like(), (2, 5, 8))
    assert [r.path for r in rows if r.path == "language"] == ["language"] * 3
    assert rows[-1].output_shape == (2, 5, 4)


@pytest.mark.parametrize(
    "nodes, message",
    [
        ([("a", Reuse("b"), "x"), ("b", Linear(4, 4), "x")], "names no earlier node"),
        ([("a", Linear(4, 4), "x"), ("b", Reuse("x"), "a")], "a graph input"),
        (
            [("a", Linear(4, 4), "x"), ("b", Reuse("a"), "a"), ("c", Reuse("b"), "b")],
            "itself a Reuse of 'a'; reuse 'a' directly",
        ),
        ([("a", Linear(4, 4), "x"), ("b", Reuse("a"), ("a", "x"))], "takes one input"),
    ],
)
def test_bad_reuse_is_refused(nodes, message):
    with pytest.raises(SpecError, match=message):
        Graph(nodes)


def test_reuse_names_a_node_of_the_same_graph():
    with pytest.raises(SpecError, match="no '.'"):
        Reuse("a.weight")


def test_reuse_of_a_layer_of_other_width_fails_shape_inference():
    spec = Graph([("a", Linear(4, 8), "x"), ("b", Reuse("a"), "a")])
    with pytest.raises(SpecError, match="a"):
        infer(spec, (2, 4))


def test_spec_json_round_trip_keeps_reuse():
    spec = abinet_like()
    text = spec_to_json(spec)
    assert '"reuse": "language"' in text
    back = spec_from_json(text)
    assert back == spec
    assert isinstance(back.node("language_2"), Reuse)


def test_spec_json_refuses_a_bad_reuse_entry():
    text = spec_to_json(abinet_like())
    with pytest.raises(SpecFormatError, match=r"nodes\[3\]\.spec: Reuse has no field 'kind'"):
        spec_from_json(text.replace('"reuse": "language"', '"reuse": "language", "kind": "x"', 1))
    with pytest.raises(SpecFormatError, match="names no earlier node"):
        spec_from_json(text.replace('"reuse": "language"', '"reuse": "head"', 1))


def test_summary_counts_the_shared_parameters_once():
    s = xinit.summary(abinet_like(), (2, 5, 8))
    proj = [r for r in s.rows if r.path == "language.proj"]
    assert [r.params for r in proj] == [16 * 16 + 16, 0, 0]
    assert sum(r.params for r in s.rows) == s.total_params == num_params(abinet_like())


def test_truncate_keeps_the_reused_node():
    spec = truncate(abinet_like(), "language_2")
    assert [n for n, _, _ in spec.nodes] == ["embed", "language", "act", "language_2"]
    assert infer(spec, (2, 5, 8))[-1].output_shape == {"feature": (2, 5, 16), "logits": (2, 5, 16)}


# ---- the three builds, against code that calls the same module twice -------------------------
def _unrolled_abinet(fw: str, m, x: np.ndarray) -> np.ndarray:
    """The forward written out by hand on the built native children."""
    if fw == "flax":
        import jax.numpy as jnp

        relu, t = (lambda a: jnp.maximum(a, 0)), jnp.asarray(x)
    elif fw == "torch":
        import torch

        relu, t = torch.relu, torch.from_numpy(x)
    else:
        import paddle

        relu, t = paddle.nn.functional.relu, paddle.to_tensor(x)
    lang = m.language

    def language(a, b):
        feature = lang.norm(lang.proj(a)) + b
        return feature, lang.out(feature)

    embed = m.embed(t)
    _, logits = language(embed, embed)
    act = relu(logits)
    feature, _ = language(act, embed)
    _, logits = language(feature, act)
    out = m.head(logits)
    if fw == "torch":
        return out.detach().numpy()
    return np.asarray(out) if fw == "flax" else out.numpy()


def _unrolled_conv(fw: str, m, x: np.ndarray) -> np.ndarray:
    if fw == "flax":
        import jax.numpy as jnp

        t = jnp.asarray(x.transpose(0, 2, 3, 1))  # Flax holds images channel-last
        out = jnp.maximum(m.conv(m.bn(m.conv(t))), 0) + t
        return np.asarray(out).transpose(0, 3, 1, 2)
    if fw == "torch":
        import torch

        t = torch.from_numpy(x)
        return (torch.relu(m.conv(m.bn(m.conv(t)))) + t).detach().numpy()
    import paddle

    t = paddle.to_tensor(x)
    return (paddle.nn.functional.relu(m.conv(m.bn(m.conv(t)))) + t).numpy()


def _eval(fw: str, m):
    m.eval()  # as xinit.run runs it: BatchNorm on its running statistics
    return m


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize(
    "make, unrolled, shape",
    [(abinet_like, _unrolled_abinet, (2, 5, 8)), (conv_twice, _unrolled_conv, (2, 4, 6, 6))],
    ids=["subgraph", "conv"],
)
def test_build_equals_unrolled_calls_bit_for_bit(fw, make, unrolled, shape):
    require_backend(fw)
    m = xinit.build(make(), fw, seed=3, rng="xinit")
    x = rand(*shape, seed=1)
    got = xinit.run(m, x)
    want = unrolled(fw, _eval(fw, m), x)
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_state_keys_and_values_are_those_of_the_graph_without_reuse(fw):
    require_backend(fw)
    spec = abinet_like()
    plain = Graph([(n, s, spec.inputs_of(n)) for n, s in spec.children[:-1]], inputs="tokens")
    plain = Graph([*plain.nodes, ("head", spec["head"], "act")], inputs="tokens")
    a = xinit.state_dict(xinit.build(spec, fw, seed=5, rng="xinit"))
    b = xinit.state_dict(xinit.build(plain, fw, seed=5, rng="xinit"))
    assert list(a) == list(b)
    assert all(np.array_equal(a[k], b[k]) for k in a)


# ---- parity: the reused layer's row shows its last call, in every framework ------------------
def test_parity_passes_across_the_three_frameworks():
    require_backends(*FRAMEWORKS)
    spec = abinet_like()
    mods = {fw: xinit.build(spec, fw, seed=2, rng="xinit") for fw in FRAMEWORKS}
    report = xinit.parity(mods, rand(2, 5, 8, seed=4))
    assert report.ok, report.first_divergent
    paths = [r.path for r in report.rows]
    assert paths.index("language.mix") > paths.index("act")  # its row: its last call
    assert "language_2" not in paths and "language_3" not in paths


def test_parity_catches_a_fault_in_the_last_call_of_the_reused_layer():
    """The torch build's third call is fed the wrong value (``act`` replaced by ``embed``):
    every earlier call agrees, so only the rows of the last call can show it."""
    require_backends("torch", "paddle")
    spec = abinet_like()
    good = xinit.build(spec, "paddle", seed=2, rng="xinit")
    bad = xinit.build(spec, "torch", seed=2, rng="xinit")
    bad._xinit_nodes = [
        (n, ("language_2.feature", "embed") if n == "language_3" else refs, callee)
        for n, refs, callee in bad._xinit_nodes
    ]
    report = xinit.parity({"torch": bad, "paddle": good}, rand(2, 5, 8, seed=4))
    assert not report.ok
    assert report.first_divergent.path == "language.mix"
    passed = {r.path for r in report.rows if r.passed}
    assert {"embed", "act"} <= passed


def test_reparam_leaves_a_sum_whose_branch_runs_again():
    """Fusing ``a + b`` into one conv would drop ``a``, which ``a_2`` runs again: left alone,
    while the same sum with no reuse is fused."""
    require_backend("torch")
    nodes = [
        ("a", Conv(4, 4, 3, padding=1), "x"),
        ("b", Conv(4, 4, 1), "x"),
        ("sum", Add(), ("a", "b")),
    ]
    shared = Graph([*nodes, ("a_2", Reuse("a"), "sum")])
    model = xinit.build(shared, "torch", seed=1, rng="xinit")
    fused, report = xinit.reparameterize(model)
    assert report.fused == [] and fused._xinit_spec == shared
    x = rand(2, 4, 6, 6, seed=2)
    assert np.array_equal(xinit.run(fused, x), xinit.run(model, x))
    _, plain = xinit.reparameterize(xinit.build(Graph(nodes), "torch", seed=1, rng="xinit"))
    assert plain.fused == ["sum: 2 branches (a, b) -> one 3x3 conv"]


def test_diagnose_measures_the_reused_layer_at_its_last_call_in_every_framework():
    """One row per layer in every framework, in the order of last calls; the reused block's
    row is its third call: the std of the graph cut at ``language_3`` (the same keyed
    weights), to the moments' float32 rounding (sums of 160 values: well inside 1e-5)."""
    require_backends(*FRAMEWORKS)
    spec, x = abinet_like(), rand(2, 5, 8, seed=6)
    diagnosis = xinit.diagnose(spec, data=x, frameworks=FRAMEWORKS, seed=1)
    order = ["embed", "act"] + [f"language.{n}" for n in ("proj", "norm", "mix", "out")]
    order += ["head", ""]
    for fw in FRAMEWORKS:
        rows = {r.path: r for r in diagnosis.rows if r.backend == fw}
        assert list(rows) == order
        third, first = (
            np.std(
                xinit.run(xinit.build(truncate(spec, at), fw, seed=1, rng="xinit"), x)["feature"]
            )
            for at in ("language_3", "language")
        )
        np.testing.assert_allclose(rows["language.mix"].std, third, rtol=1e-5)
        assert abs(first - third) > 1e-2 * third  # the first call's would be told apart


def test_sub_spec_of_a_reuse_node_names_its_target():
    with pytest.raises(SpecError, match="'language_2' .* is a Reuse of 'language'"):
        xinit.sub_spec(abinet_like(), "language_2.proj")
    assert xinit.sub_spec(abinet_like(), "language.proj") == Linear(16, 16)
