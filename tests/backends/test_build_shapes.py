"""Zoo models built in torch, paddle and flax: names, shapes, counts, per-layer outputs, summary.

Ground truth for names is the hand-written reference code in ``reference_models.py``
(torchvision-style ResNets in ``torch.nn``, PaddleOCR's ResNet45 in ``paddle.nn``); ground
truth for shapes is the neutral inference (``blocks.infer``), checked against what each real
framework computes, layer by layer, at two input sizes.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from helpers import FRAMEWORKS, installed, require_backend
from reference_models import (
    TORCH_REFERENCES,
    TORCHVISION_NUM_PARAMS,
    paddle_resnet45,
    torch_lenet,
)

from xinit import build, models, run, summary
from xinit.blocks import Sequential, infer, join, layer_of, num_params, param_specs
from xinit.layers import Conv, Embedding

BUILT = ("lenet", "resnet18", "resnet34", "resnet50", "resnext50_32x4d", "resnet45")
# Two input sizes per model (LeNet's Linear head fixes 32x32, so its second size is the batch).
SIZES = {
    "lenet": [(1, 3, 32, 32), (3, 3, 32, 32)],
    "resnet18": [(1, 3, 32, 32), (2, 3, 40, 56)],
    "resnet34": [(1, 3, 32, 32), (2, 3, 40, 56)],
    "resnet50": [(1, 3, 32, 32), (2, 3, 40, 56)],
    "resnext50_32x4d": [(1, 3, 32, 32), (2, 3, 40, 56)],
    "resnet45": [(1, 3, 32, 128), (2, 3, 16, 40)],
}
PARITY_RTOL = 1e-4


def adapter(backend: str):
    return require_backend(backend)


@functools.cache
def built(name: str, backend: str):
    """One xinit build per (model, backend) and worker; rng="xinit" gives equal weights."""
    return build(models.get(name), backend, seed=0, rng="xinit")


@pytest.fixture(scope="module", autouse=True)
def _release_builds():
    """The cached builds hold ~100M parameters per backend: free them after this module."""
    yield
    built.cache_clear()


def native_state(backend: str, module) -> dict[str, tuple[int, ...]]:
    """The framework's own view of the module's state: native key -> native shape."""
    if backend in ("torch", "paddle"):
        return {k: tuple(v.shape) for k, v in module.state_dict().items()}
    from flax import nnx

    flat = nnx.to_flat_state(nnx.state(module))
    return {".".join(map(str, path)): tuple(v.get_value().shape) for path, v in flat}


def expected_native_keys(backend: str, spec) -> dict[str, str]:
    """Neutral path -> the native key the spec says this backend must have."""
    ad = adapter(backend)
    out = {}
    for path, ps in param_specs(spec).items():
        owner = path.rpartition(".")[0]
        for leaf in ad.param_map(ps.layer)[ps.name]:  # none: the framework keeps no counterpart
            out[path] = join(owner, leaf.name)
    return out


def native_value(ad, module, path: str):
    """The native tensor holding neutral parameter ``path`` of an xinit-built module (None:
    the framework keeps none), found through the layer's parameter map."""
    owner, _, name = path.rpartition(".")
    layer = ad.submodule(module, owner)
    spec = next(p for p in layer_of(module._xinit_spec, owner).params() if p.name == name)
    leaves = ad.param_map(spec.layer)[name]
    return ad.tensor(layer, leaves[0].name) if leaves else None


def framework_counts(backend: str, module) -> tuple[int, int]:
    """(trainable parameter values, non-trainable state values) as the framework counts them."""
    if backend == "torch":
        return (
            sum(p.numel() for p in module.parameters()),
            sum(b.numel() for b in module.buffers()),
        )
    if backend == "paddle":
        params = module.parameters()
        trainable = sum(int(p.numel()) for p in params if not p.stop_gradient)
        return trainable, sum(int(p.numel()) for p in params) - trainable
    from flax import nnx

    def size(state):
        return sum(int(v.get_value().size) for _, v in nnx.to_flat_state(state))

    return size(nnx.state(module, nnx.Param)), size(nnx.state(module, nnx.BatchStat))


# ---- names, shapes and counts --------------------------------------------------------------
@pytest.mark.parametrize("backend", FRAMEWORKS)
@pytest.mark.parametrize("name", BUILT)
def test_built_state_matches_spec(name, backend):
    """Every parameter and buffer exists under the expected native name, with the spec's shape
    in neutral layout; nothing else exists; counts equal the framework's own."""
    ad = adapter(backend)
    spec = models.get(name)
    module = built(name, backend)
    specs = param_specs(spec)
    keys = expected_native_keys(backend, spec)
    state = native_state(backend, module)

    assert set(state) == set(keys.values()), (
        f"{backend} {name}: extra {sorted(set(state) - set(keys.values()))[:5]}, "
        f"missing {sorted(set(keys.values()) - set(state))[:5]}"
    )
    if backend != "flax":  # flax's flat state is sorted; torch/paddle keep registration order
        assert list(state) == list(keys.values())

    for path, ps in specs.items():
        value = native_value(ad, module, path)
        if path not in keys:
            assert value is None and ps.name == "num_batches_tracked" and backend != "torch"
            continue
        native = ad.to_numpy(value)
        assert native.shape == ad.native_shape(ps.shape, ps.role) == state[keys[path]], path
        assert ad.to_neutral(native, ps.role).shape == ps.shape, path

    trainable, buffers = framework_counts(backend, module)
    assert trainable == num_params(spec, trainable_only=True)
    expected_buffers = sum(
        ps.numel for path, ps in specs.items() if not ps.trainable and path in keys
    )
    assert buffers == expected_buffers


@pytest.mark.parametrize("name", ["resnet34", "resnet101", "resnet152"])
def test_spec_keys_match_torchvision_reference(name):
    """The spec's neutral names and shapes are torchvision's, in torchvision's order (the
    torch build's keys are the spec's: ``test_built_state_matches_spec``). ResNet101/152 are
    checked on the spec alone, to save time."""
    ref = TORCH_REFERENCES[name]().state_dict()
    specs = param_specs(models.get(name))
    assert list(specs) == list(ref)
    assert {k: v.shape for k, v in specs.items()} == {k: tuple(v.shape) for k, v in ref.items()}
    assert num_params(models.get(name), trainable_only=True) == TORCHVISION_NUM_PARAMS[name]


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnext50_32x4d"])
def test_torch_build_has_torchvision_keys(name):
    """The torch build's state_dict has torchvision's keys, order and shapes; each side's
    state_dict loads into the other with strict=True and then both compute the same thing."""
    import torch

    require_backend("torch")
    ref = TORCH_REFERENCES[name]()
    ours = build(models.get(name), "torch", seed=3, rng="xinit")
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    assert {k: tuple(v.shape) for k, v in our_sd.items()} == {
        k: tuple(v.shape) for k, v in ref_sd.items()
    }
    assert sum(p.numel() for p in ours.parameters()) == TORCHVISION_NUM_PARAMS[name]

    ours.load_state_dict(ref_sd, strict=True)  # a torchvision checkpoint loads as it is
    x = np.random.default_rng(0).standard_normal((2, 3, 48, 40)).astype(np.float32)
    ref.eval()
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(ours, x), expected, rtol=1e-4, atol=1e-5)

    fresh = built(name, "torch")
    ref.load_state_dict(fresh.state_dict(), strict=True)  # and an xinit build exports to it
    with torch.no_grad():
        exported = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(exported, run(fresh, x), rtol=1e-4, atol=1e-5)


def test_torch_lenet_matches_tutorial_net():
    """LeNet's torch build loads the PyTorch tutorial ``Net``'s weights strictly, same output."""
    import torch

    require_backend("torch")
    ref = torch_lenet()
    ours = build(models.lenet(), "torch")
    assert list(ours.state_dict()) == list(ref.state_dict())
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run(ours, x), expected, rtol=1e-5, atol=1e-6)


def test_paddle_resnet45_has_paddleocr_keys():
    """The paddle build of resnet45 has exactly PaddleOCR's keys, order and shapes; weights go
    both ways with ``set_state_dict`` and the two compute the same thing."""
    require_backend("paddle")
    import paddle

    ref = paddle_resnet45()
    ours = build(models.resnet45(), "paddle", seed=5, rng="xinit")
    ref_sd, our_sd = ref.state_dict(), ours.state_dict()
    assert list(our_sd) == list(ref_sd)
    assert {k: tuple(v.shape) for k, v in our_sd.items()} == {
        k: tuple(v.shape) for k, v in ref_sd.items()
    }
    for key in ("conv1.weight", "bn1._mean", "bn1._variance", "layer1.0.downsample.0.weight"):
        assert key in our_sd

    # Make the running statistics non-trivial so that loading them is really checked.
    rng = np.random.default_rng(2)
    for k, v in ref_sd.items():
        if k.endswith("._mean"):
            v.set_value(rng.standard_normal(v.shape).astype(np.float32) * 0.1)
        elif k.endswith("._variance"):
            v.set_value(rng.uniform(0.5, 1.5, v.shape).astype(np.float32))
    missing, unexpected = ours.set_state_dict(ref.state_dict())
    assert not missing and not unexpected
    x = rng.standard_normal((1, 3, 32, 64)).astype(np.float32)
    ref.eval()
    with paddle.no_grad():
        expected = ref(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(run(ours, x), expected, rtol=1e-4, atol=1e-5)

    fresh = built("resnet45", "paddle")
    missing, unexpected = ref.set_state_dict(fresh.state_dict())
    assert not missing and not unexpected
    with paddle.no_grad():
        exported = ref(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(exported, run(fresh, x), rtol=1e-4, atol=1e-5)


def test_flax_uses_child_names_with_flax_leaves():
    """Flax NNX paths are the spec's child paths with flax leaf names, kernels in HWIO."""
    require_backend("flax")
    state = native_state("flax", built("resnet18", "flax"))
    assert state["conv1.kernel"] == (7, 7, 3, 64)
    assert state["layer2.0.downsample.0.kernel"] == (1, 1, 64, 128)
    for leaf, shape in (("scale", (128,)), ("bias", (128,)), ("mean", (128,)), ("var", (128,))):
        assert state[f"layer2.0.downsample.1.{leaf}"] == shape
    assert state["fc.kernel"] == (512, 1000) and state["fc.bias"] == (1000,)
    assert not any(k.endswith(("weight", "running_mean", "running_var")) for k in state)
    assert not any("num_batches_tracked" in k for k in state)


@pytest.mark.parametrize("backend", FRAMEWORKS)
def test_one_channel_resnet18_512(backend):
    """``resnet18(in_channels=1, num_classes=512)``: the one-channel ResNet18_2D variant."""
    ad = adapter(backend)
    spec = models.resnet18(in_channels=1, num_classes=512)
    module = build(spec, backend, rng="xinit")
    w = ad.to_neutral(ad.to_numpy(native_value(ad, module, "conv1.weight")), "conv")
    assert w.shape == (64, 1, 7, 7)
    fc = ad.to_neutral(ad.to_numpy(native_value(ad, module, "fc.weight")), "linear")
    assert fc.shape == (512, 512)
    x = np.random.default_rng(0).standard_normal((2, 1, 64, 64)).astype(np.float32)
    y = run(module, x)
    assert y.shape == (2, 512) and np.isfinite(y).all()


# ---- per-layer shapes in the real frameworks, and cross-backend parity -----------------------
def expected_shapes(spec, input_shape) -> dict[str, tuple[int, ...]]:
    """Path -> output shape by neutral inference; a shared module reports its last call."""
    return {row.path: row.output_shape for row in infer(spec, input_shape)}


def rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


@pytest.mark.parametrize("name", BUILT)
def test_traced_shapes_and_parity(name):
    """At two input sizes, every submodule's output shape seen in torch, paddle and flax equals
    the neutral inference, and (same weights via rng="xinit") the three agree layer by layer.

    Flax compiles every op anew for each input shape, so at the second size its shapes come
    from JAX's abstract evaluation of the same module (``trace_shapes``), its values from the
    first size only; torch and paddle are traced at both.
    """
    spec = models.get(name)
    for i, size in enumerate(SIZES[name]):
        expected = expected_shapes(spec, size)
        x = np.random.default_rng(sum(size)).standard_normal(size).astype(np.float32)
        traced = FRAMEWORKS if i == 0 else ("torch", "paddle")
        traces = {b: adapter(b).trace(built(name, b), x) for b in traced}
        shapes = {b: {p: tuple(v.shape) for p, v in t.items()} for b, t in traces.items()}
        for b in set(FRAMEWORKS) - set(traced):
            shapes[b] = adapter(b).trace_shapes(built(name, b), x)
        for backend, seen in shapes.items():
            assert set(expected) <= set(seen), (backend, sorted(set(expected) - set(seen))[:5])
            wrong = {p: (seen[p], s) for p, s in expected.items() if seen[p] != s}
            assert not wrong, f"{backend} {name} {size}: (observed, inferred) {wrong}"
        for backend in set(traced) - {"torch"}:
            diffs = {p: rel_diff(traces[backend][p], traces["torch"][p]) for p in expected}
            worst = max(diffs, key=diffs.get)
            assert diffs[worst] <= PARITY_RTOL, (backend, name, size, worst, diffs[worst])


def test_resnet45_output_shape():
    """PaddleOCR's ResNet45: 1x3x32x128 -> 1x512x8x32 (inference and every framework)."""
    assert infer(models.resnet45(), (1, 3, 32, 128))[-1].output_shape == (1, 512, 8, 32)
    x = np.zeros((1, 3, 32, 128), np.float32)
    for backend in installed():
        assert run(built("resnet45", backend), x).shape == (1, 512, 8, 32)


# ---- summary ---------------------------------------------------------------------------------
def test_lenet_summary_hand_arithmetic():
    s = summary(models.lenet(), (1, 3, 32, 32))
    first = s.rows[0]
    assert (first.path, first.kind, first.output_shape, first.params) == (
        "conv1",
        "conv",
        (1, 6, 28, 28),
        3 * 6 * 5 * 5 + 6,
    )
    rows = {r.path: r for r in s.rows if r.params}
    assert rows["conv2"].params == 6 * 16 * 25 + 16
    assert rows["conv2"].output_shape == (1, 16, 10, 10)
    assert rows["fc1"].params == 400 * 120 + 120
    assert s.output_shape == (1, 10)
    assert s.total_params == sum(r.params for r in s.rows) == 62006


@pytest.mark.parametrize("name", ["lenet", "resnet18", "resnet45"])
def test_summary_totals_equal_torch_count(name):
    require_backend("torch")
    module = built(name, "torch")
    s = summary(models.get(name), models.default_input(name))
    assert s.trainable_params == sum(p.numel() for p in module.parameters())
    assert s.buffers == sum(b.numel() for b in module.buffers())
    assert s.total_params == sum(r.params for r in s.rows)
    assert s.output_shape == tuple(run(module, np.zeros(s.input_shape, np.float32)).shape)


def test_cli_summary_lenet(capsys):
    from xinit.cli import main

    assert main(["summary", "lenet", "--input", "1,3,32,32"]) == 0
    out = capsys.readouterr().out
    assert "conv1" in out and "1x6x28x28" in out and "456" in out
    assert "62,006" in out  # the caption's total


def test_cli_summary_json(capsys):
    import json

    from xinit.cli import main

    assert main(["summary", "resnet45", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rows"][0] == {
        "path": "conv1",
        "kind": "conv",
        "output_shape": [1, 32, 32, 128],
        "params": 3 * 32 * 9,
        "initializer": data["rows"][0]["initializer"],
    }
    assert data["rows"][-1]["output_shape"] == [1, 512, 8, 32]
    assert data["trainable_params"] == num_params(models.resnet45(), trainable_only=True)


def test_public_functions_stay_functions():
    """``xinit.build``/``run``/``summary`` are the functions even after their modules load."""
    import importlib

    import xinit

    for mod in ("xinit._build", "xinit._summary", "xinit._apply"):
        importlib.import_module(mod)
    assert callable(xinit.build) and callable(xinit.run) and callable(xinit.summary)
    assert xinit.summary(models.lenet(), (1, 3, 32, 32)).total_params == 62006
    module = xinit.build(models.lenet(), "torch")
    assert xinit.run(module, np.zeros((2, 3, 32, 32), np.float32)).shape == (2, 10)


def test_example_one_spec_three_frameworks(capsys):
    """The README's example runs (on LeNet here, to keep it quick) and reports agreement."""
    import importlib.util
    import re
    from pathlib import Path

    for backend in FRAMEWORKS:
        require_backend(backend)
    path = Path(__file__).resolve().parents[2] / "examples" / "one_spec_three_frameworks.py"
    loader = importlib.util.spec_from_file_location("one_spec_three_frameworks", path)
    example = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(example)
    assert example.main(["lenet"]) == 0
    out = capsys.readouterr().out
    assert "62,006" in out and "differs" not in out
    diffs = re.search(r"from torch: paddle (\S+), flax (\S+)", out)
    assert diffs and max(float(diffs[1]), float(diffs[2])) < 1e-4


@pytest.mark.parametrize("shape", [(2, 5), (2, 3, 4), (3,)], ids=["NL", "NAB", "N"])
def test_embedding_output_layout_agrees(shape):
    """Embedding (N, ...) -> (N, ..., D) in every backend (Flax is NHWC inside, not here),
    also when a Conv1d then reads its output as (N, C=L, D)."""
    require_backend("torch")  # the reference
    tokens = np.random.default_rng(0).integers(0, 10, shape)
    specs = [Sequential(Embedding(10, 4))]
    if len(shape) == 2:
        specs.append(Sequential(Embedding(10, 4), Conv(shape[1], 3, 2, dims=1)))
    for spec in specs:
        want = infer(spec, shape)[-1].output_shape
        outs = {b: run(build(spec, b, rng="xinit"), tokens) for b in installed()}
        for backend, out in outs.items():
            assert out.shape == want, backend
            np.testing.assert_allclose(out, outs["torch"], rtol=1e-5, atol=1e-6)
