"""``xinit.init``: every initializer, by the name users write (``xinit.init.KaimingNormal``).

The initializers themselves live in :mod:`xinit.initializers` (re-exported here eagerly: pure
numpy, cheap) and ``gain`` with them. :class:`~xinit.defaults.catalogue.Default` (a
framework's own defaults as an initializer) lives in the defaults catalogue, which reads the
backends' lowerings: importing it costs ~90 ms, so it is loaded on first use of
``xinit.init.Default`` (or ``from xinit.init import Default``). Nothing the catalogue imports
imports this module, so there is no cycle. :func:`get` turns text such as
``"KaimingNormal(mode='fan_out')"`` into an initializer without evaluating it.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from . import initializers
from .errors import InitializerError
from .initializers import *  # noqa: F403 - every initializer, by name
from .initializers import Initializer

if TYPE_CHECKING:  # for type checkers; at run time __getattr__ below loads it on first use
    from .defaults.catalogue import Default

# the one method callable by name: bounds in standard deviations
_METHODS = {("TruncatedNormal", "in_stds")}


def _names() -> list[str]:
    """The initializer classes :func:`get` accepts by name (``Default`` included)."""
    found = [
        n
        for n in initializers.__all__
        if isinstance(getattr(initializers, n), type)
        and issubclass(getattr(initializers, n), Initializer)
        and n != "Initializer"
    ]
    return sorted([*found, "Default"])


def _target(func: ast.expr, called: bool, text: str):
    """The class (or ``TruncatedNormal.in_stds``) a parsed name refers to."""
    names = _names()
    if isinstance(func, ast.Name) and func.id in names:
        return __getattr__("Default") if func.id == "Default" else getattr(initializers, func.id)
    if (
        called
        and isinstance(func, ast.Attribute)
        and isinstance(func.value, ast.Name)
        and (func.value.id, func.attr) in _METHODS
    ):
        return getattr(getattr(initializers, func.value.id), func.attr)
    raise InitializerError(
        f"{text!r}: expected one of {', '.join(names)} (or TruncatedNormal.in_stds), "
        "optionally called with literal arguments"
    )


def _names_initializer(node: ast.expr) -> bool:
    """Whether ``node`` is an initializer's name or a call of one (not ``open(...)``)."""
    func = node.func if isinstance(node, ast.Call) else node
    try:
        _target(func, isinstance(node, ast.Call), "")
    except InitializerError:
        return False
    return True


def _argument(node: ast.expr, text: str) -> Any:
    """A literal, or an initializer written inside another (``AsLinear(KaimingNormal())``)."""
    if isinstance(node, (ast.Call, ast.Name, ast.Attribute)) and _names_initializer(node):
        return _build(node, text)
    if isinstance(node, ast.Starred):
        raise InitializerError(f"{text!r}: * and ** arguments are not accepted")
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise InitializerError(
            f"{text!r}: arguments must be literals (numbers, strings) or initializers"
        ) from None


def _build(node: ast.expr, text: str) -> Initializer:
    call = node if isinstance(node, ast.Call) else ast.Call(func=node, args=[], keywords=[])
    target = _target(call.func, isinstance(node, ast.Call), text)
    if any(k.arg is None for k in call.keywords):
        raise InitializerError(f"{text!r}: * and ** arguments are not accepted")
    args = [_argument(a, text) for a in call.args]
    kwargs = {k.arg: _argument(k.value, text) for k in call.keywords}
    try:
        return target(*args, **kwargs)
    except TypeError as err:  # a wrong argument name or count: the constructor says which
        raise InitializerError(f"{text!r}: {err}") from None


def get(identifier: str | Initializer | type[Initializer]) -> Initializer:
    """The initializer ``identifier`` names, like Keras's ``initializers.get``: an instance
    (returned as is), a class (called with no arguments), or text: a name from this module
    (``"KaimingNormal"``, ``"xinit.init.Zeros"``), optionally called with literal arguments
    (``"KaimingNormal(mode='fan_out')"``, ``"TruncatedNormal.in_stds(0, 0.02)"``).

    Text is parsed with :mod:`ast`, never evaluated: anything else raises
    :class:`~xinit.errors.InitializerError` saying what is accepted.
    """
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Initializer):
        if identifier is Initializer:
            raise InitializerError("Initializer is the abstract base; name an initializer")
        return identifier()
    if not isinstance(identifier, str):
        raise InitializerError(
            f"expected an initializer, its class or its text; got {type(identifier).__name__}"
        )
    shown = identifier if len(identifier) <= 80 else identifier[:77] + "..."
    src = identifier.strip()
    for prefix in ("xinit.init.", "init."):
        src = src.removeprefix(prefix)
    try:
        node = ast.parse(src, mode="eval").body
    except SyntaxError as err:
        raise InitializerError(f"{shown!r} is not an initializer expression: {err.msg}") from None
    except (MemoryError, RecursionError):
        raise InitializerError(f"{shown!r} is nested too deeply") from None
    return _build(node, shown)


def __getattr__(name: str):
    if name == "Default":
        from .defaults.catalogue import Default

        globals()["Default"] = Default
        return Default
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted({*globals(), *__all__})


__all__ = [*initializers.__all__, "Default", "get"]
