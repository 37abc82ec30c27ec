"""What :func:`xinit.port` suggests when a checkpoint does not fit: another framework's
naming convention, or a prefix to strip. A hint is given only when it explains most of the
unexpected keys; a guess that explains a few would send the user the wrong way."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from .blocks import join
from .state import layout_conventions, param_maps


def _explains_most(n: int, total: int) -> bool:
    return n > 0 and 2 * n > total


def _examples(keys: Iterable[str], shown: int = 3) -> str:
    keys = list(keys)
    return ", ".join(keys[:shown]) + (", ..." if len(keys) > shown else "")


def _names(params: Mapping, convention: str) -> tuple[set[str], set[str]]:
    """The checkpoint keys ``convention`` gives the parameters of ``params`` (path ->
    ParamSpec), and the leaf names (``_mean``, ``kernel``) its maps use."""
    maps = param_maps(convention)
    keys, leaves = set(), set()
    for path, ps in params.items():
        try:
            native = maps(ps.layer)[ps.name]
        except TypeError:  # a framework with no lowering of this kind
            continue
        for leaf in native:
            keys.add(join(ps.owner(path), leaf.name))
            leaves.add(leaf.name)
    return keys, leaves


def convention_hint(unexpected: list[str], params: Mapping, src: str) -> str:
    """Name the convention whose names most of the ``unexpected`` keys are, when it is not
    ``src``'s: first by whole keys of the model, then (a checkpoint of another model too) by
    the leaf names only that convention uses (Paddle's ``_mean``/``_variance``, PyTorch's
    ``running_mean``/``num_batches_tracked``, Flax's ``kernel``/``scale``)."""
    others = [c for c in (*layout_conventions()[1:], "neutral") if c != src]
    names = {c: _names(params, c) for c in {*others, src}}
    by_key = {c: [k for k in unexpected if k in names[c][0]] for c in others}
    best = max(others, key=lambda c: len(by_key[c]))
    found = by_key[best]
    if not _explains_most(len(found), len(unexpected)):
        frameworks = [c for c in others if c != "neutral"]
        only = {
            c: names[c][1] - set().union(*(names[d][1] for d in names if d not in (c, "neutral")))
            for c in frameworks
        }
        by_leaf = {c: [k for k in unexpected if k.rsplit(".", 1)[-1] in only[c]] for c in only}
        best = max(frameworks, key=lambda c: len(by_leaf[c]), default=None)
        found = by_leaf[best] if best is not None else []
        if not _explains_most(len(found), len(unexpected)):
            return ""
    return (
        f"hint: {len(found)} of the {len(unexpected)} unexpected keys are {best} names "
        f"({_examples(found)}): did you mean --from {best} (src={best!r})?"
    )


def prefix_hint(unexpected: list[str], expected: Iterable[str]) -> str:
    """Suggest ``strip_prefix`` when most unexpected keys are expected keys behind one
    common prefix (``backbone.conv1.weight`` for ``conv1.weight``)."""
    expected = set(expected)
    prefixes: Counter[str] = Counter()
    for key in unexpected:
        parts = key.split(".")
        for i in range(1, len(parts)):
            if ".".join(parts[i:]) in expected:
                prefixes[".".join(parts[:i]) + "."] += 1
                break
    if not prefixes:
        return ""
    prefix, n = prefixes.most_common(1)[0]
    if not _explains_most(n, len(unexpected)):
        return ""
    return f"hint: {n} unexpected keys are expected keys behind {prefix!r}: strip_prefix={prefix!r}"


def port_hint(unexpected: list[str], expected: Iterable[str], params: Mapping, src: str) -> str:
    """The hints for a checkpoint that does not fit, one per line ("" when none applies)."""
    if not unexpected:
        return ""
    hints = (convention_hint(unexpected, params, src), prefix_hint(unexpected, expected))
    return "\n".join(h for h in hints if h)


def key_prefixes(keys: Iterable[str], shown: int = 6) -> str:
    """The first dotted parts of ``keys``, in order, with how many keys each begins, e.g.
    ``conv1. (2), bn1. (5), layer1. (60)``: what a prefix option could match."""
    counts = Counter(k.split(".", 1)[0] + ("." if "." in k else "") for k in keys)
    parts = [f"{p} ({n})" for p, n in list(counts.items())[:shown]]
    return ", ".join(parts) + (f" and {len(counts) - shown} more" if len(counts) > shown else "")


__all__ = ["convention_hint", "prefix_hint", "port_hint", "key_prefixes"]
