"""Models xinit did not build: paddle.vision's ResNet, hand-written torch and Flax ResNets,
PaddleOCR's ResNet45 and a hand-written torch port of it. State, transfer, port, parity and
framework defaults work on them in every direction, read layer by layer through the
lowerings (names and layouts from the layer kinds, never from shapes)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import reference_models as ref
from helpers import require_backend, require_backends
from stats_helpers import assert_ks_one, assert_same_law

import xinit
from xinit import layers as L
from xinit.defaults import default_init
from xinit.namemap import NameMapError

FRAMEWORKS = ("torch", "paddle", "flax")
X = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)


def resnet18(fw: str):
    """The same ResNet-18 written three times, by three framework users."""
    if fw == "torch":
        return ref.torch_resnet18()
    if fw == "paddle":
        import paddle

        return paddle.vision.models.resnet18()
    return ref.flax_resnet18()


def name_map(src: str, dst: str):
    """Flax's nnx.Sequential stages read ``layer1.layers.0``; the others ``layer1.0``."""
    if src == "flax" and dst != "flax":
        return ref.FLAX_TO_TORCHVISION
    if dst == "flax" and src != "flax":
        return ref.TORCHVISION_TO_FLAX
    return None


def randomised(model) -> dict[str, np.ndarray]:
    """Load random values into every float entry (running variances positive): a transfer
    that dropped, transposed or swapped anything would show."""
    rng = np.random.default_rng(7)
    state = {}
    for key, value in xinit.state_dict(model).items():
        if value.dtype.kind != "f":
            state[key] = value
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 2.0, value.shape).astype(value.dtype)
        else:
            state[key] = (rng.standard_normal(value.shape) * 0.1).astype(value.dtype)
    xinit.load_state_dict(model, state)
    return state


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(FRAMEWORKS, 2)))
def test_transfer_and_parity_between_native_resnets(src, dst):
    require_backends(src, dst)
    a, b = resnet18(src), resnet18(dst)
    state = randomised(a)
    report = xinit.transfer(a, b, name_map=name_map(src, dst))
    moved = xinit.state_dict(b)
    back = {(xinit.namemap.NameMap(name_map(dst, src))(k)): v for k, v in moved.items()}
    for key, value in state.items():
        if key.endswith("num_batches_tracked") and key not in back:
            continue  # Paddle and Flax keep no step counter (xinit.state's rule)
        np.testing.assert_array_equal(back[key], value, err_msg=key)
    assert sorted(report.loaded) == sorted(
        k for k in moved if not (k.endswith("num_batches_tracked") and src != "torch")
    )
    parity = xinit.parity({src: a, dst: b}, X, name_map=name_map(src, dst))  # as transfer
    assert parity.ok, parity.summary()
    compared = {row.path for row in parity.rows}
    layers = {path for path, _, _ in xinit.native.read_layers(a)}
    assert layers <= compared  # every conv, BatchNorm and the fc layer was compared


def test_paddleocr_resnet45_ports_to_a_hand_written_torch_model():
    require_backends("paddle", "torch")
    paddle_model, torch_model = ref.paddle_resnet45(), ref.torch_resnet45()
    randomised(paddle_model)
    report = xinit.transfer(paddle_model, torch_model)
    assert report.kept == [k for k in xinit.state_dict(torch_model) if "num_batches" in k]
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 64)).astype(np.float32)
    parity = xinit.parity({"paddle": paddle_model, "torch": torch_model}, x)
    assert parity.ok, parity.summary()
    assert parity.rows[-1].shape == (1, 512, 8, 16)


def test_port_of_a_checkpoint_to_a_native_model_needs_no_spec(tmp_path):
    require_backends("paddle", "torch")
    paddle_model = ref.paddle_resnet45()
    randomised(paddle_model)
    import paddle

    path = tmp_path / "rec.pdparams"
    paddle.save(paddle_model.state_dict(), str(path))
    torch_model = ref.torch_resnet45()
    ported = xinit.port(path, torch_model, dst="torch")
    result = torch_model.load_state_dict(
        {k: __import__("torch").from_numpy(v) for k, v in ported.items()}, strict=True
    )
    assert not result.missing_keys and not result.unexpected_keys
    parity = xinit.parity({"paddle": paddle_model, "torch": torch_model}, X[:1, :, :, :64])
    assert parity.ok, parity.summary()


def test_a_square_weight_is_transposed_by_kind_never_by_shape():
    """A 16x16 Linear looks the same either way round: only the kind says Paddle's is
    (in, out). The outputs agree only if the transfer transposed it."""
    require_backends("torch", "paddle")
    import paddle
    import torch

    t = torch.nn.Sequential(torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 16))
    p = paddle.nn.Sequential(paddle.nn.Linear(16, 16), paddle.nn.ReLU(), paddle.nn.Linear(16, 16))
    xinit.transfer(t, p)
    x = np.random.default_rng(2).standard_normal((4, 16)).astype(np.float32)
    want = t(torch.from_numpy(x)).detach().numpy()
    got = p(paddle.to_tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(p[0].weight.numpy(), t[0].weight.detach().numpy().T)


@pytest.mark.parametrize(
    ("framework", "target"), [("paddle", "torch"), ("torch", "paddle"), ("flax", "torch")]
)
def test_a_frameworks_defaults_on_another_frameworks_native_model(framework, target):
    """``Default(framework)`` gets the owning layer's dims from the native layer, so a
    PyTorch model can get Paddle's init (and so on), with that framework's statistics."""
    require_backend(target)
    conv, linear = L.Conv(64, 128, 3), L.Linear(256, 96)
    if target == "torch":
        import torch

        model = torch.nn.ModuleDict(
            {"conv": torch.nn.Conv2d(64, 128, 3), "fc": torch.nn.Linear(256, 96)}
        )
    else:
        import paddle

        model = paddle.nn.LayerDict(
            {"conv": paddle.nn.Conv2D(64, 128, 3), "fc": paddle.nn.Linear(256, 96)}
        )
    policy = xinit.Policy(xinit.Rule(xinit.init.Default(framework), param="*"))
    report = xinit.apply(policy, model, seed=3)
    assert report.counts()["initialized"] == 4
    values = xinit.native.neutral_values(model)
    for path, layer in (("conv", conv), ("fc", linear)):
        for leaf in ("weight", "bias"):
            dist = default_init(framework, layer.kind, leaf, layer)
            x = values[f"{path}.{leaf}"].ravel().astype(np.float64)
            what = f"{framework} default on {target} {path}.{leaf}"
            if dist.std == 0:
                np.testing.assert_array_equal(x, np.full_like(x, dist.mean))
            elif x.size >= 10_000:  # weights: mean, std (power to see 3%) and KS
                assert_same_law(x, dist, what)
            else:  # biases (96 or 128 values): the law by KS, the bound by the extremes
                assert_ks_one(x, dist, what)
                bound = getattr(dist, "high", None)
                if bound is not None:  # U(+-1/sqrt(fan_in)): fills its support, not beyond
                    assert np.abs(x).max() <= bound and np.abs(x).max() > 0.9 * bound, what


def gated(fw: str, seed: int):
    """A Linear then a class no lowering reads, holding a learned ``alpha``, a persistent
    buffer ``steps`` (int64) and a transient one (not state: torch ``persistent=False``,
    Paddle ``persistable=False``, a Flax ``nnx.Cache``)."""
    values = np.random.default_rng(seed).standard_normal(3).astype(np.float32)
    if fw == "torch":
        import torch

        class Gate(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.alpha = torch.nn.Parameter(torch.from_numpy(values))
                self.register_buffer("steps", torch.tensor([seed, 2]))
                self.register_buffer("mask", torch.ones(3), persistent=False)

        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(2, 3), Gate())
    if fw == "paddle":
        import paddle

        class Gate(paddle.nn.Layer):
            def __init__(self):
                super().__init__()
                self.alpha = self.create_parameter([3])
                self.alpha.set_value(values)
                self.register_buffer("steps", paddle.to_tensor([seed, 2], dtype="int64"))
                self.register_buffer("mask", paddle.ones([3]), persistable=False)

        paddle.seed(seed)
        return paddle.nn.Sequential(paddle.nn.Linear(2, 3), Gate())
    import jax.numpy as jnp
    from flax import nnx

    class Gate(nnx.Module):
        def __init__(self):
            self.alpha = nnx.Param(jnp.asarray(values))
            self.steps = nnx.BatchStat(jnp.asarray([seed, 2], jnp.int32))
            self.mask = nnx.Cache(jnp.ones(3))

    return nnx.Sequential(nnx.Linear(2, 3, rngs=nnx.Rngs(seed)), Gate())


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_class_no_lowering_reads_gives_its_own_tensors(fw):
    """Its parameter and persistent buffer are state, by name and as stored, and transfer
    bit-exactly; the transient buffer is not state. ``Default(fw)`` leaves ``alpha`` as is and
    the report says why; the buffer is never initialised."""
    require_backend(fw)
    src, dst = gated(fw, 1), gated(fw, 2)
    gate = "1" if fw != "flax" else "layers.1"
    state = xinit.state_dict(src)
    assert set(state) >= {f"{gate}.alpha", f"{gate}.steps"}
    assert f"{gate}.mask" not in state
    assert state[f"{gate}.steps"].tolist() == [1, 2]
    xinit.transfer(src, dst)
    after = xinit.state_dict(dst)
    assert after.keys() == state.keys()
    for k, v in state.items():
        np.testing.assert_array_equal(after[k], v, err_msg=k)
        assert after[k].dtype == v.dtype, k
    report = xinit.apply(xinit.Policy(xinit.Rule(xinit.init.Default(fw), param="*")), dst)
    assert report.left.keys() == {f"{gate}.alpha"}
    assert "Gate" in report.left[f"{gate}.alpha"]
    assert {e.path for e in report if e.status == "initialized"} == {
        k for k in state if k.startswith(("0.", "layers.0."))
    }
    np.testing.assert_array_equal(xinit.state_dict(dst)[f"{gate}.alpha"], state[f"{gate}.alpha"])
    assert "no framework default" in str(report)


def test_name_maps_are_strict():
    require_backends("torch", "flax")
    a, b = ref.torch_resnet18(), ref.flax_resnet18()
    before = xinit.state_dict(b)
    with pytest.raises(xinit.StateError, match="name_map") as err:
        xinit.transfer(a, b)  # the trees differ: every stage entry is listed
    assert "layer1.0.conv1.weight" in err.value.unexpected
    with pytest.raises(NameMapError, match="both"):
        xinit.transfer(a, b, name_map=lambda path: "same")
    with pytest.raises(xinit.StateError, match="drops"):
        xinit.transfer(a, b, name_map={"fc.": None, "": ""})
    partial = [(r"^(layer\d)\.", r"\1.layers.")]  # forgets the downsample Sequential
    with pytest.raises(xinit.StateError) as err:
        xinit.transfer(a, b, name_map=partial)
    assert "layer2.layers.0.downsample.layers.0.weight" in err.value.missing
    after = xinit.state_dict(b)
    for key, value in before.items():  # nothing was loaded half-way
        np.testing.assert_array_equal(after[key], value, err_msg=key)


def test_a_name_map_file(tmp_path):
    require_backends("torch", "flax")
    path = tmp_path / "map.json"
    rules = [[r"^(layer\d)\.", r"\1.layers."], [r"downsample\.", "downsample.layers."]]
    path.write_text(__import__("json").dumps({"regex": rules}))
    a, b = ref.torch_resnet18(), ref.flax_resnet18()
    report = xinit.transfer(a, b, name_map=str(path))
    assert report.renamed["layer1.layers.0.conv1.weight"] == "layer1.0.conv1.weight"


def test_an_uncalled_preset_says_to_call_it():
    torch = require_backend("torch") and __import__("torch")
    with pytest.raises(TypeError, match=r"call it, presets.torchvision_resnet\(\)"):
        xinit.apply(xinit.presets.torchvision_resnet, torch.nn.Linear(2, 2))


def test_cli_parity_of_two_native_models(tmp_path, capsys):
    require_backends("torch", "flax")
    from xinit.cli import main

    path = tmp_path / "map.json"
    path.write_text(__import__("json").dumps({"regex": ref.TORCHVISION_TO_FLAX}))
    rc = main(
        [
            "parity",
            "reference_models:torch_resnet18",
            "reference_models:flax_resnet18",
            "--model-args",
            "num_classes=10",
            "--name-map",
            str(path),
            "--input",
            "1,3,32,32",
            "--format",
            "md",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "PASS: every layer agrees" in out and "layer4.1.conv2" in out


def test_cli_port_into_a_hand_written_model_with_its_parity(tmp_path, capsys):
    require_backends("paddle", "torch")
    import paddle
    import torch

    from xinit.cli import main

    source = ref.paddle_resnet45()
    randomised(source)
    ckpt, out = tmp_path / "rec.pdparams", tmp_path / "rec.pt"
    paddle.save(source.state_dict(), str(ckpt))
    rc = main(
        [
            "port",
            str(ckpt),
            str(out),
            "--to",
            "torch",
            "--model",
            "reference_models:torch_resnet45",
            "--source-model",
            "reference_models:paddle_resnet45",
            "--input",
            "1,3,32,64",
            "--format",
            "md",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0 and "PASS" in text, text
    model = ref.torch_resnet45()
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    ported = model.state_dict()["layer5.2.conv2.weight"].numpy()
    np.testing.assert_array_equal(ported, source.state_dict()["layer5.2.conv2.weight"].numpy())


def test_example_port_native_model(capsys):
    """The example: paddle.vision's resnet50 into a hand-written torch model, no spec."""
    require_backends("paddle", "torch")
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "port_native_model.py"
    spec = importlib.util.spec_from_file_location("port_native_model", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main(input_shape=(1, 3, 32, 32), rows=6)
    out = capsys.readouterr().out
    assert "All keys matched successfully" in out and "PASS: every layer agrees" in out


def _two_head_models():
    """A hand-written Flax and torch model whose forward returns a tuple of two heads."""
    import torch
    from flax import nnx

    class FlaxHeads(nnx.Module):
        def __init__(self, rngs):
            self.fc = nnx.Linear(8, 4, rngs=rngs)
            self.aux = nnx.Linear(8, 2, rngs=rngs)

        def __call__(self, x):
            return self.fc(x), self.aux(x)

    class TorchHeads(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 4)
            self.aux = torch.nn.Linear(8, 2)

        def forward(self, x):
            return self.fc(x), self.aux(x)

    return FlaxHeads(nnx.Rngs(0)), TorchHeads()


def test_parity_of_native_models_that_return_a_tuple():
    """A native Flax model with several outputs is compared as torch and Paddle's are: each
    head as its layer, the root by its first output. A planted fault in the second head fails."""
    require_backends("torch", "flax")
    import torch

    flax_model, torch_model = _two_head_models()
    xinit.transfer(flax_model, torch_model)
    x = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
    report = xinit.parity([flax_model, torch_model], x)
    assert report.ok, report
    assert {"", "fc", "aux"} <= {row.path for row in report.rows}
    with torch.no_grad():
        torch_model.aux.weight[0, 0] += 1e-3
    bad = xinit.parity([flax_model, torch_model], x)
    assert not bad.ok
    assert [row.path for row in bad.rows if not row.passed] == ["aux"]
