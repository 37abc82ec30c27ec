"""Model references, as the command line takes them: what ``xinit port`` and ``xinit parity``
build on each side.

* a zoo name: ``resnet50`` (an xinit spec);
* an import path to a factory: ``paddle.vision.models:resnet50``, ``mypkg.models:Net``;
* a Python file and a factory in it: ``path/to/model.py:build`` (a spec, or a native model
  written by hand in any framework);
* a PaddleOCR config: ``paddleocr:configs/rec/PP-OCRv4/ch_PP-OCRv4_rec.yml``
  (:func:`xinit.models.paddleocr.from_config`; the CTC classes from the checkpoint being
  ported unless ``--model-args`` gives ``out_channels`` or ``character_dict``).

Factories are called with ``--model-args`` (``in_channels=1,num_classes=512``: Python
literals, strings otherwise). Nothing is downloaded: factories that would fetch weights must
be told not to (``pretrained=False``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
from typing import Any

from .errors import ArgumentError


def parse_args(text: str | None) -> dict[str, Any]:
    """``"in_channels=1,num_classes=512,name=x"`` -> ``{"in_channels": 1, ...}``."""
    out: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ArgumentError(f"--model-args: {item!r} is not name=value")
        try:
            out[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            out[key.strip()] = value.strip()
    return out


def factory(ref: str):
    """The callable a reference names (see the module docstring)."""
    where, sep, name = ref.rpartition(":")
    if not sep or not where or not name.isidentifier():
        raise ArgumentError(
            f"{ref!r} is no zoo model and no 'module:factory' or 'file.py:factory' reference"
        )
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise FileNotFoundError(f"{ref}: no file {where!r}")
        spec = importlib.util.spec_from_file_location(f"_xinit_model_{abs(hash(where))}", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as err:
            raise ArgumentError(f"{ref}: cannot import {where!r}: {err}") from None
    made = getattr(module, name, None)
    if not callable(made):
        raise ArgumentError(f"{ref}: {where!r} has no callable {name!r}")
    return made


PADDLEOCR = "paddleocr:"


def load(
    ref: str, args: dict[str, Any] | None = None, checkpoint: Any = None, submodel=None
) -> Any:
    """The spec or native model ``ref`` names, made with ``args``; ``checkpoint`` (the file
    being ported) gives a PaddleOCR config its class count when ``args`` do not, and
    ``submodel`` picks a distillation config's model."""
    from . import models

    if ref.startswith(PADDLEOCR):
        kw = dict(args or {})
        if checkpoint is not None and not {"out_channels", "character_dict"} & set(kw):
            kw.setdefault("checkpoint", checkpoint)
        if submodel is not None:
            kw.setdefault("submodel", submodel)
        return models.paddleocr.from_config(ref[len(PADDLEOCR) :], **kw)
    if ref in models.ZOO:
        return models.get(ref, **(args or {}))
    return factory(ref)(**(args or {}))


def is_spec(obj: Any) -> bool:
    from .blocks import is_spec as spec_like

    return spec_like(obj)


__all__ = ["load", "factory", "parse_args", "is_spec"]
