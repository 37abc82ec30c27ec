"""A PaddleOCR YAML config's ``Architecture`` section read into the spec
(:func:`from_config`), and the CTC class count from a character dictionary or a checkpoint.

Supported: ``model_type: rec`` with ``Backbone`` in :data:`BACKBONES`, an optional ``Neck``
(``SequenceEncoder``) and ``Head`` ``CTCHead``, ``MultiHead`` (its ``CTCHead`` branch, the
one PaddleOCR runs at inference, under its names ``head.ctc_encoder``/``head.ctc_head``) or
``VLHead`` (VisionLAN on ResNet45, its inference path) or ``ABINetHead`` (ABINet on
ResNet45: the vision model, with ``use_lang`` its language model and alignment too).
Arguments that only steer training (learning-rate multipliers, weight decay, ``use_guide``)
are accepted and have no effect on the spec; any other unknown argument is refused by name.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ...blocks import Sequential
from ...errors import ArgumentError, UnknownNameError
from ..resnet45 import resnet45
from .rec_abinet_head import abinet_head
from .rec_ctc_head import ctc_head
from .rec_hgnet import pphgnet_small, pphgnet_tiny
from .rec_lcnetv3 import out_channels as lcnetv3_channels
from .rec_lcnetv3 import pplcnetv3
from .rec_mv1_enhance import mobilenet_v1_enhance
from .rec_mv1_enhance import out_channels as mv1_channels
from .rec_svtrnet import out_channels as svtrnet_channels
from .rec_svtrnet import svtrnet
from .rec_visionlan_head import vl_head
from .rnn import ENCODER_TYPES, sequence_encoder

# name -> (spec factory, its output channels from the same arguments)
BACKBONES: dict[str, tuple[Callable[..., Any], Callable[..., int]]] = {
    "MobileNetV1Enhance": (mobilenet_v1_enhance, lambda scale=0.5, **_: mv1_channels(scale)),
    "PPLCNetV3": (pplcnetv3, lambda scale=1.0, **_: lcnetv3_channels(scale)),
    "PPHGNet_small": (pphgnet_small, lambda **_: 1024),
    "PPHGNet_tiny": (pphgnet_tiny, lambda **_: 768),
    "SVTRNet": (svtrnet, svtrnet_channels),
    "ResNet45": (resnet45, lambda **_: 512),
}
NECKS = ("SequenceEncoder",)
HEADS = ("CTCHead", "MultiHead", "VLHead", "ABINetHead")
TRAINING_ONLY = ("lr_mult_list", "lab_lr", "lr_mult", "fc_decay", "use_guide", "pretrained")
DEFAULT_CHARACTERS = "0123456789abcdefghijklmnopqrstuvwxyz"  # no dictionary: PaddleOCR's own
VISIONLAN_CLASSIFIER = "head.MLM_VRM.Prediction.w_vrm.bias"
ABINET_CLASSIFIER = "head.cls.bias"  # ABINetHead's vision classifier: out_channels classes


def _unsupported(what: str, name: Any, supported) -> UnknownNameError:
    return UnknownNameError(
        f"PaddleOCR config: {what} {name!r} is not supported (supported: {', '.join(supported)})"
    )


def _args(section: Mapping[str, Any], drop=("name",)) -> dict[str, Any]:
    return {k: v for k, v in section.items() if k not in (*drop, *TRAINING_ONLY)}


def _load(config) -> tuple[dict[str, Any], Path | None]:
    if isinstance(config, Mapping):
        return dict(config), None
    path = Path(config)
    try:
        import yaml
    except ImportError as exc:  # PyYAML: what PaddleOCR itself reads its configs with
        raise ArgumentError(
            f"reading {path} needs PyYAML (pip install pyyaml); or pass the config as a dict"
        ) from exc
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    if not isinstance(data, Mapping):
        raise ArgumentError(f"{path}: not a PaddleOCR config (a YAML mapping)")
    return dict(data), path


def _find_dictionary(name: str, config_path: Path | None) -> Path:
    """PaddleOCR's paths are relative to its repository root: tried as given, then beside
    the config and in each folder above it."""
    candidates = [Path(name)]
    if config_path is not None:
        candidates += [d / name for d in config_path.resolve().parents]
    for c in candidates:
        if c.is_file():
            return c
    raise ArgumentError(
        f"character dictionary {name!r} not found (tried {', '.join(map(str, candidates))}); "
        "pass character_dict=, out_channels= or checkpoint="
    )


def character_count(
    character_dict: str | os.PathLike | None = None, use_space_char: bool = False
) -> int:
    """The CTC classes PaddleOCR's ``CTCLabelDecode`` makes: the dictionary's lines (or its
    36 default characters, no space then), the space when ``use_space_char``, the blank."""
    if character_dict is None:
        return len(DEFAULT_CHARACTERS) + 1
    with open(character_dict, "rb") as f:
        lines = f.readlines()
    return len(lines) + bool(use_space_char) + 1


def _classes_in_checkpoint(checkpoint) -> int:
    from ...checkpoints import load_checkpoint

    state = load_checkpoint(checkpoint) if not isinstance(checkpoint, Mapping) else checkpoint
    ends = ("head.fc.bias", "head.fc2.bias", "head.ctc_head.fc.bias", "head.ctc_head.fc2.bias")
    ends += (VISIONLAN_CLASSIFIER, ABINET_CLASSIFIER)  # VLHead's out_channels + 1 classes
    found = {
        k: int(v.shape[0]) - k.endswith(VISIONLAN_CLASSIFIER)
        for k, v in state.items()
        if k.endswith(ends)
    }
    if len(set(found.values())) != 1:  # distillation: Student/Teacher heads, same classes
        what = ", ".join(f"{k} ({n})" for k, n in found.items()) or "none"
        name = "checkpoint" if isinstance(checkpoint, Mapping) else str(checkpoint)
        raise ArgumentError(
            f"{name}: no single CTC class count (heads' biases: keys ending in "
            f"{' or '.join(ends)}; found {what}); pass out_channels="
        )
    return next(iter(found.values()))


def _out_channels(cfg, path, out_channels, character_dict, checkpoint) -> int:
    if out_channels is not None:
        return int(out_channels)
    if checkpoint is not None:
        return _classes_in_checkpoint(checkpoint)
    glob = cfg.get("Global") or {}
    space = bool(glob.get("use_space_char", False))
    if character_dict is not None:
        return character_count(character_dict, space)
    name = glob.get("character_dict_path")
    return character_count(_find_dictionary(name, path) if name else None, space)


def _ctc_branch(head: Mapping[str, Any]) -> tuple[dict, dict]:
    """MultiHead's ``CTCHead`` entry: (its Neck's arguments, its Head's arguments)."""
    names = []
    for entry in head.get("head_list") or ():
        (name, args), *_ = entry.items()
        names.append(name)
        if name == "CTCHead":
            return dict(args.get("Neck") or {"name": "reshape"}), dict(args.get("Head") or {})
    raise ArgumentError(
        f"PaddleOCR config: MultiHead has no CTCHead branch (its heads: {', '.join(names)})"
    )


def _submodel(arch: Mapping[str, Any], submodel: str | None) -> Mapping[str, Any]:
    """A distillation Architecture's ``Models`` entry (the only one, or ``submodel``)."""
    models = arch.get("Models")
    if not models:
        return arch
    if submodel is None and len(models) == 1:
        submodel = next(iter(models))
    if submodel not in models:
        raise ArgumentError(
            f"PaddleOCR config: a distillation config of {', '.join(models)}; name one "
            f"(submodel=, --submodel){'' if submodel is None else f', not {submodel!r}'}"
        )
    return models[submodel]


def _neck(in_channels: int, args: Mapping[str, Any], key: str = "encoder_type"):
    encoder_type = args.get(key)
    if encoder_type not in ENCODER_TYPES:
        raise _unsupported("SequenceEncoder encoder_type", encoder_type, ENCODER_TYPES)
    return sequence_encoder(in_channels, encoder_type, **_args(args, ("name", key)))


def from_config(
    config: str | os.PathLike | Mapping[str, Any],
    *,
    out_channels: int | None = None,
    character_dict: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | Mapping[str, Any] | None = None,
    softmax: bool = True,
    submodel: str | None = None,
) -> Sequential:
    """The spec of a PaddleOCR config's ``Architecture`` (a YAML file or its dict); of a
    distillation config (``Models``: ``Teacher``, ``Student``, ...), of ``submodel`` (needed
    when there are several; its checkpoint keys carry the ``Student.`` prefix, which
    ``xinit.port(submodel=)`` strips).

    The head's ``out_channels`` (CTC: the classes; VLHead: the classes less one): given,
    else read from ``checkpoint`` (its classifier's bias), else the character dictionary's
    (``character_dict``, or the config's ``Global.character_dict_path`` with
    ``use_space_char``) plus one (CTC's blank, VisionLAN's end). ``softmax``: (CTC heads)
    end with PaddleOCR's inference softmax (False: the logits)."""
    cfg, path = _load(config)
    arch = cfg.get("Architecture")
    if not isinstance(arch, Mapping):
        raise ArgumentError(f"{path or 'config'}: no Architecture section")
    arch = _submodel(arch, submodel)
    model_type = arch.get("model_type", "rec")
    if model_type in ("det", "cls"):  # DBNet and the direction classifier: det.py
        from .det import cls_from_config, det_from_config

        return det_from_config(arch) if model_type == "det" else cls_from_config(arch)
    if model_type != "rec":
        raise _unsupported("model_type", model_type, ("rec", "det", "cls"))
    if arch.get("Transform"):
        raise _unsupported("Transform", arch["Transform"].get("name"), ("none",))
    bb = arch.get("Backbone") or {}
    if bb.get("name") not in BACKBONES:
        raise _unsupported("Backbone", bb.get("name"), BACKBONES)
    factory, channels_of = BACKBONES[bb["name"]]
    args = _args(bb)
    if args.pop("det", False):
        raise ArgumentError(f"PaddleOCR config: {bb['name']}(det=True) is not supported")
    children = [("backbone", factory(**args))]
    width = channels_of(**args)
    neck_cfg = arch.get("Neck")
    if neck_cfg:
        if neck_cfg.get("name") not in NECKS:
            raise _unsupported("Neck", neck_cfg.get("name"), NECKS)
        neck, width = _neck(width, neck_cfg)
        children.append(("neck", neck))
    head_cfg = arch.get("Head") or {}
    n = _out_channels(cfg, path, out_channels, character_dict, checkpoint)
    if head_cfg.get("name") == "CTCHead":
        args = _args(head_cfg, ("name", "out_channels"))
        children.append(("head", ctc_head(width, n, softmax=softmax, **args)))
    elif head_cfg.get("name") == "VLHead":
        args = _args(head_cfg, ("name", "out_channels", "training_step"))
        children.append(("head", vl_head(width, n, **args)))
    elif head_cfg.get("name") == "ABINetHead":
        args = _args(head_cfg, ("name", "out_channels", "use_lang", "iter_size", "dropout"))
        lang = bool(head_cfg.get("use_lang"))
        iters = head_cfg.get("iter_size", 1) if lang else 1  # PaddleOCR's default 1
        children.append(
            ("head", abinet_head(width, n, softmax=softmax, use_lang=lang, iter_size=iters, **args))
        )
    elif head_cfg.get("name") == "MultiHead":
        neck_args, head_args = _ctc_branch(head_cfg)
        encoder, width = _neck(width, neck_args, key="name")
        head = ctc_head(width, n, softmax=softmax, **_args(head_args, ("out_channels",)))
        children.append(("head", Sequential(ctc_encoder=encoder, ctc_head=head)))
    else:
        raise _unsupported("Head", head_cfg.get("name"), HEADS)
    return Sequential(*children)


def default_input(config: str | os.PathLike | Mapping[str, Any]) -> tuple[int, int, int, int]:
    """A text line the config's model takes: (1, 3, 48, 320) (PP-OCRv3/v4), else (1, 3, 32,
    320) (PP-OCRv2's MobileNetV1Enhance), else (1, 3, 32, 100) (SVTR's fixed image size),
    else (1, 3, 64, 256) (VisionLAN's), else (1, 3, 32, 128) (ABINet's fixed image size),
    whichever gives a sequence."""
    from ...blocks import infer

    spec = from_config(config, out_channels=2)
    shapes = ((1, 3, 48, 320), (1, 3, 32, 320), (1, 3, 32, 100), (1, 3, 64, 256))
    for shape in (*shapes, (1, 3, 32, 128)):
        try:
            infer(spec, shape)
        except ValueError:
            continue
        return shape
    raise ArgumentError(f"{config}: no 48-, 32- or 64-pixel line fits; pass --input")
