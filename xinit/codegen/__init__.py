"""Code export: a spec as one standalone source file for PyTorch, Paddle or Flax.

The neutral part lives here (which containers become classes and with which arguments,
the forward statements' order, the init plan's rows, the layout of the lines); each
framework's ``backends/<fw>/codegen.py`` says how its layers are written (one emitter per
layer kind) and how its initialisers are called. ``xinit.export_code`` (``xinit/_export_code.py``)
joins them; nothing here imports ``xinit.backends``.
"""

from __future__ import annotations

from .structure import ExportError, camel

# Model-name words written as their authors write them (ResNet18, not Resnet18).
_WORDS = {"resnet": "ResNet", "resnext": "ResNeXt", "vgg": "VGG", "vit": "ViT", "lenet": "LeNet"}
_WORDS |= {"unet": "UNet", "gpt": "GPT", "crnn": "CRNN", "centernet": "CenterNet"}
_WORDS |= {"svtr": "SVTR", "ppocrv": "PPOCRv", "ppocr": "PPOCR", "dbnet": "DBNet"}


def model_class_name(source: str) -> str:
    """A class name for a model reference: ``resnet18`` -> ``ResNet18``, ``mypkg.models:
    build_net`` -> ``BuildNet``, ``vit_tiny_patch16_224`` -> ``ViTTinyPatch16224``."""
    name = source.rpartition(":")[2].rpartition("/")[2].removesuffix(".json")
    words = []
    for word in name.split("_"):
        stem = word.rstrip("0123456789x")
        words.append(_WORDS.get(stem, stem[:1].upper() + stem[1:]) + word[len(stem) :])
    return camel("_".join(words)) or "Model"


def input_layout(spec) -> tuple[int | None, int | None]:
    """(channels, spatial dims) of the input the spec's first layer takes (None: unknown)."""
    from xinit.blocks import input_channels, walk
    from xinit.layers import Layer

    dims = next((getattr(n, "dims", None) for _, n in walk(spec) if isinstance(n, Layer)), None)
    return input_channels(spec), dims


__all__ = ["ExportError", "model_class_name", "input_layout"]
