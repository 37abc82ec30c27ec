"""The Flax code export of the trace tests' traced models (``test_export_traced.py``'s): each
traced with ``xinit.trace``, saved with ``xinit.save_spec``, written by ``xinit export-code
--framework flax``, run in a Python where xinit cannot be imported on the state of
``xinit.build(spec, "flax", rng="xinit")`` (every path held, every value used), its outputs
within the parity verdict; ``init_weights`` draws the spec's laws; the file is ruff-clean and
byte-identical when exported again. What each needed of the export:

- resnet18, mobilenet_v3_small: the traced ``flatten(1, 3)`` (a flatten naming its last dim);
- ConvNeXt: a numbered Sequential whose LayerNorm2d comes after a block ending in PyTorch's
  layout (the file's ``Sequential(..., turn={0: channels_last})``);
- the glue model: a learned (8, 1, 1) scale broadcast onto a channel-last image (its channel
  axis moved last first, ``jnp.moveaxis(scale, 0, -1)``).

The default run takes ConvNeXt and the glue model at the trace tests' sizes and a thin
torchvision ResNet (the same classes as resnet18, the same traced flatten); the full-size
resnet18 and mobilenet_v3_small, and a thin MobileNetV3, run in the slow run."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real
from export_code_helpers import ruff_problems
from helpers import require_backend
from test_export_flax import SpecCase, _draws, _passes, _run, _save_build, check_flax_init

import xinit
from xinit.cli import main

torch = pytest.importorskip("torch")
pytest.importorskip("flax")


def _thin_resnet():
    """torchvision's ResNet with one BasicBlock per stage (the classes resnet18 traces to)."""
    models = real.vision("torchvision").models
    return models.ResNet(models.resnet.BasicBlock, [1, 1, 1, 1], num_classes=10)


def _thin_mobilenet():
    """torchvision's mobilenet_v3_small at a quarter of its width, 10 classes."""
    return real.vision("torchvision").models.mobilenet_v3_small(width_mult=0.25, num_classes=10)


def _traced_model(name: str):
    from test_export_traced import _model

    if name == "resnet_thin":
        return _thin_resnet()
    if name == "mobilenet_thin":
        return _thin_mobilenet()
    return _model(name)


# name -> input size (the trace tests' sizes); the thin MobileNetV3 costs the default run
# about a minute of CPU (its build and its file construct some 200 layers), so it runs slow.
FAST = {"convnext": 32, "glue": 8, "resnet_thin": 32}
SLOW = {"resnet18": 32, "mobilenet_v3_small": 32, "mobilenet_thin": 32}
FLATTEN = "x = jnp.moveaxis(x, -1, 1).reshape(x.shape[0], -1)"  # the traced flatten(1, 3)
# A form of each fix the files must read as.
FORMS = {
    "convnext": "turn={0: channels_last}",
    "glue": "mul = jnp.moveaxis(scale, 0, -1) * conv",
    "resnet_thin": FLATTEN,
}
# A planted fault undoing one fix in the written file: ConvNeXt's downsampling LayerNorm2d
# given PyTorch's layout (its 8 channels and the 8 x 8 map make every shape fit). (The glue
# model's output hardly depends on its N(0, 0.02) scale; test_export_flax_kinds.py plants the
# wrong broadcast on a model whose output does.)
FAULT = ("convnext", "turn={0: channels_last},", "")


def _export_traced(names: dict, folder) -> tuple[list[SpecCase], dict]:
    """Each model traced at batch 1 (seeded), saved, exported by the CLI: (cases, texts)."""
    cases, texts = [], {}
    for name, size in names.items():
        x = np.random.default_rng(0).standard_normal((1, 3, size, size)).astype(np.float32)
        torch.manual_seed(0)
        model = _traced_model(name).eval()
        path = xinit.save_spec(xinit.trace(model, torch.from_numpy(x)), folder / f"{name}.json")
        out = folder / f"{name}.py"
        args = ["export-code", "--model", str(path), "--framework", "flax", "-o", str(out)]
        assert main([*args, "--class-name", "Model"]) == 0
        texts[name] = out.read_text()
        cases.append(SpecCase(name, xinit.load_spec(path), (2, 3, size, size), stats=True))
    return cases, texts


def _planted(case: SpecCase, texts: dict, folder) -> SpecCase:
    """The fault's file next to the case's, on the same saved build (state, paths, input)."""
    name, right, wrong = FAULT
    fault = SpecCase(f"{name}_fault", case.spec, case.input_shape)
    assert right in texts[name]
    (folder / f"{fault.name}.py").write_text(texts[name].replace(right, wrong))
    for suffix in ("_paths.json", "_state.npz", "_x.npy"):
        (folder / f"{fault.name}{suffix}").write_bytes((folder / f"{name}{suffix}").read_bytes())
    return fault


def _check(cases: list[SpecCase], texts: dict, expected: dict, outs: dict, folder) -> None:
    """Each file's outputs within the verdict, its init draws the laws, ruff-clean and the
    same bytes when exported again."""
    for case in cases:
        assert _passes(expected[case.name], outs[case.name]), case.name
        check_flax_init(case, *_draws(folder, case.name))
        again = folder / f"{case.name}_again.py"
        args = ["export-code", "--model", str(folder / f"{case.name}.json"), "-o", str(again)]
        assert main([*args, "--framework", "flax", "--class-name", "Model"]) == 0
        assert again.read_text() == texts[case.name], case.name
        assert "_node_" not in texts[case.name], case.name
    assert ruff_problems(folder, [f"{c.name}.py" for c in cases]) == ""


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    """The fast models exported and built, the planted fault beside them; one isolated run."""
    require_backend("flax")
    folder = tmp_path_factory.mktemp("flax_traced")
    cases, texts = _export_traced(FAST, folder)
    expected = {c.name: _save_build(c, folder) for c in cases}
    (source,) = [c for c in cases if c.name == FAULT[0]]
    fault = _planted(source, texts, folder)
    expected[fault.name] = expected[source.name]
    outs = _run([*cases, fault], folder)
    return folder, cases, texts, expected, outs


def test_traced_models_export_and_run_as_the_build(traced):
    folder, cases, texts, expected, outs = traced
    _check(cases, texts, expected, outs, folder)


@pytest.mark.parametrize("name", sorted(FORMS))
def test_the_files_read_as_written(traced, name):
    assert FORMS[name] in traced[2][name], name


def test_the_verdict_catches_a_step_left_in_the_other_layout(traced):
    _, _, _, expected, outs = traced
    name = f"{FAULT[0]}_fault"
    assert not _passes(expected[name], outs[name])


@pytest.mark.slow
def test_full_size_traced_models_export_and_run_as_the_build(tmp_path):
    """resnet18 and mobilenet_v3_small at full size (11.7M and 2.5M parameters), the thin
    MobileNetV3 too."""
    require_backend("flax")
    cases, texts = _export_traced(SLOW, tmp_path)
    for name in SLOW:
        assert FLATTEN in texts[name], name
    expected = {c.name: _save_build(c, tmp_path) for c in cases}
    _check(cases, texts, expected, _run(cases, tmp_path), tmp_path)
