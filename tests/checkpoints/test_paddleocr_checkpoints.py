"""PaddleOCR's training checkpoints, as its trainer writes them, ported by xinit: a
distillation checkpoint's submodel (Student./Teacher. prefixes), a MultiHead's training-only
NRTR branch, and the .pdopt/.states files saved beside the weights. Each choice is a report
line; nothing is dropped without being listed, and an ambiguous checkpoint is an error."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from helpers import require_backends

import xinit
from xinit import ArgumentError, PortError
from xinit.blocks import Sequential
from xinit.cli import main
from xinit.layers import AdaptiveAvgPool, BatchNorm, Conv, Flatten, Linear, ReLU

REC_FACTORY = '''
from xinit.blocks import Sequential
from xinit.layers import AdaptiveAvgPool, BatchNorm, Conv, Flatten, Linear, ReLU


def rec():
    """A recogniser shaped as PaddleOCR's BaseModel: backbone, then MultiHead's CTC branch."""
    backbone = Sequential(
        {"conv1": Conv(3, 8, 3, padding=1, bias=False), "bn1": BatchNorm(8), "relu": ReLU(),
         "pool": AdaptiveAvgPool(1), "flatten": Flatten()}
    )
    head = Sequential({"ctc_head": Sequential({"fc": Linear(8, 11)})})
    return Sequential({"backbone": backbone, "head": head})
'''


def _rec():
    backbone = Sequential(
        {
            "conv1": Conv(3, 8, 3, padding=1, bias=False),
            "bn1": BatchNorm(8),
            "relu": ReLU(),
            "pool": AdaptiveAvgPool(1),
            "flatten": Flatten(),
        }
    )
    head = Sequential({"ctc_head": Sequential({"fc": Linear(8, 11)})})
    return Sequential({"backbone": backbone, "head": head})


def _paddle_state(seed: int) -> dict[str, np.ndarray]:
    model = xinit.build(_rec(), "paddle", seed=seed)
    xinit.randomize_batchnorm(model, seed=seed)
    return {k: v.numpy() for k, v in model.state_dict().items()}


def _training_checkpoint(tmp_path, *, teacher: bool = True):
    """best_accuracy.pdparams of a distillation run (Student, Teacher) whose Student has a
    MultiHead with an NRTR branch, plus the .pdopt and .states the trainer writes beside it."""
    import paddle

    rng = np.random.default_rng(0)
    student = _paddle_state(1)
    state = {f"Student.{k}": v for k, v in student.items()}
    nrtr = {
        "head.before_gtc.1.fc.weight": rng.standard_normal((8, 32)).astype(np.float32),
        "head.gtc_head.tgt_word_prj.weight": rng.standard_normal((32, 13)).astype(np.float32),
    }
    state.update({f"Student.{k}": v for k, v in nrtr.items()})
    if teacher:
        state.update({f"Teacher.{k}": v for k, v in _paddle_state(2).items()})
    path = tmp_path / "best_accuracy.pdparams"
    paddle.save({k: paddle.to_tensor(v) for k, v in state.items()}, str(path))
    (tmp_path / "best_accuracy.pdopt").write_bytes(pickle.dumps({"lr": 1e-3}))
    (tmp_path / "best_accuracy.states").write_bytes(pickle.dumps({"epoch": 3}))
    return path, student, nrtr


def test_the_student_is_ported_and_every_other_key_listed(tmp_path):
    require_backends("paddle")
    path, student, nrtr = _training_checkpoint(tmp_path)
    out = xinit.port(path, _rec(), dst="torch", submodel="Student")
    plain = xinit.port(student, _rec(), src="paddle", dst="torch")
    assert out.keys() == plain.keys()
    for key in plain:
        np.testing.assert_array_equal(out[key], plain[key])
    teacher = {f"Teacher.{k}" for k in student}
    assert set(out.report.dropped) == teacher | {f"Student.{k}" for k in nrtr}
    text = out.report.summary()
    kept, dropped = len(student) + len(nrtr), len(student)
    assert f"kept Student ({kept} keys), dropped Teacher ({dropped} keys)" in text
    assert "head.before_gtc (NRTR): 1 keys dropped" in text
    assert "head.gtc_head (NRTR): 1 keys dropped" in text
    assert "best_accuracy.pdopt beside the checkpoint is optimizer state" in text
    assert "best_accuracy.states beside the checkpoint is training state" in text


def test_a_distillation_checkpoint_needs_a_choice_and_a_known_submodel(tmp_path):
    require_backends("paddle")
    path, _, _ = _training_checkpoint(tmp_path)
    with pytest.raises(ArgumentError, match=r"2 models \(Student, Teacher\).*--submodel"):
        xinit.port(path, _rec(), dst="torch")
    with pytest.raises(ArgumentError, match="'Student2' is not in .* Student, Teacher"):
        xinit.port(path, _rec(), dst="torch", submodel="Student2")
    (tmp_path / "only").mkdir()
    only, _, _ = _training_checkpoint(tmp_path / "only", teacher=False)
    out = xinit.port(only, _rec(), dst="torch")  # the only submodel is taken
    assert "distillation checkpoint: kept Student" in out.report.summary()


def test_plain_checkpoints_and_the_files_beside_them(tmp_path):
    require_backends("paddle")
    import paddle

    student = _paddle_state(1)
    path = tmp_path / "best_accuracy.pdparams"
    paddle.save({k: paddle.to_tensor(v) for k, v in student.items()}, str(path))
    (tmp_path / "best_accuracy.pdopt").write_bytes(pickle.dumps({}))
    with pytest.raises(ArgumentError, match="not a distillation checkpoint"):
        xinit.port(path, _rec(), dst="torch", submodel="Student")
    with pytest.raises(
        PortError, match="optimizer state, not weights: pass best_accuracy.pdparams"
    ):
        xinit.port(tmp_path / "best_accuracy.pdopt", _rec(), dst="torch")
    out = xinit.port(tmp_path / "best_accuracy", _rec(), dst="torch")  # as configs name it
    assert "read best_accuracy.pdparams" in out.report.summary()
    assert len(out.report.moved) == len(student)


def test_a_training_branch_is_dropped_only_where_inference_runs_the_ctc_branch(tmp_path):
    """Without a CTC head in the spec, the NRTR keys are not known to be training-only: they
    stay unexpected keys, an error, never dropped in silence."""
    require_backends("paddle")
    path, _, _ = _training_checkpoint(tmp_path)
    spec = _rec()
    other = Sequential(
        {"backbone": dict(spec.steps)["backbone"], "head": Sequential({"fc": Linear(8, 11)})}
    )
    with pytest.raises(PortError, match="head.gtc_head.tgt_word_prj.weight"):
        xinit.port(path, other, dst="torch", submodel="Student")


def test_the_cli_ports_the_student_with_parity(tmp_path, capsys):
    require_backends("paddle", "torch")
    path, _, _ = _training_checkpoint(tmp_path)
    (tmp_path / "rec_model.py").write_text(REC_FACTORY)
    out = tmp_path / "rec.pt"
    args = ["port", str(path), str(out), "--model", f"{tmp_path / 'rec_model.py'}:rec"]
    args += ["--to", "torch", "--input", "2,3,16,16", "--format", "json"]
    assert main(args) == 2
    assert "2 models (Student, Teacher)" in capsys.readouterr().err
    rc = main([*args, "--submodel", "Student"])
    text = capsys.readouterr().out
    report = json.loads(text[: text.rindex("}") + 1])
    assert rc == 0 and report["ok"], report
    assert "distillation checkpoint: kept Student" in text and "NRTR" in text
    assert out.is_file()
