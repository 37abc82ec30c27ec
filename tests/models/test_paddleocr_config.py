"""``xinit.models.paddleocr.from_config``: a PaddleOCR YAML config's Architecture section
into the spec, the CTC classes from the character dictionary or a checkpoint, and one-line
errors naming what is supported."""

from __future__ import annotations

import pytest
import reference_paddleocr as ref

import xinit
from xinit.blocks import infer, param_specs
from xinit.errors import ArgumentError, UnknownArgumentError, UnknownNameError
from xinit.models import paddleocr


def write_config(tmp_path, scale=0.95, dict_path="ppocr/utils/en_dict.txt", characters="abc"):
    """A repository-like folder: configs/rec/PP-OCRv4/x.yml and the dictionary it names,
    relative to the repository root as PaddleOCR writes its paths."""
    cfg = tmp_path / "configs" / "rec" / "PP-OCRv4" / "ch_PP-OCRv4_rec.yml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(ref.v4_rec_yaml(scale, dict_path))
    if characters is not None:
        d = tmp_path / dict_path
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_text("".join(c + "\n" for c in characters), encoding="utf-8")
    return cfg


def test_v4_config_is_the_zoo_model(tmp_path):
    """The v4 config gives the zoo's ``ppocrv4_rec``: its MultiHead's CTC branch under
    PaddleOCR's names, 3 characters + space + blank = 5 classes."""
    spec = paddleocr.from_config(write_config(tmp_path))
    assert spec == paddleocr.ppocrv4_rec(out_channels=5)
    names = list(param_specs(spec))
    assert "head.ctc_encoder.encoder.svtr_block.1.mixer.qkv.weight" in names
    assert "backbone.blocks6.3.pw_conv.act.lab.scale" in names
    assert names[-2:] == ["head.ctc_head.fc.weight", "head.ctc_head.fc.bias"]
    assert param_specs(spec)["head.ctc_head.fc.weight"].shape == (5, 120)
    shapes = {r.path: r.output_shape for r in infer(spec, (1, 3, 48, 320))}
    assert shapes["backbone"] == (1, 480, 1, 40) and shapes[""] == (1, 40, 5)


def test_classes_from_the_dictionary_space_and_default(tmp_path):
    """PaddleOCR's CTCLabelDecode: the dictionary's lines, the space (use_space_char), the
    blank; without a dictionary its 36 characters and the blank."""
    assert paddleocr.character_count() == 37
    d = tmp_path / "keys.txt"
    d.write_text("a\nb\n \nc\n", encoding="utf-8")
    assert paddleocr.character_count(d) == 5
    assert paddleocr.character_count(d, use_space_char=True) == 6
    spec = paddleocr.from_config(write_config(tmp_path), character_dict=d)
    assert param_specs(spec)["head.ctc_head.fc.bias"].shape == (6,)


def test_classes_from_a_checkpoint(tmp_path):
    """With a checkpoint and no dictionary, its head's bias gives the class count (a
    distillation checkpoint's Student and Teacher heads agree on it); none is an error."""
    import numpy as np

    spec = paddleocr.from_config(write_config(tmp_path, scale=0.25), out_channels=9)
    state = {k: np.zeros(p.shape, np.float32) for k, p in param_specs(spec).items()}
    again = paddleocr.from_config(
        write_config(tmp_path / "b", scale=0.25, characters=None), checkpoint=state
    )
    assert again == spec
    distilled = {f"{m}.{k}": v for m in ("Student", "Teacher") for k, v in state.items()}
    assert (
        paddleocr.from_config(write_config(tmp_path / "c", scale=0.25), checkpoint=distilled)
        == spec
    )
    del state["head.ctc_head.fc.bias"]
    with pytest.raises(ArgumentError, match="no single CTC class count .*found none"):
        paddleocr.from_config(write_config(tmp_path / "d", scale=0.25), checkpoint=state)


def test_missing_dictionary_says_what_to_pass(tmp_path):
    cfg = write_config(tmp_path, characters=None)
    with pytest.raises(ArgumentError, match=r"en_dict\.txt' not found .*out_channels="):
        paddleocr.from_config(cfg)


@pytest.mark.parametrize(
    ("section", "value", "listed"),
    [
        (
            "Backbone",
            {"name": "ResNet_vd"},
            "MobileNetV1Enhance, PPLCNetV3, PPHGNet_small, PPHGNet_tiny, SVTRNet, ResNet45",
        ),
        ("Neck", {"name": "PPaddleFPN"}, "SequenceEncoder"),
        ("Head", {"name": "AttentionHead"}, "CTCHead, MultiHead, VLHead, ABINetHead"),
    ],
)
def test_unsupported_names_are_one_line_listing_the_supported(section, value, listed):
    arch = {
        "Backbone": {"name": "MobileNetV1Enhance", "scale": 0.5},
        "Neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 64},
        "Head": {"name": "CTCHead"},
        section: value,
    }
    with pytest.raises(xinit.XinitError) as err:
        paddleocr.from_config({"Architecture": arch}, out_channels=10)
    text = str(err.value)
    assert "\n" not in text and value["name"] in text and f"(supported: {listed})" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"patch_merging": "Pool"}, "SVTRNet: patch_merging='Pool' is not supported"),
        ({"mixer": ["Conv"] * 12}, "SVTRNet: mixer must list 'Local' or 'Global' for each"),
        ({"use_lenhead": True}, "SVTRNet: use_lenhead=True is not supported"),
        ({"img_size": [48, 100]}, r"backbone\.pos_embed: .*300 positions for 200 tokens"),
    ],
)
def test_svtrnet_options_without_structure_are_refused(args, message):
    """SVTRNet's options the spec has no structure for fail naming the option; an image size
    other than the positions' fails when a line of the config's size is inferred."""
    arch = {
        "Backbone": {"name": "SVTRNet", **args},
        "Neck": {"name": "SequenceEncoder", "encoder_type": "reshape"},
        "Head": {"name": "CTCHead"},
    }
    with pytest.raises(xinit.XinitError, match=message):
        spec = paddleocr.from_config({"Architecture": arch}, out_channels=10)
        infer(spec, (1, 3, 32, 100))


def test_unknown_argument_and_encoder_type_are_refused():
    arch = {
        "Backbone": {"name": "PPLCNetV3", "scale": 0.5, "widht": 2},
        "Head": {"name": "CTCHead"},
    }
    with pytest.raises(UnknownArgumentError, match="widht"):
        paddleocr.from_config({"Architecture": arch}, out_channels=10)
    neck = {"name": "SequenceEncoder", "encoder_type": "svtr", "num_head": 8}
    arch = {"Backbone": {"name": "PPLCNetV3"}, "Neck": neck, "Head": {"name": "CTCHead"}}
    with pytest.raises(UnknownArgumentError, match="'num_head'; did you mean 'num_heads'"):
        paddleocr.from_config({"Architecture": arch}, out_channels=10)
    neck = {"name": "SequenceEncoder", "encoder_type": "svtr"}
    arch = {**arch, "Neck": neck, "Head": {"name": "CTCHead", "mid": 9}}
    with pytest.raises(UnknownArgumentError, match="ctc_head.*'mid'"):
        paddleocr.from_config({"Architecture": arch}, out_channels=10)
    arch = {
        "Backbone": {"name": "PPLCNetV3"},
        "Neck": {"name": "SequenceEncoder", "encoder_type": "transformer"},
        "Head": {"name": "CTCHead"},
    }
    with pytest.raises(UnknownNameError, match=r"'transformer' .*reshape, rnn, svtr"):
        paddleocr.from_config({"Architecture": arch}, out_channels=10)


def test_a_distillation_config_gives_the_chosen_submodel():
    """``Architecture: {name: DistillationModel, Models: {Teacher: ..., Student: ...}}``
    (PaddleOCR's *_distillation.yml): ``submodel`` picks one; with several and none named,
    one line lists them."""
    student = {"model_type": "rec", "algorithm": "CRNN", "Transform": None, **CRNN_ARCH}
    teacher = {**student, "Backbone": {"name": "MobileNetV1Enhance", "scale": 1.0}}
    cfg = {
        "Architecture": {
            "name": "DistillationModel",
            "algorithm": "Distillation",
            "Models": {"Teacher": teacher, "Student": student},
        }
    }
    got = paddleocr.from_config(cfg, out_channels=10, submodel="Student")
    assert got == paddleocr.from_config({"Architecture": CRNN_ARCH}, out_channels=10)
    with pytest.raises(ArgumentError, match="distillation config of Teacher, Student; name one"):
        paddleocr.from_config(cfg, out_channels=10)
    alone = {"Architecture": {"Models": {"Student": student}}}
    assert paddleocr.from_config(alone, out_channels=10) == got


CRNN_ARCH = {
    "Backbone": {"name": "MobileNetV1Enhance", "scale": 0.5},
    "Neck": {"name": "SequenceEncoder", "encoder_type": "rnn", "hidden_size": 64},
    "Head": {"name": "CTCHead", "mid_channels": 96, "fc_decay": 2e-5},
}


def test_paddleocrs_defaults_where_the_config_says_nothing():
    """PPLCNetV3 without a scale is PaddleOCR's scale 1.0 (512 channels), the SVTR neck its
    dims 64; the head is sized from them."""
    arch = {
        "Backbone": {"name": "PPLCNetV3"},
        "Neck": {"name": "SequenceEncoder", "encoder_type": "svtr"},
        "Head": {"name": "CTCHead"},
    }
    ps = param_specs(paddleocr.from_config({"Architecture": arch}, out_channels=10))
    assert ps["neck.encoder.conv1.conv.weight"].shape == (64, 512, 3, 3)
    assert ps["head.fc.weight"].shape == (10, 64)
