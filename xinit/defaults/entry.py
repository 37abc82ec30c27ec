"""One record of the defaults catalogue (:class:`DefaultEntry`) and its JSON form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xinit.distributions import Distribution
from xinit.fans import Fans
from xinit.initializers import Initializer

from .laws import law, short, std_ratio
from .layer_names import layer_name, layer_numbers, param_spec


@dataclass(frozen=True)
class DefaultEntry:
    """One framework's default for one parameter of one layer.

    ``leaves`` are the framework's own tensors holding the parameter, ``(name, shape)`` each:
    one for most layers, several where one neutral tensor is several native ones (PyTorch's
    packed ``in_proj_weight`` is Paddle's ``q_proj``/``k_proj``/``v_proj`` weights); each
    leaf is drawn from ``distribution`` on its own.
    """

    framework: str
    spec: Any  # the layer: an xinit layer spec, or a registered block's graph
    param: str  # neutral (PyTorch) name: weight, bias, running_mean, running_var, ...
    leaves: tuple[tuple[str, tuple[int, ...]], ...]  # (native name, native shape) each
    initializer: Initializer | None  # the xinit initializer the framework's default equals
    fans: Fans | None  # the fans the framework's own rule uses (None: not fan-based)
    distribution: Distribution | None  # None when the framework cannot build this layer
    rule: str  # the framework's rule, in words
    source: str = ""  # where the rule lives in the framework's source
    trainable: bool = True
    note: str = ""  # why unsupported; for a block, what the framework's block does (or lacks)
    aliases: tuple[str, ...] = ()  # second names of the same tensors (Paddle's weight_ih_l0)

    @property
    def layer(self) -> str:
        return layer_name(self.spec)

    @property
    def id(self) -> str:
        """``framework-layer-param``, e.g. ``paddle-conv2d-weight``."""
        return f"{self.framework}-{self.layer}-{self.param}"

    @property
    def supported(self) -> bool:
        return self.distribution is not None

    @property
    def native_names(self) -> tuple[str, ...]:
        """The framework's own names of the tensors holding this parameter."""
        return tuple(name for name, _ in self.leaves)

    @property
    def native_name(self) -> str:
        """The native name, or several as one label: ``{q_proj,k_proj,v_proj}.weight``."""
        return native_label(self.native_names)

    @property
    def native_shape(self) -> tuple[int, ...]:
        """The native shape of each leaf (the leaves of one parameter share one shape)."""
        return self.leaves[0][1]

    @property
    def neutral_shape(self) -> tuple[int, ...]:
        """The parameter's shape in the neutral (PyTorch) layout: the spec's."""
        return self.neutral.shape

    @property
    def neutral(self):
        """The parameter's neutral ParamSpec (a block's: by its path)."""
        return param_spec(self.spec, self.param)

    @property
    def std(self) -> float | None:
        return None if self.distribution is None else float(self.distribution.std)

    @property
    def mean(self) -> float | None:
        return None if self.distribution is None else float(self.distribution.mean)

    def record(self) -> dict[str, Any]:
        """A JSON-able dict (keys framework, layer, param, distribution, std, ...)."""
        d = self.distribution
        return {
            "framework": self.framework,
            "layer": self.layer,
            "param": self.param,
            "native_name": self.native_name,
            "native_shape": list(self.native_shape),
            "native_names": list(self.native_names),
            "native_aliases": list(self.aliases),
            "distribution": short(d),
            "std": self.std,
            "mean": self.mean,
            "law": law(d),
            "initializer": None if self.initializer is None else repr(self.initializer),
            "fan_in": None if self.fans is None else self.fans.fan_in,
            "fan_out": None if self.fans is None else self.fans.fan_out,
            "rule": self.rule,
            "source": self.source,
            "trainable": self.trainable,
            "dims": layer_numbers(self.spec),
            "note": self.note,
        }


def native_label(names: tuple[str, ...]) -> str:
    """One label for several native names: a shared dotted suffix and prefix are written once
    (``{q_proj,k_proj,v_proj}.weight``, ``self_attn.{q_proj,k_proj,v_proj}.weight``);
    different suffixes are joined with ``+``."""
    if len(names) == 1:
        return names[0]
    heads = [n.rpartition(".") for n in names]
    if len({tail for _, _, tail in heads}) == 1 and all(dot for _, dot, _ in heads):
        parts = [head.split(".") for head, _, _ in heads]
        shared = 0  # leading path segments every name has (a block's child path)
        while all(len(p) > shared + 1 and p[shared] == parts[0][shared] for p in parts):
            shared += 1
        lead = "".join(f"{seg}." for seg in parts[0][:shared])
        inner = ",".join(".".join(p[shared:]) for p in parts)
        return f"{lead}{{{inner}}}.{heads[0][2]}"
    return "+".join(names)


def records(entries: list[DefaultEntry], reference: str | None = None) -> list[dict[str, Any]]:
    """JSON-able records; with ``reference``, each gets ``ratio`` = std / reference's std."""
    ref = {(e.spec, e.param): e.std for e in entries if e.framework == reference}
    out = []
    for e in entries:
        rec = e.record()
        if reference is not None:
            rec["reference"] = reference
            rec["ratio"] = std_ratio(e.std, ref.get((e.spec, e.param)))
        out.append(rec)
    return out


__all__ = ["DefaultEntry", "native_label", "records"]
