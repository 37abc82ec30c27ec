"""Code export: a spec as one standalone source file for PyTorch, Paddle or Flax.

The neutral part lives here (which containers become classes and with which arguments,
the forward statements' order, the init plan's rows, the layout of the lines); each
framework's ``backends/<fw>/codegen.py`` says how its layers are written (one emitter per
layer kind) and how its initialisers are called.
"""

from __future__ import annotations

from .structure import ExportError, camel


def export_code(
    spec,
    framework: str,
    *,
    class_name: str | None = None,
    policy=None,
    source: str | None = None,
) -> str:
    """The source of one Python module defining ``class_name`` (default ``Model``) for
    ``framework``, with the state-dict keys of ``xinit.build(spec, framework)`` and an
    ``init_weights()`` that draws the ``policy``'s laws (the spec's own initializers when
    None) with the framework's own initialisers. ``source`` names what the spec came from
    in the file's header. The same spec always gives the same text."""
    from xinit import backends

    from .writer import ModelWriter

    if isinstance(spec, str):
        from xinit import models

        source = source or spec
        spec = models.get(spec)
    if not hasattr(spec, "kind"):
        raise ExportError(f"export_code: pass a spec or a zoo model's name; got {spec!r}")
    name = class_name or (model_class_name(source) if source else "Model")
    if not name.isidentifier():
        raise ExportError(f"export_code: class_name {name!r} is no Python name")
    code = backends.part(framework, "codegen").CODEGEN
    return ModelWriter(spec, code, name, policy).write(source or "a spec", input_layout(spec))


# Model-name words written as their authors write them (ResNet18, not Resnet18).
_WORDS = {"resnet": "ResNet", "resnext": "ResNeXt", "vgg": "VGG", "vit": "ViT", "lenet": "LeNet"}
_WORDS |= {"unet": "UNet", "gpt": "GPT", "crnn": "CRNN", "centernet": "CenterNet"}


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


__all__ = ["export_code", "ExportError", "model_class_name", "input_layout"]
