"""Which parts of a spec become classes of the exported file, and with which arguments.

Every container (Residual, Graph, a named Sequential) becomes a class; containers of the
same structure (same child names and kinds, equal non-integer fields) share one class, whose
constructor takes the integer fields that differ between them (channels, strides, ...): a
ResNet's sixteen blocks become one ``BasicBlock(in_channels, out_channels, stride,
downsample=False)``. A Sequential of numbered steps stays the framework's own sequential
container. Nothing here knows a framework.
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from dataclasses import dataclass, field
from typing import Any

from ..blocks import Residual, Sequential
from ..errors import XinitError
from ..graph import Graph, Reuse
from ..initializers import Initializer
from ..layers import Layer


class ExportError(XinitError, ValueError):
    """A spec the code export cannot write: the message names the layer path and why."""


# Fields of this name accept an int for "the same along every spatial dim" (PyTorch's rule),
# so an all-equal tuple is written as one int.
SPATIAL = frozenset(
    {"kernel_size", "stride", "padding", "dilation", "output_padding", "output_size"}
)


class Code(str):
    """A constructor argument's value that is code as written (an initializer expression),
    passed by keyword; ``hint`` is the parameter's annotation."""

    hint = ""

    def __new__(cls, text: str, hint: str = ""):
        made = super().__new__(cls, text)
        made.hint = hint
        return made


def is_numbered(seq: Sequential) -> bool:
    """A Sequential whose steps are named 0, 1, 2, ... (the framework's own container)."""
    return [n for n, _ in seq.steps] == [str(i) for i in range(len(seq.steps))]


def becomes_class(node, numbered_ok) -> bool:
    """A container written as a class of its own (a numbered Sequential is written inline
    when ``numbered_ok(node)``: every step has a module form)."""
    if isinstance(node, (Residual, Graph)):
        return True
    if isinstance(node, Sequential):
        return not (is_numbered(node) and numbered_ok(node))
    return False


def holes(layer: Layer) -> dict[str, Any]:
    """The integer fields of a layer that may differ between instances of one class."""
    out = {}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        if f.name == "dims" or isinstance(value, (bool, Initializer)) or value is None:
            continue
        if isinstance(value, int) or (
            isinstance(value, tuple)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            out[f.name] = value
    return out


def fixed_fields(layer: Layer) -> tuple:
    """A layer's fields that must be equal for two layers to share code (all but holes and
    initializers, which ``init_weights`` writes per parameter)."""
    skip = holes(layer)
    return tuple(
        (f.name, getattr(layer, f.name))
        for f in dataclasses.fields(layer)
        if f.name not in skip and not isinstance(getattr(layer, f.name), Initializer)
    )


@dataclass
class ClassPlan:
    """One class of the exported file: its name, a template instance, every instance (in
    walk order), and how each instance's values become constructor arguments."""

    name: str
    template: Any
    instances: list = field(default_factory=list)
    args: list[str] = field(default_factory=list)  # positional value arguments
    flag: str | None = None  # a Residual whose shortcut some instances lack: its name
    arg_of: dict[str, str] = field(default_factory=dict)  # hole path -> argument name
    values: list[dict[str, Any]] = field(default_factory=list)  # per instance: hole -> value

    def call_args(self, node) -> tuple[list[Any], bool | None]:
        """The positional argument values and the flag of instance ``node``."""
        i = next(k for k, inst in enumerate(self.instances) if inst is node)
        values = self.values[i]
        out = []
        for arg in self.args:
            path = next(p for p, a in self.arg_of.items() if a == arg and p in values)
            out.append(values[path])
        flag = None
        if self.flag is not None:
            flag = node.shortcut is not None
        return out, flag


class Planner:
    """Finds the classes of a spec (the root's is ``root_name``) and their arguments."""

    def __init__(self, spec, root_name: str, numbered_ok, layer_key=None, layer_holes=None):
        self.spec = spec
        self.numbered_ok = numbered_ok
        # layer -> what else two layers must share (None: nothing): Flax's init per class
        self.layer_key = layer_key
        # layer -> more holes than its integer fields (name -> value; Flax's init laws where
        # instances draw differently: ``Code``, passed by keyword)
        self.layer_holes = layer_holes
        self.by_key: dict[Any, ClassPlan] = {}
        self.of_node: dict[int, ClassPlan] = {}
        self.order: list[ClassPlan] = []  # dependencies first
        self.names: set[str] = {root_name}
        self.root = ClassPlan(root_name, spec, [spec])
        self.path_of = {id(n): p for p, n in _walk_paths(spec, "")}  # for error messages
        self._find(spec, "", root=True)
        for plan in self.order:
            self._arguments(plan)
        self._arguments(self.root)
        self.of_node[id(spec)] = self.root
        self.order.append(self.root)

    # ---- structure keys ---------------------------------------------------------------------
    def key(self, node) -> Any:
        """What two nodes must share to be one class (integer fields are holes)."""
        if isinstance(node, Layer):
            extra = None if self.layer_key is None else self.layer_key(node)
            base = (type(node).__name__, fixed_fields(node))
            return base if extra is None else (*base, extra)
        if isinstance(node, Sequential):
            return ("seq", tuple((n, self.key(c)) for n, c in node.steps))
        if isinstance(node, Residual):
            body = self.key(node.body)
            act = None if node.activation is None else self.key(node.activation)
            return ("res", body, node.shortcut_name, node.activation_name, act)
        if isinstance(node, Graph):
            nodes = tuple((n, _node_key(self.key, s), refs) for n, s, refs in node.nodes)
            return ("graph", node.kind, nodes, node.inputs, node.outputs, node.returns)
        raise ExportError(f"not a spec: {node!r}")

    def _shortcut_key(self, node):
        return None if node.shortcut is None else self.key(node.shortcut)

    def _find(self, node, path: str, root: bool = False) -> None:
        """Walk children first, so a class's dependencies come before it in ``order``."""
        for name, child in _children(node):
            self._find(child, f"{path}.{name}" if path else name)
        if root:
            self._merge_optional()
            return
        if not becomes_class(node, self.numbered_ok):
            return
        key = self.key(node)
        if isinstance(node, Residual):
            key = (key, self._shortcut_key(node))
        plan = self.by_key.get(key)
        if plan is None:
            plan = ClassPlan(self._class_name(node, path), node)
            self.by_key[key] = plan
            self.order.append(plan)
        plan.instances.append(node)
        self.of_node[id(node)] = plan

    def _merge_optional(self) -> None:
        """Residual blocks alike but for a shortcut some lack (one kind of shortcut): one
        class whose flag says whether it has the shortcut (torchvision's ``downsample``)."""
        residual = [k for k in self.by_key if isinstance(self.by_key[k].template, Residual)]
        for base in dict.fromkeys(k[0] for k in residual):
            shortcuts = [k for k in residual if k[0] == base and k[1] is not None]
            without = self.by_key.get((base, None))
            if len(shortcuts) != 1 or without is None:
                continue
            keep = self.by_key[shortcuts[0]]
            first_name = min(keep, without, key=self.order.index).name
            self.order.remove(without)
            index = {id(n): i for i, n in enumerate(_walk_nodes(self.spec))}
            keep.instances = sorted(keep.instances + without.instances, key=lambda n: index[id(n)])
            for inst in without.instances:
                self.of_node[id(inst)] = keep
            self.by_key[(base, None)] = keep
            keep.flag = keep.template.shortcut_name
            self.names.discard(keep.name if first_name != keep.name else without.name)
            keep.name = first_name  # the first name found (BasicBlock, not BasicBlock2)

    def _class_name(self, node, path: str) -> str:
        if isinstance(node, Residual):
            convs = sum(1 for _, c in node.body.steps if getattr(c, "kind", "") == "conv")
            base = {2: "BasicBlock", 3: "Bottleneck"}.get(convs, "ResidualBlock")
        elif isinstance(node, Graph) and node.kind != "graph":
            base = camel(node.kind)
        else:
            parts = [p for p in path.split(".") if not p.isdigit()]
            word = parts[-1] if parts else "block"
            numbered = path.split(".")[-1].isdigit()
            if numbered and word.endswith("s") and len(word) > 2:
                word = word[:-1]  # blocks.0 -> Block
            base = camel(word) or "Block"
        name, k = base, 2
        while name in self.names:
            name, k = f"{base}{k}", k + 1
        self.names.add(name)
        return name

    # ---- arguments --------------------------------------------------------------------------
    def hole_values(self, node) -> dict[str, Any]:
        """Hole path -> value of one instance: its own layers' integer fields, those of
        numbered Sequentials written inline, and the arguments of child classes."""
        out: dict[str, Any] = {}
        for name, child in _children(node):
            self._collect(child, name, out)
        return out

    def hole_names(self, layer: Layer) -> list[str]:
        """The names of ``layer``'s holes: its integer fields, then any the planner adds."""
        return [*holes(layer), *self._extra_holes(layer)]

    def _extra_holes(self, layer: Layer) -> dict:
        return {} if self.layer_holes is None else self.layer_holes(layer)

    def _collect(self, node, path: str, out: dict) -> None:
        if isinstance(node, Layer):
            for f, v in holes(node).items():
                out[f"{path}.{f}"] = compact(f, v)
            for f, v in self._extra_holes(node).items():
                out[f"{path}.{f}"] = v
            return
        plan = self.of_node.get(id(node))
        if plan is None:  # an inline numbered Sequential
            for name, child in node.steps:
                self._collect(child, f"{path}.{name}", out)
            return
        values, _ = plan.call_args(node)
        for arg, v in zip(plan.args, values):
            out[f"{path}.{arg}"] = v

    def _arguments(self, plan: ClassPlan) -> None:
        plan.values = [self.hole_values(n) for n in plan.instances]
        paths: list[str] = []
        for values in plan.values:
            paths += [p for p in values if p not in paths]
        groups: list[tuple[list[str], tuple]] = []
        for path in paths:
            present = [i for i, v in enumerate(plan.values) if path in v]
            vector = tuple(plan.values[i][path] for i in present)
            for members, gvector in groups:
                if _other_law(members[0], path, vector):
                    continue  # a kernel's law and a bias's: two arguments, however equal
                if all(gvector[i] == plan.values[i][path] for i in present):
                    members.append(path)  # equal to an argument wherever present: that one
                    break
            else:
                if len(set(map(repr, vector))) == 1:
                    continue  # the same wherever present: a literal
                full = tuple(plan.values[i].get(path, vector[0]) for i in range(len(plan.values)))
                groups.append(([path], full))
        used: set[str] = set()
        laws = [m[0].rsplit(".", 1)[-1] for m, full in groups if isinstance(full[0], Code)]
        for members, full in groups:
            field_name = members[0].rsplit(".", 1)[-1]
            name = field_name
            # two laws of one keyword (two convs' kernel_init): each named by its layer's path
            two_laws = isinstance(full[0], Code) and laws.count(field_name) > 1
            if name in used or name == plan.flag or two_laws:
                name = identifier(members[0].replace(".", "_"))
            k = 2
            base = name
            while name in used:
                name, k = f"{base}_{k}", k + 1
            used.add(name)
            plan.args.append(name)
            for m in members:
                plan.arg_of[m] = name
        keyword = self.keyword_args(plan)  # (code, as ``kernel_init=``) after the positional
        plan.args.sort(key=lambda a: a in keyword)

    def keyword_args(self, plan: ClassPlan) -> set[str]:
        """The arguments of ``plan``'s class passed by keyword (code values)."""
        return {
            a for p, a in plan.arg_of.items() for v in plan.values if isinstance(v.get(p), Code)
        }


def _other_law(first: str, path: str, vector: tuple) -> bool:
    """Whether hole ``path`` holds code (a law) for another keyword than ``first``."""
    other = first.rsplit(".", 1)[-1] != path.rsplit(".", 1)[-1]
    return isinstance(vector[0], Code) and other


def _node_key(key, spec) -> Any:
    """A graph node's part of its graph's key: its spec's, or the node a Reuse runs again."""
    return ("reuse", spec.node) if isinstance(spec, Reuse) else key(spec)


def _children(node):
    if isinstance(node, Layer):
        return ()
    return node.children


def _walk_paths(node, path):
    yield path, node
    for name, child in _children(node):
        yield from _walk_paths(child, f"{path}.{name}" if path else name)


def _walk_nodes(node):
    yield node
    for _, child in _children(node):
        yield from _walk_nodes(child)


def compact(field_name: str, value):
    """An all-equal tuple of a spatial field as one int (``(3, 3)`` -> ``3``)."""
    if field_name in SPATIAL and isinstance(value, tuple) and value and len(set(value)) == 1:
        return value[0]
    return value


def camel(name: str) -> str:
    """``patch_embed`` -> ``PatchEmbed``; ``resnet18`` -> ``Resnet18``."""
    words = [w for w in re.split(r"[^0-9A-Za-z]+", name) if w]
    text = "".join(w[:1].upper() + w[1:] for w in words)
    if text and text[0].isdigit():
        text = "Model" + text
    return text


def identifier(name: str) -> str:
    """A Python name for a spec name: a keyword or an invalid name gets a trailing ``_``."""
    text = re.sub(r"\W", "_", name)
    if not text or text[0].isdigit():
        text = "_" + text
    if keyword.iskeyword(text) or text in ("self", "super"):
        text += "_"
    return text


__all__ = [
    "Code",
    "ExportError",
    "ClassPlan",
    "Planner",
    "camel",
    "identifier",
    "compact",
    "is_numbered",
]
