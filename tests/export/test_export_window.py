"""The code export of shifted-window attention: the file's ``ShiftedWindowAttention`` and
``ShiftedWindowAttentionV2`` (torchvision's classes retyped) draw the kind's laws in
``init_weights`` (the table trunc_normal(.02, ±2), Linear's defaults) in torch and Paddle,
and the torch tracer reads the file's class back as its node, checking what it computes.
(Bit-equal outputs: tests/export/test_export_kinds.py and the traced Swin in
test_export_traced.py.)"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from helpers import require_backend
from stats_helpers import assert_ks_one

import xinit
from xinit import layers as L
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
            redraw=lambda: _drawn(model_class, framework, leaf, 1),
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
