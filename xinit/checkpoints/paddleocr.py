"""Checkpoints as PaddleOCR's training writes them: distillation submodels, training-only
head branches, and the optimizer files saved beside the weights.

- A distillation model (``DistillationModel``) saves each of its models under its config
  name: ``Student.backbone.conv1._conv.weight``, ``Teacher.head...``. :func:`submodel_map`
  picks one (``Student`` by request, or the only one) as a ``prefix_map`` for
  :func:`xinit.port`: its prefix removed, every other submodel's keys dropped and listed.
- A recogniser trained with ``MultiHead`` (CTC plus an SAR or NRTR branch) runs only the CTC
  branch at inference. :func:`training_branches` names the other branches' prefixes, dropped
  and listed, when the spec has no counterpart for them. Likewise VisionLAN's ``VLHead``:
  its training-only ``MLM``, ``Prediction.pp_share``/``w_share`` and the saved constant
  ``pos_table`` (the spec computes it); ABINet's ``pe`` sinusoid buffers likewise.
- ``best_accuracy.pdparams`` comes with ``.pdopt`` (optimizer state) and ``.states``
  (epoch, metrics): :func:`sidecars` names them for the report; they are never read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ..errors import ArgumentError

MODEL_PARTS = ("transform", "backbone", "neck", "head")  # BaseModel's children
TRAINING_BRANCHES = {  # MultiHead's children that only training runs
    "head.sar_head.": "SAR",
    "head.gtc_head.": "NRTR",
    "head.before_gtc.": "NRTR",
}
INFERENCE_BRANCH = "head.ctc_head."
VISIONLAN = "head.MLM_VRM."  # VLHead: inference runs SequenceModeling and Prediction.pp/w_vrm
VISIONLAN_TRAINING = {  # its training-only parts, and the constant sinusoid table it saves
    "head.MLM_VRM.MLM.": "VisionLAN's MLM: training only",
    "head.MLM_VRM.Prediction.pp_share.": "VisionLAN's shared PP layer: training only",
    "head.MLM_VRM.Prediction.w_share.": "VisionLAN's shared classifier: training only",
    "head.MLM_VRM.SequenceModeling.position_enc.pos_table": "the fixed sinusoid table, "
    "which the spec computes",
}
ABINET = "head.decoder.k_encoder."  # ABINetHead's vision model (PositionAttention's keys)
ABINET_CONSTANTS = {  # the sinusoid tables ABINetHead saves as buffers ``pe``
    "head.pos_encoder.pe": "the fixed sinusoid table, which the spec computes",
    "head.decoder.pos_encoder.pe": "the fixed sinusoid table, which the spec computes",
    "head.language.token_encoder.pe": "the fixed sinusoid table, which the spec computes",
    "head.language.pos_encoder.pe": "the fixed sinusoid table, which the spec computes",
}
SIDECARS = {".pdopt": "optimizer state", ".states": "training state (epoch, metrics)"}


def submodels(keys: Iterable[str]) -> list[str]:
    """The submodel names of a distillation checkpoint (``Student``, ``Teacher``...), in
    first-seen order; empty when the keys are a plain model's (``backbone.…``)."""
    names: dict[str, None] = {}
    for key in keys:
        first, _, rest = key.partition(".")
        if first in MODEL_PARTS or rest.partition(".")[0] not in MODEL_PARTS:
            return []
        names.setdefault(first)
    return list(names)


def submodel_map(keys: Iterable[str], submodel: str | None) -> dict[str, str | None]:
    """A ``prefix_map`` that keeps ``submodel`` of a distillation checkpoint under the plain
    model's names and drops the others (empty for a plain checkpoint). ``submodel=None``
    takes the only one; with several it is an :class:`ArgumentError` naming them."""
    keys = list(keys)
    names = submodels(keys)
    if not names:
        if submodel is not None:
            shown = ", ".join(sorted({k.partition(".")[0] for k in keys})[:6])
            raise ArgumentError(
                f"submodel={submodel!r}: this checkpoint is not a distillation checkpoint "
                f"(its keys start with {shown}, not Student./Teacher.)"
            )
        return {}
    if submodel is None:
        if len(names) > 1:
            raise ArgumentError(
                f"this is a distillation checkpoint with {len(names)} models "
                f"({', '.join(names)}): choose one with submodel= (CLI: --submodel "
                f"{names[0]})"
            )
        submodel = names[0]
    if submodel not in names:
        raise ArgumentError(
            f"submodel {submodel!r} is not in this distillation checkpoint; it holds "
            f"{', '.join(names)}"
        )
    return {f"{n}.": ("" if n == submodel else None) for n in names}


def training_branches(keys: Iterable[str], spec_paths: Iterable[str]) -> dict[str, None]:
    """``prefix -> None`` for each MultiHead training-only branch the checkpoint holds and the
    spec has no counterpart of, provided the spec has the CTC branch that inference runs."""
    paths = list(spec_paths)
    keys = list(keys)
    branches = {}
    for inference, training in (
        (INFERENCE_BRANCH, TRAINING_BRANCHES),
        (VISIONLAN, VISIONLAN_TRAINING),
        (ABINET, ABINET_CONSTANTS),
    ):
        if any(p.startswith(inference) for p in paths):
            branches.update(
                {
                    prefix: None
                    for prefix in training
                    if any(k.startswith(prefix) for k in keys)
                    and not any(p.startswith(prefix) for p in paths)
                }
            )
    return branches


def select(
    keys: Iterable[str], spec_paths: Iterable[str], submodel: str | None = None
) -> tuple[dict[str, str | None], list[str]]:
    """The ``prefix_map`` that reads a PaddleOCR training checkpoint into a spec with
    parameter paths ``spec_paths``: the distillation ``submodel`` kept under the plain names
    (:func:`submodel_map`) and the training-only MultiHead branches dropped
    (:func:`training_branches`), with a report line for each choice."""
    keys = list(keys)
    chosen = submodel_map(keys, submodel)
    keep = next((p for p, v in chosen.items() if v == ""), "")
    inner = [k[len(keep) :] for k in keys if k.startswith(keep)]
    branches = training_branches(inner, spec_paths)
    notes = []
    if chosen:
        others = [p[:-1] for p, v in chosen.items() if v is None]
        dropped = len(keys) - len(inner)
        notes.append(
            f"distillation checkpoint: kept {keep[:-1]} ({len(inner)} keys)"
            + (f", dropped {', '.join(others)} ({dropped} keys)" if others else "")
        )
    for prefix in branches:
        n = sum(1 for k in inner if k.startswith(prefix))
        if prefix in TRAINING_BRANCHES:
            notes.append(
                f"MultiHead training-only branch {prefix[:-1]} ({TRAINING_BRANCHES[prefix]}): "
                f"{n} keys dropped; inference runs only the CTC branch"
            )
        else:
            why = {**VISIONLAN_TRAINING, **ABINET_CONSTANTS}[prefix]
            notes.append(f"{prefix.rstrip('.')} ({why}): {n} keys dropped")
    return {**chosen, **{keep + p: None for p in branches}}, notes


def sidecars(path: str | os.PathLike) -> list[str]:
    """Report lines for PaddleOCR's non-weight files saved beside ``path`` (a .pdparams)."""
    path = Path(path)
    if path.suffix != ".pdparams":
        return []
    return [
        f"{path.with_suffix(ext).name} beside the checkpoint is {what}, not weights: ignored"
        for ext, what in SIDECARS.items()
        if path.with_suffix(ext).is_file()
    ]


def not_weights(path: str | os.PathLike) -> str | None:
    """Why ``path`` is not a weights file PaddleOCR wrote (a .pdopt or .states), or None."""
    suffix = Path(path).suffix
    if suffix in SIDECARS:
        weights = Path(path).with_suffix(".pdparams").name
        return f"{Path(path).name} is PaddleOCR's {SIDECARS[suffix]}, not weights: pass {weights}"
    return None


__all__ = [
    "submodels",
    "submodel_map",
    "training_branches",
    "select",
    "sidecars",
    "not_weights",
    "TRAINING_BRANCHES",
]
