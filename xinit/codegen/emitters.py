"""The emitter table a framework's ``codegen.py`` fills: one :class:`Emitter` per layer
kind, registered as the lowerings are, so a kind without one is a clear error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .fields import Fields

ModuleForm = Callable[[Fields], str]  # the constructor expression
CallForm = Callable[[Fields, list], str]  # an expression on the input expressions
ApplyForm = Callable[[Fields, str, list], str]  # the module attribute applied to the inputs


@dataclass(frozen=True)
class Emitter:
    """How one layer kind is written: ``module`` (a constructor; the layer becomes an
    attribute), ``call`` (a parameter-free expression in the forward, no attribute), and
    ``apply`` where calling the attribute is not ``self.name(x)`` (a learned parameter);
    ``module_when``: the specs the module form writes, the others take the call form (a
    Clip with both bounds is ``nn.Hardtanh``, with one a ``clamp``); ``step``: a layer of no
    module form as a step of the framework's sequential container (torchvision's
    ``Permute([0, 2, 3, 1])``), where the framework's generic step would wrap the call."""

    module: ModuleForm | None = None
    call: CallForm | None = None
    apply: ApplyForm | None = None
    module_when: Callable[[Any], bool] | None = None
    step: ModuleForm | None = None

    def writes_module(self, spec) -> bool:
        """Whether ``spec`` is written as a constructed layer (else as an expression)."""
        return self.module is not None and (self.module_when is None or self.module_when(spec))


class EmitterTable(dict):
    """``kind -> Emitter``; ``table.register("conv", module=...)`` adds one."""

    def register(self, kind: str, **forms) -> None:
        from xinit import kinds

        if not kinds.is_known(kind):
            raise KeyError(f"code export: cannot register an emitter for unknown kind {kind!r}")
        self[kind] = Emitter(**forms)


def args_text(*parts) -> str:
    """Positional and keyword parts joined, empty parts dropped (lists are flattened)."""
    flat: list[str] = []
    for p in parts:
        if isinstance(p, (list, tuple)):
            flat += [x for x in p if x]
        elif p:
            flat.append(p)
    return ", ".join(flat)


__all__ = ["Emitter", "EmitterTable", "args_text"]
