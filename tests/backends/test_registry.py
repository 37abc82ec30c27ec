"""The "add a layer kind" checklist of docs/architecture.md, followed in this one file.

A toy ``Scale`` layer (one per-channel vector parameter) is registered as a kind and lowered
once per framework; nothing else in xinit is touched. It then builds, runs, moves and ports
in all three frameworks. Paddle's lowering splits the vector over two native tensors
(``head`` and ``tail``) and Flax's names it ``scale``, so the parameter maps, not the names,
carry every move.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from helpers import require_backend

import xinit
from xinit import kinds, parammap
from xinit.backends.flax.lowerings import REGISTRY as FLAX
from xinit.backends.paddle.lowerings import REGISTRY as PADDLE
from xinit.backends.registry import Lowering
from xinit.backends.torch.lowerings import REGISTRY as TORCH
from xinit.blocks import Sequential
from xinit.initializers import Constant, Normal
from xinit.layers import Conv, Layer, ParamSpec
from xinit.parammap import Leaf

FRAMEWORKS = ("torch", "paddle", "flax")


# ---- 1. the spec, registered in the table of kinds -----------------------------------------
@kinds.layer(
    params=("weight",),
    channels="num_features",  # a trait: the attribute counting the channels it takes
    example=lambda: kinds.Example(Scale(4), ((2, 4, 3, 3),)),  # for the conformance suite
)
@dataclass(frozen=True)
class Scale(Layer):
    """``x * weight`` per channel (axis 1 of the neutral, channel-first input)."""

    kind: ClassVar[str] = "scale"
    num_features: int

    def channels(self, c):
        self._take_channels(self.num_features, c)
        return c

    def _params(self):
        return (ParamSpec("weight", (self.num_features,), "vector", Normal(1.0, 0.5), self.kind),)

    def output_shape(self, shape):
        self._need_channels(shape, self.num_features)
        return tuple(shape)


# ---- 2. one lowering per framework ---------------------------------------------------------
NO_DEFAULT = ("a toy layer: no framework has one, so no default", "tests/backends/test_registry.py")


@TORCH.register("scale")
class TorchScale(Lowering):
    def default_missing(self, spec):  # the framework's defaults: here, why there are none
        return NO_DEFAULT

    def build(self, spec, device):
        import torch

        class Module(torch.nn.Module):
            def __init__(self, n):
                super().__init__()
                self.weight = torch.nn.Parameter(torch.empty(n))

            def forward(self, x):
                return x * self.weight.reshape(1, -1, *[1] * (x.ndim - 2))

        return Module(spec.num_features)


@PADDLE.register("scale")
class PaddleScale(Lowering):
    """Two native tensors for one neutral vector: the first half and the rest."""

    def default_missing(self, spec):
        return NO_DEFAULT

    def params(self, spec):
        n, h = spec.num_features, spec.num_features // 2
        return {"weight": (Leaf("head", part=(0, 0, h)), Leaf("tail", part=(0, h, n)))}

    def build(self, spec, device):
        import paddle

        n, h = spec.num_features, spec.num_features // 2

        class Layer_(paddle.nn.Layer):
            def __init__(self):
                super().__init__()
                self.head = self.create_parameter([h])
                self.tail = self.create_parameter([n - h])

            def forward(self, x):
                w = paddle.concat([self.head, self.tail])
                return x * w.reshape([1, -1] + [1] * (x.ndim - 2))

        return Layer_()


@FLAX.register("scale")
class FlaxScale(Lowering):
    leaves = {"weight": "scale"}

    def default_missing(self, spec):
        return NO_DEFAULT

    def build(self, spec, device):
        import jax.numpy as jnp
        from flax import nnx

        class Module(nnx.Module):
            def __init__(self, n):
                self.scale = nnx.Param(jnp.zeros((n,)))

            def __call__(self, x):  # channel-last inside the Flax adapter
                return x * self.scale[...]

        return Module(spec.num_features)


# ---- 3. it works everywhere ----------------------------------------------------------------
SPEC = Sequential(Conv(3, 5, 3, padding=1), Scale(5))
X = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)


def built(rng: str = "xinit", seed: int = 0) -> dict:
    return {fw: xinit.build(SPEC, fw, seed=seed, rng=rng) for fw in FRAMEWORKS if _has(fw)}


def _has(fw: str) -> bool:
    from xinit.backends import installed

    return installed(fw)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_the_conformance_suite_checks_it(fw, tmp_path):
    """The registry-driven suite (tests/backends/test_conformance.py), run on the toy kind as it
    runs on every kind registered when it is collected."""
    import test_conformance as suite

    suite.test_kind_has_an_example("scale")
    suite.test_kind_has_a_lowering("scale", fw)
    suite.test_build_and_output_shape_match_infer("scale", fw)
    suite.test_values_match_pytorch("scale", fw)
    suite.test_state_round_trip_and_transfer("scale", fw)
    suite.test_port_from_the_native_format("scale", fw, tmp_path)
    suite.test_apply_default_gives_the_catalogue_law("scale", fw)
    suite.test_parity_of_a_one_layer_model("scale", fw)
    suite.test_summary_row("scale")


def test_the_kind_is_in_the_table_and_policies_accept_it():
    assert "scale" in kinds.names() and kinds.get("scale").spec is Scale
    rule = xinit.Rule(Constant(2.0), kind="scale")
    assert rule.kind == ("scale",)


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_native_names_follow_the_lowering(fw):
    require_backend(fw)
    module = xinit.build(SPEC, fw, rng="xinit")
    if fw == "flax":
        from flax import nnx

        keys = {".".join(map(str, k)) for k, _ in nnx.to_flat_state(nnx.state(module, nnx.Param))}
    else:
        keys = set(module.state_dict())
    want = {"torch": {"1.weight"}, "paddle": {"1.head", "1.tail"}, "flax": {"1.scale"}}[fw]
    assert {k for k in keys if k.startswith("1.")} == want


def test_keyed_values_and_outputs_are_identical_in_every_framework():
    mods = built()
    states = {fw: xinit.state_dict(m) for fw, m in mods.items()}
    ref = states["torch"]["1.weight"]
    assert ref.shape == (5,) and np.unique(ref).size == 5  # drawn, not a fill
    for fw, state in states.items():
        np.testing.assert_array_equal(state["1.weight"], ref, err_msg=fw)
    outs = {fw: xinit.run(m, X) for fw, m in mods.items()}
    for fw, out in outs.items():
        np.testing.assert_allclose(out, outs["torch"], rtol=1e-5, atol=1e-5, err_msg=fw)
    if len(mods) > 1:  # layer by layer, the Scale layer included
        report = xinit.parity(list(mods.values()), X)
        assert report.ok and "1" in [row.path for row in report.rows]


def test_transfer_round_trip_is_bit_exact_through_the_split():
    mods = built()
    if len(mods) < 2:
        pytest.skip("needs two frameworks")
    rng = np.random.default_rng(3)
    state = {
        k: rng.standard_normal(v.shape).astype(v.dtype)
        for k, v in xinit.state_dict(mods["torch"]).items()
    }
    xinit.load_state_dict(mods["torch"], state)
    order = list(mods)
    for a, b in zip(order, order[1:] + order[:1]):
        xinit.transfer(mods[a], mods[b])
    back = xinit.state_dict(mods["torch"])
    for key in state:
        np.testing.assert_array_equal(back[key], state[key], err_msg=key)


def test_port_splits_and_joins_the_vector():
    w = np.arange(5, dtype=np.float32) + 1
    conv = np.zeros((5, 3, 3, 3), np.float32)
    ckpt = {"0.weight": conv, "0.bias": np.zeros(5, np.float32), "1.weight": w}
    to_paddle = xinit.port(ckpt, SPEC, src="torch", dst="paddle")
    np.testing.assert_array_equal(to_paddle["1.head"], w[:2])
    np.testing.assert_array_equal(to_paddle["1.tail"], w[2:])
    to_flax = xinit.port(dict(to_paddle), SPEC, src="paddle", dst="flax")
    np.testing.assert_array_equal(to_flax["1.scale"], w)
    missing = {k: v for k, v in to_paddle.items() if k != "1.tail"}
    with pytest.raises(xinit.PortError, match="1.tail"):
        xinit.port(missing, SPEC, src="paddle", dst="torch")


# ---- the parameter-map arithmetic itself, on numpy ------------------------------------------
def test_split_permute_reshape_and_pack_invert_exactly():
    rng = np.random.default_rng(1)
    packed = rng.standard_normal((12, 4)).astype(np.float32)  # (3E, E): q, k, v stacked
    heads = tuple(
        Leaf(name, perm=(1, 0), part=(0, 4 * i, 4 * i + 4), shape=(4, 2, 2))
        for i, name in enumerate(("q", "k", "v"))
    )
    natives = parammap.to_native(packed, heads)
    assert {k: v.shape for k, v in natives.items()} == {n: (4, 2, 2) for n in "qkv"}
    np.testing.assert_array_equal(natives["k"].reshape(4, 4), packed[4:8].T)
    np.testing.assert_array_equal(parammap.to_neutral(natives, heads, packed.shape), packed)

    # the reverse: two neutral vectors packed into one native (2, 3) tensor
    a, b = np.ones(3, np.float32), np.full(3, 2.0, np.float32)
    into_a = Leaf("both", into=(0, 0, 1), full=(2, 3), shape=(1, 3))
    into_b = Leaf("both", into=(0, 1, 2), full=(2, 3), shape=(1, 3))
    out: dict = {}
    parammap.pack(out, "both", into_a, parammap.piece(a, into_a))
    parammap.pack(out, "both", into_b, parammap.piece(b, into_b))
    np.testing.assert_array_equal(out["both"], np.stack([a, b]))
    np.testing.assert_array_equal(parammap.unpiece(out["both"], into_b, (3,)), b)


def test_leaves_that_do_not_tile_the_tensor_are_refused():
    gap = (Leaf("a", part=(0, 0, 2)), Leaf("b", part=(0, 3, 5)))
    with pytest.raises(ValueError, match="do not tile"):
        parammap.check_cover("w", gap, (5,))
    parammap.check_cover("w", (Leaf("a", part=(0, 0, 2)), Leaf("b", part=(0, 2, 5))), (5,))


def test_apply_reads_the_split_through_the_map():
    """A policy applied to the built modules sets the whole vector, split or not, and with
    ``rng="xinit"`` draws exactly what a build with that policy gives."""
    policy = xinit.Policy(xinit.Rule(xinit.init.Uniform(-3.0, 3.0), kind="scale"))
    for fw, module in built(seed=5).items():
        report = xinit.apply(policy, module, seed=9, rng="xinit")
        entry = report["1.weight"]
        assert entry.status == "initialized"
        assert entry.native == {"torch": "1.weight", "paddle": "1.head+1.tail"}.get(fw, "1.scale")
        rebuilt = xinit.build(SPEC, fw, seed=9, rng="xinit", policy=policy)
        np.testing.assert_array_equal(
            xinit.state_dict(module)["1.weight"], xinit.state_dict(rebuilt)["1.weight"]
        )


def test_a_native_class_claimed_by_two_kinds_is_an_error(monkeypatch):
    """Reading a native model must never depend on which lowering was registered first."""
    torch = require_backend("torch") and __import__("torch")
    from xinit.backends.registry import Registry

    # the kind exists for this test only: tests over the live registry must not meet it
    monkeypatch.setattr(kinds, "_TABLE", dict(kinds._TABLE))
    kinds.register("scale_twin", params=("weight",))
    registry = Registry("torch-test")

    class First(Lowering):
        def natives(self):
            return (torch.nn.Linear,)

    class Second(Lowering):
        def natives(self):
            return (torch.nn.Linear,)

    registry.register("scale")(First)
    registry.register("scale_twin")(Second)
    with pytest.raises(TypeError, match=r"torch.nn.modules.linear.Linear is claimed by .*'scale'"):
        registry.kind_of(torch.nn.Linear(2, 2))
