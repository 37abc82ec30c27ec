"""Where the exported Flax file turns an activation between channel-last and PyTorch's layout
(light: no flax import). The file holds images channel-last, as Flax does, and sequences
(N, L, D) as they are; each layer takes what xinit's Flax build gives it
(``Lowering.layout_for``). This walks the spec once, as the build's containers plan it
(``backends/flax/layouts.py``), and records per layer path the layout its inputs are held
in, the conversion each needs, and the rank where known (arrays of rank 2 or less are the
same in both layouts, so they need none)."""

from __future__ import annotations

from dataclasses import dataclass

from xinit.blocks import Residual, Sequential, walk
from xinit.codegen.structure import ExportError, is_numbered
from xinit.graph import Graph
from xinit.layers import Layer

CHANNELS, NEUTRAL = "channels", "neutral"
_PHYSICAL = {"channels": CHANNELS, "sequence": NEUTRAL, "neutral": NEUTRAL, "any": None}
_MERGES = frozenset({"add", "mul", "sub", "div", "concat"})  # element-wise on several inputs


@dataclass(frozen=True)
class Held:
    """How a value is held: ``layout`` (channels, neutral, or None: not known yet) and its
    ``rank`` (None where not known)."""

    layout: str | None
    rank: int | None
    batched: bool = True  # False: a learned tensor's value (no batch axis), held neutral

    @property
    def matters(self) -> bool:
        """Whether the two layouts differ for this value (rank 3 or more, or unknown)."""
        return self.rank is None or self.rank >= 3


@dataclass(frozen=True)
class LayerLayout:
    """One layer's inputs as held, the layout each must be turned into first (None: as it
    is) and its output."""

    held: tuple[Held, ...]
    to: tuple[str | None, ...]
    out: Held

    @property
    def signature(self) -> tuple:
        """What the written code depends on (its conversions, and whether its first input
        and its output are channel-last images of a known rank)."""
        image_in = self.held[0].layout == CHANNELS and self.held[0].matters
        image_out = self.out.layout == CHANNELS and self.out.matters
        return self.to, image_in, image_out, self.out.rank if image_out else None


def need_of(layer: Layer) -> str | None:
    """The layout xinit's Flax build gives ``layer`` its input in (None: any)."""
    from .lowerings import REGISTRY

    if layer.kind not in REGISTRY:
        return None
    return _PHYSICAL[REGISTRY[layer.kind].layout_for(layer)]


def _rank_after(layer: Layer, rank: int | None) -> int | None:
    """The rank of ``layer``'s output for an input of ``rank`` (None: not known)."""
    if rank is None:
        return None
    kind = layer.kind
    if kind == "flatten":
        end = layer.end_dim if layer.end_dim >= 0 else rank + layer.end_dim
        return rank - (end - layer.start_dim)
    if kind == "reshape":
        return len(layer.shape) + 1
    if kind == "select":
        return rank - 1
    if kind == "embedding":
        return rank + 1
    if kind == "reduce" and not layer.keepdim:
        return rank - (1 if isinstance(layer.dims, int) else len(layer.dims))
    return rank


def _check_placed(layer: Layer, path: str, image: Held, held: tuple[Held, ...]) -> None:
    """A learned tensor (no batch axis, held neutral) broadcast onto a channel-last image of
    known rank is placed channel-last for it, as the build does (its leading 1s, then its
    channel axis moved last); refused where that cannot be known or is no broadcast."""
    where = f"{path}: a learned tensor broadcast onto a channel-last image"
    if layer.kind == "concat":
        raise ExportError(f"{where} is concatenated; the flax export broadcasts element-wise")
    if image.rank is None:
        raise ExportError(f"{where} of unknown rank; the flax export places it by its rank")
    if any(not h.batched and h.rank > image.rank for h in held):
        raise ExportError(f"{where} has more dims than the image")


class LayoutPlan:
    """Every layer's :class:`LayerLayout` by its path in the model (``at``), from a walk of
    the spec (an input of ``rank``) with its input held as the first layer that cares takes
    it (``start``: channel-last for an image model; its rank then from that layer's spatial
    dims where not given)."""

    def __init__(self, spec, rank: int | None = None):
        self.at: dict[str, LayerLayout] = {}
        self.start: str | None = None
        self.rank = rank
        self._finding = True
        self._node(spec, "", (Held(None, rank),))  # finds start (and the rank)
        self.at, self._finding = {}, False
        self.out = self._node(spec, "", (Held(self.start, self.rank),))

    def _node(self, node, path: str, held: tuple[Held, ...]) -> Held:
        if isinstance(node, Layer):
            return self._layer(node, path, held)
        if isinstance(node, Sequential):
            x = held[0]
            for name, child in node.steps:
                x = self._node(child, _join(path, name), (x,))
            return x
        if isinstance(node, Residual):
            return self._residual(node, path, held[0])
        if isinstance(node, Graph):
            return self._graph(node, path, held)
        raise ExportError(f"{path or '<root>'}: not a spec node: {node!r}")

    def _layer(self, layer: Layer, path: str, held: tuple[Held, ...]) -> Held:
        if layer.kind == "learned_tensor":  # its value; its input only places it
            if all(d == 1 for d in layer.shape):  # one number: the same in either layout
                out = Held(None, None)
            else:
                out = Held(NEUTRAL, len(layer.shape), batched=False)
            self.at[path] = LayerLayout(held, (None,) * len(held), out)
            return out
        need = need_of(layer)
        if self.start is None and need is not None and held[0].layout is None:
            self.start = need
            dims = getattr(layer, "dims", None)
            if self.rank is None and isinstance(dims, int) and not isinstance(dims, bool):
                self.rank = dims + 2
        if layer.kind in _MERGES and len(held) > 1:
            first = next((h for h in held if h.layout is not None and h.batched), held[0])
            placed = first.layout == CHANNELS and first.matters
            placed = placed and not all(h.batched for h in held)
            if placed and not self._finding:
                _check_placed(layer, path, first, held)
            to = tuple(
                first.layout
                if (h.matters or not h.batched) and h.layout not in (None, first.layout)
                else None
                for h in held
            )
            out = Held(first.layout, first.rank)
        else:
            to = tuple(
                need if need is not None and h.matters and h.layout not in (None, need) else None
                for h in held
            )
            layout = need if need is not None else held[0].layout
            out = Held(layout, _rank_after(layer, held[0].rank))
        self.at[path] = LayerLayout(held, to, out)
        return out

    def _residual(self, node: Residual, path: str, x: Held) -> Held:
        out = x
        for name, child in node.body.steps:
            out = self._node(child, _join(path, name), (out,))
        short = x
        if node.shortcut is not None:
            short = self._node(node.shortcut, _join(path, node.shortcut_name), (x,))
        both = short.matters and out.matters and None not in (short.layout, out.layout)
        if both and short.layout != out.layout:
            raise ExportError(
                f"{path}: the body gives a {out.layout} array and the shortcut a "
                f"{short.layout} one; the flax export adds them as held"
            )
        if node.activation is not None:
            out = self._node(node.activation, _join(path, node.activation_name), (out,))
        return out

    def _graph(self, node: Graph, path: str, held: tuple[Held, ...]) -> Held:
        extra = len(node.inputs) - len(held)  # a model of several inputs: each held as the first
        values: dict[str, Held] = dict(zip(node.inputs, held + held[-1:] * max(extra, 0)))
        for name in node.order:
            refs = node.inputs_of(name)
            args = tuple(values[ref.partition(".")[0]] for ref in refs)
            callee, child = node.called(name)  # a Reuse node: its target's layer, again
            where = _join(path, callee)
            first = self._signatures(where) if callee != name and not self._finding else None
            values[name] = self._node(child, where, args)
            if first is not None and self._signatures(where) != first:
                raise ExportError(
                    f"{where}: called again by {_join(path, name)} (a Reuse node) on values "
                    "held otherwise than at its first call; the flax export writes one "
                    "layout per layer"
                )
        outs = [values[ref.partition(".")[0]] for _, ref in node.outputs]
        return outs[0]

    def _signatures(self, where: str) -> dict:
        """What the written code depends on, per layer at or below ``where``."""
        inside = where + "."
        return {p: a.signature for p, a in self.at.items() if p == where or p.startswith(inside)}

    def _differences(self, planner):
        """(class name, first instance's path, other instance's path, layer path in the
        class, every instance's path) wherever instances of a class of ``planner`` hold a
        layer's values differently (a layer only some instances have is not compared)."""
        for plan in planner.order:
            first = planner.path_of[id(plan.instances[0])]
            mine = self._relative(first)
            for inst in plan.instances[1:]:
                where = planner.path_of[id(inst)]
                theirs = self._relative(where)
                for p in sorted(mine.keys() & theirs.keys()):
                    if mine[p] != theirs[p]:
                        roots = tuple(planner.path_of[id(i)] for i in plan.instances)
                        yield plan.name, first, where, p, roots

    def check_shared(self, planner) -> None:
        """Every instance of a shared class must hold its values alike (its code is written
        once, from the first instance)."""
        for name, first, where, *_ in self._differences(planner):
            raise ExportError(
                f"{where}: holds its activations in other layouts than {first} of the "
                f"same class {name}; the flax export writes one forward per class"
            )

    def differing(self, planner) -> set[str]:
        """The layer paths (in every instance of the class) that :meth:`check_shared`
        refuses."""
        found = self._differences(planner)
        return {_join(root, p) for *_, p, roots in found for root in roots}

    def _relative(self, root: str) -> dict:
        """What the code of the class at ``root`` depends on, by layer path in the class:
        each layer's conversions and whether its input and output are channel-last images."""
        head = f"{root}." if root else ""
        return {p[len(head) :]: v.signature for p, v in self.at.items() if p.startswith(head)}


def turned_steps(spec, layouts: LayoutPlan, has_module) -> dict[str, str]:
    """The layout each constructed layer of a numbered Sequential must take its input in,
    by path, where it comes in the other (ConvNeXt's LayerNorm2d after a block ending in
    PyTorch's layout; a conv after a pad): the file's Sequential turns it (``turn=``). An
    expression step turns its input itself, as a layer between named ones does."""
    out = {}
    for path, node in walk(spec):
        if not isinstance(node, Sequential) or not is_numbered(node):
            continue
        for name, child in node.steps:
            where = _join(path, name)
            rec = layouts.at.get(where)
            if rec is None or rec.to[0] is None:
                continue
            if isinstance(child, Layer) and has_module(child):
                out[where] = rec.to[0]
    return out


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


__all__ = ["CHANNELS", "NEUTRAL", "Held", "LayerLayout", "LayoutPlan", "need_of", "turned_steps"]
