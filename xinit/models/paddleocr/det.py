"""PaddleOCR's text detectors (DBNet) and text-direction classifier, assembled as
PaddleOCR's ``BaseModel`` does: ``backbone``, ``neck``, ``head``.

- :func:`ppocrv3_det`: PP-OCRv3 mobile detection (``ch_PP-OCRv3_det_student.yml``):
  MobileNetV3 large, scale 0.5, no SE; RSEFPN (96, shortcut); DBHead.
- :func:`dbnet_pplcnetv3`: DBNet on ``PPLCNetV3(det=True)`` (scale 0.75, as PP-OCRv4
  mobile detection's backbone) with RSEFPN and DBHead.
- :func:`ppocrv4_server_det`: PP-OCRv4 server detection (``PP-OCRv4_server_det.yml``):
  ``PPHGNet_small(det=True)``, LKPAN (256, with IntraCL blocks), PFHeadLocal ("large").
- :func:`ppocr_cls`: the text-direction classifier (``cls_mv3.yml``): MobileNetV3 small,
  scale 0.35; ClsHead (2 classes).
"""

from __future__ import annotations

from ...blocks import Sequential
from ...graph import Graph
from ...initializers import Zeros
from ...layers import Conv, MaxPool
from .._arguments import zoo_model
from ._common import make_divisible, paddle_conv_default
from .det_db_fpn import LEVELS, lkpan, rsefpn
from .det_db_head import cls_head, db_head, pf_head_local
from .det_mobilenet_v3 import (
    cls_mobilenet_v3,
    cls_mobilenet_v3_channels,
    det_mobilenet_v3,
    det_mobilenet_v3_channels,
)
from .rec_hgnet import conv_bn_act, hg_stage
from .rec_lcnetv3 import conv_bn_layer, lcnetv3_block

NET_CONFIG_DET = {  # k, in, out, stride, se (unscaled)
    "blocks2": ((3, 16, 32, 1, False),),
    "blocks3": ((3, 32, 64, 2, False), (3, 64, 64, 1, False)),
    "blocks4": ((3, 64, 128, 2, False), (3, 128, 128, 1, False)),
    "blocks5": ((3, 128, 256, 2, False), *[(5, 256, 256, 1, False)] * 4),
    "blocks6": (
        (5, 256, 512, 2, True),
        (5, 512, 512, 1, True),
        (5, 512, 512, 1, False),
        (5, 512, 512, 1, False),
    ),
}
DET_OUT = (16, 24, 56, 480)  # PPLCNetV3(det=True)'s layer_list widths, before the scale
# PPHGNet_small(det=True)'s stages: in, mid, out, blocks, downsample, stride
HGNET_SMALL_DET = (
    (128, 128, 256, 1, False, 2),
    (256, 160, 512, 1, True, 2),
    (512, 192, 768, 2, True, 2),
    (768, 224, 1024, 1, True, 2),
)


def detector(backbone, neck, head) -> Graph:
    """PaddleOCR's ``BaseModel`` for detection: ``backbone`` (returning c2 .. c5), ``neck``
    (on the four), ``head``: ``{"maps"}``."""
    return Graph(
        [
            ("backbone", backbone, "x"),
            ("neck", neck, tuple(f"backbone.{c}" for c in LEVELS)),
            ("head", head, "neck"),
        ],
        outputs={"maps": "head.maps"},
    )


def dbnet(backbone, channels, neck_channels: int = 96, shortcut: bool = True) -> Graph:
    """``backbone`` (returning c2 .. c5 of ``channels``), RSEFPN, DBHead: ``{"maps"}``."""
    neck = rsefpn(tuple(channels), neck_channels, shortcut)
    return detector(backbone, neck, db_head(neck_channels))


@zoo_model
def ppocrv3_det(scale: float = 0.5) -> Graph:
    """PP-OCRv3 mobile DBNet: (N, 3, H, W) -> ``{"maps": (N, 1, H, W)}`` (H, W multiples of
    32), the shrink-map probabilities."""
    backbone = det_mobilenet_v3("large", scale, disable_se=True)
    return dbnet(backbone, det_mobilenet_v3_channels("large", scale))


def det_pplcnetv3(scale: float = 0.75, conv_kxk_num: int = 4) -> Graph:
    """``PPLCNetV3(det=True)``: ``conv1``, ``blocks2`` .. ``blocks6`` (strides 2), then
    ``layer_list`` (1x1 convs with bias, Paddle's default init) on blocks3 .. blocks6's
    outputs: ``{"c2" .. "c5"}`` of ``int(w * scale)`` channels for w in 16, 24, 56, 480."""
    md = make_divisible
    nodes = [("conv1", conv_bn_layer(3, md(16 * scale), 3, 2), "x")]
    for name, rows in NET_CONFIG_DET.items():
        blocks = [lcnetv3_block(md(i * scale), md(o * scale), s, k, se, conv_kxk_num)
                  for k, i, o, s, se in rows]  # fmt: skip
        nodes.append((name, Sequential(*blocks)))
    widths = [md(NET_CONFIG_DET[b][-1][2] * scale) for b in ("blocks3", "blocks4", "blocks5",
                                                              "blocks6")]  # fmt: skip
    outs = [int(w * scale) for w in DET_OUT]
    layers = [
        (str(i), Conv(cin, cout, 1, weight_init=paddle_conv_default(cin, 1), bias_init=Zeros()),
         f"in{i}")
        for i, (cin, cout) in enumerate(zip(widths, outs))
    ]  # fmt: skip
    ins = tuple(f"in{i}" for i in range(4))
    layer_list = Graph(layers, inputs=ins, outputs={str(i): str(i) for i in range(4)})
    nodes.append(("layer_list", layer_list, ("blocks3", "blocks4", "blocks5", "blocks6")))
    return Graph(nodes, outputs={c: f"layer_list.{i}" for i, c in enumerate(LEVELS)})


@zoo_model
def dbnet_pplcnetv3(scale: float = 0.75) -> Graph:
    """DBNet on PPLCNetV3 (det, scale 0.75) with RSEFPN (96) and DBHead."""
    return dbnet(det_pplcnetv3(scale), [int(w * scale) for w in DET_OUT])


def det_pphgnet(stem_channels=(64, 64, 128), stage_config=HGNET_SMALL_DET, layer_num=6) -> Graph:
    """``PPHGNet(det=True)``: ``stem``, a 3x3 stride-2 max ``pool``, ``stages.0`` ..
    ``stages.3`` (their downsamples stride 2), each stage's map an output: ``{"c2" ..
    "c5"}`` at strides 4 .. 32 (PPHGNet_small's defaults: 256, 512, 768, 1024 channels)."""
    chans = (3, *stem_channels)
    stem = Sequential(
        *[conv_bn_act(chans[i], chans[i + 1], 3, 2 if i == 0 else 1) for i in range(len(chans) - 1)]
    )
    rows = [(str(i), hg_stage(*row[:4], layer_num, *row[4:])) for i, row in enumerate(stage_config)]
    stages = Graph(rows, outputs={c: str(i) for i, c in enumerate(LEVELS)})
    return Graph(
        [("stem", stem, "x"), ("pool", MaxPool(3, 2, 1)), ("stages", stages)],
        outputs={c: f"stages.{c}" for c in LEVELS},
    )


@zoo_model
def ppocrv4_server_det(mode: str = "large") -> Graph:
    """PP-OCRv4 server DBNet: (N, 3, H, W) -> ``{"maps": (N, 1, H, W)}`` (H, W multiples of
    32), the mean of the shrink map and PFHeadLocal's refined map."""
    channels = tuple(row[2] for row in HGNET_SMALL_DET)
    neck = lkpan(channels, 256, intracl=True)
    return detector(det_pphgnet(), neck, pf_head_local(256, mode))


@zoo_model
def ppocr_cls(scale: float = 0.35, class_dim: int = 2) -> Sequential:
    """The text-direction classifier: (N, 3, 48, 192) -> (N, class_dim) probabilities."""
    return Sequential(
        backbone=cls_mobilenet_v3("small", scale),
        head=cls_head(cls_mobilenet_v3_channels("small", scale), class_dim),
    )


DET_BACKBONES = ("MobileNetV3", "PPLCNetV3", "PPHGNet_small")
DET_NECKS = ("DBFPN", "RSEFPN", "LKPAN")
DET_HEADS = ("DBHead", "PFHeadLocal")
# arguments that only steer training: DB's step sharpness, learning rates, the NaN guard
DET_TRAINING_ONLY = ("k", "lr_mult_list", "lab_lr", "pretrained", "fix_nan")
NECK_ARGS = {
    "DBFPN": ("out_channels", "use_asf"),
    "RSEFPN": ("out_channels", "shortcut", "intracl"),
    "LKPAN": ("out_channels", "mode", "intracl"),
}


def _checked(section, what: str, supported, allowed=()) -> dict:
    """``section``'s arguments (training-only ones dropped); an unknown name or argument is
    an error naming it and what is supported."""
    from ...errors import ArgumentError, UnknownNameError

    name = section.get("name")
    if name not in supported:
        raise UnknownNameError(
            f"PaddleOCR config: {what} {name!r} is not supported (supported: "
            f"{', '.join(supported)})"
        )
    args = {k: v for k, v in section.items() if k != "name" and k not in DET_TRAINING_ONLY}
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ArgumentError(
            f"PaddleOCR config: {what} {name}: unsupported argument(s) {', '.join(unknown)} "
            f"(supported: {', '.join(allowed) or 'none'})"
        )
    return args


def _det_backbone(bb) -> tuple:
    """The backbone spec and its four widths."""
    from ...errors import ArgumentError

    args = _checked(bb, "Backbone", DET_BACKBONES, ("scale", "model_name", "disable_se", "det"))
    if bb["name"] == "MobileNetV3":
        args.pop("det", None)
        return det_mobilenet_v3(**args), det_mobilenet_v3_channels(**args)
    if not args.pop("det", False) or set(args) - {"scale"}:
        raise ArgumentError(f"PaddleOCR config: a detector's {bb['name']} needs det: True")
    if bb["name"] == "PPHGNet_small":
        if args:
            raise ArgumentError("PaddleOCR config: PPHGNet_small takes no scale")
        return det_pphgnet(), [row[2] for row in HGNET_SMALL_DET]
    scale = args.get("scale", 1.0)
    return det_pplcnetv3(scale), [int(w * scale) for w in DET_OUT]


def det_from_config(arch) -> Graph:
    """``model_type: det``: a MobileNetV3, PPLCNetV3(det=True) or PPHGNet_small(det=True)
    backbone, a DBFPN (``use_asf``: DBNet++), RSEFPN or LKPAN neck (``intracl``), and
    DBHead or PFHeadLocal (their ``k`` only steers training)."""
    backbone, channels = _det_backbone(arch.get("Backbone") or {})
    neck_cfg = arch.get("Neck") or {}
    nargs = _checked(neck_cfg, "Neck", DET_NECKS, NECK_ARGS.get(neck_cfg.get("name"), ()))
    from .det_db_fpn import NECKS
    from .det_db_head import HEADS

    neck = NECKS[neck_cfg["name"]](tuple(channels), **nargs)
    width = nargs.get("out_channels", 256)
    head_cfg = arch.get("Head") or {}
    hargs = _checked(head_cfg, "Head", DET_HEADS, ("mode",) if head_cfg.get("name") ==
                     "PFHeadLocal" else ())  # fmt: skip
    return detector(backbone, neck, HEADS[head_cfg["name"]](width, **hargs))


def cls_from_config(arch) -> Sequential:
    """``model_type: cls``: the classifier's MobileNetV3 and ClsHead."""
    bb = arch.get("Backbone") or {}
    args = _checked(bb, "Backbone", ("MobileNetV3",), ("scale", "model_name", "disable_se"))
    head = arch.get("Head") or {}
    hargs = _checked(head, "Head", ("ClsHead",), ("class_dim",))
    backbone = cls_mobilenet_v3(**args)
    width = cls_mobilenet_v3_channels(args.get("model_name", "small"), args.get("scale", 0.35))
    return Sequential(backbone=backbone, head=cls_head(width, hargs.get("class_dim", 2)))


__all__ = [
    "ppocrv3_det",
    "dbnet_pplcnetv3",
    "ppocrv4_server_det",
    "det_pphgnet",
    "ppocr_cls",
    "dbnet",
    "detector",
    "det_pplcnetv3",
    "det_from_config",
    "cls_from_config",
]
