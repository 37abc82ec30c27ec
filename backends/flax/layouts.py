"""How the Flax build holds each activation: images channel-last, sequences as they are.

Flax's convention for images is channel-last (NHWC), so the adapter holds an image with the
neutral axis 1 moved last. A sequence (N, L, D) already has its features last and is held as
it is, in PyTorch's layout. Each lowering says which one its module takes and returns
(``Lowering.layout``: ``"channels"``, ``"sequence"``/``"neutral"``, or ``"any"`` for
element-wise modules, which keep their input's). The containers plan, once when they are
made, where a value must change layout between two children (a conv's image entering a
Permute, a patch embedding's sequence entering a conv), and convert only there.

Every built module carries ``_xinit_needs`` (the layout of its input; for a graph one per
input; None: any) and ``_xinit_gives`` (its output's; None: its input's; a graph with several
outputs: a tuple or dict of them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp

CHANNELS, NEUTRAL = "channels", "neutral"
_PHYSICAL = {"channels": CHANNELS, "sequence": NEUTRAL, "neutral": NEUTRAL, "any": None}


def physical(layout: str) -> str | None:
    """``"channels"`` or ``"neutral"`` for a lowering's layout; None for ``"any"``."""
    try:
        return _PHYSICAL[layout]
    except KeyError:
        raise ValueError(
            f"unknown activation layout {layout!r}; expected one of {tuple(_PHYSICAL)}"
        ) from None


def channel_last_axes(ndim: int) -> tuple[int, ...]:
    """The neutral axis each physical axis of a channel-last array holds: (N, *S, C) is
    neutral (N, C, *S); two dims or fewer are the same in both (what to_channel_last does)."""
    return (0, *range(2, ndim), 1) if ndim >= 3 else tuple(range(ndim))


def to_channel_last(x):
    return jnp.moveaxis(x, 1, -1) if x.ndim >= 3 else x


def to_channel_first(x):
    return jnp.moveaxis(x, -1, 1) if x.ndim >= 3 else x


def convert(x, to: str | None):
    """``x`` turned into layout ``to`` (None: as it is); arrays of 2 dims or fewer are the
    same in both layouts."""
    if to is None or not hasattr(x, "ndim"):
        return x
    return to_channel_last(x) if to == CHANNELS else to_channel_first(x)


def from_neutral(x, layout: str | None):
    """A neutral array held in ``layout`` (channel-last unless ``layout`` is neutral)."""
    return x if layout == NEUTRAL else to_channel_last(x)


def to_neutral(x, layout: str | None):
    """A value held in ``layout`` as the neutral array (None: the legacy channel-last)."""
    return x if layout == NEUTRAL else to_channel_first(x)


def mark(module: Any, layout: str) -> Any:
    """Tag a layer's module with the layout its lowering declares."""
    p = physical(layout)
    module._xinit_needs = p
    module._xinit_gives = p
    return module


def needs(child: Any, n: int) -> tuple[str | None, ...]:
    """The layout ``child`` takes for each of its ``n`` inputs."""
    need = getattr(child, "_xinit_needs", None)
    if isinstance(need, tuple):
        return need + (None,) * (n - len(need))
    return (need,) * n


def gives(child: Any, first: str | None) -> Any:
    """The layout of ``child``'s output when its (first) input is held in ``first``."""
    out = getattr(child, "_xinit_gives", None)
    return first if out is None else out


def plan_chain(children: Sequence[Any], start: str | None = None):
    """Children applied in turn to a value held in ``start`` (None: not known yet; the first
    child that cares decides). Returns (the layout the chain takes, the conversion before each
    child, the layout after each child, the layout at the end)."""
    taken, cur = start, start
    converts, outs = [], []
    for child in children:
        (need,) = needs(child, 1)
        to = None
        if need is not None:
            if cur is None:
                taken = cur = need
            elif cur != need:
                to = cur = need
        converts.append(to)
        cur = gives(child, cur)
        outs.append(cur)
    return taken, tuple(converts), tuple(outs), cur


def plan_residual(body: Sequence[Any], shortcut: Any | None):
    """``body(x) + shortcut(x)``: (the layout x takes, the body's plan, the conversion of x
    before the shortcut, of the shortcut's output before the add, the layout of the sum)."""
    taken, converts, outs, body_out = plan_chain(body)
    short_need = needs(shortcut, 1)[0] if shortcut is not None else None
    if taken is None:
        taken = short_need
        if taken is not None:  # a body of element-wise steps only: it keeps x's layout
            outs = tuple(taken if o is None else o for o in outs)
            body_out = taken if body_out is None else body_out
    to_short = short_need if short_need not in (None, taken) and taken is not None else None
    short_out = gives(shortcut, short_need or taken) if shortcut is not None else taken
    to_add = body_out if short_out not in (None, body_out) and body_out is not None else None
    return taken, converts, outs, to_short, to_add, body_out


def _resolve(layouts: Mapping[str, Any], ref: str):
    node, _, key = ref.partition(".")
    value = layouts[node]
    if not key:
        return value
    if isinstance(value, Mapping):
        return value.get(key)
    if isinstance(value, tuple):
        return value[int(key)] if key.isdigit() and int(key) < len(value) else None
    return value


def plan_graph(children: Mapping[str, Any], layout: Mapping[str, Any]):
    """A graph's nodes in order: (the layout of each graph input, the conversions of each
    node's inputs, the layout of each node's output, the layouts of the graph's outputs).
    A graph input is held as its first consumer that cares takes it (channel-last if none
    does); an element-wise node keeps its first input's layout and converts the others, except
    values without a batch axis (learned tensors, held neutral): the node broadcasts those
    itself (``_xinit_raw``, see ``modules.broadcast_channel_last``)."""
    inputs = tuple(layout["inputs"])
    taken: dict[str, str | None] = dict.fromkeys(inputs)
    for _, refs, callee in layout["nodes"]:
        if _learned_tensor(children[callee]):
            continue  # its input only places it in the graph
        for ref, need in zip(refs, needs(children[callee], len(refs))):
            if ref in taken and taken[ref] is None and need is not None:
                taken[ref] = need
    layouts: dict[str, Any] = {k: v or CHANNELS for k, v in taken.items()}
    converts: dict[str, tuple] = {}
    raw: set[str] = set()  # nodes whose value has no batch axis (learned tensors), held neutral
    planned: dict[str, str] = {}  # element-wise child -> the layout its first call set
    for name, refs, callee in layout["nodes"]:
        child = children[callee]  # a Reuse node's: its target's, called again
        if _learned_tensor(child):
            raw.add(name)
            layouts[name] = NEUTRAL
            continue
        held = [_resolve(layouts, r) for r in refs]
        want = needs(child, len(refs))
        out = want[0]
        if all(w is None for w in want):  # element-wise: everything as the first input
            is_raw = tuple(r.partition(".")[0] in raw for r in refs)
            if all(is_raw):
                raw.add(name)
            batched = [h for h, r in zip(held, is_raw) if not r] or [NEUTRAL]
            first = batched[0] if isinstance(batched[0], str) else CHANNELS
            if callee in planned and planned[callee] != first:  # reused: as its first call
                first = planned[callee]
            want = tuple(None if r else first for r in is_raw)  # a raw one: broadcast as it is
            child._xinit_layout = planned[callee] = first  # a concat maps its neutral dim by it
            child._xinit_raw = is_raw
            out = first
        to = tuple(w if w is not None and w != h else None for w, h in zip(want, held))
        if any(t is not None for t in to):
            converts[name] = to
        layouts[name] = gives(child, out)
    returns = layout["returns"]
    outs = [_resolve(layouts, ref) for _, ref in layout["outputs"]]
    if returns == "single":
        out = outs[0]
    elif returns == "tuple":
        out = tuple(outs)
    else:
        out = {key: o for (key, _), o in zip(layout["outputs"], outs)}
    return tuple(layouts[i] for i in inputs), converts, layouts, out


def _learned_tensor(child: Any) -> bool:
    """Whether a graph's child is a learned-tensor node (an ``nnx.Param`` whose value is the
    tensor itself, of its neutral shape, no batch axis)."""
    return getattr(child, "xinit_op", None) == "tensor"


def root_inputs(module: Any, n: int) -> tuple[str, ...]:
    """The layouts the root module takes its ``n`` inputs in (channel-last where it does not
    say: element-wise models and models xinit did not build)."""
    return tuple(p or CHANNELS for p in needs(module, n))


def root_outputs(module: Any, value: Any, first: str) -> Any:
    """``value`` (a root module's output: an array, a tuple or a dict) as neutral arrays."""
    held = gives(module, first)

    def each(v, layout):
        if isinstance(v, Mapping):
            layouts = layout if isinstance(layout, Mapping) else {}
            return {k: each(x, layouts.get(k, layout)) for k, x in v.items()}
        if isinstance(v, (tuple, list)):
            layouts = layout if isinstance(layout, tuple) else (layout,) * len(v)
            return tuple(each(x, lay) for x, lay in zip(v, layouts))
        return to_neutral(v, layout if isinstance(layout, str) else first)

    return each(value, held)
