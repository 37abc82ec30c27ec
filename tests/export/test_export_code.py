"""The code export in every framework it writes: each zoo model's file runs in a Python
where xinit cannot be imported, loads the state of ``xinit.build(..., rng="xinit")`` with
every key used and gives the build's outputs (bit-identical for torch and Paddle on CPU,
Flax within the parity verdict); ``init_weights()`` draws the
policy's laws (KS and moments, tolerances from the sample size); the file is ruff-clean and
byte-identical on a second export."""

from __future__ import annotations

import numpy as np
import pytest
from export_code_helpers import (
    SCRIPTS,
    Case,
    check_init_statistics,
    export,
    ruff_problems,
    run_isolated,
    save_state,
    threads,
    write_cases,
)
from helpers import require_backend

import xinit
from xinit import export_code
from xinit._parity_base import compare, rounding
from xinit.backends import get_backend

GPT2 = {"n_layer": 2, "n_head": 4, "n_embd": 64, "vocab_size": 500, "n_positions": 64}
CASES = [
    Case("lenet", "lenet", (2, 3, 32, 32), stats=True),
    Case("resnet18", "resnet18", (2, 3, 64, 64), stats=True),
    Case("resnet45", "resnet45", (1, 3, 16, 32)),
    Case("resnet50", "resnet50", (1, 3, 32, 32), kwargs={"num_classes": 10}),
    Case("vgg11_bn", "vgg11_bn", (1, 3, 32, 32), kwargs={"num_classes": 0}),
    Case("vit_tiny", "vit_tiny_patch16_224", (1, 3, 224, 224), stats=True),
    Case("lenet_xavier", "lenet", (1, 3, 32, 32), policy="xavier_bn_normal", stats=True),
    Case("crnn", "crnn", (1, 3, 32, 64), stats=True),
    Case("gpt2", "gpt2", (2, 16), kwargs=GPT2, stats=True, vocab=GPT2["vocab_size"]),
    Case("svtr_tiny", "svtr_tiny", (1, 3, 32, 100)),  # local-window attention (SVTR's mixer)
    Case("ppocrv4_rec", "ppocrv4_rec", (1, 3, 48, 160)),  # numbered conv_kxk: a layer list
    Case("visionlan", "visionlan", (1, 3, 64, 256)),  # sinusoid positions, a node "attention"
]
# A planted fault: resnet18's file with its convs drawn by fan_in instead of fan_out.
FAULT = Case("resnet18_fault", "resnet18", (1, 3, 32, 32), stats=True)
FANS = {"torch": ('mode="fan_out"', 'mode="fan_in"'), "paddle": ('(mode="fan_out")', "()")}
FANS["flax"] = ('"fan_out", "normal"', '"fan_in", "normal"')
# What each framework's export is tested on here (Flax: convolutional networks; its sequence
# models, ViT, GPT-2, CRNN, in test_export_flax.py).
ALL = {c.model for c in CASES}
WRITES = {"torch": ALL, "paddle": ALL, "flax": {"lenet", "resnet18"}}
SLOW_FLAX = {"resnet45", "vgg11_bn"}  # written too; tested in the slow run


def cases_for(framework: str) -> list[Case]:
    return [c for c in CASES if c.model in WRITES[framework]]


def run_cases(framework: str, cases: list[Case], folder) -> tuple[dict, dict]:
    """Export ``cases`` (and the planted fault), save each build's state and input, run the
    files once in a Python without xinit; (texts, expected outputs and their rounding)."""
    texts, expected = {}, {}
    for case in cases:
        texts[case.name] = export(case, framework, folder)
        module = xinit.build(case.spec, framework, rng="xinit", policy=case.policy_object())
        save_state(module, framework, folder / f"{case.name}.state")
        x = case.input()
        np.save(folder / f"{case.name}_x.npy", x)
        expected[case.name] = (xinit.run(module, x), _rounding(module, framework, x))
    right, wrong = FANS[framework]
    text = export(FAULT, framework, folder)
    assert right in text
    (folder / f"{FAULT.name}.py").write_text(text.replace(right, wrong))
    save_state(xinit.build(FAULT.spec, framework), framework, folder / f"{FAULT.name}.state")
    np.save(folder / f"{FAULT.name}_x.npy", np.zeros(FAULT.input_shape, np.float32))
    write_cases(folder, [*cases, FAULT])
    run_isolated(folder, SCRIPTS[framework].replace("THREADS", str(threads(framework))))
    return texts, expected


@pytest.fixture(scope="module", params=sorted(SCRIPTS))
def exported(request, tmp_path_factory):
    """Every case exported, its xinit-built state and input saved, and one isolated run."""
    framework = request.param
    require_backend(framework)
    folder = tmp_path_factory.mktemp(f"export_{framework}")
    texts, expected = run_cases(framework, cases_for(framework), folder)
    return framework, folder, texts, expected


def assert_output(framework: str, folder, case: Case, expected) -> None:
    """Bit-identical for torch and Paddle on CPU; Flax within the parity verdict (4x the
    float32 rounding of both sides, each taken as the build's, measured in float64)."""
    out = np.load(folder / f"{case.name}_out.npy")
    want, noise = expected[case.name]
    if framework == "flax":
        diff = compare(want, out, noise=2 * noise)
        assert diff.passed, (case.name, diff)
    else:
        np.testing.assert_array_equal(out, want)


def _state(folder, case, seed):
    return dict(np.load(folder / f"{case.name}_init{seed}.npz"))


def _rounding(module, framework: str, x) -> float:
    """The float32 rounding of the build's output (against its float64 run): Flax's verdict."""
    if framework != "flax":
        return 0.0
    backend = get_backend("flax")
    narrow = backend.run(module, x)
    with backend.float64(module):
        return rounding(narrow, backend.run(module, x.astype(np.float64)))


def _skip_unwritten(framework: str, case: Case) -> None:
    if case not in cases_for(framework):
        pytest.skip(f"{case.model} in {framework}: not in the fast run (or not written yet)")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_outputs_equal_the_build_without_xinit(exported, case):
    framework, folder, _, expected = exported
    _skip_unwritten(framework, case)
    assert_output(framework, folder, case, expected)


@pytest.mark.slow
def test_flax_writes_the_other_convolutional_zoo_models(tmp_path):
    """ResNet45 and VGG-11-BN in Flax (slow: JAX runs them op by op, twice in float64)."""
    require_backend("flax")
    cases = [c for c in CASES if c.model in SLOW_FLAX]
    _, expected = run_cases("flax", cases, tmp_path)
    for case in cases:
        assert_output("flax", tmp_path, case, expected)


@pytest.mark.parametrize("case", [c for c in CASES if c.stats], ids=lambda c: c.name)
def test_init_weights_draws_the_policy_laws(exported, case):
    _skip_unwritten(exported[0], case)
    folder = exported[1]
    first, second = _state(folder, case, 0), _state(folder, case, 1)
    check_init_statistics(case, first, second, exported[0])


def test_statistics_catch_a_wrong_fan(exported):
    """The planted fault (fan_in for fan_out) is caught on resnet18's convs."""
    folder = exported[1]
    first, second = _state(folder, FAULT, 0), _state(folder, FAULT, 1)
    with pytest.raises(AssertionError, match="conv"):
        check_init_statistics(FAULT, first, second, exported[0])


def test_files_are_ruff_clean_and_deterministic(exported):
    framework, folder, texts, _ = exported
    assert ruff_problems(folder, [f"{c.name}.py" for c in cases_for(framework)]) == ""
    for case in cases_for(framework):
        again = export_code(
            case.spec, framework, class_name="Model", policy=case.policy_object(), source=case.model
        )
        assert again == texts[case.name], case.name


def test_the_isolated_run_cannot_import_xinit(tmp_path):
    """The blocker holds: a file that imports xinit fails in the isolated run."""
    (tmp_path / "uses_xinit.py").write_text("import xinit\n")
    with pytest.raises(AssertionError, match="ImportError|ModuleNotFoundError"):
        run_isolated(tmp_path, "import uses_xinit\n")
