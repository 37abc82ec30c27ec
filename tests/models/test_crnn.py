"""The PaddleOCR-style CRNN of the zoo: PaddleOCR's names, one spec in three frameworks with
layer-by-layer parity, and a Paddle checkpoint (``paddle.save``) ported to PyTorch and Flax."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from helpers import FRAMEWORKS, require_backend, require_backends

import xinit
from xinit import models, randomize_batchnorm
from xinit.blocks import infer, param_specs
from xinit.layers import SpecError
from xinit.state import load_state_dict, state_dict

LIGHT = {"width": 0.25, "hidden_size": 32}  # the same architecture, a quarter of the channels


def test_paddleocr_names_and_shapes():
    """``backbone.*``, ``neck.encoder.lstm.*`` (2-layer bidirectional LSTM, hidden 256),
    ``head.fc.*``; a 32x128 line gives 32 steps of 37 CTC classes."""
    spec = models.crnn()
    names = list(param_specs(spec))
    assert names[0] == "backbone.conv1.conv.weight" and "backbone.conv7.bn.running_var" in names
    lstm = [n for n in names if n.startswith("neck.")]
    assert len(lstm) == 16 and lstm[0] == "neck.encoder.lstm.weight_ih_l0"
    assert lstm[-1] == "neck.encoder.lstm.bias_hh_l1_reverse"
    assert names[-2:] == ["head.fc.weight", "head.fc.bias"]
    shapes = {r.path: r.output_shape for r in infer(spec, (2, 3, 32, 128))}
    assert shapes["backbone"] == (2, 512, 1, 32)
    assert shapes["neck.encoder_reshape"] == (2, 32, 512)  # Im2Seq: (N, C, 1, W) -> (N, W, C)
    assert shapes["neck"] == (2, 32, 512) and shapes[""] == (2, 32, 37)
    ps = param_specs(spec)
    assert ps["neck.encoder.lstm.weight_ih_l1"].shape == (1024, 512)
    assert ps["head.fc.weight"].shape == (37, 512)
    assert models.default_input("crnn") == (1, 3, 32, 128)
    rows = {r.path: r for r in xinit.summary(spec, (1, 3, 32, 128)).rows}
    lstm_row = rows["neck.encoder.lstm"]
    assert lstm_row.params == 2 * 2 * (4 * 256 * (512 + 256 + 2))  # layers x directions; in = 512
    assert lstm_row.initializer == (
        "16 tensors weight_ih_l0 .. bias_hh_l1_reverse: Uniform(low=-0.0625, high=0.0625)"
    )


def test_a_line_not_32_pixels_high_is_refused():
    """Im2Seq of a backbone output of height 2 gives C·2 features: the LSTM names them."""
    with pytest.raises(SpecError, match=r"neck\.encoder\.lstm: LSTM .*input_size=512.*1024"):
        infer(models.crnn(), (1, 3, 48, 128))


def test_parity_over_the_three_frameworks():
    require_backends(*FRAMEWORKS)
    spec = models.crnn(num_classes=11, **LIGHT)
    mods = {b: xinit.build(spec, b, seed=1, rng="xinit") for b in FRAMEWORKS}
    randomize_batchnorm(mods["torch"], seed=2)
    state = state_dict(mods["torch"])
    for b in FRAMEWORKS[1:]:
        load_state_dict(mods[b], state)
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 64)).astype(np.float32)
    report = xinit.parity(mods, x)
    assert report.ok, str(report.first_divergent)
    assert {"neck.encoder.lstm", "head.fc", "backbone.conv7.bn"} <= {r.path for r in report.rows}


@pytest.fixture(scope="module")
def crnn_pdparams(tmp_path_factory):
    """A Paddle CRNN checkpoint as ``paddle.save`` writes it, BatchNorm statistics as if
    trained: PaddleOCR's names (``_mean``/``_variance``, each LSTM tensor twice)."""
    require_backend("paddle")
    import paddle

    spec = models.crnn(**LIGHT)
    m = xinit.build(spec, "paddle", seed=3)
    randomize_batchnorm(m, seed=4)
    path = tmp_path_factory.mktemp("crnn") / "rec_crnn.pdparams"
    paddle.save(m.state_dict(), str(path))
    return spec, m, path


def test_paddle_checkpoint_ports_to_torch_with_parity(crnn_pdparams):
    require_backend("torch")
    import torch

    spec, paddle_model, path = crnn_pdparams
    out = xinit.port(path, spec, dst="torch")  # src from the suffix
    r = out.report
    assert r.src == "paddle" and len(r.extras_read) == 16  # the LSTM's second names
    assert (
        "neck.encoder.lstm.weight_hh_l1_reverse" in out
        and "neck.encoder.lstm.1.cell_bw.weight_hh" not in out
    )
    torch_model = xinit.build(spec, "torch", seed=9)
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in out.items()}, strict=True)
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 96)).astype(np.float32)
    report = xinit.parity({"paddle": paddle_model, "torch": torch_model}, x)
    assert report.ok, str(report.first_divergent)
    assert len(report.rows) > 30  # layer by layer, not only the output


def test_paddle_checkpoint_ports_to_flax_with_parity(crnn_pdparams):
    require_backend("flax")
    spec, paddle_model, path = crnn_pdparams
    out = xinit.port(path, spec, dst="flax")
    gates = [f"neck.encoder.lstm.l1_reverse.{g}.kernel" for g in ("hi", "hf", "hg", "ho")]
    assert all(out[g].shape == (32, 32) for g in gates)
    assert out["head.fc.kernel"].shape == (64, 37)
    flax_model = xinit.build(spec, "flax", seed=9)
    load_state_dict(flax_model, xinit.port(dict(out), spec, src="flax", dst="neutral"))
    x = np.random.default_rng(2).standard_normal((1, 3, 32, 96)).astype(np.float32)
    report = xinit.parity({"paddle": paddle_model, "flax": flax_model}, x)
    assert report.ok, str(report.first_divergent)


def test_example_port_paddleocr_crnn(capsys, tmp_path):
    """examples/port_paddleocr_crnn.py makes its own Paddle checkpoint, ports it and prints
    a passing parity report (run here on the light model)."""
    require_backends("paddle", "torch")
    path = Path(__file__).resolve().parents[2] / "examples" / "port_paddleocr_crnn.py"
    loader = importlib.util.spec_from_file_location("port_paddleocr_crnn", path)
    example = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(example)
    assert example.main(["--workdir", str(tmp_path), "--light", "--rows", "60"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out and "neck.encoder.lstm" in out and "head.fc" in out
    assert (tmp_path / "rec_crnn.pdparams").is_file() and (tmp_path / "rec_crnn.pt").is_file()
