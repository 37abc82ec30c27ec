"""``xinit port`` and ``xinit parity`` with the float32-rounding verdict: a correct port of
ResNet45 with calibrated BatchNorm statistics exits 0, explicit --rtol/--atol override it in
both verbs, --source-model compares the real source model, too small an --input is one
line naming the layer, and --plot draws the per-layer differences against depth."""

from __future__ import annotations

import json

import numpy as np
import parity_cases as pc
import reference_models as ref
from helpers import require_backends

import xinit
from xinit.cli import main


def calibrated_checkpoint(tmp_path, model=None):
    """A .pdparams of PaddleOCR's ResNet45 whose BatchNorm statistics a training pass set."""
    import paddle

    model = model if model is not None else xinit.build(xinit.models.resnet45(), "paddle")
    xinit.randomize_batchnorm(model, seed=1)
    xinit.calibrate_batchnorm(model, pc.images((2, 3, 32, 64), 100))
    path = tmp_path / "rec.pdparams"
    paddle.save(model.state_dict(), str(path))
    return path


def test_port_of_a_calibrated_resnet45_passes(tmp_path, capsys):
    require_backends("paddle", "torch")
    ckpt, out = calibrated_checkpoint(tmp_path), tmp_path / "rec.pt"
    args = ["port", str(ckpt), str(out), "--model", "resnet45", "--to", "torch"]
    args += ["--input", "1,3,32,64", "--format", "json"]
    rc = main(args)
    text = capsys.readouterr().out
    report = json.loads(text[: text.rindex("}") + 1])
    assert rc == 0 and report["ok"], report["first_divergent"]
    assert report["threshold"] == 4.0 and report["worst"]["paddle (in) vs torch (out)"] > 0


def test_port_with_a_source_model_compares_the_real_one(tmp_path, capsys):
    require_backends("paddle", "torch")
    source = ref.paddle_resnet45()
    ckpt, out = calibrated_checkpoint(tmp_path, source), tmp_path / "rec.pt"
    rc = main(
        [
            "port",
            str(ckpt),
            str(out),
            "--model",
            "resnet45",
            "--to",
            "torch",
            "--source-model",
            "reference_models:paddle_resnet45",
            "--input",
            "1,3,32,64",
            "--format",
            "md",
            "--rows",
            "1000",
        ]
    )
    text = capsys.readouterr().out
    assert rc == 0, text
    rows = [ln for ln in text.splitlines() if ln.startswith("| ") and "---" not in ln][1:]
    traced = xinit.backends.get_backend("paddle").trace(source, np.ones((1, 3, 32, 64), "f"))
    assert len(rows) == len(traced)  # the real model's layers, not the spec's own builds
    rc = main(
        ["port", str(ckpt), str(tmp_path / "x.pt"), "--model", "resnet45", "--to", "torch"]
        + ["--source-model", "resnet45"]
    )
    assert rc == 2 and "is an xinit spec" in capsys.readouterr().err


def test_too_small_an_input_is_one_line_naming_the_layer(tmp_path, capsys):
    torch = require_backends("torch", "paddle") or __import__("torch")
    ckpt, out = tmp_path / "lenet.pt", tmp_path / "lenet.pdparams"
    torch.save(xinit.build(xinit.models.lenet(), "torch").state_dict(), ckpt)
    for verb in (
        ["parity", "lenet", "--backends", "torch,paddle"],
        ["port", str(ckpt), str(out), "--model", "lenet", "--to", "paddle"],
    ):
        rc = main([*verb, "--input", "1,3,8,8"])
        err = capsys.readouterr().err
        assert rc == 2 and len(err.strip().splitlines()) == 1, err
        assert f"xinit {verb[0]}: error: --input 1,3,8,8: conv2: Conv: kernel (5, 5)" in err
    assert not out.exists()  # refused before anything was written
    # --rtol overrides the verdict in port too: tighter than float32 fails, naming a layer
    rc = main([*verb, "--input", "2,3,32,32", "--rtol", "1e-12", "--format", "json"])
    text = capsys.readouterr().out
    report = json.loads(text[: text.rindex("}") + 1])
    assert rc == 1 and report["first_divergent"], report
    assert report["rtol"] == {"torch (in) vs paddle (out)": 1e-12} and report["threshold"] is None


def test_parity_plot_draws_the_layers_against_depth(tmp_path, capsys):
    require_backends("torch", "paddle", "flax")
    import matplotlib.image

    path = tmp_path / "parity.png"
    rc = main(["parity", "lenet", "--rtol", "1e-3", "--format", "md", "--plot", str(path)])
    out = capsys.readouterr().out
    assert rc == 0 and "paddle vs torch: max rel" in out and "ratio" not in out
    rc = main(["parity", "lenet", "--format", "md", "--plot", str(path)])
    out = capsys.readouterr()
    assert rc == 0 and f"wrote {path}" in out.err and "paddle vs torch: ratio" in out.out
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 800 and image.std() > 0.05
