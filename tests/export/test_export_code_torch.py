"""The exported PyTorch file reads as torchvision's: repeated blocks are one class, the
init is a loop over layer classes with nn.init calls; a kind the export cannot write is an
error naming it and its path; ``xinit export-code`` writes the file."""

from __future__ import annotations

import pytest

import xinit
from xinit import export_code
from xinit.cli import main
from xinit.codegen import ExportError


def test_resnet_blocks_are_one_class_as_torchvision_writes_them():
    text = export_code(xinit.models.resnet18(), "torch", class_name="ResNet18")
    assert text.count("class ") == 2  # BasicBlock and the model
    assert "class BasicBlock(nn.Module):" in text
    assert "downsample: bool = False" in text
    assert "BasicBlock(64, 128, 2, downsample=True)" in text
    assert "nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)" in text
    assert "for m in self.modules():" in text
    assert 'nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")' in text
    bottleneck = export_code(xinit.models.resnet50(), "torch")
    assert bottleneck.count("class Bottleneck(") == 1
    assert "*[Bottleneck(1024, 256, 1, 1024) for _ in range(5)]" in bottleneck


def test_a_kind_without_an_emitter_is_named_with_its_path():
    with pytest.raises(ExportError, match=r"neck\.encoder\.lstm: .*'lstm'"):
        export_code(xinit.models.crnn(), "paddle")
    with pytest.raises(ExportError, match=r"^position_ids: .*'position_ids'"):
        export_code(xinit.models.gpt2(), "torch")


def test_cli_writes_the_file(tmp_path, capsys):
    out = tmp_path / "resnet18_torch.py"
    assert main(["export-code", "--model", "resnet18", "--framework", "torch", "-o", str(out)]) == 0
    assert "class ResNet18(nn.Module):" in out.read_text()
    assert out.read_text() == export_code(
        xinit.models.resnet18(), "torch", class_name="ResNet18", source="resnet18"
    )
    assert main(["export-code", "--model", "torch.nn:Identity"]) == 2
    assert "not an xinit spec" in capsys.readouterr().err
