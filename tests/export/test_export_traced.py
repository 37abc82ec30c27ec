"""The code export of traced specs: a torchvision model traced with ``xinit.trace`` and saved
with ``xinit.save_spec`` is written by ``xinit export-code --model spec.json``; the file runs
in a Python where xinit cannot be imported, loads the state of ``xinit.build(spec,
rng="xinit")`` with every key used, and gives the build's outputs bit for bit (CPU)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import real_models as real
from export_code_helpers import (
    SCRIPTS,
    Case,
    ruff_problems,
    run_isolated,
    save_state,
    threads,
    write_cases,
)
from helpers import require_backend
from stats_helpers import assert_ks_one

import xinit
from xinit.cli import main
from xinit.plan import init_plan

torch = pytest.importorskip("torch")
F = torch.nn.functional

# torchvision models (random init) -> input side: tests/trace/test_trace_torch.py's models
# whose traced specs hold the op kinds a tracer adds (hardsigmoid, stochastic_depth, a learned
# tensor, layernorm2d, permute, attention, ...).
TRACED = {"resnet18": 32, "mobilenet_v3_small": 32, "convnext": 32, "vit": 32, "glue": 8}
TRACED |= {"swin": 32, "swin_v2": 32}  # small Swins: shifted, padded and unshifted windows
SLOW = {"efficientnet_b0": 32}  # 5M parameters: traced, built and run in the slow run
FRAMEWORKS = ("torch", "paddle")


def _torchvision(name: str):
    models = real.vision("torchvision").models
    torch.manual_seed(0)
    if name == "vit":
        return models.VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10)
    if name == "convnext":
        return real.torchvision_small("convnext_small")
    if name.startswith("swin"):
        return _small_swin(name == "swin_v2")
    return getattr(models, name)()


def _small_swin(v2: bool):
    """torchvision's SwinTransformer at the trace tests' size: patch 4, embed 24, depths
    [2, 2], heads [2, 4], window 4 (an 8x8 then a 4x4 map: shifted, then unshifted windows);
    v2 with its v2 block and patch merging."""
    swin = real.vision("torchvision").models.swin_transformer
    blocks = {"block": swin.SwinTransformerBlockV2, "downsample_layer": swin.PatchMergingV2}
    return swin.SwinTransformer(
        [4, 4], 24, [2, 2], [2, 4], [4, 4], num_classes=10, **(blocks if v2 else {})
    )


class _Glue(torch.nn.Module):
    """Functional glue a tracer turns into op kinds: a learned scale used by hand, scalar
    and broadcasting arithmetic, a reduction, chunks, a channel shuffle, padding, slices,
    matmul and softmax (as the trace tests' glue model)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.scale = torch.nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.fc = torch.nn.Linear(5, 3)

    def forward(self, x):
        y = self.scale * self.conv(x)
        y = y * torch.sigmoid(y.mean((2, 3), keepdim=True)) - 0.5 * y
        y = 1.0 - y / 4
        a, b = y.chunk(2, dim=1)
        y = F.channel_shuffle(torch.cat([F.relu6(a), b], 1), 2)
        y = F.pad(y, (1, 1, 1, 1)).amax(-1)  # (N, 8, H + 2)
        t = y[:, 1:, ::2]  # (N, 7, 5)
        attn = torch.softmax(t @ t.transpose(-1, -2), dim=-1)
        return self.fc(attn @ t)


def _model(name: str):
    return _Glue() if name == "glue" else _torchvision(name)


def _save(names: dict, folder) -> dict:
    """Each model traced at batch 1 and saved with ``xinit.save_spec``: name -> path."""
    paths = {}
    for name, size in names.items():
        x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, size, size)))
        torch.manual_seed(0)
        spec = xinit.trace(_model(name).eval(), x.float())
        paths[name] = xinit.save_spec(spec, folder / f"{name}.json")
    return paths


@pytest.fixture(scope="module")
def saved_specs(tmp_path_factory) -> dict:
    """The fast models traced once, saved with ``xinit.save_spec``: name -> path."""
    return _save(TRACED, tmp_path_factory.mktemp("traced_specs"))


def export_and_run(framework: str, saved: dict, sizes: dict, tmp_path) -> None:
    """``xinit export-code`` on each saved spec; the files run without xinit on the state of
    ``xinit.build(spec, rng="xinit")`` (every key used) and give its outputs bit for bit."""
    require_backend(framework)
    cases, expected = [], {}
    for name, path in saved.items():
        out = tmp_path / f"{name}.py"
        args = ["export-code", "--model", str(path), "--framework", framework, "-o", str(out)]
        assert main([*args, "--class-name", "Model"]) == 0
        spec = xinit.load_spec(path)
        module = xinit.build(spec, framework, rng="xinit")
        save_state(module, framework, tmp_path / f"{name}.state")
        size = sizes[name]
        x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
        np.save(tmp_path / f"{name}_x.npy", x)
        expected[name] = xinit.run(module, x)
        cases.append(Case(name, name, x.shape))
    write_cases(tmp_path, cases)
    run_isolated(tmp_path, SCRIPTS[framework].replace("THREADS", str(threads(framework))))
    for name, want in expected.items():
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_out.npy"), want, err_msg=name)
    assert ruff_problems(tmp_path, [f"{name}.py" for name in saved]) == ""


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_saved_traced_spec_exports_and_runs_as_the_build(framework, saved_specs, tmp_path):
    export_and_run(framework, saved_specs, TRACED, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_efficientnet_exports_and_runs_as_the_build(framework, tmp_path):
    export_and_run(framework, _save(SLOW, tmp_path), SLOW, tmp_path)


def test_a_saved_spec_takes_no_factory_arguments(saved_specs, capsys):
    path = str(saved_specs["resnet18"])
    assert main(["export-code", "--model", path, "--model-args", "num_classes=10"]) == 2
    assert "saved spec" in capsys.readouterr().err


def _file_model(path, text: str):
    """The model of the exported file ``text`` (written at ``path`` and imported), in eval."""
    path.write_text(text)
    loader = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    model = module.Model()
    model.eval()
    return model


def _image(batch: int, size: int) -> np.ndarray:
    return np.random.default_rng(batch).standard_normal((batch, 3, size, size)).astype(np.float32)


def _trace_file(path, text: str, size: int):
    """Import the exported torch file ``text`` (written at ``path``) and trace its model."""
    return xinit.trace(_file_model(path, text), torch.from_numpy(_image(1, size)))


# Every fast traced model: ConvNeXt's file writes its permute steps and stochastic depth as
# torchvision's Permute and StochasticDepth (classes of the file, which the tracer reads as
# their kinds once it has checked that they compute them); the glue model's ``chunk`` and
# ``transpose`` nodes are written as those calls again.
ROUND_TRIP = tuple(TRACED)


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_tracing_the_exported_torch_file_gives_back_the_exported_spec(name, saved_specs, tmp_path):
    """The round trip: a traced spec (a Graph wherever the model adds by hand, no
    initializers) exported to torch and traced again equals it exactly."""
    spec = xinit.load_spec(saved_specs[name])
    text = xinit.export_code(spec, "torch", class_name="Model")
    assert _trace_file(tmp_path / f"{name}_rt.py", text, TRACED[name]) == spec


def paddle_round_trip(spec, name: str, size: int, folder) -> None:
    """``spec`` exported to Paddle, the file's model traced back with Paddle's tracer: the
    spec again; that spec built in Paddle with the file model's weights gives its outputs
    bit for bit (CPU, batch 2)."""
    import paddle

    text = xinit.export_code(spec, "paddle", class_name="Model")
    model = _file_model(folder / f"{name}_prt.py", text)
    back = xinit.trace(model, paddle.to_tensor(_image(1, size)))
    assert back == spec
    built = xinit.build(back, "paddle")
    xinit.transfer(model, built)
    built.eval()
    x = paddle.to_tensor(_image(2, size))
    np.testing.assert_array_equal(built(x).numpy(), model(x).numpy(), err_msg=name)


# Paddle's tracer reads what the Paddle file writes as the torch tracer's kinds and names: the
# ViT's ``class_token.expand`` + concat and ``x + pos_embedding`` (LearnedParameter), the
# file's LayerNorm2d, Permute, StochasticDepth and Swin attention classes (by name, checked by
# computing), ChannelShuffle, Paddle's Hardsigmoid() (slope 0.1666667) as the kind's default,
# the torch-order pads, and ``x.permute`` (a two-dim swap torch called permute).
@pytest.mark.parametrize("name", ROUND_TRIP)
def test_tracing_the_exported_paddle_file_gives_back_the_exported_spec(name, saved_specs, tmp_path):
    require_backend("paddle")
    paddle_round_trip(xinit.load_spec(saved_specs[name]), name, TRACED[name], tmp_path)


@pytest.mark.slow
def test_efficientnet_round_trips_through_the_paddle_file(tmp_path):
    require_backend("paddle")
    ((name, path),) = _save(SLOW, tmp_path).items()
    paddle_round_trip(xinit.load_spec(path), name, SLOW[name], tmp_path)


def test_the_round_trip_catches_a_changed_layer(saved_specs, tmp_path):
    """A planted fault: MobileNetV3's file with its Hardswish layers made ReLU."""
    spec = xinit.load_spec(saved_specs["mobilenet_v3_small"])
    text = xinit.export_code(spec, "torch", class_name="Model")
    assert "nn.Hardswish()" in text
    wrong = text.replace("nn.Hardswish()", "nn.ReLU()")
    assert _trace_file(tmp_path / "mobilenet_fault.py", wrong, 32) != spec


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_attention_projections_draw_the_packed_law(framework, saved_specs):
    """The traced ViT's attention: init_weights draws the packed q, k, v rows by the spec's
    law (in Paddle on each of its three projections), although the loop over the modules
    reaches the projections as Linears; out_proj's bias is zero. (A one-sample KS on the
    3·E·E values, redrawn under another seed before a rejection counts.)"""
    require_backend(framework)
    spec = xinit.load_spec(saved_specs["vit"])
    layer = "encoder.layers.encoder_layer_0.self_attention"
    (item,) = [i for i in init_plan(spec) if i.path == f"{layer}.in_proj_weight"]
    namespace: dict = {}
    text = xinit.export_code(spec, framework, class_name="Model")
    exec(compile(text, "vit.py", "exec"), namespace)  # noqa: S102 - the file just written

    def draw(seed: int):
        backend = importlib.import_module(framework)
        backend.manual_seed(seed) if framework == "torch" else backend.seed(seed)
        state = {
            k: np.asarray(v.detach() if framework == "torch" else v)
            for k, v in namespace["Model"]().state_dict().items()
        }
        keys = (
            [f"{layer}.in_proj_weight"]
            if framework == "torch"
            else [f"{layer}.{p}_proj.weight" for p in "qkv"]
        )
        assert not state[f"{layer}.out_proj.bias"].any()
        return np.concatenate([state[k].ravel() for k in keys]).astype(np.float64)

    assert_ks_one(draw(0), item.dist, f"{framework} {item.path}", redraw=lambda: draw(1))


class Permute(torch.nn.Module):
    """A model's own class like torchvision's Permute; ``flip`` plants a fault of the same
    shape: the last dim reversed after the permute."""

    def __init__(self, dims, flip: bool = False):
        super().__init__()
        self.dims, self.flip = dims, flip

    def forward(self, x):
        y = x.permute(*self.dims)
        return y.flip(-1) if self.flip else y


def test_a_look_alike_class_is_read_only_when_it_computes_its_kind():
    """A class named like torchvision's Permute, with ``dims``, is read as a Permute node;
    with a forward that computes otherwise the tracer's check names the layer instead."""
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 3, 4, 5)).astype(np.float32))
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), Permute([0, 2, 3, 1])).eval()
    assert xinit.trace(model, x).children[1][1] == xinit.layers.Permute((0, 2, 3, 1))
    model[1].flip = True
    with pytest.raises(xinit.TraceError, match=r"'1' .*computes other than its Permute"):
        xinit.trace(model, x)
