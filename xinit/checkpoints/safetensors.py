"""safetensors, the neutral format (``xinit.state_dict`` names and layout), read with its
header checked against the file's bytes and written with a sorted header."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .errors import CheckpointError
from .limits import ReadBudget, _count

# safetensors dtype names -> numpy (BF16 is widened to float32: numpy has no bfloat16).
SAFETENSORS_DTYPES = {
    "BOOL": "b1", "U8": "u1", "I8": "i1", "U16": "<u2", "I16": "<i2", "U32": "<u4",
    "I32": "<i4", "U64": "<u8", "I64": "<i8", "F16": "<f2", "BF16": "<u2", "F32": "<f4",
    "F64": "<f8",
}  # fmt: skip
SAFETENSORS_MAX_HEADER = 100 << 20


def bf16_to_float32(bits: np.ndarray) -> np.ndarray:
    """bfloat16 values (as their uint16 bit patterns) widened exactly to float32."""
    return (bits.astype("<u4") << 16).view("<f4").astype(np.float32)


def _read_safetensors(path: Path, budget: ReadBudget, notes: list[str]) -> dict[str, Any]:
    """The safetensors file at ``path``, its header checked against the file's bytes before
    any array is made (dtype, shape, offsets inside the data, sizes that match)."""
    import json
    import struct

    budget.charge(path.stat().st_size, "the file itself")  # its arrays are views of it
    data = bytearray(path.stat().st_size)
    with open(path, "rb") as f:
        got = f.readinto(data)
    if got < 8:
        raise CheckpointError(f"{path}: {got} bytes, too short for a safetensors header")
    (size,) = struct.unpack("<Q", bytes(data[:8]))
    if size > min(len(data) - 8, SAFETENSORS_MAX_HEADER):
        raise CheckpointError(f"{path}: header of {size:,} bytes in a {len(data):,}-byte file")
    header = json.loads(bytes(data[8 : 8 + size]))
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the safetensors header is not a JSON object")
    body = memoryview(data)[8 + size :]
    out: dict[str, Any] = {}
    widened: list[str] = []
    spans: list[tuple[int, int, str]] = []  # (first byte, end, name) of each tensor
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            kind = entry.get("dtype") if isinstance(entry, dict) else entry
            raise CheckpointError(f"{name}: unsupported safetensors dtype {kind!r}")
        dtype = np.dtype(SAFETENSORS_DTYPES[entry["dtype"]])
        count = _count(entry.get("shape"), name)
        offsets = entry.get("data_offsets")
        if (
            not isinstance(offsets, list)
            or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= len(body)
            or offsets[1] - offsets[0] != count * dtype.itemsize
        ):
            raise CheckpointError(
                f"{name}: data_offsets {offsets!r} do not hold shape {entry.get('shape')} "
                f"{entry['dtype']} inside the {len(body):,} data bytes"
            )
        array = np.frombuffer(body, dtype, count, offsets[0]).reshape(entry["shape"])
        if entry["dtype"] == "BF16":
            budget.charge(4 * count, f"{name} widened from bfloat16")
            array = bf16_to_float32(array)
            widened.append(name)
        out[name] = array
        spans.append((offsets[0], offsets[1], name))
    _check_disjoint(path, spans)
    if widened:
        notes.append(f"{len(widened)} bfloat16 tensors widened exactly to float32")
    return out


def _check_disjoint(path: Path, spans: list[tuple[int, int, str]]) -> None:
    """Refuse tensors whose bytes overlap in the data buffer (one write would change both),
    as safetensors' own loader does; the message names the first two that share bytes."""
    spans = sorted(s for s in spans if s[1] > s[0])  # empty tensors occupy no bytes
    for (start, end, name), (next_start, next_end, other) in zip(spans, spans[1:]):
        if next_start < end:
            raise CheckpointError(
                f"{path}: the tensors {name!r} (bytes {start}-{end}) and {other!r} (bytes "
                f"{next_start}-{next_end}) overlap in the data buffer; safetensors refuses "
                "such a file"
            )


def safetensors_bytes(
    state: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> bytes:
    """``state`` as a safetensors file, the same bytes for the same arrays and metadata:
    the header's keys are sorted (safetensors itself orders the metadata at random)."""
    import json

    from safetensors.numpy import save

    blob = save(dict(state), metadata=dict(metadata) if metadata else None)
    size = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data that follows stays 8-byte aligned
    return len(text).to_bytes(8, "little") + text + blob[8 + size :]


def _write_safetensors(state: dict[str, np.ndarray], f) -> None:
    f.write(safetensors_bytes(state))
