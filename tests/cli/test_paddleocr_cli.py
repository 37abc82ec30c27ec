"""``xinit port --model paddleocr:CONFIG.yml``: a PaddleOCR checkpoint ported from its config
alone (no PaddleOCR code), the CTC classes read from the checkpoint, parity PASS, and the
written file loaded by PyTorch's strict loader."""

from __future__ import annotations

import json

import numpy as np
import reference_paddleocr as ref
from helpers import require_backends

import xinit
from xinit.cli import main
from xinit.models import default_input, paddleocr


def test_port_from_a_paddleocr_config(tmp_path, capsys):
    require_backends("paddle", "torch")
    import paddle
    import torch

    cfg = tmp_path / "ch_PP-OCRv4_rec.yml"
    cfg.write_text(ref.v4_rec_yaml(0.25, conv_kxk_num=1, dims=32, depth=1))
    paddle.seed(0)
    model = ref.lcnetv3_svtr(
        13, scale=0.25, multihead=True, conv_kxk_num=1, dims=32, depth=1, hidden_dims=32
    )
    model.eval()
    xinit.randomize_batchnorm(model, seed=1)
    ckpt, out = tmp_path / "best_accuracy.pdparams", tmp_path / "rec.pt"
    paddle.save(model.state_dict(), str(ckpt))
    assert default_input(f"paddleocr:{cfg}") == (1, 3, 48, 320)
    # the dictionary the config names is not here: the classes come from the checkpoint
    args = ["port", str(ckpt), str(out), "--model", f"paddleocr:{cfg}", "--to", "torch"]
    rc = main([*args, "--input", "1,3,48,64", "--format", "json"])
    text = capsys.readouterr().out
    report = json.loads(text[: text.rindex("}") + 1])
    assert rc == 0 and report["ok"], report["first_divergent"]
    spec = paddleocr.from_config(cfg, out_channels=13)
    net = xinit.build(spec, "torch", seed=3).eval()
    net.load_state_dict(torch.load(out, weights_only=True), strict=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 48, 64)).astype(np.float32)
    assert net(torch.from_numpy(x)).shape == (1, 8, 13)
    # PaddleOCR's own eval output (class probabilities) against the ported PyTorch model's
    whole = [r for r in xinit.parity({"paddleocr": model, "torch": net}, x).rows if r.path == ""]
    assert whole and all(r.passed for r in whole)


def test_port_of_a_distillation_checkpoint_from_its_config(tmp_path, capsys):
    """A *_distillation.yml (Models: Teacher, Student) and its checkpoint (``Student.`` and
    ``Teacher.`` keys): ``--submodel Student`` picks the config's model and the keys alike."""
    require_backends("paddle", "torch")
    import paddle
    import torch
    import yaml

    arch = {
        "model_type": "rec",
        "algorithm": "CRNN",
        "Transform": None,
        "Backbone": {"name": "MobileNetV1Enhance", "scale": 0.25},
        "Neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 16},
        "Head": {"name": "CTCHead", "mid_channels": 24, "fc_decay": 2e-5},
    }
    models = {"Teacher": arch, "Student": arch}
    cfg = tmp_path / "ch_PP-OCRv2_rec_distillation.yml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "Architecture": {
                    "name": "DistillationModel",
                    "algorithm": "Distillation",
                    "Models": models,
                }
            }
        )
    )
    state = {}
    for i, name in enumerate(models):
        paddle.seed(i)
        m = ref.mv1_crnn(9, scale=0.25, hidden_size=16, mid_channels=24)
        state |= {f"{name}.{k}": v for k, v in m.state_dict().items()}
    ckpt, out = tmp_path / "best_accuracy.pdparams", tmp_path / "student.pt"
    paddle.save(state, str(ckpt))
    args = ["port", str(ckpt), str(out), "--model", f"paddleocr:{cfg}", "--to", "torch"]
    assert main([*args, "--submodel", "Student", "--no-parity"]) == 0
    assert "Teacher" in capsys.readouterr().out  # the report says what was left out
    spec = paddleocr.from_config(cfg, submodel="Student", out_channels=9)
    net = xinit.build(spec, "torch")
    net.load_state_dict(torch.load(out, weights_only=True), strict=True)
    want = state["Student.head.fc2.weight"].numpy().T  # Paddle's Linear is (in, out)
    assert np.array_equal(net.head.fc2.weight.detach().numpy(), want)
