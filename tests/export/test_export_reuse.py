"""The code export of graphs with :class:`xinit.Reuse` nodes: a reused layer or sub-graph is
another call of the same attribute (``language_2 = self.language(act, embed)``) in torch,
Paddle and Flax files, which run without xinit, load the build's state strict (no key of
their own for the reuse) and give the build's outputs bit for bit (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from export_code_helpers import (
    SCRIPTS,
    Case,
    ruff_problems,
    run_isolated,
    save_state,
    threads,
    write_cases,
)
from helpers import FRAMEWORKS, require_backend
from reuse_specs import abinet_like, conv_twice

import xinit
from xinit.codegen.structure import ExportError
from xinit.graph import Graph, Reuse
from xinit.layers import Conv, Flatten, ReLU

CASES = {"abinet_like": (abinet_like, (2, 5, 8)), "conv_twice": (conv_twice, (2, 4, 6, 6))}
CALLS = {
    "abinet_like": (
        "language = self.language(embed, embed)",
        "language_2 = self.language(act, embed)",
        'language_3 = self.language(language_2["feature"], act)',
    ),
    "conv_twice": ("conv = self.conv(x)", "conv_2 = self.conv(bn)"),
}
# The isolated Flax run moves an image's channels last; a sequence (N, L, D) it takes as it is.
_FLAX_INPUT = "jnp.asarray(np.moveaxis(x, 1, -1))"


def _script(framework: str) -> str:
    script = SCRIPTS[framework].replace("THREADS", str(threads(framework)))
    if framework == "flax":
        assert _FLAX_INPUT in script
        script = script.replace(_FLAX_INPUT, f"({_FLAX_INPUT} if x.ndim == 4 else x)")
    return script


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_reused_node_is_another_call_of_the_same_attribute(framework, tmp_path):
    require_backend(framework)
    cases, expected = [], {}
    for name, (make, shape) in CASES.items():
        spec = make()
        text = xinit.export_code(spec, framework, class_name="Model")
        for line in CALLS[name]:
            assert f"        {line}\n" in text, (name, line)
        (tmp_path / f"{name}.py").write_text(text)
        module = xinit.build(spec, framework, seed=4, rng="xinit")
        save_state(module, framework, tmp_path / f"{name}.state")
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        np.save(tmp_path / f"{name}_x.npy", x)
        expected[name] = xinit.run(module, x)
        cases.append(Case(name, name, shape))
    write_cases(tmp_path, cases)
    run_isolated(tmp_path, _script(framework))
    for name, want in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_out.npy"), want, err_msg=name)
    assert ruff_problems(tmp_path, [f"{name}.py" for name in CASES]) == ""


def test_flax_refuses_a_reused_layer_held_otherwise_at_its_second_call():
    """The Flax file writes one layout per layer: a ReLU run on a channel-last image, then
    again on a flattened one, would be written wrong for one of its calls."""
    spec = Graph(
        [
            ("conv", Conv(3, 4, 3), "x"),
            ("act", ReLU(), "conv"),
            ("flat", Flatten(), "act"),
            ("act_2", Reuse("act"), "flat"),
        ]
    )
    assert "act_2 = self.act(flat)" in xinit.export_code(spec, "torch")
    with pytest.raises(ExportError, match="act: called again by act_2 .* otherwise than at its"):
        xinit.export_code(spec, "flax")
