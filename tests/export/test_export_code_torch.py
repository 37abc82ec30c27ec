"""The PyTorch code export: each zoo model's file runs in a Python where xinit cannot be
imported, loads the state of ``xinit.build(..., rng="xinit")`` with ``strict=True`` and gives
bit-identical outputs; ``init_weights()`` draws the policy's laws; the file is ruff-clean and
the same on a second export; repeated blocks are one class."""

from __future__ import annotations

import numpy as np
import pytest
from export_code_helpers import (
    Case,
    check_init_statistics,
    export,
    ruff_problems,
    run_isolated,
    write_cases,
)
from helpers import require_backend

import xinit
from xinit.codegen import ExportError, export_code

CASES = [
    Case("lenet", "lenet", (2, 3, 32, 32), stats=True),
    Case("resnet18", "resnet18", (2, 3, 64, 64), stats=True),
    Case("resnet45", "resnet45", (1, 3, 16, 32)),
    Case("resnet50", "resnet50", (1, 3, 32, 32), kwargs={"num_classes": 10}),
    Case("vgg11_bn", "vgg11_bn", (1, 3, 32, 32), kwargs={"num_classes": 0}),
    Case("vit_tiny", "vit_tiny_patch16_224", (1, 3, 224, 224), stats=True),
    Case("lenet_xavier", "lenet", (1, 3, 32, 32), policy="xavier_bn_normal", stats=True),
]
# A planted fault: resnet18's file with its convs drawn by fan_in instead of fan_out.
FAULT = Case("resnet18_fault", "resnet18", (1, 3, 32, 32), stats=True)

SCRIPT = """
import importlib, json
import numpy as np
import torch
torch.set_num_threads(THREADS)  # as the test process: a conv's sums in the same order
for name, stats in json.load(open("cases.json")):
    model_class = importlib.import_module(name).Model
    model = model_class()
    model.load_state_dict(torch.load(name + ".pt"), strict=True)
    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(np.load(name + "_x.npy")))
    np.save(name + "_out.npy", out.numpy())
    for seed in (0, 1) if stats else ():
        torch.manual_seed(seed)
        fresh = model_class()
        fresh.init_weights()
        state = {k: v.detach().numpy() for k, v in fresh.state_dict().items()}
        np.savez(f"{name}_init{seed}.npz", **state)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Every case exported, its xinit-built state and input saved, and one isolated run."""
    require_backend("torch")
    import torch

    folder = tmp_path_factory.mktemp("export_torch")
    texts, expected = {}, {}
    for case in CASES:
        texts[case.name] = export(case, "torch", folder)
        module = xinit.build(case.spec, "torch", rng="xinit", policy=case.policy_object()).eval()
        torch.save(module.state_dict(), folder / f"{case.name}.pt")
        x = np.random.default_rng(0).standard_normal(case.input_shape).astype(np.float32)
        np.save(folder / f"{case.name}_x.npy", x)
        expected[case.name] = xinit.run(module, x)
    text = export(FAULT, "torch", folder).replace('mode="fan_out"', 'mode="fan_in"')
    (folder / f"{FAULT.name}.py").write_text(text)
    torch.save(xinit.build(FAULT.spec, "torch").state_dict(), folder / f"{FAULT.name}.pt")
    np.save(folder / f"{FAULT.name}_x.npy", np.zeros(FAULT.input_shape, np.float32))
    write_cases(folder, [*CASES, FAULT])
    run_isolated(folder, SCRIPT.replace("THREADS", str(torch.get_num_threads())))
    return folder, texts, expected


def _state(folder, case, seed):
    return dict(np.load(folder / f"{case.name}_init{seed}.npz"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_outputs_are_bit_identical_without_xinit(exported, case):
    folder, _, expected = exported
    out = np.load(folder / f"{case.name}_out.npy")
    np.testing.assert_array_equal(out, expected[case.name])


@pytest.mark.parametrize("case", [c for c in CASES if c.stats], ids=lambda c: c.name)
def test_init_weights_draws_the_policy_laws(exported, case):
    folder = exported[0]
    first, second = _state(folder, case, 0), _state(folder, case, 1)
    check_init_statistics(case, first, second, lambda state, path: state[path])


def test_statistics_catch_a_wrong_fan(exported):
    """The planted fault (fan_in for fan_out) is caught on resnet18's convs."""
    folder = exported[0]
    first, second = _state(folder, FAULT, 0), _state(folder, FAULT, 1)
    with pytest.raises(AssertionError, match="conv"):
        check_init_statistics(FAULT, first, second, lambda state, path: state[path])


def test_files_are_ruff_clean_and_deterministic(exported):
    folder, texts, _ = exported
    assert ruff_problems(folder, [f"{c.name}.py" for c in CASES]) == ""
    for case in CASES:
        again = export_code(
            case.spec, "torch", class_name="Model", policy=case.policy_object(), source=case.model
        )
        assert again == texts[case.name], case.name


def test_the_isolated_run_cannot_import_xinit(tmp_path):
    """The blocker holds: a file that imports xinit fails in the isolated run."""
    (tmp_path / "uses_xinit.py").write_text("import xinit\n")
    with pytest.raises(AssertionError, match="ImportError|ModuleNotFoundError"):
        run_isolated(tmp_path, "import uses_xinit\n")


def test_resnet_blocks_are_one_class_as_torchvision_writes_them(exported):
    text = exported[1]["resnet18"]
    assert text.count("class ") == 2  # BasicBlock and the model
    assert "class BasicBlock(nn.Module):" in text
    assert "downsample: bool = False" in text
    assert "BasicBlock(64, 128, 2, downsample=True)" in text
    assert "for m in self.modules():" in text
    assert 'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")' in text
    bottleneck = exported[1]["resnet50"]
    assert bottleneck.count("class Bottleneck(") == 1
    assert "*[Bottleneck(1024, 256, 1, 1024) for _ in range(5)]" in bottleneck


def test_a_kind_without_an_emitter_is_named_with_its_path():
    spec = xinit.models.crnn()
    with pytest.raises(ExportError, match=r"neck\.encoder\.lstm: .*'lstm'"):
        export_code(spec, "torch")
