"""The code export of shifted-window attention: the file's ``ShiftedWindowAttention`` and
``ShiftedWindowAttentionV2`` (torchvision's classes retyped) draw the kind's laws in
``init_weights`` (the table trunc_normal(.02, ±2), Linear's defaults) in torch and Paddle,
and the torch tracer reads the file's class back as its node, checking what it computes;
the Flax file's classes give the build's outputs within xinit's parity verdict and draw the
laws through the constructor's ``inits``.
(Bit-equal outputs: tests/export/test_export_kinds.py and the traced Swin in
test_export_traced.py.)"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from export_code_helpers import ruff_problems, run_isolated
from helpers import require_backend
from stats_helpers import assert_ks_one

import xinit
from xinit import layers as L
from xinit._parity_base import compare, rounding
from xinit.graph import Graph
from xinit.plan import init_plan

# a large window for a sample of 23 * 23 * 8 = 4232 table values
V1 = Graph({"attn": L.WindowAttention(32, (12, 12), (0, 0), 8)})
V2 = Graph({"attn": L.WindowAttentionV2(32, (4, 4), (2, 2), 4)})
LEAVES = {
    "v1": (V1, ("relative_position_bias_table", "qkv.weight")),
    "v2": (V2, ("cpb_mlp.0.weight", "qkv.weight")),
}


def _model_class(spec, framework: str, text: str | None = None):
    namespace: dict = {}
    text = text or xinit.export_code(spec, framework, class_name="Model")
    exec(compile(text, "window.py", "exec"), namespace)  # noqa: S102 - the file just written
    return namespace["Model"]


def _drawn(model_class, framework: str, key: str, seed: int) -> np.ndarray:
    """``Model()``'s value of ``key`` under ``seed`` (the constructor calls init_weights);
    Paddle's Linear weights are stored (in, out), the law is element-wise."""
    backend = importlib.import_module(framework)
    backend.manual_seed(seed) if framework == "torch" else backend.seed(seed)
    value = model_class().state_dict()[f"attn.{key}"]
    return np.asarray(value.detach() if framework == "torch" else value, np.float64).ravel()


@pytest.mark.parametrize("version", sorted(LEAVES))
@pytest.mark.parametrize("framework", ["torch", "paddle"])
def test_init_weights_draws_the_window_attention_laws(framework, version):
    """One-sample KS of each leaf against the init plan's law, redrawn under another seed
    before a rejection counts."""
    require_backend(framework)
    spec, leaves = LEAVES[version]
    model_class = _model_class(spec, framework)
    plan = {item.path: item.dist for item in init_plan(spec)}
    for leaf in leaves:
        dist = plan[f"attn.{leaf}"]
        assert_ks_one(
            _drawn(model_class, framework, leaf, 0),
            dist,
            f"{framework} {leaf}",
            redraw=lambda leaf=leaf: _drawn(model_class, framework, leaf, 1),
        )


def test_the_law_check_catches_a_wider_table():
    """A planted fault: the table drawn with std .03 instead of .02 is rejected."""
    require_backend("torch")
    text = xinit.export_code(V1, "torch", class_name="Model")
    assert "std=0.02" in text
    model_class = _model_class(V1, "torch", text.replace("std=0.02", "std=0.03"))
    dist = {i.path: i.dist for i in init_plan(V1)}["attn.relative_position_bias_table"]
    drawn = _drawn(model_class, "torch", "relative_position_bias_table", 0)
    with pytest.raises(AssertionError, match="rejects"):
        assert_ks_one(drawn, dist, "wider table")


@pytest.mark.parametrize("spec", [V1, V2], ids=["v1", "v2"])
def test_the_torch_tracer_reads_the_files_class_as_its_node(spec):
    """The exported one-layer model traced gives back its node (in a one-step chain)."""
    require_backend("torch")
    import torch

    model = _model_class(spec, "torch")().eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 8, 8, 32)))
    nodes = dict(xinit.blocks.walk(xinit.trace(model, x.float())))
    assert nodes["attn"] == dict(spec.children)["attn"]


def test_the_tracer_checks_what_the_files_class_computes():
    """A planted fault: the file's shift mask made -10 instead of -100 (a class still named
    ShiftedWindowAttention, with its parameters) is no WindowAttention: the tracer names it."""
    require_backend("torch")
    import torch

    text = xinit.export_code(V2, "torch", class_name="Model")
    assert "-100.0, 0.0" in text
    model = _model_class(V2, "torch", text.replace("-100.0, 0.0", "-10.0, 0.0"))().eval()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 8, 8, 32)))
    with pytest.raises(xinit.TraceError, match=r"'attn' .*computes other than its WindowAttention"):
        xinit.trace(model, x.float())


# ---- Flax: each example exported, run without xinit, within xinit's parity verdict ---------
FLAX_CASES = {
    "v1": (L.WindowAttention(8, (2, 2), (1, 1), 2), (2, 5, 6, 8)),  # padded, shifted
    "v2": (L.WindowAttentionV2(8, (2, 3), (1, 1), 2), (2, 5, 6, 8)),
    "plain": (
        L.WindowAttention(8, (3, 3), (0, 0), 2, qkv_bias=False, proj_bias=False),
        (2, 6, 6, 8),
    ),
}
FLAX_SCRIPT = """
import importlib, json
import numpy as np, jax.numpy as jnp
from flax import nnx
for name in json.load(open("names.json")):
    model = importlib.import_module(name).Model()
    saved = dict(np.load(name + "_state.npz"))
    state = nnx.state(model)
    flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(state)}
    assert set(flat) == set(saved), (name, sorted(set(flat) ^ set(saved)))
    for key, var in nnx.to_flat_state(state):
        var.set_value(jnp.asarray(saved[".".join(map(str, key))]))
    nnx.update(model, state)
    np.save(name + "_out.npy", np.asarray(model(jnp.asarray(np.load(name + "_x.npy")))))
"""


@pytest.fixture(scope="module")
def flax_runs(tmp_path_factory):
    """Each case (and a planted fault: v1's shift mask -10) exported to Flax, the build's
    state and (output, its float32 rounding vs float64) saved; one isolated run."""
    require_backend("flax")
    import json

    from flax import nnx

    from xinit.backends import get_backend

    backend, folder = get_backend("flax"), tmp_path_factory.mktemp("window_flax")
    cases = {**FLAX_CASES, "fault": FLAX_CASES["v1"]}
    texts, expected = {}, {}
    for name, (layer, shape) in cases.items():
        spec = Graph({"attn": layer})
        texts[name] = xinit.export_code(spec, "flax", class_name="Model")
        text = texts[name].replace("-100.0, 0.0", "-10.0, 0.0") if name == "fault" else texts[name]
        (folder / f"window_{name}.py").write_text(text)
        module = xinit.build(spec, "flax", rng="xinit")
        flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(nnx.state(module))}
        np.savez(
            folder / f"window_{name}_state.npz",
            **{k: np.asarray(v.get_value()) for k, v in flat.items()},
        )
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        np.save(folder / f"window_{name}_x.npy", x)
        want = backend.run(module, x)
        with backend.float64(module):
            wide = backend.run(module, x.astype(np.float64))
        expected[name] = (want, rounding(want, wide))
    (folder / "names.json").write_text(json.dumps([f"window_{n}" for n in cases]))
    run_isolated(folder, FLAX_SCRIPT)
    outs = {name: np.load(folder / f"window_{name}_out.npy") for name in cases}
    return folder, texts, expected, outs


@pytest.mark.parametrize("name", sorted(FLAX_CASES))
def test_flax_file_gives_the_build_within_the_verdict(flax_runs, name):
    _, _, expected, outs = flax_runs
    want, noise = expected[name]
    assert compare(want, outs[name], atol=None, noise=2 * noise).passed, name


def test_the_flax_verdict_catches_a_wrong_shift_mask(flax_runs):
    _, _, expected, outs = flax_runs
    want, noise = expected["fault"]
    assert not compare(want, outs["fault"], atol=None, noise=2 * noise).passed


def test_flax_files_are_ruff_clean_and_deterministic(flax_runs):
    folder, texts, _, _ = flax_runs
    assert ruff_problems(folder, [f"window_{name}.py" for name in FLAX_CASES]) == ""
    for name, (layer, _) in FLAX_CASES.items():
        assert xinit.export_code(Graph({"attn": layer}), "flax", class_name="Model") == texts[name]


@pytest.mark.parametrize("version", sorted(LEAVES))
def test_flax_constructors_draw_the_window_attention_laws(version):
    """The file's ``inits`` give each leaf the plan's law (KS, redrawn before a rejection
    counts); Flax's kernels are (in, out), the laws element-wise."""
    require_backend("flax")
    from flax import nnx

    spec, leaves = LEAVES[version]
    model_class = _model_class(spec, "flax")
    plan = {item.path: item.dist for item in init_plan(spec)}
    paths = {"qkv.weight": "qkv.kernel", "cpb_mlp.0.weight": "cpb_mlp.layers.0.kernel"}

    def drawn(leaf: str, seed: int) -> np.ndarray:
        state = nnx.state(model_class(rngs=nnx.Rngs(seed)))
        flat = {".".join(map(str, k)): v for k, v in nnx.to_flat_state(state)}
        return np.asarray(flat[f"attn.{paths.get(leaf, leaf)}"].get_value(), np.float64).ravel()

    for leaf in leaves:
        what = f"flax {leaf}"
        assert_ks_one(
            drawn(leaf, 0), plan[f"attn.{leaf}"], what, redraw=lambda leaf=leaf: drawn(leaf, 1)
        )
