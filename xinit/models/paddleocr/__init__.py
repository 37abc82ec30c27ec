"""PaddleOCR's recognisers (``ppocr/modeling/``) as xinit specs: PaddleOCR's parameter names
(``backbone.*``, ``neck.*``, ``head.*``) and its own initialisation, one module per backbone,
neck and head, as PaddleOCR's files are split. :func:`from_config` reads the ``Architecture``
section of a PaddleOCR YAML config into the spec."""

from __future__ import annotations

from ...blocks import Sequential
from .._arguments import zoo_model
from .config import BACKBONES, HEADS, NECKS, character_count, default_input, from_config
from .det import dbnet_pplcnetv3, ppocr_cls, ppocrv3_det, ppocrv4_server_det
from .det_db_fpn import dbfpn, lkpan, rsefpn
from .det_db_head import cls_head, db_head, pf_head_local
from .det_mobilenet_v3 import cls_mobilenet_v3, det_mobilenet_v3
from .rec_abinet_head import abinet_head
from .rec_ctc_head import ctc_head
from .rec_hgnet import pphgnet, pphgnet_small, pphgnet_tiny
from .rec_lcnetv3 import learnable_affine_block, learnable_rep_layer, pplcnetv3
from .rec_mv1_enhance import mobilenet_v1_enhance
from .rec_svtrnet import svtrnet
from .rec_visionlan_head import vl_head
from .rnn import encoder_with_svtr, sequence_encoder

# ppocr/utils/ppocr_keys_v1.txt: 6623 characters, + the CTC blank, + the space
PPOCR_KEYS_V1_CLASSES = 6625


@zoo_model
def ppocrv2_rec(out_channels: int = PPOCR_KEYS_V1_CLASSES, softmax: bool = True) -> Sequential:
    """PP-OCRv2's CRNN (``ch_PP-OCRv2_rec.yml``): MobileNetV1Enhance (scale 0.5),
    SequenceEncoder ``rnn`` (hidden 64), CTCHead (mid_channels 96). Input (N, 3, 32, W)."""
    backbone = mobilenet_v1_enhance(scale=0.5)
    neck, width = sequence_encoder(512, "rnn", hidden_size=64)
    head = ctc_head(width, out_channels, mid_channels=96, softmax=softmax)
    return Sequential(backbone=backbone, neck=neck, head=head)


def _v4_architecture(backbone: dict) -> dict:
    """ch_PP-OCRv4_rec(_hgnet).yml's Architecture: the backbone, then MultiHead's CTC branch
    (SVTR neck: dims 120, depth 2, hidden 120, kernel (1, 3)) and its NRTR branch."""
    svtr = {"name": "svtr", "dims": 120, "depth": 2, "hidden_dims": 120, "kernel_size": [1, 3]}
    return {
        "Architecture": {
            "model_type": "rec",
            "Backbone": backbone,
            "Head": {
                "name": "MultiHead",
                "head_list": [
                    {"CTCHead": {"Neck": {**svtr, "use_guide": True}, "Head": {"fc_decay": 1e-5}}},
                    {"NRTRHead": {"nrtr_dim": 384, "max_text_length": 25}},
                ],
            },
        }
    }


@zoo_model
def ppocrv4_rec(out_channels: int = PPOCR_KEYS_V1_CLASSES, softmax: bool = True) -> Sequential:
    """PP-OCRv4 mobile (``ch_PP-OCRv4_rec.yml``, its MultiHead's CTC branch, as exported):
    PPLCNetV3 (scale 0.95), ``head.ctc_encoder`` (SVTR neck), ``head.ctc_head``. Input
    (N, 3, 48, W)."""
    arch = _v4_architecture({"name": "PPLCNetV3", "scale": 0.95})
    return from_config(arch, out_channels=out_channels, softmax=softmax)


@zoo_model
def ppocrv4_server_rec(
    out_channels: int = PPOCR_KEYS_V1_CLASSES, softmax: bool = True
) -> Sequential:
    """PP-OCRv4 server (``ch_PP-OCRv4_rec_hgnet.yml``): PPHGNet_small and the same MultiHead
    CTC branch. Input (N, 3, 48, W)."""
    arch = _v4_architecture({"name": "PPHGNet_small"})
    return from_config(arch, out_channels=out_channels, softmax=softmax)


# configs/rec/rec_svtrnet.yml's Backbone (its STN_ON Transform left out, as in PaddleOCR's
# released rec_svtr_tiny_none_ctc_en)
SVTR_TINY = {
    "name": "SVTRNet",
    "img_size": [32, 100],
    "out_char_num": 25,
    "out_channels": 192,
    "patch_merging": "Conv",
    "embed_dim": [64, 128, 256],
    "depth": [3, 6, 3],
    "num_heads": [2, 4, 8],
    "mixer": ["Local"] * 6 + ["Global"] * 6,
    "local_mixer": [[7, 11], [7, 11], [7, 11]],
    "last_stage": True,
    "prenorm": False,
}


@zoo_model
def svtr_tiny(out_channels: int = 37, softmax: bool = True) -> Sequential:
    """SVTR-Tiny (``rec_svtrnet.yml``): SVTRNet (Local then Global mixers), SequenceEncoder
    ``reshape``, CTCHead; 37 classes (PaddleOCR's 36 default characters + blank). Input
    (N, 3, 32, 100)."""
    arch = {
        "Backbone": SVTR_TINY,
        "Neck": {"name": "SequenceEncoder", "encoder_type": "reshape"},
        "Head": {"name": "CTCHead"},
    }
    return from_config({"Architecture": arch}, out_channels=out_channels, softmax=softmax)


# configs/rec/rec_r45_visionlan.yml's Architecture (Transform empty)
VISIONLAN = {
    "model_type": "rec",
    "algorithm": "VisionLAN",
    "Backbone": {"name": "ResNet45", "strides": [2, 2, 2, 1, 1]},
    "Head": {
        "name": "VLHead",
        "n_layers": 3,
        "n_position": 256,
        "n_dim": 512,
        "max_text_length": 25,
        "training_step": "LA",
    },
}


@zoo_model
def visionlan(out_channels: int = 37) -> Sequential:
    """VisionLAN (``rec_r45_visionlan.yml``): ResNet45 (strides 2, 2, 2, 1, 1) and VLHead's
    inference path; ``out_channels`` as PaddleOCR sets it (its 36 default characters and
    the end), ``out_channels`` + 1 classes. Input (N, 3, 64, 256), output (26, N, classes)."""
    return from_config({"Architecture": VISIONLAN}, out_channels=out_channels)


# configs/rec/rec_r45_abinet.yml's Architecture (Transform empty)
ABINET = {
    "model_type": "rec",
    "algorithm": "ABINet",
    "Backbone": {"name": "ResNet45"},
    "Head": {"name": "ABINetHead", "use_lang": True, "iter_size": 3},
}


@zoo_model
def abinet(out_channels: int = 37, softmax: bool = True, use_lang: bool = True) -> Sequential:
    """ABINet (``rec_r45_abinet.yml``): ResNet45 (strides 2, 1, 2, 1, 1) and ABINetHead's
    vision model (transformer encoder, PositionAttention, ``cls``), then its language model
    and alignment run 3 times on the same weights (``use_lang=False``: the vision model
    alone); 37 classes (``</s>`` and PaddleOCR's 36 default characters). Input
    (N, 3, 32, 128), output (N, 26, classes)."""
    head = {**ABINET["Head"], "use_lang": use_lang}
    arch = {**ABINET, "Head": head}
    return from_config({"Architecture": arch}, out_channels=out_channels, softmax=softmax)


__all__ = [
    "from_config",
    "character_count",
    "default_input",
    "BACKBONES",
    "NECKS",
    "HEADS",
    "mobilenet_v1_enhance",
    "pplcnetv3",
    "learnable_rep_layer",
    "learnable_affine_block",
    "sequence_encoder",
    "encoder_with_svtr",
    "ctc_head",
    "ppocrv2_rec",
    "ppocrv4_rec",
    "ppocrv4_server_rec",
    "svtrnet",
    "svtr_tiny",
    "visionlan",
    "vl_head",
    "abinet",
    "abinet_head",
    "pphgnet",
    "pphgnet_small",
    "pphgnet_tiny",
    "ppocrv3_det",
    "dbnet_pplcnetv3",
    "ppocrv4_server_det",
    "ppocr_cls",
    "det_mobilenet_v3",
    "cls_mobilenet_v3",
    "dbfpn",
    "rsefpn",
    "lkpan",
    "db_head",
    "pf_head_local",
    "cls_head",
]
