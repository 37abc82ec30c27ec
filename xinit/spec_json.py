"""Specs are data: any spec to readable, diffable JSON and back, exactly.

``save_spec(spec, path)`` / ``load_spec(path)`` (and the text forms ``spec_to_json`` /
``spec_from_json``, the dict forms ``spec_to_dict`` / ``spec_from_dict``) round-trip every
spec: the loaded spec equals the original and builds bit-identically. Loading needs no
framework: it reads the table of kinds (:mod:`xinit.kinds`) and the initializers by name.

The document is ``{"format": "xinit-spec", "version": 1, "spec": ...}``. A layer is
``{"kind": "conv", <every dataclass field>}``; ``Sequential`` is ``{"kind": "sequential",
"steps": [{"name", "spec"}, ...]}``, ``Residual`` ``{"kind": "residual", <its fields>}``, a
``Graph`` ``{"kind": <its kind>, "inputs": [...], "nodes": [{"name", "inputs", "spec"}, ...],
"outputs": ...}`` (a name: one output; a list: a tuple; an object: a dict; the key ``nodes``
marks a graph, whose kind may be a factory's, ``transformer_encoder_layer``); a
:class:`~xinit.graph.Reuse` node's spec is ``{"reuse": <the node it runs again>}``. An initializer
is ``{"initializer": "KaimingUniform", <its fields>}``. Field values: JSON scalars, arrays
for tuples (``{"list": [...]}`` for a list, ``{"dict": {...}}`` for a dict), floats written
by ``repr`` (exact; ``{"float": "inf"}`` for the non-finite), nested specs and initializers
as above. The attributes a spec read from a native model carries beside its fields
(``_xinit_flax_cell``, ``_xinit_enclosing``: they change its map and its defaults) are kept
under their own names; caches are dropped (they are derived), and any other attribute is
refused rather than lost.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import kinds
from .blocks import Residual, Sequential
from .errors import XinitError
from .graph import Graph, Reuse
from .initializers import Initializer
from .layers import Layer

FORMAT = "xinit-spec"
VERSION = 1
MAX_DEPTH = 100  # nesting a spec document may have (real models: about 10)

# Attributes a spec may carry beside its fields (object.__setattr__ on a frozen spec).
# Caches, derived from the fields, are not saved: a loaded spec computes them again.
_CACHES = frozenset({"_params_cache", "_xinit_maps"})


class SpecFormatError(XinitError, ValueError):
    """A spec document xinit cannot read (or a spec it cannot write): the message names the
    JSON path at fault (``$.spec.steps[3].spec.kernel_size``) and what was expected."""


# ---- the hidden attributes of specs read from native models ---------------------------------
def _encode_enclosing(value, where: str) -> dict:
    from .native import Enclosing

    if not isinstance(value, Enclosing):
        raise SpecFormatError(f"{where}: expected an Enclosing block; got {value!r}")
    return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}


def _decode_enclosing(value, where: str):
    from .native import Enclosing

    names = [f.name for f in dataclasses.fields(Enclosing)]
    if (
        not isinstance(value, dict)
        or set(value) != set(names)
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise SpecFormatError(f"{where}: expected an object of strings {names}; got {value!r}")
    return Enclosing(**value)


def _string(value, where: str) -> str:
    if not isinstance(value, str):
        raise SpecFormatError(f"{where}: expected a string; got {value!r}")
    return value


# name -> (encode, decode): Flax's own recurrent cell a spec was read from (its map is that
# cell's layout); the framework block around a layer that re-initialises it (its defaults)
_HIDDEN: dict[str, tuple[Callable[[Any, str], Any], Callable[[Any, str], Any]]] = {
    "_xinit_flax_cell": (_string, _string),
    "_xinit_enclosing": (_encode_enclosing, _decode_enclosing),
}


# ---- writing --------------------------------------------------------------------------------
def _initializer_classes() -> dict[str, type]:
    """Every initializer class by name (``Default`` included, loaded on first use)."""
    from . import init

    return {name: getattr(init, name) for name in init._names()}


def _hidden(spec, where: str) -> dict[str, Any]:
    """The attributes ``spec`` carries beside its fields, encoded; a cache is dropped, an
    attribute this format does not know is refused (never silently lost)."""
    fields = {f.name for f in dataclasses.fields(spec)}
    out = {}
    for name, value in vars(spec).items():
        if name in fields or name in _CACHES:
            continue
        if name not in _HIDDEN:
            raise SpecFormatError(
                f"{where}: {type(spec).__name__} carries attribute {name!r} beside its fields, "
                f"which a spec document cannot hold (known: {', '.join(_HIDDEN)})"
            )
        out[name] = _HIDDEN[name][0](value, f"{where}.{name}")
    return out


def _encode_fields(obj, where: str) -> dict[str, Any]:
    return {
        f.name: _encode(getattr(obj, f.name), f"{where}.{f.name}")
        for f in dataclasses.fields(obj)
        if f.init
    }


def _encode_spec(spec, where: str) -> dict[str, Any]:
    if isinstance(spec, Graph):
        if spec.returns == "single":
            outputs: Any = spec.outputs[0][1]
        elif spec.returns == "tuple":
            outputs = [ref for _, ref in spec.outputs]
        else:
            outputs = dict(spec.outputs)
        nodes = [
            {
                "name": name,
                "inputs": list(refs),
                "spec": {"reuse": node.node}
                if isinstance(node, Reuse)
                else _encode(node, f"{where}.nodes[{i}].spec"),
            }
            for i, (name, node, refs) in enumerate(spec.nodes)
        ]
        out = {"kind": spec.kind, "inputs": list(spec.inputs), "nodes": nodes, "outputs": outputs}
    elif isinstance(spec, Sequential):
        steps = [
            {"name": name, "spec": _encode(child, f"{where}.steps[{i}].spec")}
            for i, (name, child) in enumerate(spec.steps)
        ]
        out = {"kind": "sequential", "steps": steps}
    elif isinstance(spec, Residual):
        out = {"kind": "residual", **_encode_fields(spec, where)}
    else:
        registered = kinds.get(spec.kind).spec if kinds.is_known(spec.kind) else None
        if (
            registered is not type(spec)
            or spec.kind in ("sequential", "residual")
            or not dataclasses.is_dataclass(spec)
        ):
            raise SpecFormatError(
                f"{where}: {type(spec).__name__} (kind {spec.kind!r}) is not the registered "
                "spec of a layer kind, so a spec document cannot name it"
            )
        fields = _encode_fields(spec, where)
        if "nodes" in fields or "kind" in fields:
            raise SpecFormatError(f"{where}: {type(spec).__name__} has a field named like a tag")
        out = {"kind": spec.kind, **fields}
    return {**out, **_hidden(spec, where)}


def _encode(value, where: str) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else {"float": repr(value)}
    if isinstance(value, tuple):
        return [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, list):
        return {"list": [_encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, Initializer):
        if _initializer_classes().get(type(value).__name__) is not type(value):
            raise SpecFormatError(
                f"{where}: {type(value).__name__} is no initializer of xinit.init, so a spec "
                "document cannot name it"
            )
        return {"initializer": type(value).__name__, **_encode_fields(value, where)}
    if isinstance(value, (Layer, Sequential, Residual, Graph)):
        return _encode_spec(value, where)
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {"dict": {k: _encode(v, f"{where}.{k}") for k, v in value.items()}}
    raise SpecFormatError(
        f"{where}: a value of type {type(value).__name__} ({value!r:.80}) has no form in a "
        "spec document (numbers, strings, tuples, specs and initializers do)"
    )


def spec_to_dict(spec) -> dict[str, Any]:
    """``spec`` as the spec document (plain dicts, lists and scalars), ready for ``json``."""
    if not isinstance(spec, (Layer, Sequential, Residual, Graph)):
        raise SpecFormatError(f"$.spec: expected a spec; got {type(spec).__name__}")
    return {"format": FORMAT, "version": VERSION, "spec": _encode_spec(spec, "$.spec")}


def _dumps(value, indent: str = "", key: str = "") -> str:
    """JSON with what fits in 96 columns on one line, the rest one field per line
    (diffable); ``key`` is what precedes ``value`` on its line."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or len(indent + key + flat) <= 96 or not value:
        return flat
    inner = indent + "  "
    if isinstance(value, list):
        items = [inner + _dumps(v, inner) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + indent + "]"
    keys = [f"{json.dumps(k, ensure_ascii=False)}: " for k in value]
    items = [f"{inner}{k}{_dumps(v, inner, k)}" for k, v in zip(keys, value.values())]
    return "{\n" + ",\n".join(items) + "\n" + indent + "}"


def spec_to_json(spec) -> str:
    """``spec`` as JSON text (see the module's docstring for the format)."""
    return _dumps(spec_to_dict(spec)) + "\n"


def save_spec(spec, path: str | os.PathLike) -> Path:
    """Write ``spec`` to ``path`` as JSON (atomically: a crash never leaves half a file)."""
    from .checkpoints.atomic import atomic_write

    text = spec_to_json(spec).encode("utf-8")
    return atomic_write(path, lambda file: file.write(text))


# ---- reading --------------------------------------------------------------------------------
def _object(value, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise SpecFormatError(f"{where}: expected {what} (an object); got {_shown(value)}")
    return value


def _shown(value) -> str:
    text = json.dumps(value, ensure_ascii=False) if _jsonable(value) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _check_keys(obj: dict, allowed, required, where: str, what: str) -> None:
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        raise SpecFormatError(
            f"{where}: {what} has no field {unknown[0]!r} (its fields: {', '.join(allowed)})"
        )
    missing = [k for k in required if k not in obj]
    if missing:
        raise SpecFormatError(f"{where}: {what} needs field {missing[0]!r}")


def _names(value, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SpecFormatError(f"{where}: expected a list of names; got {_shown(value)}")
    return tuple(value)


def _construct(make: Callable[[], Any], where: str, what: str):
    """``make()``, its complaint about the values (a spec's own check) naming ``where``."""
    try:
        return make()
    except (XinitError, TypeError, ValueError) as err:
        raise SpecFormatError(f"{where}: {what}: {err}") from None


def _split_hidden(obj: dict, where: str) -> tuple[dict, dict]:
    plain = {k: v for k, v in obj.items() if not k.startswith("_")}
    hidden = {}
    for name, value in obj.items():
        if name.startswith("_"):
            if name not in _HIDDEN:
                raise SpecFormatError(
                    f"{where}: unknown attribute {name!r} (known: {', '.join(_HIDDEN)})"
                )
            hidden[name] = _HIDDEN[name][1](value, f"{where}.{name}")
    return plain, hidden


def _decode_spec(value, where: str, depth: int):
    if depth > MAX_DEPTH:
        raise SpecFormatError(f"{where}: nested more than {MAX_DEPTH} deep")
    obj = _object(value, where, "a spec")
    if "kind" not in obj:
        raise SpecFormatError(f"{where}: a spec needs its 'kind'; got keys {sorted(obj)}")
    kind = obj["kind"]
    if not isinstance(kind, str):
        raise SpecFormatError(f"{where}.kind: expected a string; got {_shown(kind)}")
    obj, hidden = _split_hidden(obj, where)
    if "nodes" in obj:
        spec = _decode_graph(obj, where, depth)
    elif kind == "sequential":
        _check_keys(obj, ("kind", "steps"), ("steps",), where, "Sequential")
        pairs = [
            (step["name"], _decode_spec(step["spec"], f"{at}.spec", depth + 1))
            for at, step in _entries(obj, "steps", ("name", "spec"), where)
        ]
        spec = _construct(lambda: Sequential(*pairs), where, "Sequential")
    else:
        cls = Residual if kind == "residual" else _layer_class(kind, f"{where}.kind")
        spec = _decode_fields(cls, obj, where, depth, tag="kind")
    for name, attr in hidden.items():
        object.__setattr__(spec, name, attr)
    return spec


def _entries(obj: dict, key: str, fields: tuple[str, ...], where: str) -> list[tuple[str, dict]]:
    """``obj[key]``, a list of objects each with exactly ``fields``, with their paths."""
    items = obj[key]
    if not isinstance(items, list):
        raise SpecFormatError(f"{where}.{key}: expected a list; got {_shown(items)}")
    out = []
    for i, item in enumerate(items):
        at = f"{where}.{key}[{i}]"
        what = f"an entry of {key}"
        _check_keys(_object(item, at, what), fields, fields, at, what)
        out.append((at, item))
    return out


def _layer_class(kind: str, where: str) -> type:
    if not kinds.is_known(kind) or kinds.get(kind).spec is None:
        known = [n for n in kinds.names() if kinds.get(n).spec is not None]
        close = difflib.get_close_matches(kind, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise SpecFormatError(
            f"{where}: unknown layer kind {kind!r}{hint} (known kinds: {', '.join(known)}; "
            "containers: sequential, residual, and graphs, which have 'nodes')"
        )
    return kinds.get(kind).spec


def _decode_fields(cls: type, obj: dict, where: str, depth: int, tag: str):
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    _check_keys(obj, (tag, *names), required, where, cls.__name__)
    values = {k: _decode(v, f"{where}.{k}", depth + 1) for k, v in obj.items() if k != tag}
    return _construct(lambda: cls(**values), where, cls.__name__)


def _decode_graph(obj: dict, where: str, depth: int) -> Graph:
    _check_keys(obj, ("kind", "inputs", "nodes", "outputs"), ("nodes",), where, "Graph")
    rows = [
        (
            node["name"],
            _decode_node(node["spec"], f"{at}.spec", depth + 1),
            _names(node["inputs"], f"{at}.inputs"),
        )
        for at, node in _entries(obj, "nodes", ("name", "inputs", "spec"), where)
    ]
    inputs = _names(obj.get("inputs", ["x"]), f"{where}.inputs")
    outputs = obj.get("outputs")
    if isinstance(outputs, list):
        outputs = _names(outputs, f"{where}.outputs")
    elif outputs is not None and not isinstance(outputs, (str, dict)):
        raise SpecFormatError(
            f"{where}.outputs: expected a name, a list of names or an object of names; "
            f"got {_shown(outputs)}"
        )
    kind = obj["kind"]
    return _construct(
        lambda: Graph(rows, inputs=inputs, outputs=outputs, kind=kind), where, "Graph"
    )


def _decode_node(value, where: str, depth: int):
    """A graph node's spec: a spec, or ``{"reuse": name}`` (a :class:`Reuse` node)."""
    if isinstance(value, dict) and "reuse" in value:
        _check_keys(value, ("reuse",), ("reuse",), where, "Reuse")
        return _construct(lambda: Reuse(value["reuse"]), where, "Reuse")
    return _decode_spec(value, where, depth)


def _decode(value, where: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise SpecFormatError(f"{where}: nested more than {MAX_DEPTH} deep")
    if isinstance(value, list):
        return tuple(_decode(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value))
    if not isinstance(value, dict):
        return value
    if "kind" in value:
        return _decode_spec(value, where, depth + 1)
    if "initializer" in value:
        name = value["initializer"]
        classes = _initializer_classes()
        if name not in classes:
            raise SpecFormatError(
                f"{where}.initializer: unknown initializer {_shown(name)} "
                f"(known: {', '.join(classes)})"
            )
        return _decode_fields(classes[name], value, where, depth, tag="initializer")
    if len(value) == 1:
        (tag, inner), at = next(iter(value.items())), f"{where}.{next(iter(value))}"
        if tag == "list" and isinstance(inner, list):
            return [_decode(v, f"{at}[{i}]", depth + 1) for i, v in enumerate(inner)]
        if tag == "dict" and isinstance(inner, dict):
            return {k: _decode(v, f"{at}.{k}", depth + 1) for k, v in inner.items()}
        if tag == "float" and inner in ("inf", "-inf", "nan"):
            return float(inner)
    raise SpecFormatError(
        f"{where}: an object must be a spec ('kind'), an initializer ('initializer') or "
        f"{{'list': [...]}}, {{'dict': {{...}}}}, {{'float': 'inf'|'-inf'|'nan'}}; "
        f"got {_shown(value)}"
    )


def spec_from_dict(document: Mapping[str, Any]):
    """The spec a spec document (as :func:`spec_to_dict` gives it) describes."""
    doc = _object(document, "$", "a spec document")
    fmt, version = doc.get("format"), doc.get("version")
    if fmt != FORMAT:
        raise SpecFormatError(f"$.format: expected {FORMAT!r}; got {_shown(fmt)}")
    if version != VERSION or isinstance(version, bool):
        newer = isinstance(version, int) and not isinstance(version, bool) and version > VERSION
        hint = "; it was written by a newer xinit: upgrade xinit" if newer else ""
        raise SpecFormatError(
            f"$.version: this xinit reads version {VERSION}; got {_shown(version)}{hint}"
        )
    _check_keys(doc, ("format", "version", "spec"), ("spec",), "$", "a spec document")
    return _decode_spec(doc["spec"], "$.spec", 0)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SpecFormatError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str):
    raise SpecFormatError(f"{name} is not JSON; write {{'float': 'inf'|'-inf'|'nan'}}")


def spec_from_json(text: str | bytes) -> Any:
    """The spec the JSON ``text`` describes (see :func:`spec_to_json`)."""
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise SpecFormatError(f"not JSON: {err}") from None
    except RecursionError:
        raise SpecFormatError("the JSON is nested too deeply") from None
    return spec_from_dict(document)


def load_spec(path: str | os.PathLike):
    """The spec saved at ``path`` by :func:`save_spec` (no framework needed)."""
    data = Path(path).read_bytes()
    try:
        return spec_from_json(data)
    except SpecFormatError as err:
        raise SpecFormatError(f"{path}: {err}") from None


__all__ = [
    "FORMAT",
    "VERSION",
    "SpecFormatError",
    "spec_to_dict",
    "spec_from_dict",
    "spec_to_json",
    "spec_from_json",
    "save_spec",
    "load_spec",
]
