"""The code export of traced specs: a torchvision model traced with ``xinit.trace`` and saved
with ``xinit.save_spec`` is written by ``xinit export-code --model spec.json``; the file runs
in a Python where xinit cannot be imported, loads the state of ``xinit.build(spec,
rng="xinit")`` with every key used, and gives the build's outputs bit for bit (CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import real_models as real
from export_code_helpers import SCRIPTS, Case, run_isolated, save_state, threads, write_cases
from helpers import require_backend

import xinit
from xinit.cli import main

torch = pytest.importorskip("torch")

# torchvision models (random init) -> input side; the trace tests' models.
TRACED = {"resnet18": 32}
FRAMEWORKS = ("torch", "paddle")


def _torchvision(name: str):
    models = real.vision("torchvision").models
    torch.manual_seed(0)
    return getattr(models, name)()


@pytest.fixture(scope="module")
def saved_specs(tmp_path_factory) -> dict:
    """Each model traced once at batch 1 and saved with ``xinit.save_spec``: name -> path."""
    folder = tmp_path_factory.mktemp("traced_specs")
    paths = {}
    for name, size in TRACED.items():
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, size, size)))
        spec = xinit.trace(_torchvision(name).eval(), x.float())
        paths[name] = xinit.save_spec(spec, folder / f"{name}.json")
    return paths


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_saved_traced_spec_exports_and_runs_as_the_build(framework, saved_specs, tmp_path):
    require_backend(framework)
    cases, expected = [], {}
    for name, path in saved_specs.items():
        out = tmp_path / f"{name}.py"
        args = ["export-code", "--model", str(path), "--framework", framework, "-o", str(out)]
        assert main([*args, "--class-name", "Model"]) == 0
        spec = xinit.load_spec(path)
        module = xinit.build(spec, framework, rng="xinit")
        save_state(module, framework, tmp_path / f"{name}.state")
        size = TRACED[name]
        x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
        np.save(tmp_path / f"{name}_x.npy", x)
        expected[name] = xinit.run(module, x)
        cases.append(Case(name, name, x.shape))
    write_cases(tmp_path, cases)
    run_isolated(tmp_path, SCRIPTS[framework].replace("THREADS", str(threads(framework))))
    for name, want in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_out.npy"), want, err_msg=name)


def test_a_saved_spec_takes_no_factory_arguments(saved_specs, capsys):
    path = str(saved_specs["resnet18"])
    assert main(["export-code", "--model", path, "--model-args", "num_classes=10"]) == 2
    assert "saved spec" in capsys.readouterr().err
