"""``xinit convert``: a native model's weights in the target's own file, its spec.json and the
parity report in --out; exit 1 on a parity FAIL, 2 (one line) on bad input."""

from __future__ import annotations

import json

import numpy as np
from helpers import require_backends

import xinit
from xinit.checkpoints import load_checkpoint
from xinit.cli import main
from xinit.factories import load

FACTORY = """
import torch
import xinit

def small(width=4):
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 5),
    )
    xinit.randomize_batchnorm(model, seed=1)
    return model
"""


def _spec(width: int = 4, eps: float = 1e-5):
    from xinit import layers as L

    return xinit.Sequential(
        L.Conv(3, width, 3, padding=1),
        L.BatchNorm(width, eps=eps),
        L.ReLU(),
        L.AdaptiveAvgPool(1),
        L.Flatten(),
        L.Linear(width, 5),
    )


def _setup(tmp_path, **spec_kw):
    factory = tmp_path / "small.py"
    factory.write_text(FACTORY)
    spec = xinit.save_spec(_spec(**spec_kw), tmp_path / "given.json")
    return f"{factory}:small", str(spec)


def test_convert_writes_paddle_weights_spec_and_report(tmp_path, capsys):
    require_backends("torch", "paddle")
    import paddle

    ref, spec = _setup(tmp_path, width=6)
    out = tmp_path / "out"
    argv = ["convert", "--model", ref, "--model-args", '{"width": 6}', "--from", "torch"]
    argv += ["--to", "paddle", "--spec", spec, "--input", "2,3,8,8", "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "PASS" in printed.out and f"wrote {out / 'model.pdparams'}" in printed.out
    assert "write torch -> paddle" in printed.err  # the progress bar, on stderr
    assert xinit.load_spec(out / "spec.json") == _spec(width=6)
    report = json.loads((out / "parity.json").read_text())
    assert report["ok"] and report["parity"]["ok"] and report["transfer"]["loaded"] == 8
    module = xinit.build(_spec(width=6), "paddle")
    module.set_state_dict(paddle.load(str(out / "model.pdparams")))  # Paddle's own loader
    source = xinit.state_dict(load(ref, {"width": 6}))
    for key, value in xinit.state_dict(module).items():
        assert value.tobytes() == source[key].tobytes(), key


def test_convert_exits_1_on_a_parity_fail_and_still_writes(tmp_path, capsys):
    require_backends("torch", "paddle")
    ref, spec = _setup(tmp_path, eps=1e-1)  # planted: the target's BatchNorm eps
    out = tmp_path / "out"
    argv = ["convert", "--model", ref, "--to", "paddle", "--spec", spec, "--input", "1,3,8,8"]
    assert main([*argv, "--out", str(out), "--format", "json"]) == 1
    printed = json.loads(capsys.readouterr().out)  # stdout is the report alone
    assert printed == json.loads((out / "parity.json").read_text())
    assert not printed["ok"] and not printed["parity"]["ok"]
    assert main([*argv, "--out", str(out)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_convert_to_flax_writes_msgpack(tmp_path):
    require_backends("torch", "flax")
    ref, spec = _setup(tmp_path)
    out = tmp_path / "out"
    argv = ["convert", "--model", ref, "--to", "flax", "--spec", spec, "--input", "1,3,8,8"]
    assert main([*argv, "--out", str(out), "--no-parity"]) == 0
    weights = load_checkpoint(out / "model.msgpack")
    kernel = np.asarray(weights["0.kernel"])
    assert kernel.shape == (3, 3, 3, 4)  # HWIO
    assert json.loads((out / "parity.json").read_text())["parity"] is None


def test_convert_bad_input_is_one_line(tmp_path, capsys):
    require_backends("torch", "paddle")
    ref, spec = _setup(tmp_path)
    out = str(tmp_path / "out")
    cases = [
        (["--model", ref, "--from", "paddle", "--to", "torch"], "is a torch model; --from says"),
        (["--model", "resnet18", "--to", "paddle"], "is an xinit spec"),
        (["--model", ref, "--to", "paddle", "--model-args", "{bad"], "not a JSON object"),
        (["--model", ref, "--to", "paddle", "--input", "0,3,8,8"], "at least 1"),
        (["--model", ref, "--to", "paddle", "--out", str(tmp_path / "a" / "b")], "--parents"),
    ]
    for args, message in cases:
        argv = ["convert", *args] + ([] if "--out" in args else ["--out", out])
        assert main([*argv, "--spec", spec]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_convert_traces_a_torchvision_model(tmp_path, capsys):
    """No --spec: the model is traced; the spec.json written builds the same model again."""
    require_backends("torch", "paddle")
    factory = tmp_path / "tv.py"
    factory.write_text(
        "import sys, types\n"
        "sys.modules.setdefault('torchvision._meta_registrations', types.ModuleType('stub'))\n"
        "import torchvision, xinit\n"
        "def resnet18(num_classes=1000):\n"
        "    model = torchvision.models.resnet18(num_classes=num_classes)\n"
        "    xinit.randomize_batchnorm(model, seed=2)\n"
        "    return model\n"
    )
    out = tmp_path / "out"
    argv = ["convert", "--model", f"{factory}:resnet18", "--model-args", "num_classes=10"]
    argv += ["--from", "torch", "--to", "paddle", "--input", "1,3,32,32", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    assert "PASS" in capsys.readouterr().out
    spec = xinit.load_spec(out / "spec.json")
    assert "layer4.1.bn2.running_var" in xinit.blocks.param_specs(spec)


def test_convert_loads_checkpoint_into_the_model_first(tmp_path):
    """--checkpoint: the source model's own file (torch.save) is loaded before the trace, so
    the converted weights are the file's, not the factory's."""
    require_backends("torch", "paddle")
    import torch

    ref, spec = _setup(tmp_path)
    model = load(ref)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    torch.save(model.state_dict(), tmp_path / "trained.pt")
    out = tmp_path / "out"
    argv = ["convert", "--model", ref, "--to", "paddle", "--spec", spec, "--input", "1,3,8,8"]
    assert main([*argv, "--checkpoint", str(tmp_path / "trained.pt"), "--out", str(out)]) == 0
    written = load_checkpoint(out / "model.pdparams")
    weight = model[0].weight.detach().numpy()
    assert np.asarray(written["0.weight"]).tobytes() == weight.tobytes()
    assert not np.array_equal(weight, load(ref)[0].weight.detach().numpy())  # not the factory's
