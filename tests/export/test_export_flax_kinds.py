"""Every layer kind in the Flax code export, driven by the kind registry: a kind without a Flax
emitter is named (unless excluded below with its reason). The small examples (``kinds.Example``,
the conformance suite's) of the kinds the traced models brought, and variants taking the
emitters' other branches, are exported as one-layer models and run in a Python where xinit
cannot be imported. Each file holds exactly the state paths of ``xinit.build(spec, "flax")``,
loads the build's values and gives its outputs within the parity verdict (twice the build's
float32 rounding per side, measured against its float64 run); the files are ruff-clean."""

from __future__ import annotations

import json

import numpy as np
import pytest
from export_code_helpers import FLAX_LOAD_BUILD_STATE, ruff_problems, run_isolated
from helpers import require_backend

import xinit
from xinit import backends, kinds
from xinit import layers as L
from xinit._parity_base import compare, rounding
from xinit.codegen import ExportError
from xinit.graph import Graph

pytest.importorskip("flax")

# kind -> why the Flax export does not write it (a kind added without a Flax emitter goes
# here until it has one).
NOT_WRITTEN: dict[str, str] = {}

# The kinds whose examples run here (those the traced torchvision/timm models brought; the
# other kinds run in test_export_flax.py's models, the attention kinds' examples take seconds).
RUN = (
    "adaptive_max_pool",
    "argmax",
    "compare",
    "cumsum",
    "length_mask",
    "channel_shuffle",
    "clip",
    "groupnorm",
    "instancenorm",
    "layer_scale",
    "layernorm2d",
    "pad",
    "prelu",
    "reduce",
    "rmsnorm",
    "split",
    "stochastic_depth",
)

# Variants of the examples that take the emitters' other branches: name -> (spec, shapes).
VARIANTS = {
    "clip_min": (L.Clip(0.0, None), ((2, 3, 4, 4),)),
    "clip_after_conv": (xinit.Sequential(L.Conv(3, 3, 1), L.Clip(None, 0.5)), ((2, 3, 4, 4),)),
    "prelu_shared": (L.PReLU(1, init=0.1), ((2, 3, 5),)),
    "prelu_after_conv": (xinit.Sequential(L.Conv(3, 4, 1), L.PReLU(4)), ((2, 3, 4, 4),)),
    "instancenorm_plain": (L.InstanceNorm(4, eps=1e-3, dims=1), ((2, 4, 7),)),
    "instancenorm_running": (
        L.InstanceNorm(4, momentum=0.2, affine=True, track_running_stats=True),
        ((2, 4, 3, 3),),
    ),
    "rmsnorm_2d": (L.RMSNorm((3, 6), eps=1e-6, elementwise_affine=False), ((2, 3, 6),)),
    "rmsnorm_eps": (L.RMSNorm(6, eps=1e-5), ((2, 3, 6),)),
    "layer_scale_image": (
        xinit.Sequential(L.Conv(3, 4, 1), L.LayerScale(4, 0.1, spatial=2)),
        ((2, 3, 3, 3),),
    ),
    "layernorm2d_after_conv": (
        xinit.Sequential(L.Conv(3, 4, 1), L.LayerNorm2d(4, eps=1e-5, bias=False)),
        ((2, 3, 3, 5),),
    ),
    "adaptive_max_pool_1d": (L.AdaptiveMaxPool(3, dims=1), ((2, 3, 7),)),
    "adaptive_avg_pool_windows": (L.AdaptiveAvgPool((2, 3)), ((2, 3, 5, 7),)),  # the same helper
    "groupnorm_plain": (
        xinit.Sequential(L.Conv(3, 4, 1), L.GroupNorm(2, 4, eps=1e-3, affine=False)),
        ((2, 3, 3, 3),),
    ),
    "pad_constant_image": (  # on a channel-last image: turned to PyTorch's layout, padded
        Graph(
            [
                ("conv", L.Conv(3, 3, 1), "x"),
                ("pad", L.Pad((1, 0, 2, 1), value=0.5), "conv"),
                ("out", L.Conv(3, 2, 1), "pad"),
            ]
        ),
        ((2, 3, 4, 4),),
    ),
    "reduce_channels": (  # a mean over PyTorch's channel dim of a channel-last image
        xinit.Sequential(L.Conv(3, 4, 1), L.Reduce("max", 1)),
        ((2, 3, 4, 5),),
    ),
    "split_parts": (  # ConvNeXt-like: a channel split of an image, each part used
        Graph(
            [
                ("conv", L.Conv(3, 5, 1), "x"),
                ("parts", L.Split((2, 3), dim=1), "conv"),
                ("a", L.Conv(2, 3, 1), "parts.0"),
                ("b", L.Conv(3, 3, 1), "parts.1"),
                ("sum", L.Add(), ("a", "b")),
            ]
        ),
        ((2, 3, 4, 4),),
    ),
    "sdpa_additive_mask": (
        L.ScaledDotProductAttention(2, attn_mask=True),
        ((2, 5, 12), (2, 1, 5, 5)),
    ),
    "length_mask_plain": (L.LengthMask(4), ((3,),)),
    "channel_shuffle_after_conv": (
        xinit.Sequential(L.Conv(3, 6, 1), L.ChannelShuffle(3)),
        ((2, 3, 2, 2),),
    ),
    # A numbered Sequential's step given the other layout, turned by the file's Sequential
    # (``turn=``): a conv after a pad (PyTorch's layout in, channel-last taken), a LayerNorm
    # on a channel-last image (it takes PyTorch's layout: it normalises along W).
    "numbered_turned_step": (
        xinit.Sequential(L.Conv(3, 3, 1), L.Pad((1, 0, 2, 1)), L.Conv(3, 2, 1)),
        ((2, 3, 4, 5),),
    ),
    "numbered_layernorm_on_image": (
        xinit.Sequential(L.Conv(3, 4, 1), L.LayerNorm(5)),
        ((2, 3, 4, 5),),
    ),
    # Traced flattens name their last dim: flatten(1, 3) is the flatten to the end; (1, 2)
    # and (2, 3) keep a dim, read on the channel-last image as held.
    "flatten_named_end": (xinit.Sequential(L.Conv(3, 4, 1), L.Flatten(1, 3)), ((2, 3, 4, 5),)),
    "flatten_middle": (xinit.Sequential(L.Conv(3, 4, 1), L.Flatten(1, 2)), ((2, 3, 4, 5),)),
    "flatten_spatial": (xinit.Sequential(L.Conv(3, 4, 1), L.Flatten(2, 3)), ((2, 3, 4, 5),)),
    # Learned tensors (no batch axis) broadcast onto a channel-last image as onto PyTorch's:
    # a (C, 1, 1) scale, a (W,) row, an (H, W) map, a (1, C, 1, 1) bias (C = H = W: a wrong
    # broadcast would fit, see FAULTS).
    "learned_tensors_on_image": (
        Graph(
            [
                ("conv", L.Conv(3, 4, 1), "x"),
                ("scale", L.LearnedTensor((4, 1, 1)), "x"),
                ("row", L.LearnedTensor((4,)), "x"),
                ("map", L.LearnedTensor((4, 4)), "x"),
                ("bias", L.LearnedTensor((1, 4, 1, 1)), "x"),
                ("scaled", L.Mul(), ("scale", "conv")),
                ("shifted", L.Add(), ("scaled", "row")),
                ("less", L.Sub(), ("shifted", "map")),
                ("out", L.Add(), ("bias", "less")),
            ]
        ),
        ((2, 3, 4, 4),),
    ),
    "stochastic_depth_residual": (
        xinit.Sequential(
            block=xinit.Residual(
                xinit.Sequential(conv=L.Conv(3, 3, 1), drop=L.StochasticDepth(0.3))
            )
        ),
        ((2, 3, 4, 4),),
    ),
}


def shipped_kinds() -> list[str]:
    """The kinds xinit registers (a toy kind a test module registers owes no emitter)."""
    return [k for k in kinds.names() if kinds.get(k).spec.__module__.startswith("xinit.")]


def flax_emitters():
    return backends.part("flax", "codegen").EMITTERS


def test_every_layer_kind_has_a_flax_emitter():
    """Walks the registry now: a kind without a Flax emitter is named unless NOT_WRITTEN says
    why; an exclusion that has an emitter by now is stale and named too."""
    table = flax_emitters()
    missing = [k for k in shipped_kinds() if k not in table and k not in NOT_WRITTEN]
    stale = [k for k in NOT_WRITTEN if k in table]
    assert not missing, f"layer kinds without a flax code export emitter: {', '.join(missing)}"
    assert not stale, f"NOT_WRITTEN lists kinds that have a flax emitter: {', '.join(stale)}"


def test_the_registry_walk_names_a_kind_without_a_flax_emitter(monkeypatch):
    """A planted fault: the Flax GroupNorm emitter taken out is named."""
    monkeypatch.delitem(flax_emitters(), "groupnorm")
    with pytest.raises(AssertionError, match=r"without a flax code export emitter: groupnorm"):
        test_every_layer_kind_has_a_flax_emitter()


def _one_layer(spec, shapes) -> Graph:
    """A graph whose single node ``layer`` takes the inputs; a container is the model."""
    if not isinstance(spec, L.Layer):
        return spec
    names = tuple(f"x{i}" for i in range(len(shapes)))
    return Graph({"layer": (spec, names)}, inputs=names)


def _cases() -> dict:
    """file name -> (model spec, inputs): the examples of the kinds in RUN, the variants."""
    out = {}
    for kind in RUN:
        example = kinds.example(kind)
        rng = np.random.default_rng(sum(map(ord, kind)))
        if example.ids:
            xs = [rng.integers(0, example.ids, s).astype(np.int64) for s in example.inputs]
        else:
            xs = [rng.standard_normal(s).astype(np.float32) for s in example.inputs]
        out[f"kind_{kind}"] = (_one_layer(example.spec, example.inputs), xs)
    for name, (spec, shapes) in VARIANTS.items():
        rng = np.random.default_rng(sum(map(ord, name)))
        xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        out[f"variant_{name}"] = (_one_layer(spec, shapes), xs)
    return out


# The isolated run: each file's model holds exactly the build's state paths (dropout's RNG
# streams included), takes the build's parameters and statistics (every one used), runs the
# inputs in eval mode, channel-last where the file's header says so.
SCRIPT = (
    FLAX_LOAD_BUILD_STATE
    + """
for name, images_in, images_out in json.load(open("cases.json")):
    model = importlib.import_module(name).Model()
    load_build_state(model, name)
    xs = np.load(name + "_x.npz")
    xs = [xs[f"x{i}"] for i in range(len(xs.files))]
    xs = [np.moveaxis(x, 1, -1) if images_in and x.ndim >= 3 else x for x in xs]
    out = model(*map(jnp.asarray, xs))
    outs = {k: np.asarray(v) for k, v in (out if isinstance(out, dict) else {"": out}).items()}
    back = lambda v: np.moveaxis(v, -1, 1) if images_out and v.ndim >= 3 else v
    np.savez(name + "_out.npz", **{k: back(v) for k, v in outs.items()})
"""
)


def _save_build(name: str, spec, xs: list, folder) -> tuple[dict, bool, bool]:
    """The build's state paths and values, the inputs; (output name -> (the build's output,
    its float32 rounding against the float64 run), whether the file takes channel-last
    images, whether it gives them)."""
    from flax import nnx

    from xinit.backends import get_backend
    from xinit.backends.flax.codegen_layout import CHANNELS, LayoutPlan

    module = xinit.build(spec, "flax", rng="xinit")
    flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(module))}
    (folder / f"{name}_paths.json").write_text(json.dumps(sorted(flat)))
    kept = (nnx.Param, nnx.BatchStat)
    values = {k: np.asarray(v.get_value()) for k, v in flat.items() if isinstance(v, kept)}
    np.savez(folder / f"{name}_state.npz", **values)
    np.savez(folder / f"{name}_x.npz", **{f"x{i}": x for i, x in enumerate(xs)})
    backend = get_backend("flax")
    arg = xs[0] if len(xs) == 1 else tuple(xs)
    want = backend.run(module, arg)
    wide_xs = [x if x.dtype == np.int64 else x.astype(np.float64) for x in xs]
    with backend.float64(module):
        wide = backend.run(module, wide_xs[0] if len(xs) == 1 else tuple(wide_xs))
    if not isinstance(want, dict):
        want, wide = {"": want}, {"": wide}
    expected = {k: (np.asarray(v), rounding(v, wide[k])) for k, v in want.items()}
    plan = LayoutPlan(spec)
    images_out = plan.out.layout == CHANNELS and plan.out.matters
    return expected, plan.start == CHANNELS, images_out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported and its build saved; one isolated run."""
    require_backend("flax")
    folder = tmp_path_factory.mktemp("flax_kinds")
    cases, expected, flags = _cases(), {}, []
    for name, (spec, xs) in cases.items():
        text = xinit.export_code(spec, "flax", class_name="Model")
        (folder / f"{name}.py").write_text(text)
        expected[name], images_in, images_out = _save_build(name, spec, xs, folder)
        flags.append([name, images_in, images_out])
    (folder / "cases.json").write_text(json.dumps(flags))
    run_isolated(folder, SCRIPT)
    outs = {name: dict(np.load(folder / f"{name}_out.npz")) for name in cases}
    return folder, cases, expected, outs


def test_outputs_equal_the_build_within_the_verdict(exported):
    _, cases, expected, outs = exported
    failed = []
    for name in cases:
        want, got = expected[name], outs[name]
        assert sorted(got) == sorted(want), name
        for key, (value, noise) in want.items():
            diff = compare(value, got[key], atol=None, noise=2 * noise)
            if not diff.passed:
                failed.append(f"{name}[{key}]: {diff}")
    assert not failed, "\n".join(failed)


def test_files_are_ruff_clean(exported):
    folder, cases, _, _ = exported
    assert ruff_problems(folder, [f"{name}.py" for name in cases]) == ""


# Planted faults, each file changed in one place, run on its case's saved build: GroupNorm
# written with one group; the learned (C, 1, 1) scale broadcast as held onto the channel-last
# image (C == H, so it fits, along H).
FAULTS = {
    "kind_groupnorm": ("num_groups=2", "num_groups=1"),
    "variant_learned_tensors_on_image": ("jnp.moveaxis(scale, 0, -1)", "scale"),
}


def test_the_verdict_catches_planted_faults(exported, tmp_path):
    folder, _, expected, _ = exported
    flags = []
    for name, (right, wrong) in FAULTS.items():
        text = (folder / f"{name}.py").read_text()
        assert right in text, name
        (tmp_path / f"{name}.py").write_text(text.replace(right, wrong))
        for suffix in ("_paths.json", "_state.npz", "_x.npz"):
            (tmp_path / f"{name}{suffix}").write_bytes((folder / f"{name}{suffix}").read_bytes())
        flags.append([name, True, True])
    (tmp_path / "cases.json").write_text(json.dumps(flags))
    run_isolated(tmp_path, SCRIPT)
    for name in FAULTS:
        got = np.load(tmp_path / f"{name}_out.npz")[""]
        want, noise = expected[name][""]
        assert not compare(want, got, atol=None, noise=2 * noise).passed, name


def test_the_files_turn_and_place_as_written(exported):
    """The readable forms of the variants above: the Sequential's ``turn=`` by step number,
    the flatten as PyTorch's order, the learned tensors' channel axis moved last."""
    folder = exported[0]

    def text(name):
        return (folder / f"variant_{name}.py").read_text()

    assert "turn={2: channels_last}" in text("numbered_turned_step")
    assert "turn={1: channels_first}" in text("numbered_layernorm_on_image")
    assert "jnp.moveaxis(x, -1, 1).reshape(x.shape[0], -1)" in text("flatten_named_end")
    learned = text("learned_tensors_on_image")
    assert "scaled = jnp.moveaxis(scale, 0, -1) * conv" in learned
    assert "jnp.moveaxis(row[None, None], 0, -1)" in learned
    assert "channels_last(bias) + less" in learned


def test_a_learned_tensor_wider_than_the_image_is_refused():
    """A (2, 4, 1, 1, 1) tensor onto a rank-4 image broadcasts to rank 5 in PyTorch: no
    channel-last placement holds that, so the merge is named."""
    spec = Graph(
        [
            ("conv", L.Conv(3, 4, 1), "x"),
            ("t", L.LearnedTensor((2, 4, 1, 1, 1)), "x"),
            ("mul", L.Mul(), ("t", "conv")),
        ]
    )
    with pytest.raises(ExportError, match=r"^mul: a learned tensor .* more dims than the image"):
        xinit.export_code(spec, "flax")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin", "swin_v2"])
def test_a_traced_swin_exports_to_flax_within_the_verdict(name, tmp_path):
    """torchvision's small Swin (v1, v2) traced and saved as test_export_traced.py does; its
    Flax file, run without xinit, gives the build's outputs within the verdict (about 25 s
    each: the build's float64 run). The other traced models: test_export_flax_traced.py."""
    pytest.importorskip("torch")
    from test_export_traced import TRACED, _save

    require_backend("flax")
    path = _save({name: TRACED[name]}, tmp_path)[name]
    spec = xinit.load_spec(path)
    (tmp_path / f"{name}.py").write_text(xinit.export_code(spec, "flax", class_name="Model"))
    size = TRACED[name]
    x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
    expected, images_in, images_out = _save_build(name, spec, [x], tmp_path)
    (tmp_path / "cases.json").write_text(json.dumps([[name, images_in, images_out]]))
    run_isolated(tmp_path, SCRIPT)
    got = dict(np.load(tmp_path / f"{name}_out.npz"))
    for key, (want, noise) in expected.items():
        diff = compare(want, got[key], atol=None, noise=2 * noise)
        assert diff.passed, (name, key, diff)
